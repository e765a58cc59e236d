"""`citygw decode DRIVER HEX`: one JSON object per reading, clear errors and exit codes."""

from __future__ import annotations

import json

import pytest

from gateway.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, object]], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_decode_prints_every_reading_with_unit_and_sensor_identity(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, records, _ = run(capsys, "decode", "sds011", "aa c0 d4 04 3a 0a a1 60 1d ab")
    assert code == 0
    assert records == [
        {"driver": "sds011", "quantity": "pm2_5_ugm3", "value": 123.6, "unit": "ug/m3",
         "device_id": "a160"},
        {"driver": "sds011", "quantity": "pm10_ugm3", "value": 261.8, "unit": "ug/m3",
         "device_id": "a160"},
    ]


def test_decode_reports_every_field_of_a_pms5003t_frame(capsys: pytest.CaptureFixture[str]) -> None:
    code, records, _ = run(capsys, "decode", "pms5003t",
                           "424d001c0015002500260014002200260f00046600fa001600d400e09a00053e")
    assert code == 0
    values = {r["quantity"]: r["value"] for r in records}
    assert values["temperature_c"] == 21.2 and values["humidity_pct"] == 22.4
    assert values["pm2_5_ugm3"] == 34 and values["n0_3_per_dl"] == 3840
    assert len(records) == 12


@pytest.mark.parametrize(("argv", "code", "message"), [
    (("decode", "sds011", "aac02d00b800546fa8ac"), 1, "tail is 0xac, expected 0xab (at byte 9)"),
    (("decode", "sds011", "not-hex"), 2, "not hexadecimal"),
    (("decode", "sds012", "aa"), 2, "unknown driver 'sds012'; known: sds011"),
])
def test_decode_refuses_bad_input_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], code: int, message: str
) -> None:
    got, records, err = run(capsys, *argv)
    assert (got, records) == (code, [])
    assert message in err
