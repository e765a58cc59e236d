"""Sensirion SHT3x (SHT30/31/35) over I2C: single-shot measurements with the CRC-8 on each word.

`SHT3x(i2c, addr)` takes any bus with writeto / readfrom (machine.I2C or SoftI2C). `read()`
gives (temperature degC, humidity %RH) or raises OSError when a word's CRC does not match.
"""

import time

from micropython import const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_MEASURE_HIGH = b"\x24\x00"  # single shot, no clock stretching, high repeatability
_SOFT_RESET = b"\x30\xa2"
_MEASURE_MS = const(16)  # 15.5 ms max at high repeatability


def crc8(data: bytes) -> int:
    """CRC-8, poly 0x31, init 0xFF: crc8(b"\\xbe\\xef") == 0x92."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def words(data: bytes) -> "list[int]":
    """The 16-bit words of a read (word, crc, word, crc, ...); OSError on a CRC mismatch."""
    out = []
    for i in range(0, len(data) - 2, 3):
        if crc8(data[i : i + 2]) != data[i + 2]:
            raise OSError("SHT3x: CRC mismatch in word %d" % (i // 3))
        out.append(data[i] << 8 | data[i + 1])
    return out


def convert(raw_t: int, raw_rh: int) -> "tuple[float, float]":
    """(degC, %RH) from the raw words, rounded to 0.01."""
    return round(-45 + 175 * raw_t / 65535, 2), round(100 * raw_rh / 65535, 2)


class SHT3x:
    """One SHT3x on `i2c` at `addr` (0x44, or 0x45 with ADDR high)."""

    def __init__(self, i2c: "Any", addr: int = 0x44, sleep_ms: "Any" = None) -> None:
        self._i2c = i2c
        self._addr = addr
        self._sleep_ms = sleep_ms or time.sleep_ms

    def reset(self) -> None:
        self._i2c.writeto(self._addr, _SOFT_RESET)
        self._sleep_ms(2)

    def read(self) -> "tuple[float, float]":
        self._i2c.writeto(self._addr, _MEASURE_HIGH)
        self._sleep_ms(_MEASURE_MS)
        raw_t, raw_rh = words(self._i2c.readfrom(self._addr, 6))
        return convert(raw_t, raw_rh)
