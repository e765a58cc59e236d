"""Bosch BME280 over I2C: forced-mode readings with the datasheet's integer compensation.

`BME280(i2c, addr)` takes any bus with readfrom_mem / writeto_mem (machine.I2C or SoftI2C).
`read()` gives (temperature degC, pressure hPa, humidity %RH). The compensation functions are
the datasheet's 32/64-bit integer versions (MicroPython ints are arbitrary precision), so a
board with single-precision floats computes exactly what the datasheet's reference code does.
"""

import struct
import time

from micropython import const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CHIP_ID = const(0x60)
_REG_ID = const(0xD0)
_REG_CALIB_TP = const(0x88)
_REG_CALIB_H = const(0xE1)
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_DATA = const(0xF7)
_OSRS_X1 = const(1)
_MODE_FORCED = const(1)
_STATUS_MEASURING = const(0x08)


def parse_calibration(tp: bytes, h: bytes) -> tuple:
    """(T1, T2, T3, P1..P9, H1..H6) from the 26 bytes at 0x88 and the 7 bytes at 0xE1."""
    cal = struct.unpack("<HhhHhhhhhhhhxB", tp)
    h2, h3, e4, e5, e6, h6 = struct.unpack("<hBbBbb", h)
    h4 = e4 * 16 + (e5 & 0x0F)
    h5 = e6 * 16 + (e5 >> 4)
    return cal + (h2, h3, h4, h5, h6)


def t_fine(cal: tuple, adc_t: int) -> int:
    t1, t2, t3 = cal[0], cal[1], cal[2]
    v1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
    v2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
    return v1 + v2


def temperature_centi(tf: int) -> int:
    """Temperature in 0.01 degC."""
    return (tf * 5 + 128) >> 8


def pressure_q24_8(cal: tuple, tf: int, adc_p: int) -> int:
    """Pressure in Pa as Q24.8 (divide by 256); the datasheet's 64-bit version."""
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = cal[3:12]
    v1 = tf - 128000
    v2 = v1 * v1 * p6 + ((v1 * p5) << 17) + (p4 << 35)
    v1 = ((v1 * v1 * p3) >> 8) + ((v1 * p2) << 12)
    v1 = (((1 << 47) + v1) * p1) >> 33
    if v1 == 0:
        return 0
    num = ((1048576 - adc_p) << 31) - v2
    p = abs(num) * 3125 // v1  # C division truncates toward zero; v1 > 0 here
    if num < 0:
        p = -p
    return ((p + ((p9 * (p >> 13) * (p >> 13)) >> 25) + ((p8 * p) >> 19)) >> 8) + (p7 << 4)


def humidity_q22_10(cal: tuple, tf: int, adc_h: int) -> int:
    """Relative humidity in % as Q22.10 (divide by 1024)."""
    h1, h2, h3, h4, h5, h6 = cal[12:18]
    x = tf - 76800
    x = (((adc_h << 14) - (h4 << 20) - h5 * x + 16384) >> 15) * (
        ((((((x * h6) >> 10) * (((x * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14
    )
    x -= ((((x >> 15) * (x >> 15)) >> 7) * h1) >> 4
    x = min(max(x, 0), 419430400)
    return x >> 12


class BME280:
    """One BME280 on `i2c` at `addr` (0x76, or 0x77 with SDO high)."""

    def __init__(self, i2c: "Any", addr: int = 0x76, sleep_ms: "Any" = None) -> None:
        self._i2c = i2c
        self._addr = addr
        self._sleep_ms = sleep_ms or time.sleep_ms
        chip = i2c.readfrom_mem(addr, _REG_ID, 1)[0]
        if chip != CHIP_ID:
            raise OSError("BME280: chip id 0x%02x, expected 0x60" % chip)
        self._cal = parse_calibration(
            i2c.readfrom_mem(addr, _REG_CALIB_TP, 26), i2c.readfrom_mem(addr, _REG_CALIB_H, 7)
        )

    def read_raw(self) -> "tuple[int, int, int]":
        """(adc_T, adc_P, adc_H) of one forced measurement at x1 oversampling."""
        i2c, addr = self._i2c, self._addr
        i2c.writeto_mem(addr, _REG_CTRL_HUM, bytes((_OSRS_X1,)))
        meas = _OSRS_X1 << 5 | _OSRS_X1 << 2 | _MODE_FORCED  # T x1, P x1, forced
        i2c.writeto_mem(addr, _REG_CTRL_MEAS, bytes((meas,)))
        for _ in range(20):
            self._sleep_ms(2)
            if not i2c.readfrom_mem(addr, _REG_STATUS, 1)[0] & _STATUS_MEASURING:
                break
        else:
            raise OSError("BME280: measurement did not finish")
        d = i2c.readfrom_mem(addr, _REG_DATA, 8)
        adc_p = d[0] << 12 | d[1] << 4 | d[2] >> 4
        adc_t = d[3] << 12 | d[4] << 4 | d[5] >> 4
        return adc_t, adc_p, d[6] << 8 | d[7]

    def read(self) -> "tuple[float, float, float]":
        """(temperature degC, pressure hPa, humidity %RH), rounded to the sensor's resolution."""
        adc_t, adc_p, adc_h = self.read_raw()
        tf = t_fine(self._cal, adc_t)
        return (
            temperature_centi(tf) / 100,
            round(pressure_q24_8(self._cal, tf, adc_p) / 25600, 2),
            round(humidity_q22_10(self._cal, tf, adc_h) / 1024, 2),
        )
