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
        {
            "driver": "sds011",
            "quantity": "pm2_5_ugm3",
            "value": 123.6,
            "unit": "ug/m3",
            "device_id": "a160",
        },
        {
            "driver": "sds011",
            "quantity": "pm10_ugm3",
            "value": 261.8,
            "unit": "ug/m3",
            "device_id": "a160",
        },
    ]


def test_decode_reports_every_field_of_a_pms5003t_frame(capsys: pytest.CaptureFixture[str]) -> None:
    code, records, _ = run(
        capsys,
        "decode",
        "pms5003t",
        "424d001c0015002500260014002200260f00046600fa001600d400e09a00053e",
    )
    assert code == 0
    values = {r["quantity"]: r["value"] for r in records}
    assert values["temperature_c"] == 21.2 and values["humidity_pct"] == 22.4
    assert values["pm2_5_ugm3"] == 34 and values["n0_3_per_dl"] == 3840
    assert len(records) == 12


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (
            ("decode", "sds011", "aac02d00b800546fa8ac"),
            1,
            "tail is 0xac, expected 0xab (at byte 9)",
        ),
        (("decode", "sds011", "not-hex"), 2, "not hexadecimal"),
        (("decode", "sds012", "aa"), 2, "unknown driver 'sds012'; known: sds011"),
    ],
)
def test_decode_refuses_bad_input_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], code: int, message: str
) -> None:
    got, records, err = run(capsys, *argv)
    assert (got, records) == (code, [])
    assert message in err


BTHOME_SHELLY = "450aeb84467f85ba0100003188788c"  # encrypted, trigger-based; key and MAC below
SHELLY_MAC, SHELLY_KEY = "B4:35:22:F5:3D:A4", "90bffd73cb6b26ef58a7a8eba9232036"
RUUVI = "0512fc5394c37c0004fffc040cac364200cdcbb8334c884f"


def test_decode_bthome_prints_each_reading_with_its_packet_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, records, _ = run(capsys, "decode", "bthome", "4000a70c780b1000")
    assert code == 0
    assert records == [
        {
            "driver": "bthome",
            "quantity": "voltage_v",
            "value": 2.936,
            "unit": "V",
            "packet_id": 167,
        },
        {"driver": "bthome", "quantity": "power", "value": 0, "unit": "bool", "packet_id": 167},
    ]


def test_decode_bthome_opens_an_encrypted_advert_with_mac_and_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, records, _ = run(
        capsys, "decode", "bthome", BTHOME_SHELLY, "--mac", SHELLY_MAC, "--key", SHELLY_KEY
    )
    assert code == 0
    assert records == [
        {
            "driver": "bthome",
            "quantity": "battery_pct",
            "value": 100,
            "unit": "%",
            "packet_id": 7,
            "counter": 442,
        },
        {
            "driver": "bthome",
            "quantity": "button",
            "value": 1,
            "unit": "event",
            "packet_id": 7,
            "counter": 442,
        },
    ]


def test_decode_bthome_text_only_advert_prints_the_frame(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, records, _ = run(capsys, "decode", "bthome", "44530c48656c6c6f20576f726c6421")
    assert code == 0
    assert len(records) == 1
    assert records[0]["frame"] == "Advert" and records[0]["texts"] == ["Hello World!"]
    assert records[0]["trigger_based"] is True


def test_decode_ruuvi_prints_each_reading_with_the_tag_mac_and_sequence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, records, _ = run(capsys, "decode", "ruuvi", RUUVI)
    assert code == 0
    assert records[0] == {
        "driver": "ruuvi",
        "quantity": "temperature_c",
        "value": 24.3,
        "unit": "Cel",
        "mac": "cb:b8:33:4c:88:4f",
        "sequence": 205,
    }
    assert [r["quantity"] for r in records][1:] == [
        "humidity_pct",
        "pressure_hpa",
        "acceleration_x_g",
        "acceleration_y_g",
        "acceleration_z_g",
        "battery_v",
        "tx_power_dbm",
        "movement_count",
    ]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (
            ("decode", "bthome", BTHOME_SHELLY),
            1,
            "encrypted advert: a bind key is needed to read it (at byte 0). "
            "Pass --key HEX and --mac",
        ),
        (
            ("decode", "bthome", BTHOME_SHELLY, "--mac", SHELLY_MAC, "--key", "00" * 16),
            1,
            "decryption failed: wrong bind key or MAC, or a corrupted advert (at byte 11)",
        ),
        (("decode", "bthome", BTHOME_SHELLY, "--key", SHELLY_KEY), 1, "MAC is needed"),
        (("decode", "bthome", "e102000c0404138a01"), 1, "BTHome version 7, expected 2 (at byte 0)"),
        (("decode", "bthome", "4002ca"), 1, "object 0x02 (temperature) needs 2 bytes, 1 left"),
        (
            ("decode", "bthome", BTHOME_SHELLY, "--mac", SHELLY_MAC, "--key", "abc"),
            2,
            "--key: a bind key is 32 hex digits (16 bytes)",
        ),
        (
            ("decode", "bthome", BTHOME_SHELLY, "--mac", "B4:35:22", "--key", SHELLY_KEY),
            2,
            "not a MAC address",
        ),
        (("decode", "sds011", "aa", "--key", SHELLY_KEY), 2, "for the bthome driver only"),
        (("decode", "ruuvi", RUUVI[:-2]), 1, "DF5 data is 24 bytes (or 25 with RSSI), got 23"),
        (("decode", "ruuvi", "03" + RUUVI[2:]), 1, "data format 3, expected 5 (at byte 0)"),
    ],
)
def test_decode_refuses_a_bad_advert_key_or_mac_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], code: int, message: str
) -> None:
    got, records, err = run(capsys, *argv)
    assert (got, records) == (code, [])
    assert message in err


def test_decode_help_lists_every_registered_driver_and_explains_hex(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from drivers import DRIVERS

    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_:
        main(["decode", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    drivers = out[out.index("drivers:") :]
    assert all(name in drivers for name in DRIVERS)
    assert "HEX is one whole frame" in out and "spaces and colons anywhere are ignored" in out
    assert max(len(line) for line in out.splitlines()) <= 98, "help is capped at 100 columns"


@pytest.mark.parametrize(
    "text",
    ["aac0d4043a0aa1601dab", "AA:C0:D4:04:3A:0A:A1:60:1D:AB", "0xaac0 d404\t3a0a a160 1dab"],
)
def test_decode_takes_hex_with_spaces_colons_and_a_0x_prefix(
    capsys: pytest.CaptureFixture[str], text: str
) -> None:
    code, records, _ = run(capsys, "decode", "sds011", text)
    assert code == 0
    assert [r["value"] for r in records] == [123.6, 261.8]
