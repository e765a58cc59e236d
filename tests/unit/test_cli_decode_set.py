"""`citygw decode NAME HEX --set KEY=VALUE`: driver options, typed, per driver, in --help."""

from __future__ import annotations

import json

import pytest

from drivers import DRIVERS, Driver, Option
from drivers.options import parse_settings
from gateway.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, object]], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_radar_line_is_read_in_the_unit_given_with_set(capsys: pytest.CaptureFixture[str]) -> None:
    code, records, _ = run(capsys, "decode", "ops243", "2d32372e340d0a", "--set", "units=kmh")
    assert code == 0
    assert records == [
        {"driver": "ops243", "quantity": "speed_kmh", "value": 27.4, "unit": "km/h"},
        {"driver": "ops243", "quantity": "direction", "value": -1, "unit": "1"},
    ]


def test_radar_time_and_magnitude_options_say_what_the_fields_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = b"1521.088,103.2,-8.91\r\n".hex()
    code, records, _ = run(
        capsys, "decode", "ops243", line, "--set", "time=true", "--set", "magnitude=yes"
    )
    assert code == 0
    assert [(r["quantity"], r["value"], r["unit"]) for r in records] == [
        ("speed_mps", 8.91, "m/s"),
        ("direction", -1, "1"),
        ("magnitude", 103.2, "1"),
    ]
    assert all(r["sensor_time_s"] == 1521.088 for r in records)


def test_rangefinder_needs_its_model_and_derives_the_water_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, records, err = run(capsys, "decode", "maxbotix", "52323235370d")
    assert (code, records) == (2, [])
    assert "maxbotix needs --set model=..." in err
    code, records, _ = run(
        capsys,
        "decode",
        "maxbotix",
        "52323235370d",
        "--set",
        "model=MB7363",
        "--set",
        "mount_height_mm=4000",
    )
    assert code == 0
    assert [(r["quantity"], r["value"], r["unit"]) for r in records] == [
        ("range_status", 0, "1"),
        ("distance_mm", 2257, "mm"),
        ("water_level_mm", 1743, "mm"),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sds011", "aa", "--set", "units=kmh"], "--set units: not an option of sds011"),
        (["ops243", "00", "--set", "units=kph"], "units: expected one of mps, kmh"),
        (["ops243", "00", "--set", "json=maybe"], "json: expected true or false"),
        (["ops243", "00", "--set", "units"], "expected KEY=VALUE"),
        (["ops243", "00", "--set", "units=kmh", "--set", "units=mph"], "units: given twice"),
        (["maxbotix", "00", "--set", "model=MB1"], "model: expected one of MB7360"),
        (
            ["maxbotix", "00", "--set", "model=MB7389", "--set", "mount_height_mm=-5"],
            "mount_height_mm: expected an integer 1..100000",
        ),
    ],
)
def test_bad_settings_exit_2_naming_the_key(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, records, err = run(capsys, "decode", *argv)
    assert (code, records) == (2, [])
    assert message in err


def test_an_invalid_line_exits_1_with_the_drivers_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "decode", "maxbotix", "52313233340d", "--set", "model=MB7060")
    assert code == 1
    assert "wrong length" in err


def test_help_lists_each_drivers_options_with_their_types(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main(["decode", "--help"])
    out = capsys.readouterr().out
    options = out[out.index("driver options") :]
    for name, driver in DRIVERS.items():
        for option in driver.options:
            assert f"{name} {option.name}" in options
    assert "maxbotix model (required) = MB7360 | " in options
    assert "ops243 json = true or false" in options


def test_a_driver_declares_its_options_once_and_decode_passes_them_to_its_codec() -> None:
    """What another driver (sdm120's slave, start_register, count) needs: a typed table."""
    seen: dict[str, object] = {}

    class _Frame:
        measurements = ()

    def decode(frame: bytes, **options: object) -> _Frame:
        seen.update(options)
        return _Frame()

    driver = Driver(
        name="meter",
        description="test",
        new_stream=None,
        decode_frame=decode,
        options=(
            Option("slave", int, "address", low=1, high=247, required=True),
            Option("start_register", int, "first register", low=0, high=0xFFFF),
        ),
    )
    settings = parse_settings(driver.options, ["slave=0x10", "start_register=70"], driver="meter")
    driver.decode_one(b"", **settings)
    assert seen == {"slave": 16, "start_register": 70}
    with pytest.raises(ValueError, match=r"slave: expected an integer 1\.\.247"):
        parse_settings(driver.options, ["slave=300"], driver="meter")
    with pytest.raises(ValueError, match=r"meter needs --set slave=\.\.\."):
        parse_settings(driver.options, [], driver="meter")
