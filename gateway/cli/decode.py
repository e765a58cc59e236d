"""`citygw decode DRIVER HEX`: one frame or BLE advert through a driver; a JSON line per reading."""

from __future__ import annotations

import argparse
import functools
import json
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING

from drivers import DRIVERS
from gateway.cli.base import Commands, fail

if TYPE_CHECKING:
    from drivers import Driver, Frame

DESCRIPTION = (
    "Decode one frame or BLE advert, given in hex, with a citygw driver; print one JSON object "
    "per reading (for a frame without readings: its fields)."
)
EXIT_HELP = (
    "Exit status: 0 decoded, 1 not a valid frame (the message says at which byte), 2 a bad "
    "argument."
)
HEX_HELP = (
    "HEX is one whole frame as the sensor sends it (serial drivers), or the data of one BLE "
    "advert: its service data or manufacturer data, without the UUID or company id. Hex digits "
    "in either case; spaces and colons anywhere are ignored, and a leading 0x is allowed."
)


def add_commands(commands: Commands) -> None:
    """Add decode, whose help lists the registered drivers and what HEX is."""
    width = commands.width
    p = commands.add(
        "decode",
        help="decode one frame: prints one JSON object per reading",
        description=textwrap.fill(DESCRIPTION, width),
        epilog=_epilog(width),
        preformatted=True,
        handler=cmd_decode,
    )
    p.add_argument("driver", metavar="DRIVER", help="a driver name (listed below)")
    p.add_argument("hex", metavar="HEX", help="the frame or advert data in hex (below)")
    p.add_argument("--mac", help="device address (BLE drivers)")
    p.add_argument("--key", help="bind key in hex (encrypted BLE drivers)")
    p.add_argument(
        "--set",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        dest="options",
        help="a source option of the driver, where the bytes do not say everything "
        "(listed below): --set slave=1 start_register=0 count=2",
    )


def _epilog(width: int) -> str:
    """Drivers by kind, from the registry, then what HEX accepts, exit codes and examples."""
    serial = [name for name, driver in DRIVERS.items() if driver.new_stream is not None]
    modbus = [name for name, driver in DRIVERS.items() if driver.modbus]
    ble = [
        name for name, driver in DRIVERS.items() if driver.new_stream is None and not driver.modbus
    ]

    def row(label: str, names: list[str]) -> str:
        return textwrap.fill(
            ", ".join(names),
            width,
            initial_indent=f"  {label:<17}",
            subsequent_indent=" " * 19,
            break_on_hyphens=False,
        )

    return "\n".join(
        [
            "drivers:",
            row("serial sensors:", serial),
            row("BLE adverts:", ble),
            row("Modbus meters:", modbus),
            "",
            "options (--set KEY=VALUE):",
            *_option_rows(width),
            "",
            textwrap.fill(HEX_HELP, width),
            "",
            textwrap.fill(EXIT_HELP, width),
            "",
            "examples:",
            '  citygw decode sds011 "aa c0 d4 04 3a 0a a1 60 1d ab"',
            "  citygw decode bthome 4000a70c780b1000",
            "  citygw decode bthome DATA --mac MAC --key BINDKEY   # an encrypted advert",
            "  citygw decode sdm120 010404436633341b38 --set slave=1 start_register=0 count=2",
        ]
    )


def _option_rows(width: int) -> list[str]:
    """One line per declared option: the drivers that take it, its name, type and help."""
    rows: dict[tuple[str, str, str], list[str]] = {}
    for name, driver in DRIVERS.items():
        for option in driver.options:
            rows.setdefault((option.name, option.type.__name__, option.help), []).append(name)
    return [
        textwrap.fill(
            f"{option}={kind}: {text}",
            width,
            initial_indent=f"  {'/'.join(names) + ':':<17}",
            subsequent_indent=" " * 19,
        )
        for (option, kind, text), names in rows.items()
    ]


def parse_options(driver: Driver, pairs: list[str]) -> dict[str, object]:
    """`--set KEY=VALUE` pairs (one argument may hold several, space-separated) as the
    driver's typed options; ValueError naming the option that is unknown or malformed."""
    declared = {option.name: option for option in driver.options}
    options: dict[str, object] = {}
    for pair in (item for argument in pairs for item in argument.split()):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: expected KEY=VALUE, got {pair!r}")
        option = declared.get(key)
        if option is None:
            listed = ", ".join(declared) or "none"
            raise ValueError(f"--set {key}: {driver.name} has no such option (options: {listed})")
        options[key] = option.parse(value)
    return options


def parse_hex(text: str) -> bytes:
    """The bytes HEX gives: spaces and colons ignored, an optional 0x; ValueError if not hex."""
    digits = "".join(text.replace(":", " ").split())
    if digits[:2].lower() == "0x":
        digits = digits[2:]
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
        options = parse_options(driver, getattr(args, "options", []))
        return functools.partial(driver.decode_with, options=options)
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
    for name in ("packet_id", "counter", "sequence", "slave"):
        value = getattr(frame, name, None)
        if isinstance(value, int):
            identity[name] = value
    return identity


def _json_bytes(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
