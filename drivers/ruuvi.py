"""RuuviTag data format 5 (RAWv2): manufacturer data after company id 0x0499, decoded (sans-IO).

24 bytes, big-endian two's complement ("n/a" is the not-available sentinel):

    0      data format, 5
    1-2    temperature   s16  x 0.005 degC             n/a 0x8000
    3-4    humidity      u16  x 0.0025 %               n/a 0xFFFF
    5-6    pressure      u16  + 50000 Pa               n/a 0xFFFF
    7-12   acceleration  s16 x3 (X, Y, Z), mg          n/a 0x8000 each
    13-14  power         u16  top 11 bits: battery mV - 1600 (n/a 2047),
                              low 5 bits: TX power (dBm + 40) / 2 (n/a 31)
    15     movement counter u8                         n/a 255
    16-17  measurement sequence u16                    n/a 65535
    18-23  MAC                                         n/a FF x6

A field at its sentinel is None in the frame and gives no measurement. Some scanners append the
RSSI: one 25th byte is accepted and ignored.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from drivers.base import DecodeError, Measurement
from drivers.ble import format_mac

COMPANY_ID: Final = 0x0499
DATA_FORMAT: Final = 5
LENGTH: Final = 24
_WITH_RSSI: Final = LENGTH + 1
_LAYOUT: Final = struct.Struct(">BhHHhhhHBH6s")
_MAC_NA: Final = b"\xff" * 6
_SEQUENCE_NA: Final = 0xFFFF


@dataclass(frozen=True, slots=True)
class _Field:
    quantity: str
    unit: str
    sentinel: int
    convert: Callable[[int], float]


# In the order of the raw values `_raw_values` returns; the frame's fields have the same names.
_FIELDS: Final = (
    _Field("temperature_c", "Cel", -0x8000, lambda raw: raw * 5 / 1000),
    _Field("humidity_pct", "%", 0xFFFF, lambda raw: raw * 25 / 10000),
    _Field("pressure_hpa", "hPa", 0xFFFF, lambda raw: (raw + 50000) / 100),
    _Field("acceleration_x_g", "[g]", -0x8000, lambda raw: raw / 1000),
    _Field("acceleration_y_g", "[g]", -0x8000, lambda raw: raw / 1000),
    _Field("acceleration_z_g", "[g]", -0x8000, lambda raw: raw / 1000),
    _Field("battery_v", "V", 2047, lambda raw: (raw + 1600) / 1000),
    _Field("tx_power_dbm", "dBm", 31, lambda raw: -40 + 2 * raw),
    _Field("movement_count", "1", 255, lambda raw: raw),
)


@dataclass(frozen=True, slots=True)
class RuuviFrame:
    """One DF5 advert. None: the tag sent "not available". `sequence` and `mac` identify the
    measurement (a tag repeats each one several times); they are not measurements."""

    sequence: int | None
    mac: str | None
    temperature_c: float | None
    humidity_pct: float | None
    pressure_hpa: float | None
    acceleration_x_g: float | None
    acceleration_y_g: float | None
    acceleration_z_g: float | None
    battery_v: float | None
    tx_power_dbm: float | None
    movement_count: float | None

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Every field the tag measured; fields at their not-available value give none."""
        return tuple(
            Measurement(f.quantity, value, f.unit)
            for f in _FIELDS
            if (value := getattr(self, f.quantity)) is not None
        )


def decode(data: bytes) -> RuuviFrame:
    """Decode the manufacturer data after the company id; DecodeError if it is not DF5."""
    data = bytes(data)
    if len(data) not in (LENGTH, _WITH_RSSI):
        raise DecodeError(
            f"DF5 data is {LENGTH} bytes (or {_WITH_RSSI} with RSSI), got {len(data)}",
            offset=min(len(data), LENGTH),
        )
    fmt, t, h, p, ax, ay, az, power, movement, sequence, mac = _LAYOUT.unpack_from(data)
    if fmt != DATA_FORMAT:
        raise DecodeError(f"data format {fmt}, expected {DATA_FORMAT}", offset=0)
    raw = (t, h, p, ax, ay, az, power >> 5, power & 0x1F, movement)
    values = (None if r == f.sentinel else f.convert(r) for f, r in zip(_FIELDS, raw, strict=True))
    return RuuviFrame(
        None if sequence == _SEQUENCE_NA else sequence,
        None if mac == _MAC_NA else format_mac(mac),
        *values,
    )
