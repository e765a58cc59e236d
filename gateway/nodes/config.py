"""A sensor node's node.json, checked on the host before it goes to a board.

The firmware (firmware/main.py `_check`, `make_sensor`) never refuses a node.json: a bad key falls
back to its default and is reported to the gateway as status "config". That keeps a node alive
on the pole, but a typo found there costs a visit. So `citygw node flash` checks the file here
first, stricter than the node: every key the firmware reads, with its type and range, unknown
keys anywhere, and pin and bus numbers the chosen board has. Errors name the exact path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Board = Literal["esp32", "rp2"]
BOARDS: tuple[Board, ...] = ("esp32", "rp2")

# What firmware/main.py accepts (MIN_INTERVAL_S, MAX_INTERVAL_S, wdt_ms, node_id).
INTERVAL_S = (5, 86_400)
WDT_MS = (1_000, 60_000)
NODE_ID = (0, 0xFFFF)
SENSOR_TYPES = ("bme280", "sht3x", "sds011", "pms5003", "supply")


@dataclass(frozen=True, slots=True)
class BoardLimits:
    """What a node.json may use on one board: GPIO range, UART and I2C ids, pins that are taken."""

    gpio: tuple[int, int]
    uart_ids: tuple[int, int]
    i2c_buses: tuple[int, int]
    reserved: dict[int, str]  # GPIOs that are not free, and why
    input_only: frozenset[int]  # GPIOs that cannot drive a line (TX, SDA, SCL, LED)


LIMITS: dict[Board, BoardLimits] = {
    "esp32": BoardLimits(
        gpio=(0, 39),
        uart_ids=(0, 2),
        i2c_buses=(0, 1),
        reserved=dict.fromkeys(range(6, 12), "wired to the ESP32's SPI flash")
        | dict.fromkeys((20, 24, 28, 29, 30, 31), "not on the ESP32"),
        input_only=frozenset(range(34, 40)),
    ),
    "rp2": BoardLimits(
        gpio=(0, 29),
        uart_ids=(0, 1),
        i2c_buses=(0, 1),
        reserved={
            23: "used inside the Pico (power supply / radio)",
            24: "used inside the Pico (VBUS sense / radio)",
        },
        input_only=frozenset(),
    ),
}

_HEX_KEY = re.compile(r"^[0-9a-fA-F]{32}$")


class NodeConfigError(ValueError):
    """A node.json that would not do what it says; `problems` are "path: what was expected"."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(f"{file}: " + "; ".join(problems))


Check = Callable[[object], str | None]  # None if the value is fine, else what was expected


def _int(low: int, high: int, *, null: bool = False) -> Check:
    def check(value: object) -> str | None:
        if null and value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"expected an int {low}..{high}" + (" or null" if null else "")

    return check


def _number(low: float, high: float) -> Check:
    def check(value: object) -> str | None:
        if isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"expected a number {low:g}..{high:g}"

    return check


def _choice(*options: str) -> Check:
    def check(value: object) -> str | None:
        return None if value in options else "expected one of " + ", ".join(map(repr, options))

    return check


def _name(value: object) -> str | None:
    ok = isinstance(value, str) and 0 < len(value) <= 32
    return None if ok else "expected a name of 1-32 characters"


def _bind_key(value: object) -> str | None:
    ok = value is None or (isinstance(value, str) and bool(_HEX_KEY.match(value)))
    return None if ok else "expected null or 32 hex digits (the BTHome bind key)"


def _pin(limits: BoardLimits, *, drives: bool, null: bool = False) -> Check:
    """A GPIO the board has free; `drives`: the pin must be able to drive the line."""
    in_range = _int(*limits.gpio, null=null)

    def check(value: object) -> str | None:
        if (expected := in_range(value)) is not None or value is None:
            return expected
        if value in limits.reserved:
            return f"GPIO {value} is {limits.reserved[value]}; expected a free pin"
        if drives and value in limits.input_only:
            return f"GPIO {value} is input-only; expected a pin that can drive the line"
        return None

    return check


def _fields(limits: BoardLimits) -> dict[str, dict[str, Check]]:
    """Per object kind, each key the firmware reads and its check."""
    out = _pin(limits, drives=True)
    pin = _pin(limits, drives=False)
    out_or_null = _pin(limits, drives=True, null=True)
    pin_or_null = _pin(limits, drives=False, null=True)
    return {
        "node": {
            "node_id": _int(*NODE_ID),
            "interval_s": _int(*INTERVAL_S),
            "link": _choice("uart", "ble"),
            "uart": lambda v: None,
            "ble": lambda v: None,
            "sensors": lambda v: None,
            "led": out_or_null,
            "wdt_ms": _int(*WDT_MS),
        },
        "uart": {
            "id": _int(*limits.uart_ids),
            "baudrate": _int(1_200, 3_000_000),
            "tx": out_or_null,
            "rx": pin_or_null,
        },
        "ble": {"interval_ms": _int(20, 10_240), "key": _bind_key},
        "i2c": {
            "type": lambda v: None,
            "name": _name,
            "bus": _int(*limits.i2c_buses),
            "sda": out,
            "scl": out,
            "freq": _int(10_000, 1_000_000),
            "address": _int(0x08, 0x77),
        },
        "uart_sensor": {
            "type": lambda v: None,
            "name": _name,
            "uart": _int(*limits.uart_ids),
            "tx": out,
            "rx": pin,
            "warmup_s": _int(0, 600),
            "discard": _int(0, 100),
            "timeout_ms": _int(100, 60_000),
        },
        "supply": {"type": lambda v: None, "name": _name, "pin": pin, "scale": _number(0.01, 1000)},
    }


_SENSOR_KIND = {
    "bme280": "i2c",
    "sht3x": "i2c",
    "sds011": "uart_sensor",
    "pms5003": "uart_sensor",
    "supply": "supply",
}


def _sensor_kind(spec: object) -> str | None:
    kind = spec.get("type") if isinstance(spec, dict) else None
    return _SENSOR_KIND.get(kind) if isinstance(kind, str) else None


_PAIRS = {"i2c": ("sda", "scl"), "uart_sensor": ("tx", "rx"), "uart": ("tx", "rx")}


def _check_object(obj: object, path: str, kind: str, fields: Mapping[str, Check]) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{path or 'node.json'}: expected an object"]
    prefix = f"{path}." if path else ""
    problems = [
        f"{prefix}{key}: unknown key (known: {', '.join(fields)})"
        for key in obj
        if key not in fields
    ]
    for key, check in fields.items():
        if key in obj and (expected := check(obj[key])) is not None:
            problems.append(f"{prefix}{key}: {expected}, got {json.dumps(obj[key])}")
    pair = _PAIRS.get(kind)
    if pair is not None and (obj.get(pair[0]) is None) != (obj.get(pair[1]) is None):
        problems.append(f"{prefix}{pair[0]}, {pair[1]}: give both pins or neither")
    return problems


def validate(cfg: object, *, board: Board) -> list[str]:
    """Every problem in a parsed node.json for `board`, as "path: expected ..., got ..."."""
    fields = _fields(LIMITS[board])
    problems = _check_object(cfg, "", "node", fields["node"])
    if not isinstance(cfg, dict):
        return problems
    for section in ("uart", "ble"):
        if section in cfg:
            problems += _check_object(cfg[section], section, section, fields[section])
    sensors = cfg.get("sensors", [])
    if not isinstance(sensors, list):
        return [*problems, "sensors: expected a list of sensor objects"]
    for index, spec in enumerate(sensors):
        path = f"sensors[{index}]"
        kind = _sensor_kind(spec)
        if kind is None:
            problems.append(f"{path}.type: expected one of {', '.join(SENSOR_TYPES)}")
            continue
        problems += _check_object(spec, path, kind, fields[kind])
        if kind == "supply" and "pin" not in spec:
            problems.append(f"{path}.pin: required (the ADC pin)")
    if cfg.get("link") == "uart" or "link" not in cfg:
        problems += _shared_uart(cfg)
    return problems


def _shared_uart(cfg: dict[str, Any]) -> list[str]:
    """The link UART and a particulate sensor on the same UART id would fight over it."""
    link = cfg.get("uart")
    link_id = link.get("id", 1) if isinstance(link, dict) else 1
    return [
        f"sensors[{i}].uart: UART {link_id} is the gateway link (uart.id)"
        for i, spec in enumerate(cfg.get("sensors") or [])
        if _sensor_kind(spec) == "uart_sensor" and spec.get("uart", 1) == link_id
    ]


def load(path: Path, *, board: Board) -> bytes:
    """The file's bytes, once they parse as JSON and validate for `board` (NodeConfigError)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise NodeConfigError(str(path), [f"cannot read: {error.strerror}"]) from None
    try:
        cfg = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise NodeConfigError(str(path), [f"not JSON: {error}"]) from None
    problems = validate(cfg, board=board)
    if problems:
        raise NodeConfigError(str(path), problems)
    return data
