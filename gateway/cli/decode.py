"""`citygw decode DRIVER HEX`: one frame or BLE advert through a driver; a JSON line per reading."""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from drivers import DRIVERS
from gateway.cli.base import Commands, fail

if TYPE_CHECKING:
    from drivers import Driver, Frame


def add_commands(commands: Commands) -> None:
    """Add decode."""
    p = commands.add(
        "decode", help="decode one frame: prints one JSON object per reading", handler=cmd_decode
    )
    p.add_argument("driver")
    p.add_argument("hex")
    p.add_argument("--mac", help="device address (BLE drivers)")
    p.add_argument("--key", help="bind key in hex (encrypted BLE drivers)")


def parse_hex(text: str) -> bytes:
    """The bytes HEX gives: whitespace ignored, an optional 0x; ValueError if not hex."""
    digits = "".join(text.split()).removeprefix("0x")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"not hexadecimal: {text!r}") from None


def cmd_decode(args: argparse.Namespace) -> int:
    """Decode HEX; 1 if it is not a valid frame, 2 for a bad argument."""
    from drivers.base import DecodeError
    from drivers.bthome import KeyRequired

    driver = DRIVERS.get(args.driver)
    if driver is None:
        fail("decode", f"unknown driver {args.driver!r}; known: {', '.join(DRIVERS)}")
        return 2
    try:
        decode = _frame_decoder(driver, args)
        data = parse_hex(args.hex)
    except ValueError as error:
        fail("decode", error)
        return 2
    try:
        frame = decode(data)
    except KeyRequired as error:
        fail("decode", f"{driver.name}: {error}. Pass --key HEX and --mac MAC to decrypt it")
        return 1
    except DecodeError as error:
        fail("decode", f"{driver.name}: {error}")
        return 1
    for record in records(driver.name, frame):
        print(json.dumps(record, default=_json_bytes))
    return 0


def records(driver: str, frame: Frame) -> list[dict[str, object]]:
    """One record per measurement, with what identifies the sensor; for a valid frame without
    measurements (a command, a reply, a text), one record of the frame's fields."""
    identity = _identity(frame)
    if not frame.measurements:
        fields = {
            name: getattr(frame, name)
            for name in getattr(frame, "__slots__", ())
            if name != "measurements"
        }
        return [{"driver": driver, "frame": type(frame).__name__, **fields, **identity}]
    return [
        {"driver": driver, "quantity": m.quantity, "value": m.value, "unit": m.unit, **identity}
        for m in frame.measurements
    ]


def _bind_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 16:
        raise ValueError(f"--key: a bind key is 32 hex digits (16 bytes), got {text!r}")
    return key


def _frame_decoder(driver: Driver, args: argparse.Namespace) -> Callable[[bytes], Frame]:
    """The driver's one-frame decoder; for bthome with the --mac and --key given (ValueError if
    they are malformed or given to another driver)."""
    if driver.name != "bthome":
        if args.mac or args.key:
            raise ValueError("--mac and --key are for the bthome driver only")
        return driver.decode_frame
    from drivers import bthome
    from drivers.ble import parse_mac

    mac = parse_mac(args.mac) if args.mac else None
    key = _bind_key(args.key) if args.key else None
    return functools.partial(bthome.decode, mac=mac, key=key)


def _identity(frame: Frame) -> dict[str, object]:
    """What identifies the sensor or the measurement, where the frame knows it."""
    from drivers.ble import format_mac

    identity: dict[str, object] = {}
    device_id = getattr(frame, "device_id", None)
    if isinstance(device_id, int):
        identity["device_id"] = f"{device_id:04x}"
    mac = getattr(frame, "mac", None)
    if isinstance(mac, bytes | str):
        identity["mac"] = format_mac(mac) if isinstance(mac, bytes) else mac
    for name in ("packet_id", "counter", "sequence"):
        value = getattr(frame, name, None)
        if isinstance(value, int):
            identity[name] = value
    return identity


def _json_bytes(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
