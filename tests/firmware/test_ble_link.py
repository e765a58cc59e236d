"""The node on the BLE link: BTHome v2 adverts, plain and AES-CCM encrypted with a bind key,
decoded by the gateway's drivers/bthome.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from drivers import bthome
from drivers.base import Measurement

KEY = "231d39c1d7cc1ab1aee224cd096db932"  # the bthome.io encryption example's bind key
MAC = bytes.fromhex("5448E68F80A5")  # what the fake bluetooth.BLE().config("mac") gives
BME280_CAL = "b16f2e6a3200e28f0ad7d00b751fc5fff9ffac260ad8bd10004b7701001220031e"


def ble_prelude(cfg: dict[str, Any]) -> str:
    return f"""
import json, bluetooth, devices, main
devices.I2C_DEVICES[(0, 0x76)] = devices.BME280Dev(bytes.fromhex({BME280_CAL!r}),
                                                   541968, 324976, 24244)
devices.UART_RESPONDERS[2] = devices.sds011_responder([(123, 456)])
devices.I2C_DEVICES[(0, 0x44)] = devices.SHT3xDev(bytes.fromhex("5f58387bb27d"))
devices.UART_RESPONDERS[3] = devices.pms5003_responder([(7, 8, 9)])
devices.ADC_VALUES[29] = 32768
cfg = json.loads({json.dumps(json.dumps(cfg))})
errors = main._check(cfg)
n = main.Node(cfg, errors, sleep_ms=lambda ms: None)
"""


def split_advert(adv: bytes) -> bytes:
    """The service data after D2 FC, checking the AD structures around it."""
    assert adv[:3] == b"\x02\x01\x06"  # Flags: LE general discoverable, BR/EDR not supported
    length, ad_type = adv[3], adv[4]
    assert ad_type == 0x16 and adv[5:7] == b"\xd2\xfc"
    assert len(adv) == 4 + length <= 31
    return adv[7:]


BLE_SENSORS = [
    {"type": "bme280", "bus": 0, "address": 0x76},
    {"type": "sds011", "uart": 2, "warmup_s": 0, "discard": 0},
    {"type": "supply", "pin": 29, "scale": 2.0},
]
# In object-id order; BTHome carries PM as whole ug/m3 (12.3 -> 12, 45.6 -> 46).
EXPECTED = [
    Measurement("temperature_c", 27.38, "Cel"),
    Measurement("humidity_pct", 32.9, "%"),
    Measurement("pressure_hpa", 1012.22, "hPa"),
    Measurement("voltage_v", 3.3, "V"),
    Measurement("pm2_5_ugm3", 12, "ug/m3"),
    Measurement("pm10_ugm3", 46, "ug/m3"),
]


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_bthome_advert_round_trip(micropython_json: Callable[..., Any], key: str | None) -> None:
    """Two cycles; each cycle's readings in one advert (plain) or two (encrypted: 15 bytes of
    objects fit), every advert with its own packet id and, when encrypted, counter."""
    cfg = {
        "node_id": 5,
        "link": "ble",
        "ble": {"interval_ms": 500, "key": key},
        "sensors": BLE_SENSORS,
    }
    got = micropython_json(
        ble_prelude(cfg)
        + """
per_cycle = []
for _ in range(2):
    n.run_once()
    for _ in range(len(n.adverts) - 1):
        n._show_advert()  # what wait() does every ROTATE_MS
    per_cycle.append(len(n.adverts))
print(json.dumps([per_cycle, [[us, adv.hex()] for us, adv in bluetooth.ADVERTS]]))
"""
    )
    per_cycle, shown = got
    assert per_cycle == ([1, 1] if key is None else [2, 2])
    assert {us for us, _ in shown} == {500_000}
    adverts = [split_advert(bytes.fromhex(h)) for _, h in shown]
    bind = None if key is None else bytes.fromhex(key)
    decoded = [bthome.decode(a, mac=MAC, key=bind) for a in adverts]
    assert [d.packet_id for d in decoded] == list(range(len(decoded)))
    assert all(d.encrypted is (key is not None) for d in decoded)
    k = per_cycle[0]
    for cycle in (decoded[:k], decoded[k:]):
        assert tuple(m for d in cycle for m in d.measurements) == tuple(EXPECTED)
    if key is None:
        assert adverts[0].hex() == ("40000002b20a03da0c04668b010ce40c0d0c000e2e00")
    else:
        assert [d.counter for d in decoded] == [1, 2, 3, 4]
        with pytest.raises(bthome.KeyRequired):
            bthome.decode(adverts[0], mac=MAC)


PER_SENSOR = [
    (
        {"type": "bme280", "bus": 0},
        [("temperature_c", 27.38), ("humidity_pct", 32.9), ("pressure_hpa", 1012.22)],
    ),
    ({"type": "sht3x", "bus": 0}, [("temperature_c", 20.18), ("humidity_pct", 48.32)]),
    (
        {"type": "sds011", "uart": 2, "warmup_s": 0, "discard": 0},
        [("pm2_5_ugm3", 12), ("pm10_ugm3", 46)],
    ),
    (
        {"type": "pms5003", "uart": 3, "warmup_s": 0, "discard": 0},
        [("pm2_5_ugm3", 8), ("pm10_ugm3", 9)],
    ),  # BTHome has no PM1.0 object: left out
    ({"type": "supply", "pin": 29, "scale": 2.0}, [("voltage_v", 3.3)]),
]


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
@pytest.mark.parametrize(("spec", "want"), PER_SENSOR, ids=lambda c: str(c)[:16])
def test_each_sensor_type_round_trips_over_ble(
    micropython_json: Callable[..., Any],
    spec: dict[str, Any],
    want: list[tuple[str, float]],
    key: str | None,
) -> None:
    cfg = {"node_id": 5, "link": "ble", "ble": {"key": key}, "sensors": [spec]}
    got = micropython_json(
        ble_prelude(cfg)
        + """
n.run_once()
print(json.dumps([adv.hex() for _, adv in bluetooth.ADVERTS]))
"""
    )
    (adv,) = got
    bind = None if key is None else bytes.fromhex(key)
    decoded = bthome.decode(split_advert(bytes.fromhex(adv)), mac=MAC, key=bind)
    assert [(m.quantity, m.value) for m in decoded.measurements] == want


def test_encryption_counter_keeps_growing_across_reboots(
    micropython_json: Callable[..., Any],
) -> None:
    cfg = {
        "node_id": 5,
        "link": "ble",
        "ble": {"key": KEY},
        "sensors": [{"type": "supply", "pin": 29}],
    }
    got = micropython_json(
        ble_prelude(cfg)
        + """
counters = []
for boot in range(3):
    n = main.Node(cfg, [], sleep_ms=lambda ms: None)
    for _ in range(3):
        n.run_once()
    counters.append(n.ble_counter)
print(json.dumps(counters))
"""
    )
    # The prelude's node was the first boot (counters 0..1023); each boot starts after the block
    # the previous one reserved.
    assert got == [1027, 2051, 3075]


def test_encrypted_advert_equals_gateway_seal_byte_for_byte(
    micropython_json: Callable[..., Any],
) -> None:
    objects = "02c409031d1b"  # temperature 25.00 degC, humidity 69.73 %
    got = micropython_json(f"""
import json, bthome
mac = bytes.fromhex("5448E68F80A5")
out = [bthome.service_data(bytes.fromhex({objects!r}), bytes.fromhex({KEY!r}), mac, c).hex()
       for c in (0, 1, 0x11223344, 0xFFFFFFFF)]
print(json.dumps(out))
""")
    want = [
        bthome.seal(bytes.fromhex(objects), mac=MAC, key=bytes.fromhex(KEY), counter=c).hex()
        for c in (0, 1, 0x11223344, 0xFFFFFFFF)
    ]
    assert got == want


def test_objects_are_packed_in_ascending_id_order_and_clamped(
    micropython_json: Callable[..., Any],
) -> None:
    got = micropython_json("""
import json, bthome
r = [("pm10_ugm3", 70000, "ug/m3"), ("temperature_c", -12.345, "Cel"),
     ("unknown_x", 1, "x"), ("pressure_hpa", 1013.25, "hPa"), ("humidity_pct", -3, "%")]
print(json.dumps(bthome.objects(r, packet_id=258).hex()))
""")
    assert got == "0002022efb03000004cd8b010effff"
    adv = bthome.decode(bytes.fromhex("40" + got))
    assert adv.packet_id == 2
    assert [(m.quantity, m.value) for m in adv.measurements] == [
        ("temperature_c", -12.34),
        ("humidity_pct", 0.0),
        ("pressure_hpa", 1013.25),
        ("pm10_ugm3", 65535),
    ]
