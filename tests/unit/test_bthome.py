"""BTHome v2 codec: shared vectors (plain, encrypted, rejects), the object table, AES-CCM, and
the property that any bytes decode or raise DecodeError."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import bthome
from drivers.base import DecodeError, Measurement
from drivers.bthome_objects import BUTTON_EVENTS, OBJECTS
from drivers.bthome_replay import ReplayGuard

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "bthome_v2.json").read_text()
)
SUPPORTED = [v for v in VECTORS if v["expect"].get("supported", True)]
REJECTED = [v for v in VECTORS if not v["expect"].get("supported", True)]

# Our quantity (unnumbered) -> (bthome-ble key, unit), for the quantities the vectors use.
AS_BTHOME_BLE: dict[str, tuple[str, str]] = {
    "temperature_c": ("temperature", "Cel"),
    "humidity_pct": ("humidity", "%"),
    "illuminance_lx": ("illuminance", "lx"),
    "dew_point_c": ("dew_point", "Cel"),
    "power_w": ("power", "W"),
    "power": ("power", "bool"),
    "pm2_5_ugm3": ("pm25", "ug/m3"),
    "pm10_ugm3": ("pm10", "ug/m3"),
    "moisture_pct": ("moisture", "%"),
    "button": ("event:button", "event"),
    "distance_mm": ("distance", "mm"),
    "current_a": ("current", "A"),
    "volume_ml": ("volume", "mL"),
    "volume_l": ("volume", "L"),
    "gas_m3": ("gas", "m3"),
    "acceleration_mps2": ("acceleration", "m/s2"),
    "conductivity_uscm": ("conductivity", "uS/cm"),
    "count": ("count", "1"),
    "battery_pct": ("battery", "%"),
    "voltage_v": ("voltage", "V"),
    "rotational_speed_rpm": ("rotational_speed", "/min"),
    "pressure_hpa": ("pressure", "hPa"),
}
_NUMBERED = re.compile(r"(?P<name>[a-z_]+?)_(?P<n>\d+)_(?P<suffix>[a-z0-9]+)")

# The vectors whose source asserts only that the MIC verifies: the decrypted values, cross-checked
# against bthome-ble 3.25.0 decoding the same bytes with the same key (see drivers/README.md).
CROSS_CHECKED: dict[str, dict[str, Any]] = {
    "41723d3035fb88322211009e7414c0": {"temperature": 25.06, "humidity": 50.55},
    "450aeb84467f85ba0100003188788c": {"packet_id": 7, "battery": 100, "event:button": "press"},
}


def _mac(vector: dict[str, Any]) -> bytes | None:
    return bytes.fromhex(vector["mac"].replace(":", "")) if "mac" in vector else None


def _key(vector: dict[str, Any]) -> bytes | None:
    return bytes.fromhex(vector["bindkey"]) if "bindkey" in vector else None


def _decode(vector: dict[str, Any]) -> bthome.Advert:
    return bthome.decode(bytes.fromhex(vector["hex"]), mac=_mac(vector), key=_key(vector))


def _as_bthome_ble(advert: bthome.Advert) -> dict[str, Any]:
    """The advert named and valued the way bthome-ble (and so the vectors) report it."""
    result: dict[str, Any] = {}
    for m in advert.measurements:
        numbered = None if m.quantity in AS_BTHOME_BLE else _NUMBERED.fullmatch(m.quantity)
        plain = f"{numbered['name']}_{numbered['suffix']}" if numbered else m.quantity
        key, unit = AS_BTHOME_BLE[plain]
        assert m.unit == unit, m
        key += f"_{numbered['n']}" if numbered else ""
        value: Any = m.value
        if unit == "bool":
            value = bool(m.value)
        elif unit == "event":
            value = BUTTON_EVENTS[int(m.value)]
        result[key] = value
    if advert.packet_id is not None:
        result["packet_id"] = advert.packet_id
    for text in advert.texts:
        result["text"] = text
    return result


# --- vectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", SUPPORTED, ids=lambda v: v["hex"])
def test_vector_decodes_to_exactly_the_values_its_source_asserts(vector: dict[str, Any]) -> None:
    expect = dict(vector["expect"])
    counter = expect.pop("encryption_counter", None)
    expect.pop("decrypt_ok", None)  # decoding raises when the MIC does not verify
    expect.update(CROSS_CHECKED.get(vector["hex"], {}))
    advert = _decode(vector)
    assert _as_bthome_ble(advert) == expect
    assert advert.encrypted == ("bindkey" in vector)
    if counter is not None:
        assert advert.counter == counter
    assert advert.trigger_based == bool(bytes.fromhex(vector["hex"])[0] & 0x04)


@pytest.mark.parametrize("vector", REJECTED, ids=lambda v: v["hex"])
def test_vector_with_another_version_is_rejected_at_the_info_byte(vector: dict[str, Any]) -> None:
    with pytest.raises(DecodeError, match="version 7, expected 2") as caught:
        _decode(vector)
    assert caught.value.offset == 0


def test_mac_in_payload_is_read_reversed_and_used_for_the_nonce() -> None:
    vector = next(v for v in VECTORS if v["hex"].startswith("43"))
    advert = bthome.decode(bytes.fromhex(vector["hex"]), key=_key(vector))  # no mac argument
    assert advert.mac == bytes.fromhex("5448e68f80a5")
    assert advert.measurements == (
        Measurement("temperature_c", 25.06, "Cel"),
        Measurement("humidity_pct", 50.55, "%"),
    )


@pytest.mark.parametrize("vector", [v for v in VECTORS if "bindkey" in v], ids=lambda v: v["hex"])
def test_encrypted_vector_without_key_raises_key_required(vector: dict[str, Any]) -> None:
    with pytest.raises(bthome.KeyRequired, match="bind key"):
        bthome.decode(bytes.fromhex(vector["hex"]), mac=_mac(vector))


@pytest.mark.parametrize("vector", [v for v in VECTORS if "bindkey" in v], ids=lambda v: v["hex"])
def test_encrypted_vector_with_a_wrong_key_or_a_flipped_byte_fails_decryption(
    vector: dict[str, Any],
) -> None:
    data, key = bytes.fromhex(vector["hex"]), _key(vector)
    assert key is not None
    wrong_key = bytes([key[0] ^ 1]) + key[1:]
    flipped = data[:-5] + bytes([data[-5] ^ 0x80]) + data[-4:]  # last counter byte
    for attempt, use_key in ((data, wrong_key), (flipped, key)):
        with pytest.raises(DecodeError, match="decryption failed") as caught:
            bthome.decode(attempt, mac=_mac(vector), key=use_key)
        assert caught.value.offset == len(data) - 4


# --- the object table ----------------------------------------------------------------------------


@pytest.mark.parametrize("object_id", sorted(OBJECTS), ids=lambda i: f"0x{i:02x}")
def test_every_object_id_of_the_table_decodes_with_its_length(object_id: int) -> None:
    obj = OBJECTS[object_id]
    body = bytes(obj.size)
    advert = bthome.decode(bytes((0x40, object_id)) + body + bytes((0x01, 0x2A)))  # + battery
    assert (advert.measurements[-1].value, advert.measurements[-1].unit) == (42, "%")
    with pytest.raises(DecodeError) as caught:
        bthome.decode(bytes((0x40, 0x01, 0x10, object_id)) + body[:-1])
    assert caught.value.offset == 3


def test_ids_measuring_the_same_quantity_are_numbered_together_in_order() -> None:
    advert = bthome.decode(bytes.fromhex("400c780b4a1e000c0100"))
    assert advert.measurements == (
        Measurement("voltage_1_v", 2.936, "V"),
        Measurement("voltage_2_v", 3.0, "V"),
        Measurement("voltage_3_v", 0.001, "V"),
    )


def test_one_quantity_in_two_units_is_not_numbered() -> None:
    advert = bthome.decode(bytes.fromhex("4006e80307d007400c00410c00"))
    assert advert.measurements == (
        Measurement("mass_kg", 10.0, "kg"),
        Measurement("mass_lb", 20.0, "[lb_av]"),
        Measurement("distance_mm", 12, "mm"),
        Measurement("distance_m", 1.2, "m"),
    )


def test_a_sensor_and_a_binary_sensor_of_one_name_are_numbered_apart() -> None:
    advert = bthome.decode(bytes.fromhex("400b021b0010011000"))
    assert advert.measurements == (
        Measurement("power_w", 69.14, "W"),
        Measurement("power_1", 1, "bool"),
        Measurement("power_2", 0, "bool"),
    )


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        ("580a", Measurement("temperature_c", 3.5, "Cel")),  # factor 0.35
        ("57f6", Measurement("temperature_c", -10, "Cel")),
        ("6240420f00", Measurement("speed_mps", 1.0, "m/s")),  # 1e-6
        ("501a2b3c4d", Measurement("timestamp_s", 0x4D3C2B1A, "s")),
        ("2d07", Measurement("window", 1, "bool")),  # any non-zero byte is "on"
        ("3c0103", Measurement("dimmer", -3, "event")),  # rotate left 3 steps
        ("3c0205", Measurement("dimmer", 5, "event")),
        ("3a04", Measurement("button", 4, "event")),
    ],
)
def test_object_values_scale_sign_and_encode_events(objects: str, expected: Measurement) -> None:
    assert bthome.decode(bytes.fromhex("40" + objects)).measurements == (expected,)


@pytest.mark.parametrize("objects", ["3a00", "3a07", "3c0000", "3c0304"])
def test_no_event_and_unknown_event_codes_give_no_measurement(objects: str) -> None:
    assert bthome.decode(bytes.fromhex("40" + objects)).measurements == ()


def test_buttons_are_numbered_by_position_even_when_one_has_no_event() -> None:
    advert = bthome.decode(bytes.fromhex("403a003a02"))
    assert advert.measurements == (Measurement("button_2", 2, "event"),)


def test_text_raw_command_and_device_information_are_frame_fields_not_measurements() -> None:
    advert = bthome.decode(bytes.fromhex("405302c3285302686954030102033b0201aabbf00100f2000106"))
    assert advert.measurements == ()
    assert advert.texts == ("hi",)  # c3 28 is invalid UTF-8: dropped
    assert advert.raw == (b"\x01\x02\x03",)
    assert advert.commands == (b"\x01\xaa\xbb",)
    assert (advert.device_type, advert.firmware) == (1, "6.1.0")
    assert bthome.decode(bytes.fromhex("40f100010204")).firmware == "4.2.1.0"


def test_parsing_stops_at_the_first_unknown_id_and_ignores_what_follows() -> None:
    advert = bthome.decode(bytes.fromhex("40015dfe"))  # 0xfe unknown, nothing after it
    assert advert.measurements == (Measurement("battery_pct", 93, "%"),)


@pytest.mark.parametrize(
    ("hexdata", "offset", "message"),
    [
        ("", 0, "empty"),
        ("00", 0, "version 0"),
        ("4002ca", 1, r"object 0x02 \(temperature\) needs 2 bytes, 1 left"),
        ("405305414243", 1, "needs 6 bytes, 4 left"),
        ("42b2188d", 4, "inside its MAC"),
        ("4101020304050607", 8, "too short for a counter and a MIC"),
    ],
)
def test_malformed_advert_raises_decode_error_at_the_bad_byte(
    hexdata: str, offset: int, message: str
) -> None:
    key, mac = bytes(16), bytes(6)
    with pytest.raises(DecodeError, match=message) as caught:
        bthome.decode(bytes.fromhex(hexdata), mac=mac, key=key)
    assert caught.value.offset == offset


def test_encrypted_advert_without_a_mac_needs_one_for_the_nonce() -> None:
    with pytest.raises(bthome.KeyRequired, match="MAC"):
        bthome.decode(bytes.fromhex("41723d3035fb88322211009e7414c0"), key=bytes(16))


@pytest.mark.parametrize(("mac", "key"), [(bytes(5), None), (None, bytes(15))])
def test_mac_or_key_of_the_wrong_length_is_a_value_error(
    mac: bytes | None, key: bytes | None
) -> None:
    with pytest.raises(ValueError, match="bytes, got"):
        bthome.decode(b"\x40", mac=mac, key=key)


# --- properties ----------------------------------------------------------------------------------

_MAC = bytes.fromhex("5448e68f80a5")
_KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")


@given(st.binary(max_size=40))
def test_any_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        advert = bthome.decode(data, mac=_MAC, key=_KEY)
    except DecodeError:
        return
    assert all(isinstance(m, Measurement) for m in advert.measurements)


@given(st.binary(max_size=40))
def test_any_objects_after_a_v2_info_byte_decode_or_raise_decode_error(objects: bytes) -> None:
    try:
        bthome.decode(b"\x40" + objects)
    except DecodeError as error:
        offset = error.offset
    else:
        return
    assert offset is not None and 1 <= offset <= len(objects)


@given(st.binary(max_size=30), st.integers(0, 0xFFFFFFFF), st.booleans())
def test_sealed_objects_decode_like_the_same_objects_sent_plain(
    objects: bytes, counter: int, trigger_based: bool
) -> None:
    sealed = bthome.seal(objects, mac=_MAC, key=_KEY, counter=counter, trigger_based=trigger_based)
    try:
        plain = bthome.decode(bytes((0x44 if trigger_based else 0x40,)) + objects)
    except DecodeError as error:
        plain_error: DecodeError | None = error
    else:
        plain_error = None
    if plain_error is not None:
        with pytest.raises(DecodeError) as caught:
            bthome.decode(sealed, mac=_MAC, key=_KEY)
        assert caught.value.offset == plain_error.offset
        return
    opened = bthome.decode(sealed, mac=_MAC, key=_KEY)
    assert (opened.encrypted, opened.counter) == (True, counter)
    assert opened.measurements == plain.measurements
    assert opened.trigger_based == plain.trigger_based == trigger_based


# --- replay and downgrade ------------------------------------------------------------------------


def _sealed(counter: int) -> bthome.Advert:
    return bthome.decode(
        bthome.seal(b"\x01\x5d", mac=_MAC, key=_KEY, counter=counter), mac=_MAC, key=_KEY
    )


def test_replay_guard_accepts_rising_counters_and_refuses_a_repeat_or_a_lower_one() -> None:
    guard = ReplayGuard()
    assert [guard.check("a", _sealed(c), has_key=True) for c in (5, 6, 200, 200, 150, 201)] == [
        "accept",
        "accept",
        "accept",
        "replay",
        "replay",
        "accept",
    ]
    assert guard.last_counter("a") == 201


def test_replay_guard_refuses_the_vector_whose_counter_went_down() -> None:
    vector = next(v for v in VECTORS if "encryption_counter" in v["expect"])
    guard = ReplayGuard()
    assert guard.check("dev", _sealed(1122867), has_key=True) == "accept"
    assert guard.check("dev", _decode(vector), has_key=True) == "replay"
    assert guard.last_counter("dev") == 1122867


def test_replay_guard_accepts_the_wrap_to_zero_and_a_restart_below_100() -> None:
    guard = ReplayGuard()
    assert guard.check("a", _sealed(0xFFFFFFFF), has_key=True) == "accept"
    assert guard.check("a", _sealed(0), has_key=True) == "accept"
    assert guard.check("a", _sealed(0), has_key=True) == "replay"
    assert guard.check("b", _sealed(5000), has_key=True) == "accept"
    assert guard.check("b", _sealed(99), has_key=True) == "accept"  # battery change
    assert guard.check("b", _sealed(98), has_key=True) == "replay"


def test_replay_guard_with_restart_below_1_accepts_only_a_restart_at_zero() -> None:
    guard = ReplayGuard(restart_below=1)
    assert guard.check("a", _sealed(5000), has_key=True) == "accept"
    assert guard.check("a", _sealed(99), has_key=True) == "replay"
    assert guard.check("a", _sealed(0), has_key=True) == "accept"


def test_plain_advert_from_a_device_with_a_key_is_a_downgrade_and_without_one_is_fine() -> None:
    guard = ReplayGuard()
    plain = bthome.decode(bytes.fromhex("4002ca0903bf13"))
    assert guard.check("keyed", plain, has_key=True) == "downgrade"
    assert guard.check("open", plain, has_key=False) == "accept"
    assert guard.last_counter("keyed") is None


def test_replay_guard_keeps_devices_apart_and_forgets_one_on_request() -> None:
    guard = ReplayGuard()
    assert guard.check("a", _sealed(500), has_key=True) == "accept"
    assert guard.check("b", _sealed(400), has_key=True) == "accept"
    assert guard.check("a", _sealed(400), has_key=True) == "replay"
    guard.forget("a")
    assert guard.check("a", _sealed(400), has_key=True) == "accept"
