"""node.json checks before flashing (gateway/nodes/config.py): every mistake named by its path,
per board, and the checks kept in step with what firmware/main.py reads."""

from __future__ import annotations

import ast
import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.nodes import config as nodeconfig
from gateway.nodes.config import NodeConfigError, validate

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
EXAMPLE = json.loads((FIRMWARE / "node.json").read_text())


def _firmware_constants() -> dict[str, Any]:
    """The literal constants of firmware/main.py (DEFAULTS, SENSOR_TYPES, ...)."""
    found: dict[str, Any] = {}
    for stmt in ast.parse((FIRMWARE / "main.py").read_text()).body:
        if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        elif isinstance(stmt, ast.Assign):
            target, value = stmt.targets[0], stmt.value
        else:
            continue
        if isinstance(target, ast.Name):
            with contextlib.suppress(ValueError):
                found[target.id] = ast.literal_eval(value)
    return found


def test_checks_cover_exactly_the_keys_and_ranges_the_firmware_reads() -> None:
    firmware = _firmware_constants()
    fields = nodeconfig._fields(nodeconfig.LIMITS["esp32"])
    assert set(fields["node"]) == set(firmware["DEFAULTS"])
    assert set(fields["uart"]) == set(firmware["DEFAULTS"]["uart"])
    assert set(fields["ble"]) == set(firmware["DEFAULTS"]["ble"])
    assert firmware["SENSOR_TYPES"] == nodeconfig.SENSOR_TYPES
    assert (firmware["MIN_INTERVAL_S"], firmware["MAX_INTERVAL_S"]) == nodeconfig.INTERVAL_S


def test_the_shipped_example_is_valid_for_the_esp32() -> None:
    assert validate(EXAMPLE, board="esp32") == []


def test_the_esp32_example_pins_do_not_fit_a_pico() -> None:
    assert validate(EXAMPLE, board="rp2") == [
        "sensors[1].uart: expected an int 0..1, got 2",
        "sensors[2].pin: expected an int 0..29, got 35",
    ]


def _with(path: str, value: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(EXAMPLE)
    *parents, last = path.split(".")
    node: Any = cfg
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return cfg


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("interval", 60, "interval: unknown key"),
        ("interval_s", 2, "interval_s: expected an int 5..86400, got 2"),
        ("node_id", True, "node_id: expected an int 0..65535, got true"),
        ("node_id", "17", 'node_id: expected an int 0..65535, got "17"'),
        ("link", "wifi", "link: expected one of 'uart', 'ble'"),
        ("wdt_ms", 90000, "wdt_ms: expected an int 1000..60000"),
        ("led", 40, "led: expected an int 0..39 or null, got 40"),
        ("uart.baud", 9600, "uart.baud: unknown key"),
        ("uart.tx", 6, "uart.tx: GPIO 6 is wired to the ESP32's SPI flash"),
        ("sensors.0.sda", 35, "sensors[0].sda: GPIO 35 is input-only"),
        ("uart.rx", None, "uart.tx, rx: give both pins or neither"),
        ("ble", {"key": "00112233"}, "ble.key: expected null or 32 hex digits"),
        ("sensors.0.type", "bmp180", "sensors[0].type: expected one of bme280, sht3x"),
        ("sensors.0.adress", 118, "sensors[0].adress: unknown key"),
        ("sensors.0.address", 0x80, "sensors[0].address: expected an int 8..119, got 128"),
        ("sensors.1.uart", 1, "sensors[1].uart: UART 1 is the gateway link (uart.id)"),
        ("sensors.2.scale", "2", 'sensors[2].scale: expected a number 0.01..1000, got "2"'),
        ("sensors", {"type": "bme280"}, "sensors: expected a list of sensor objects"),
    ],
)
def test_each_mistake_is_named_by_its_path(path: str, value: Any, problem: str) -> None:
    problems = validate(_with(path, value), board="esp32")
    assert any(p.startswith(problem) for p in problems), problems


def test_input_only_pins_may_receive() -> None:
    assert validate(_with("sensors.1.rx", 34), board="esp32") == []


def test_a_pico_reserves_its_internal_pins() -> None:
    cfg = {"led": 23, "uart": {"id": 0, "baudrate": 115200, "tx": 0, "rx": 1}}
    assert validate(cfg, board="rp2") == [
        "led: GPIO 23 is used inside the Pico (power supply / radio); expected a free pin, got 23"
    ]


def test_a_supply_needs_its_pin() -> None:
    cfg = dict(EXAMPLE, sensors=[{"type": "supply", "scale": 2.0}])
    assert validate(cfg, board="esp32") == ["sensors[0].pin: required (the ADC pin)"]


def test_ble_link_frees_the_uart_and_takes_a_bind_key() -> None:
    cfg = dict(
        EXAMPLE,
        link="ble",
        ble={"interval_ms": 1000, "key": "00" * 16},
        sensors=[{"type": "pms5003", "uart": 1, "tx": 17, "rx": 16}],
    )
    assert validate(cfg, board="esp32") == []


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", '"node"'])
def test_load_refuses_what_is_not_a_json_object(tmp_path: Path, text: str) -> None:
    path = tmp_path / "node.json"
    path.write_text(text)
    with pytest.raises(NodeConfigError, match=r"node\.json: (not JSON|node\.json: expected an)"):
        nodeconfig.load(path, board="esp32")


def test_load_returns_the_files_bytes_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_bytes((FIRMWARE / "node.json").read_bytes())
    assert nodeconfig.load(path, board="esp32") == path.read_bytes()
