"""The node on the UART link: exact frames on the wire, decoded by the gateway's drivers/node.py,
one round trip per sensor type; commands and acks; failures become status, never a crash."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from drivers import get_driver, node, pms5003, sds011
from drivers.base import Measurement

BME280_CAL = "b16f2e6a3200e28f0ad7d00b751fc5fff9ffac260ad8bd10004b7701001220031e"
SHT3X_REPLY = "5f58387bb27d"


def prelude(cfg: dict[str, Any]) -> str:
    """MicroPython that builds a Node from `cfg` with every fake device wired."""
    return f"""
import json, gc, devices, main
devices.I2C_DEVICES[(0, 0x76)] = devices.BME280Dev(bytes.fromhex({BME280_CAL!r}),
                                                   541968, 324976, 24244)
devices.I2C_DEVICES[(0, 0x44)] = devices.SHT3xDev(bytes.fromhex({SHT3X_REPLY!r}))
devices.UART_RESPONDERS[2] = devices.sds011_responder([(999, 999), (555, 555), (123, 456)])
devices.UART_RESPONDERS[3] = devices.pms5003_responder([(1, 2, 3), (4, 5, 6), (7, 8, 9)])
devices.ADC_VALUES[29] = 32768
cfg = json.loads({json.dumps(json.dumps(cfg))})
errors = main._check(cfg)
n = main.Node(cfg, errors, sleep_ms=lambda ms: None)
link = devices.UARTS[1]
def wire():
    out = bytes(link.written).hex()
    link.written[:] = b""
    return out
"""


def config(*sensors: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"node_id": 17, "interval_s": 60, "link": "uart", "sensors": list(sensors), **extra}


def report_bytes(seq: int, readings: list[list[Any]], status: dict[str, str]) -> bytes:
    """What the node must send, built with the gateway's encoder (keys in sorted order)."""
    body = {"iv_s": 60, "r": readings, "s": dict(sorted(status.items())), "up_s": 0}
    return node.encode(node.T_REPORT, 17, seq, body)


def decode_all(wire_hex: str) -> list[node.Frame]:
    dec = get_driver("node").new_stream
    assert dec is not None
    stream = dec()
    frames = stream.feed(bytes.fromhex(wire_hex))
    assert stream.stats.bad_frames == 0
    assert stream.pending == 0
    return list(frames)  # type: ignore[arg-type]


SENSOR_CASES = [
    (
        {"type": "bme280", "bus": 0, "sda": 21, "scl": 22, "address": 0x76},
        [
            ["temperature_c", 27.38, "Cel"],
            ["pressure_hpa", 1012.22, "hPa"],
            ["humidity_pct", 32.9, "%"],
        ],
        "bme280",
    ),
    (
        {"type": "sht3x", "bus": 0, "address": 0x44},
        [["temperature_c", 20.18, "Cel"], ["humidity_pct", 48.32, "%"]],
        "sht3x",
    ),
    (
        {"type": "sds011", "uart": 2, "tx": 17, "rx": 16, "warmup_s": 30, "discard": 2},
        [["pm2_5_ugm3", 12.3, "ug/m3"], ["pm10_ugm3", 45.6, "ug/m3"]],
        "sds011",
    ),
    (
        {"type": "pms5003", "uart": 3, "warmup_s": 30, "discard": 2},
        [["pm1_0_ugm3", 7, "ug/m3"], ["pm2_5_ugm3", 8, "ug/m3"], ["pm10_ugm3", 9, "ug/m3"]],
        "pms5003",
    ),
    ({"type": "supply", "pin": 29, "scale": 2.0}, [["supply_v", 3.3, "V"]], "supply"),
]


@pytest.mark.parametrize(("spec", "readings", "name"), SENSOR_CASES, ids=lambda c: str(c)[:12])
def test_report_round_trip_per_sensor(
    micropython: Callable[..., str], spec: dict[str, Any], readings: list[list[Any]], name: str
) -> None:
    wire = micropython(prelude(config(spec)) + "n.run_once()\nprint(wire())").strip()
    assert bytes.fromhex(wire) == report_bytes(0, [[*r, name] for r in readings], {name: "ok"})
    (frame,) = decode_all(wire)
    assert isinstance(frame, node.Report)
    assert (frame.node_id, frame.seq, frame.interval_s) == (17, 0, 60)
    assert frame.measurements == tuple(Measurement(q, v, u) for q, v, u in readings)
    assert frame.sensors == (name,) * len(readings)
    assert frame.status == ((name, "ok"),)


def test_sds011_duty_cycle_bytes_match_the_gateway_driver(
    micropython_json: Callable[..., Any],
) -> None:
    """Wake, query mode, discard two readings (999.9 and 55.5), keep the third, sleep."""
    spec = {"type": "sds011", "uart": 2, "warmup_s": 30, "discard": 2}
    got = micropython_json(
        prelude(config(spec))
        + """
feeds = devices.WDT_FEEDS[0]
n.run_once()
print(json.dumps({"sensor": bytes(devices.UARTS[2].written).hex(),
                  "feeds": devices.WDT_FEEDS[0] - feeds}))
"""
    )
    want = (
        sds011.cmd_set_sleep(False)
        + sds011.cmd_set_reporting_mode(True)
        + sds011.cmd_query() * 3
        + sds011.cmd_set_sleep(True)
    )
    assert bytes.fromhex(got["sensor"]) == want
    assert got["feeds"] >= 30  # the 30 s warm-up is slept in watchdog-fed slices


def test_pms5003_duty_cycle_bytes_match_the_gateway_driver(
    micropython_json: Callable[..., Any],
) -> None:
    spec = {"type": "pms5003", "uart": 3, "warmup_s": 1, "discard": 2}
    got = micropython_json(
        prelude(config(spec))
        + """
n.run_once()
print(json.dumps(bytes(devices.UARTS[3].written).hex()))
"""
    )
    want = pms5003.cmd_wake() + pms5003.cmd_passive() + pms5003.cmd_read() * 3 + pms5003.cmd_sleep()
    assert bytes.fromhex(got) == want


def test_all_sensors_in_one_report(micropython: Callable[..., str]) -> None:
    specs = [case[0] for case in SENSOR_CASES]
    wire = micropython(prelude(config(*specs)) + "n.run_once()\nn.run_once()\nprint(wire())")
    first, second = decode_all(wire.strip())
    assert isinstance(first, node.Report) and isinstance(second, node.Report)
    assert (first.seq, second.seq) == (0, 1)
    assert len(first.measurements) == sum(len(case[1]) for case in SENSOR_CASES)
    assert dict(first.status) == {case[2]: "ok" for case in SENSOR_CASES}


def test_missing_and_failing_sensors_become_status_not_a_crash(
    micropython: Callable[..., str],
) -> None:
    specs = [
        {"type": "bme280", "name": "bme_missing", "bus": 0, "address": 0x77},
        {"type": "sds011", "name": "pm_silent", "uart": 4, "warmup_s": 0, "timeout_ms": 50},
        {"type": "sht3x", "bus": 0},
    ]
    code = (
        prelude(config(*specs))
        + """
n.run_once()
devices.I2C_DEVICES[(0, 0x77)] = devices.I2C_DEVICES[(0, 0x76)]  # plugged in later
n.run_once()
print(wire())
"""
    )
    first, second = decode_all(micropython(code).strip())
    assert isinstance(first, node.Report) and isinstance(second, node.Report)
    status = dict(first.status)
    assert status["bme_missing"].startswith("error: ")
    assert status["pm_silent"] == "error: no frame from sensor"
    assert status["sht3x"] == "ok"
    assert [m.quantity for m in first.measurements] == ["temperature_c", "humidity_pct"]
    assert dict(second.status)["bme_missing"] == "ok"


def test_config_errors_are_reported_and_defaults_used(micropython: Callable[..., str]) -> None:
    cfg = config({"type": "sht3x", "bus": 0}, interval_s=1, link="wifi", colour="red")
    wire = micropython(prelude(cfg) + "n.run_once()\nprint(wire())").strip()
    (frame,) = decode_all(wire)
    assert isinstance(frame, node.Report)
    assert frame.interval_s == 60
    assert dict(frame.status)["config"] == (
        'unknown key colour; interval_s: expected an int 5..86400; link: expected "uart" or "ble"'
    )
    assert dict(frame.status)["sht3x"] == "ok"


def test_unreadable_node_json_gives_defaults_and_a_status(micropython: Callable[..., str]) -> None:
    code = """
import devices, main
cfg, errors = main.load_config("node.json")
n = main.Node(cfg, errors, sleep_ms=lambda ms: None)
n.run_once()
print(bytes(devices.UARTS[1].written).hex())
"""
    wire = micropython(code, extra={"node.json": "{not json"}).strip()
    (frame,) = decode_all(wire)
    assert isinstance(frame, node.Report)
    assert frame.node_id == 0
    assert dict(frame.status)["config"].startswith("node.json: ")


def test_setup_failure_falls_back_to_defaults(micropython: Callable[..., str]) -> None:
    cfg = config({"type": "sht3x", "bus": 0}, uart={"id": 1, "tx": 99, "rx": 98})
    code = """
import devices, main
devices.I2C_DEVICES[(0, 0x44)] = devices.SHT3xDev(bytes.fromhex("5f58387bb27d"))
main.Node.run = lambda self: self.run_once()  # one cycle instead of forever
main.time.sleep_ms = lambda ms: None
main.main()
print(bytes(devices.UARTS[1].written).hex())
"""
    wire = micropython(code, extra={"node.json": json.dumps(cfg)}).strip()
    (frame,) = decode_all(wire)
    assert isinstance(frame, node.Report)
    assert frame.node_id == 0 and frame.measurements == ()
    assert dict(frame.status) == {"config": "setup failed (invalid pin): using defaults"}


def command(name: str, arg: Any = None, *, seq: int, node_id: int = 17) -> str:
    return node.encode_command(name, arg, node_id=node_id, seq=seq).hex()


def test_commands_are_acknowledged(micropython: Callable[..., str]) -> None:
    sent = "".join(
        (
            command("set_interval", 30, seq=100),
            command("set_interval", 2, seq=101),
            command("sleep", "sds011", seq=102),
            "00deadbeef00",  # noise and a broken frame in between
            command("identify", 2, seq=103),
            command("wake", None, seq=104),
            command("set_interval", 45, seq=105, node_id=99),  # another node's: ignored
            command("reboot", seq=106, node_id=0xFFFF),
        )
    )
    code = (
        prelude(config({"type": "sds011", "uart": 2, "warmup_s": 0}, led=2))
        + f"""
link.inject(bytes.fromhex({sent!r}))
try:
    n.poll()
except devices.Reset:
    print("reset", devices.RESETS[0])
print(n.interval_s, n.led.history)
print(wire())
"""
    )
    *lines, wire = micropython(code).strip().splitlines()
    assert lines == ["reset 1", "30 [1, 0, 1, 0]"]
    acks = decode_all(wire)
    got = [(a.seq, a.command_seq, a.command, a.ok, a.error) for a in acks]  # type: ignore[union-attr]
    assert got == [
        (0, 100, "set_interval", True, None),
        (1, 101, "set_interval", False, "interval must be an int 5..86400"),
        (2, 102, "sleep", True, None),
        (3, 103, "identify", True, None),
        (4, 104, "wake", True, None),
        (5, 106, "reboot", True, None),
    ]


def test_sleeping_sensor_is_reported_asleep(micropython: Callable[..., str]) -> None:
    code = (
        prelude(config({"type": "sds011", "uart": 2, "warmup_s": 0}))
        + f"""
link.inject(bytes.fromhex({command("sleep", None, seq=1)!r}))
n.poll()
wire()
n.run_once()
print(wire())
"""
    )
    (report,) = decode_all(micropython(code).strip())
    assert isinstance(report, node.Report)
    assert report.status == (("sds011", "asleep"),) and report.measurements == ()


def test_memory_stays_flat_over_thousands_of_cycles(micropython_json: Callable[..., Any]) -> None:
    specs = [case[0] for case in SENSOR_CASES] + [
        {"type": "bme280", "name": "gone", "address": 0x77}  # fails every cycle
    ]
    got = micropython_json(
        prelude(config(*specs))
        + """
for _ in range(50):
    n.run_once(); wire()
gc.collect()
before = gc.mem_free()
for _ in range(2000):
    n.run_once()
    link.written[:] = b""
gc.collect()
after = gc.mem_free()
print(json.dumps([before, after, n.cycles, devices.WDT_FEEDS[0]]))
""",
        timeout_s=240,
    )
    before, after, cycles, feeds = got
    assert cycles == 2050
    assert feeds >= 2 * cycles
    assert before - after < 2048, f"heap shrank by {before - after} bytes over 2000 cycles"
