"""RuuviTag data format 5: shared vectors, not-available sentinels, valid extremes, a trailing
RSSI byte, and the property that any bytes decode or raise DecodeError."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import ruuvi
from drivers.base import DecodeError

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "ruuvi_df5.json").read_text()
)
VALID_HEX = VECTORS[0]["hex"]

# Vector key (Ruuvi's table units) -> (our quantity, our unit, conversion to our unit).
QUANTITIES: dict[str, tuple[str, str, float]] = {
    "temperature": ("temperature_c", "Cel", 1),
    "humidity": ("humidity_pct", "%", 1),
    "pressure": ("pressure_hpa", "hPa", 0.01),  # the vectors have Pa
    "acceleration_x": ("acceleration_x_g", "[g]", 1),
    "acceleration_y": ("acceleration_y_g", "[g]", 1),
    "acceleration_z": ("acceleration_z_g", "[g]", 1),
    "battery_voltage": ("battery_v", "V", 1),
    "tx_power": ("tx_power_dbm", "dBm", 1),
    "movement_counter": ("movement_count", "1", 1),
}


def _frame(**fields: int) -> bytes:
    """A DF5 payload of the valid vector with some raw fields replaced."""
    names = ("fmt", "t", "h", "p", "ax", "ay", "az", "power", "movement", "sequence", "mac")
    raw = dict(zip(names, struct.unpack(">BhHHhhhHBH6s", bytes.fromhex(VALID_HEX)), strict=True))
    raw.update(fields)
    return struct.pack(">BhHHhhhHBH6s", *raw.values())


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["hex"])
def test_vector_decodes_to_exactly_the_values_its_source_asserts(vector: dict[str, Any]) -> None:
    expect = dict(vector["expect"])
    assert expect.pop("data_format") == ruuvi.DATA_FORMAT
    frame = ruuvi.decode(bytes.fromhex(vector["hex"]))
    assert (frame.sequence, frame.mac) == (expect.pop("measurement_sequence"), expect.pop("mac"))
    wanted = {
        QUANTITIES[key][0]: (pytest.approx(value * QUANTITIES[key][2]), QUANTITIES[key][1])
        for key, value in expect.items()
        if value is not None
    }
    assert {m.quantity: (m.value, m.unit) for m in frame.measurements} == wanted
    assert len(frame.measurements) == len(wanted)
    assert {QUANTITIES[k][0]: getattr(frame, QUANTITIES[k][0]) for k in expect} == {
        QUANTITIES[k][0]: None if v is None else pytest.approx(v * QUANTITIES[k][2])
        for k, v in expect.items()
    }


def test_valid_vector_values_are_exact_decimals_not_float_noise() -> None:
    frame = ruuvi.decode(bytes.fromhex(VALID_HEX))
    assert (frame.temperature_c, frame.humidity_pct, frame.pressure_hpa) == (24.3, 53.49, 1000.44)
    assert (frame.battery_v, frame.tx_power_dbm, frame.movement_count) == (2.977, 4, 66)


def test_every_field_at_its_sentinel_gives_no_measurement_and_none() -> None:
    frame = ruuvi.decode(bytes.fromhex(VECTORS[1]["hex"]))
    assert frame.measurements == ()
    assert all(getattr(frame, name) is None for name in ruuvi.RuuviFrame.__slots__)


@pytest.mark.parametrize(
    ("fields", "quantity", "value"),
    [
        ({"t": 32767}, "temperature_c", 163.835),
        ({"t": -32767}, "temperature_c", -163.835),
        ({"h": 65534}, "humidity_pct", 163.835),
        ({"p": 0}, "pressure_hpa", 500.0),
        ({"p": 65534}, "pressure_hpa", 1155.34),
        ({"ax": -32767}, "acceleration_x_g", -32.767),
        ({"power": 2046 << 5 | 30}, "battery_v", 3.646),
        ({"power": 0}, "battery_v", 1.6),
        ({"power": 30}, "tx_power_dbm", 20),
        ({"power": 0}, "tx_power_dbm", -40),
        ({"movement": 254}, "movement_count", 254),
    ],
)
def test_valid_extremes_decode_to_the_documented_limits(
    fields: dict[str, int], quantity: str, value: float
) -> None:
    assert getattr(ruuvi.decode(_frame(**fields)), quantity) == value


def test_only_the_field_at_its_sentinel_is_absent() -> None:
    frame = ruuvi.decode(_frame(power=2047 << 5 | 22))  # battery n/a, TX power +4 dBm
    quantities = [m.quantity for m in frame.measurements]
    assert "battery_v" not in quantities and frame.battery_v is None
    assert frame.tx_power_dbm == 4 and len(quantities) == 8


def test_sequence_and_mac_identify_the_measurement_and_are_not_measurements() -> None:
    frame = ruuvi.decode(_frame(sequence=65534, mac=bytes.fromhex("0a0b0c0d0e0f")))
    assert (frame.sequence, frame.mac) == (65534, "0a:0b:0c:0d:0e:0f")
    assert not {"sequence", "mac"} & {m.quantity for m in frame.measurements}


def test_a_trailing_rssi_byte_from_the_scanner_is_ignored() -> None:
    data = bytes.fromhex(VALID_HEX)
    assert ruuvi.decode(data + b"\xc4") == ruuvi.decode(data)


@pytest.mark.parametrize(
    ("data", "offset", "message"),
    [
        (b"", 0, "got 0"),
        (bytes.fromhex(VALID_HEX)[:23], 23, "got 23"),
        (bytes.fromhex(VALID_HEX) + b"\x00\x00", 24, "got 26"),
        (b"\x03" + bytes.fromhex(VALID_HEX)[1:], 0, "data format 3, expected 5"),
    ],
)
def test_wrong_length_or_data_format_raises_decode_error(
    data: bytes, offset: int, message: str
) -> None:
    with pytest.raises(DecodeError, match=message) as caught:
        ruuvi.decode(data)
    assert caught.value.offset == offset


@given(st.binary(max_size=30))
def test_any_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        assert isinstance(ruuvi.decode(data), ruuvi.RuuviFrame)


@given(st.binary(min_size=23, max_size=23))
def test_any_df5_payload_gives_at_most_nine_measurements_none_of_them_none(rest: bytes) -> None:
    frame = ruuvi.decode(b"\x05" + rest)
    assert len(frame.measurements) <= 9
    assert all(m.value is not None for m in frame.measurements)
