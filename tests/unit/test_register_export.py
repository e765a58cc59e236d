"""`citygw register export`: the three formats from two gateways with several owners, parsed
back (json, csv), with GeoJSON's [lon, lat] order and what each leaves out said on stderr."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main

GW1 = """
[gateway]
id = "gw-0001"
owner = "gemeente"

[hub]
url = "mqtt://127.0.0.1:1883"
password = "hunter2-secret"
owners = ["gemeente", "burgermeetnet"]

[[sources]]
type = "serial"
name = "pm-school"
owner = "burgermeetnet"
port = "/dev/ttyUSB0"
driver = "sds011"

[sources.register]
purpose = "Fijnstof meten rond de school, voor het burgermeetnet"
theme = "Air"
location = [52.0907, 5.1214]
active_until = "2028-12-31"
open_data = true
privacy_statement = "https://burgermeetnet.example/privacy"

[[sources]]
type = "ble"
name = "ble"
devices = [{ name = "tag", address = "F4:A5:74:89:16:57", kind = "ruuvi" }]

[sources.register]
purpose = "=HYPERLINK(\\"https://evil.example\\"), \\"quoted\\" purpose"
theme = "Hitte"
personal_data = true
legal_ground = "public task"
privacy_statement = "https://gemeente.example/privacy"
"""
GW2 = """
[gateway]
id = "gw-0002"
owner = "gemeente"

[hub]
url = "mqtt://127.0.0.1:1883"

[[uplinks]]
name = "parkeren"
owners = ["parkeerbedrijf"]
url = "mqtt://broker.parkeren.example:1883"
password = "uplink-secret"

[[sources]]
type = "serial"
name = "pm-park"
owner = "parkeerbedrijf"
port = "/dev/ttyAMA0"
driver = "pms5003t"

[sources.register]
purpose = "Luchtkwaliteit bij de parkeergarage"
theme = "Air"
location = [-33.8688, 151.2093]
active_until = "2020-01-01"

[[sources]]
type = "serial"
name = "node-7"
port = "/dev/ttyACM0"
driver = "node"
"""


@pytest.fixture
def configs(tmp_path: Path) -> list[str]:
    paths = []
    for name, text in (("gw1.toml", GW1), ("gw2.toml", GW2)):
        path = tmp_path / name
        path.write_text(text)
        paths.append(str(path))
    return paths


def run_export(
    configs: list[str], form: str, capsys: pytest.CaptureFixture[str]
) -> tuple[str, str]:
    assert main(["register", "export", "--config", *configs, "--format", form]) == 0
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out and "/dev/" not in captured.out
    assert "uplink-secret" not in captured.out and "parkeren.example" not in captured.out
    assert "F4:A5" not in captured.out
    return captured.out, captured.err


def test_geojson_has_a_point_per_located_source_in_lon_lat_order(
    configs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = run_export(configs, "geojson", capsys)
    document = json.loads(out)
    assert document["type"] == "FeatureCollection"
    features = {f["id"]: f for f in document["features"]}
    assert set(features) == {"gw-0001/pm-school", "gw-0002/pm-park"}
    school = features["gw-0001/pm-school"]
    assert school["geometry"] == {"type": "Point", "coordinates": [5.1214, 52.0907]}
    assert features["gw-0002/pm-park"]["geometry"]["coordinates"] == [151.2093, -33.8688]
    props = school["properties"]
    assert props["gateway"] == "gw-0001" and props["source"] == "pm-school"
    assert props["owner"] == "burgermeetnet" and props["personal_data"] is False
    assert props["purpose"].startswith("Fijnstof")
    assert props["quantities"][0] == {"quantity": "pm2_5_ugm3", "unit": "ug/m3"}
    assert props["privacy_statement"] == "https://burgermeetnet.example/privacy"
    assert features["gw-0002/pm-park"]["properties"]["owner"] == "parkeerbedrijf"
    assert "gw-0001/ble: no location" in err and "gw-0002/node-7: no location" in err


def test_csv_has_a_header_and_one_row_per_source_with_rfc4180_quoting(
    configs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = run_export(configs, "csv", capsys)
    assert out.endswith("\r\n") and "\r\n" in out.splitlines(keepends=True)[0]
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [(r["gateway"], r["source"], r["owner"]) for r in rows] == [
        ("gw-0001", "pm-school", "burgermeetnet"),
        ("gw-0001", "ble", "gemeente"),
        ("gw-0002", "pm-park", "parkeerbedrijf"),
        ("gw-0002", "node-7", "gemeente"),
    ]
    school, ble, park, node = rows
    assert school["purpose"] == "Fijnstof meten rond de school, voor het burgermeetnet"
    assert (school["latitude"], school["longitude"]) == ("52.0907", "5.1214")
    assert school["quantities"] == "pm2_5_ugm3 [ug/m3]; pm10_ugm3 [ug/m3]"
    assert ble["purpose"] == '\'=HYPERLINK("https://evil.example"), "quoted" purpose'
    assert ble["personal_data"] == "true" and ble["legal_ground"] == "public task"
    assert ble["devices"] == "tag (ruuvi)" and ble["latitude"] == ""
    assert park["latitude"] == "-33.8688"  # a number keeps its sign: only text is defused
    assert node["purpose"] == "" and node["quantities"] == ""
    assert "gw-0002/node-7: no [sources.register] record" in err


def test_sensrnet_json_groups_devices_by_owner_with_sensors_and_datastreams(
    configs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = run_export(configs, "sensrnet-json", capsys)
    document = json.loads(out)
    entities = {e["name"]: e["devices"] for e in document["legalEntities"]}
    assert set(entities) == {"burgermeetnet", "gemeente", "parkeerbedrijf"}
    (school,) = entities["burgermeetnet"]
    assert school["name"] == "gw-0001/pm-school" and school["category"] == "Sensor"
    assert school["location"] == {"name": "gw-0001", "location": [5.1214, 52.0907]}
    (sensor,) = school["sensors"]
    assert sensor["description"] == "Fine Dust Sensor" and sensor["manufacturer"] == "Nova Fitness"
    streams = {s["name"]: s for s in sensor["dataStreams"]}
    assert set(streams) == {"pm2_5_ugm3", "pm10_ugm3"}
    pm25 = streams["pm2_5_ugm3"]
    assert pm25["unitOfMeasurement"]["symbol"] == "ug/m3"
    assert pm25["observation"]["observedProperty"] == "pm2_5_ugm3"
    assert pm25["theme"] == ["Air"] and pm25["isOpenData"] is True and pm25["isActive"] is True
    assert pm25["containsPersonalInfoData"] is False and pm25["isPublic"] is True
    assert pm25["observationGoals"][0]["description"].startswith("Fijnstof")
    assert school["citygw"]["privacy_statement"] == "https://burgermeetnet.example/privacy"
    (park,) = entities["parkeerbedrijf"]
    park_stream = park["sensors"][0]["dataStreams"][0]
    assert park_stream["isActive"] is False  # active_until is past
    ble, node = entities["gemeente"]
    assert ble["location"] is None and node["location"] is None  # still exported
    ble_stream = ble["sensors"][0]["dataStreams"][0]
    assert ble_stream["containsPersonalInfoData"] is True and ble_stream["theme"] == []
    assert node["sensors"][0]["dataStreams"] == []
    assert "theme 'Hitte' is not one of SensRNet's" in err
    assert "gw-0001/ble: no location (SensRNet requires one" in err


def test_output_file_and_duplicate_gateways(
    configs: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "register.csv"
    code = main(["register", "export", "--config", *configs, "--format", "csv", "-o", str(target)])
    assert code == 0 and capsys.readouterr().out == ""
    assert target.read_bytes().count(b"\r\n") == 5
    code = main(["register", "export", "--config", configs[0], configs[0], "--format", "csv"])
    assert code == 2
    assert "gw-0001' is in two of the configs" in capsys.readouterr().err


def test_an_invalid_config_exits_2_naming_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad: Any = tmp_path / "bad.toml"
    bad.write_text(GW2.replace("[-33.8688, 151.2093]", "[151.2093, -33.8688]"))
    assert main(["register", "export", "--config", str(bad), "--format", "geojson"]) == 2
    assert "sources[0].register.location[0]" in capsys.readouterr().err
