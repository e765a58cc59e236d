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
        dest="settings",
        help="driver options, as in the source's config (listed below): --set slave=1 "
        "start_register=0 count=2; repeatable",
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
            *_options_help(width),
            textwrap.fill(HEX_HELP, width),
            "",
            textwrap.fill(EXIT_HELP, width),
            "",
            "examples:",
            '  citygw decode sds011 "aa c0 d4 04 3a 0a a1 60 1d ab"',
            "  citygw decode bthome 4000a70c780b1000",
            "  citygw decode bthome DATA --mac MAC --key BINDKEY   # an encrypted advert",
            "  citygw decode ops243 2d32372e340d0a --set units=kmh",
            "  citygw decode maxbotix 52323235370d --set model=MB7389 --set mount_height_mm=4200",
            "  citygw decode sdm120 010404436633341b38 --set slave=1 start_register=0 count=2",
        ]
    )


def _options_help(width: int) -> list[str]:
    """`--set` options per driver, from the registry (each driver declares its own)."""
    lines = ["driver options (--set KEY=VALUE):"]
    for name, driver in DRIVERS.items():
        for option in driver.options:
            mark = " (required)" if option.required else ""
            head = f"{name} {option.name}{mark} = {option.describe()}"
            lines.append(textwrap.fill(head, width, initial_indent="  ", subsequent_indent=" " * 8))
            lines.append(
                textwrap.fill(option.help, width, initial_indent=" " * 6, subsequent_indent=" " * 6)
            )
    return [*lines, ""] if len(lines) > 1 else []


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
    """The driver's one-frame decoder with its --set options; for bthome with the --mac and
    --key given (ValueError if they are malformed or given to another driver)."""
    from drivers.options import parse_settings

    settings = parse_settings(driver.options, args.settings, driver=driver.name)
    if driver.name != "bthome":
        if args.mac or args.key:
            raise ValueError("--mac and --key are for the bthome driver only")
        return functools.partial(driver.decode_frame, **settings)
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
    sensor_time_s = getattr(frame, "sensor_time_s", None)
    if isinstance(sensor_time_s, float):
        identity["sensor_time_s"] = sensor_time_s
    return identity


def _json_bytes(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
