"""Sensor conversions on the real interpreter against tests/vectors/i2c_sensors.json, and the
exact bytes the drivers put on the I2C bus."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "i2c_sensors.json"


def _vectors(sensor: str) -> list[dict[str, Any]]:
    return [v for v in json.loads(VECTORS.read_text()) if v["sensor"] == sensor]


def test_bme280_integer_compensation_matches_the_vector(
    micropython_json: Callable[..., Any],
) -> None:
    (vec,) = _vectors("BME280")
    exp, inp = vec["expect"], vec["input"]
    got = micropython_json(f"""
import json, bme280
raw = bytes.fromhex({vec["hex"]!r})
cal = bme280.parse_calibration(raw[:26], raw[26:])
tf = bme280.t_fine(cal, {inp["adc_T"]})
print(json.dumps({{"cal": list(cal), "t_fine": tf,
    "p": bme280.pressure_q24_8(cal, {exp["t_fine"]}, {inp["adc_P"]}),
    "h": bme280.humidity_q22_10(cal, {exp["t_fine"]}, {inp["adc_H"]})}}))
""")
    names = [f"dig_T{i}" for i in (1, 2, 3)] + [f"dig_P{i}" for i in range(1, 10)]
    names += [f"dig_H{i}" for i in range(1, 7)]
    assert dict(zip(names, got["cal"], strict=True)) == exp["calibration"]
    assert got["t_fine"] == exp["t_fine"]
    assert got["p"] == exp["pressure_q24_8"]
    assert got["h"] == exp["humidity_q22_10"]


def test_bme280_datasheet_example(micropython_json: Callable[..., Any]) -> None:
    """BMP280 datasheet worked example: T = 25.08 degC, t_fine 128422, P = 100653.25 (64-bit)."""
    got = micropython_json("""
import json, bme280
cal = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
tf = bme280.t_fine(cal, 519888)
print(json.dumps([tf, bme280.temperature_centi(tf), bme280.pressure_q24_8(cal, tf, 415148)]))
""")
    assert got[0] == 128422
    assert got[1] == 2508
    assert got[2] / 256 == pytest.approx(100653.25, abs=0.01)


def test_bme280_reads_forced_mode_over_the_bus(micropython_json: Callable[..., Any]) -> None:
    (vec,) = _vectors("BME280")
    inp = vec["input"]
    got = micropython_json(f"""
import json, machine, devices, bme280
dev = devices.BME280Dev(bytes.fromhex({vec["hex"]!r}), {inp["adc_T"]}, {inp["adc_P"]},
                        {inp["adc_H"]})
devices.I2C_DEVICES[(0, 0x76)] = dev
s = bme280.BME280(machine.I2C(0), 0x76, sleep_ms=lambda ms: None)
print(json.dumps({{"read": s.read(), "writes": [[r, d.hex()] for r, d in dev.writes]}}))
""")
    assert got["read"] == [27.38, 1012.22, 32.9]  # t_fine 140177; Q24.8 25912895; Q22.10 33689
    assert got["writes"] == [[0xF2, "01"], [0xF4, "25"]]  # humidity x1, then T x1 P x1 forced


def test_bme280_wrong_chip_id_is_an_error(micropython: Callable[..., str]) -> None:
    out = micropython("""
import machine, devices, bme280
devices.I2C_DEVICES[(0, 0x76)] = devices.BME280Dev(bytes(33), 0, 0, 0, chip_id=0x58)
try:
    bme280.BME280(machine.I2C(0))
except OSError as e:
    print("OSError", e)
""")
    assert "chip id 0x58" in out


def test_sht3x_crc_vectors(micropython_json: Callable[..., Any]) -> None:
    vecs = [v for v in _vectors("SHT3x") if "crc_input" in v["expect"]]
    got = micropython_json(f"""
import json, sht3x
inputs = {[v["expect"]["crc_input"] for v in vecs]!r}
print(json.dumps([sht3x.crc8(bytes.fromhex(h)) for h in inputs] + [sht3x.crc8(b"\\x00")]))
""")
    assert got == [v["expect"]["crc"] for v in vecs] + [0xAC]


def test_sht3x_measurement_and_status_vectors(micropython_json: Callable[..., Any]) -> None:
    vecs = _vectors("SHT3x")
    meas = next(v for v in vecs if "temperature" in v["expect"])
    status = next(v for v in vecs if "status" in v["expect"])
    got = micropython_json(f"""
import json, machine, devices, sht3x
dev = devices.SHT3xDev(bytes.fromhex({meas["hex"]!r}))
devices.I2C_DEVICES[(0, 0x44)] = dev
s = sht3x.SHT3x(machine.I2C(0), sleep_ms=lambda ms: None)
print(json.dumps({{"read": s.read(), "commands": [c.hex() for c in dev.commands],
                  "status": sht3x.words(bytes.fromhex({status["hex"]!r}))}}))
""")
    tol = meas["expect"]["tolerance"]
    assert got["read"][0] == pytest.approx(meas["expect"]["temperature"], abs=tol)
    assert got["read"][1] == pytest.approx(meas["expect"]["humidity"], abs=tol)
    assert got["commands"] == ["2400"]  # single shot, high repeatability, no clock stretching
    assert got["status"] == [status["expect"]["status"]]


def test_sht3x_corrupted_word_is_refused(micropython: Callable[..., str]) -> None:
    out = micropython("""
import machine, devices, sht3x
devices.I2C_DEVICES[(0, 0x44)] = devices.SHT3xDev(bytes.fromhex("5f58397bb27d"))
try:
    sht3x.SHT3x(machine.I2C(0), sleep_ms=lambda ms: None).read()
except OSError as e:
    print("OSError", e)
""")
    assert "CRC mismatch in word 0" in out
