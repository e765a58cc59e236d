"""The BTHome v2 object-id table (bthome.io "Data format"): one row per id, data only.

Each row says how many bytes follow the id, how to read them and what quantity they become.
Numeric values are `raw * num / den` (exact: 0.01 is 1/100, 0.35 is 7/20), in the unit of the row.
The quantity name is `name`, then `_N` when that name and suffix repeat in one advert, then
`_suffix`: `temperature_c`, or `temperature_1_c`, `temperature_2_c` (0x02 and 0x45 count
together). Names follow bthome-ble's keys except where this project already has a name
(`pm2_5`, `pm10`, `co2`, `tvoc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

Kind: TypeAlias = Literal[
    "sensor",  # numeric value -> Measurement
    "binary",  # 0/1 -> Measurement with unit "bool"
    "button",  # event code -> Measurement with unit "event" (codes in BUTTON_EVENTS)
    "dimmer",  # direction + steps -> Measurement with unit "event", +steps right, -steps left
    "packet_id",  # 0x00 -> Advert.packet_id
    "text",  # length-prefixed UTF-8 -> Advert.texts
    "raw",  # length-prefixed bytes -> Advert.raw
    "command",  # length byte (low 5 bits = argument count), opcode, arguments -> Advert.commands
    "device_type",  # 0xF0 -> Advert.device_type
    "firmware",  # 0xF1 / 0xF2, least significant part first -> Advert.firmware "a.b.c[.d]"
]


@dataclass(frozen=True, slots=True)
class ObjectType:
    """How to read one object id. `size` counts the bytes after the id; for length-prefixed kinds
    (`length_mask` set) it counts the header and the body adds `header[0] & length_mask` bytes."""

    name: str
    kind: Kind
    size: int
    signed: bool = False
    num: int = 1
    den: int = 1
    suffix: str = ""
    unit: str = "1"
    length_mask: int = 0


def _u(name: str, size: int, suffix: str, unit: str, num: int = 1, den: int = 1) -> ObjectType:
    return ObjectType(name, "sensor", size, False, num, den, suffix, unit)


def _s(name: str, size: int, suffix: str, unit: str, num: int = 1, den: int = 1) -> ObjectType:
    return ObjectType(name, "sensor", size, True, num, den, suffix, unit)


def _binary(name: str) -> ObjectType:
    return ObjectType(name, "binary", 1, unit="bool")


OBJECTS: Final[dict[int, ObjectType]] = {
    0x00: ObjectType("packet_id", "packet_id", 1),
    0x01: _u("battery", 1, "pct", "%"),
    0x02: _s("temperature", 2, "c", "Cel", 1, 100),
    0x03: _u("humidity", 2, "pct", "%", 1, 100),
    0x04: _u("pressure", 3, "hpa", "hPa", 1, 100),
    0x05: _u("illuminance", 3, "lx", "lx", 1, 100),
    0x06: _u("mass", 2, "kg", "kg", 1, 100),
    0x07: _u("mass", 2, "lb", "[lb_av]", 1, 100),
    0x08: _s("dew_point", 2, "c", "Cel", 1, 100),
    0x09: _u("count", 1, "", "1"),
    0x0A: _u("energy", 3, "kwh", "kW.h", 1, 1000),
    0x0B: _u("power", 3, "w", "W", 1, 100),
    0x0C: _u("voltage", 2, "v", "V", 1, 1000),
    0x0D: _u("pm2_5", 2, "ugm3", "ug/m3"),
    0x0E: _u("pm10", 2, "ugm3", "ug/m3"),
    0x0F: _binary("generic"),
    0x10: _binary("power"),
    0x11: _binary("opening"),
    0x12: _u("co2", 2, "ppm", "ppm"),
    0x13: _u("tvoc", 2, "ugm3", "ug/m3"),
    0x14: _u("moisture", 2, "pct", "%", 1, 100),
    0x15: _binary("battery"),  # 1 = low
    0x16: _binary("battery_charging"),
    0x17: _binary("carbon_monoxide"),
    0x18: _binary("cold"),
    0x19: _binary("connectivity"),
    0x1A: _binary("door"),
    0x1B: _binary("garage_door"),
    0x1C: _binary("gas"),
    0x1D: _binary("heat"),
    0x1E: _binary("light"),
    0x1F: _binary("lock"),  # 1 = unlocked
    0x20: _binary("moisture"),
    0x21: _binary("motion"),
    0x22: _binary("moving"),
    0x23: _binary("occupancy"),
    0x24: _binary("plug"),
    0x25: _binary("presence"),
    0x26: _binary("problem"),
    0x27: _binary("running"),
    0x28: _binary("safety"),  # 1 = unsafe
    0x29: _binary("smoke"),
    0x2A: _binary("sound"),
    0x2B: _binary("tamper"),
    0x2C: _binary("vibration"),
    0x2D: _binary("window"),
    0x2E: _u("humidity", 1, "pct", "%"),
    0x2F: _u("moisture", 1, "pct", "%"),
    0x3A: ObjectType("button", "button", 1, unit="event"),
    0x3B: ObjectType("command", "command", 2, length_mask=0x1F),
    0x3C: ObjectType("dimmer", "dimmer", 2, unit="event"),
    0x3D: _u("count", 2, "", "1"),
    0x3E: _u("count", 4, "", "1"),
    0x3F: _s("rotation", 2, "deg", "deg", 1, 10),
    0x40: _u("distance", 2, "mm", "mm"),
    0x41: _u("distance", 2, "m", "m", 1, 10),
    0x42: _u("duration", 3, "s", "s", 1, 1000),
    0x43: _u("current", 2, "a", "A", 1, 1000),
    0x44: _u("speed", 2, "mps", "m/s", 1, 100),
    0x45: _s("temperature", 2, "c", "Cel", 1, 10),
    0x46: _u("uv_index", 1, "", "1", 1, 10),
    0x47: _u("volume", 2, "l", "L", 1, 10),
    0x48: _u("volume", 2, "ml", "mL"),
    0x49: _u("volume_flow_rate", 2, "m3h", "m3/h", 1, 1000),
    0x4A: _u("voltage", 2, "v", "V", 1, 10),
    0x4B: _u("gas", 3, "m3", "m3", 1, 1000),
    0x4C: _u("gas", 4, "m3", "m3", 1, 1000),
    0x4D: _u("energy", 4, "kwh", "kW.h", 1, 1000),
    0x4E: _u("volume", 4, "l", "L", 1, 1000),
    0x4F: _u("water", 4, "l", "L", 1, 1000),
    0x50: _u("timestamp", 4, "s", "s"),  # seconds since the Unix epoch, UTC
    0x51: _u("acceleration", 2, "mps2", "m/s2", 1, 1000),
    0x52: _u("gyroscope", 2, "dps", "deg/s", 1, 1000),
    0x53: ObjectType("text", "text", 1, length_mask=0xFF),
    0x54: ObjectType("raw", "raw", 1, length_mask=0xFF),
    0x55: _u("volume_storage", 4, "l", "L", 1, 1000),
    0x56: _u("conductivity", 2, "uscm", "uS/cm"),
    0x57: _s("temperature", 1, "c", "Cel"),
    0x58: _s("temperature", 1, "c", "Cel", 7, 20),  # x 0.35
    0x59: _s("count", 1, "", "1"),
    0x5A: _s("count", 2, "", "1"),
    0x5B: _s("count", 4, "", "1"),
    0x5C: _s("power", 4, "w", "W", 1, 100),
    0x5D: _s("current", 2, "a", "A", 1, 1000),
    0x5E: _u("direction", 2, "deg", "deg", 1, 100),
    0x5F: _u("precipitation", 2, "mm", "mm", 1, 10),
    0x60: _u("channel", 1, "", "1"),
    0x61: _u("rotational_speed", 2, "rpm", "/min"),
    0x62: _s("speed", 4, "mps", "m/s", 1, 1_000_000),
    0x63: _s("acceleration", 4, "mps2", "m/s2", 1, 1_000_000),
    0x64: _u("light_level", 1, "", "1"),  # 0 dark, 1 dim, 2 bright
    0x65: _u("settings_revision", 1, "", "1"),
    0xF0: ObjectType("device_type", "device_type", 2),
    0xF1: ObjectType("firmware", "firmware", 4),
    0xF2: ObjectType("firmware", "firmware", 3),
}

# Button event codes (0x3A); 0x00 is "no event" and gives no measurement, as do unknown codes.
BUTTON_EVENTS: Final[dict[int, str]] = {
    0x01: "press",
    0x02: "double_press",
    0x03: "triple_press",
    0x04: "long_press",
    0x05: "long_double_press",
    0x06: "long_triple_press",
    0x80: "hold_press",
}
# Dimmer directions (0x3C, first byte) as the sign of the step count; 0x00 and others: no event.
DIMMER_SIGN: Final[dict[int, int]] = {0x01: -1, 0x02: +1}  # rotate left, rotate right
