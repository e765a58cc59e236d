"""The config schema: the example documents every key, and bad input names its exact path."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.config import (
    BleDevice,
    BleSourceConfig,
    Config,
    ConfigError,
    json_schema,
    load_config,
    parse_config,
)

EXAMPLE = Path(__file__).parents[2] / "config" / "gateway.example.toml"
VALID: dict[str, Any] = {
    "gateway": {"id": "gw-1", "data_dir": "/tmp/citygw"},
    "hub": {"url": "mqtt://127.0.0.1:1883"},
    "sources": [{"type": "serial", "name": "pm", "port": "/dev/ttyUSB0", "driver": "sds011"}],
}


def test_the_example_config_is_valid_and_sets_every_key() -> None:
    config = load_config(EXAMPLE)
    document = tomllib.loads(EXAMPLE.read_text())

    def keys(struct_type: Any) -> set[str]:
        return {f.name for f in dataclasses.fields(struct_type)}

    assert set(document["hub"]) == keys(type(config.hub))
    assert set(document["buffer"]) == keys(type(config.buffer))
    assert set(document["gateway"]) == keys(type(config.gateway))
    assert set(document["remote_config"]) == keys(type(config.remote_config))
    assert set().union(*(set(u) for u in document["uplinks"])) == keys(type(config.uplinks[0]))
    serial = [set(s) for s in document["sources"] if s["type"] == "serial"]
    assert set().union(*serial) == keys(type(config.sources[0])) | {"type"}
    ble = next(i for i, s in enumerate(document["sources"]) if s["type"] == "ble")
    assert set(document["sources"][ble]) == keys(BleSourceConfig) | {"type"}
    ble_config = config.sources[ble]
    assert isinstance(ble_config, BleSourceConfig)
    device_keys = set().union(*(set(d) for d in document["sources"][ble]["devices"]))
    assert device_keys == keys(BleDevice)
    assert {d.kind for d in ble_config.devices} == {"bthome", "ruuvi"}


def mutate(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    *parents, last = path.replace("[0]", ".0").split(".")
    node: Any = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "expected_path", "message"),
    [
        ("hub.flush_interval_s", "soon", "hub.flush_interval_s", "expected a number, got a string"),
        ("hub.flush_interval_s", 0, "hub.flush_interval_s", "> 0"),
        ("hub.url", "http://hub", "hub.url", "mqtt://"),
        ("hub.url", "mqtt://user:pw@hub", "hub.url", "credentials"),
        ("hub.protocol", "4", "hub.protocol", "'5', '3.1.1'"),
        ("hub.colour", "red", "hub.colour", "unknown key"),
        ("gateway.id", "a/b", "gateway.id", "characters"),
        ("sources[0].driver", "sds012", "sources[0].driver", "'sds011'"),
        ("sources[0].type", "zigbee", "sources[0].type", "'serial'"),
        ("sources[0].baud", 1234, "sources[0].baud", "9600"),
        (
            "sources[0].duty_cycle",
            {"period_s": 60, "on_s": 90},
            "sources[0].duty_cycle.on_s",
            "less than period_s",
        ),
        ("buffer", {"when_full": "panic"}, "buffer.when_full", "'drop_oldest'"),
    ],
)
def test_bad_values_are_refused_with_the_exact_path(
    path: str, value: Any, expected_path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(mutate(path, value))
    assert error.value.path == expected_path
    assert message in str(error.value)


BLE: dict[str, Any] = {
    "type": "ble",
    "name": "ble",
    "devices": [
        {"name": "kerb", "address": "A4:C1:38:12:34:56", "kind": "bthome"},
        {"name": "tag", "address": "F4:A5:74:89:16:57", "kind": "ruuvi"},
    ],
}


@pytest.mark.parametrize(
    ("change", "expected_path", "message"),
    [
        ({"adapter": "usb0"}, "sources[1].adapter", "hci0"),
        ({"scanning": "loud"}, "sources[1].scanning", "'auto'"),
        ({"devices[0].address": "A4:C1:38:12:34"}, "sources[1].devices[0].address", "MAC"),
        ({"devices[0].kind": "eddystone"}, "sources[1].devices[0].kind", "'bthome'"),
        ({"devices[0].bind_key": "abc"}, "sources[1].devices[0].bind_key", "32 hex"),
        ({"devices[1].bind_key": "0" * 32}, "sources[1].devices[1].bind_key", "only BTHome"),
        ({"devices[1].name": "kerb"}, "sources[1].devices[1].name", "used twice"),
        ({"devices[1].address": "a4:c1:38:12:34:56"}, "sources[1].devices[1].address", "twice"),
        ({"devices[0].min_interval_s": -1}, "sources[1].devices[0].min_interval_s", ">= 0"),
        ({"devices[0].mac": "x"}, "sources[1].devices[0].mac", "unknown key"),
    ],
)
def test_bad_ble_sources_are_refused_with_the_exact_path(
    change: dict[str, Any], expected_path: str, message: str
) -> None:
    source = copy.deepcopy(BLE)
    for key, value in change.items():
        if key.startswith("devices["):
            index, field = int(key[8]), key.split(".", 1)[1]
            source["devices"][index][field] = value
        else:
            source[key] = value
    document = copy.deepcopy(VALID)
    document["sources"].append(source)
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert error.value.path == expected_path
    assert message in str(error.value)


def test_a_ble_source_with_a_bind_key_keeps_it_out_of_its_repr() -> None:
    source = copy.deepcopy(BLE)
    source["devices"][0]["bind_key"] = "231d39c1d7cc1ab1aee224cd096db932"
    document = copy.deepcopy(VALID)
    document["sources"].append(source)
    config = parse_config(document)
    assert "231d39c1" not in repr(config)


def test_duplicate_source_names_are_refused() -> None:
    document = copy.deepcopy(VALID)
    document["sources"].append(dict(document["sources"][0]))
    with pytest.raises(ConfigError, match=r"sources\[1\]\.name: 'pm' is used twice"):
        parse_config(document)


def test_missing_sections_and_bad_toml_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text("[gateway]\nid = 'gw'\n")
    with pytest.raises(ConfigError, match=r"gw\.toml: hub: missing required key"):
        load_config(path)
    path.write_text("[gateway\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_secrets_stay_out_of_reprs() -> None:
    config = parse_config(mutate("hub.password", "hunter2"))
    assert "hunter2" not in repr(config)


def test_json_schema_describes_the_config_for_editors() -> None:
    schema = json_schema()
    assert schema["$ref"] == "#/$defs/Config"
    hub = schema["$defs"]["HubSection"]
    assert hub["additionalProperties"] is False
    assert "flush_interval_s" in hub["properties"]
    assert isinstance(parse_config(VALID), Config)


def test_every_property_in_the_json_schema_says_what_it_is_for() -> None:
    undocumented = [
        f"{name}.{key}"
        for name, definition in json_schema()["$defs"].items()
        for key, prop in definition["properties"].items()
        if not prop.get("description", "").strip()
    ]
    assert undocumented == [], "write a docstring under each field (gateway/config/)"


def test_the_committed_json_schema_is_current() -> None:
    import json

    committed = json.loads((EXAMPLE.parent / "gateway.schema.json").read_text())
    assert committed == json_schema(), "regenerate: citygw schema > config/gateway.schema.json"


def test_check_config_refuses_unreadable_tls_and_password_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    path = tmp_path / "gw.toml"
    path.write_text(EXAMPLE.read_text().replace('ca_file = ""', 'ca_file = "/nonexistent/ca.pem"'))
    assert main(["check-config", str(path)]) == 2
    assert "hub.ca_file: cannot read /nonexistent/ca.pem" in capsys.readouterr().err
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert "OK (gateway gw-0001, 7 sources" in capsys.readouterr().out


def test_a_ble_device_needs_an_address_or_a_bind_key() -> None:
    document = copy.deepcopy(VALID)
    document["sources"] = [
        {"type": "ble", "name": "ble", "devices": [{"name": "x", "kind": "bthome"}]}
    ]
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert error.value.path == "sources[0].devices[0].address"
    document["sources"][0]["devices"][0]["bind_key"] = "00" * 16
    assert parse_config(document).sources[0].devices[0].address == ""  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ({"driver": "node", "duty_cycle": {"period_s": 60, "on_s": 30}}, "sources[0].duty_cycle"),
        ({"driver": "sds011", "node_interval_s": 60}, "sources[0].node_interval_s"),
        ({"driver": "node", "node_interval_s": 2}, "sources[0].node_interval_s"),
    ],
)
def test_node_only_and_sensor_only_settings_stay_apart(source: dict[str, Any], path: str) -> None:
    document = copy.deepcopy(VALID)
    document["sources"][0].update(source)
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert error.value.path == path


def owners_document(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    document["gateway"]["owner"] = "gemeente"
    document["sources"].append(
        {
            "type": "serial",
            "name": "pm2",
            "port": "/dev/ttyUSB1",
            "driver": "sds011",
            "owner": "burgers",
        }
    )
    document["uplinks"] = [
        {"name": "burgers", "owners": ["burgers"], "url": "mqtt://127.0.0.1:1884"}
    ]
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    return document


def test_owners_and_uplinks_route_each_source_to_the_uplinks_listing_its_owner() -> None:
    config = parse_config(owners_document())
    assert config.routes() == [("hub", ["gemeente"]), ("burgers", ["burgers"])]
    assert config.source_owners() == {"pm": "gemeente", "pm2": "burgers"}
    settings = config.uplinks[0].hub_settings("gw-1")
    assert (settings.client_id, settings.owners) == ("citygw-gw-1-burgers", ["burgers"])
    plain = parse_config(VALID)
    assert plain.routes() == [("hub", ["operator"])], "an existing config works unchanged"


@pytest.mark.parametrize(
    ("path", "value", "expected_path", "message"),
    [
        ("uplinks.0.owners", ["someone-else"], "sources[1].owner", "no uplink carries"),
        ("sources.1.owner", "nobody", "sources[1].owner", "'nobody'"),
        ("uplinks.0.name", "hub", "uplinks[0].name", "not 'hub'"),
        ("uplinks.0.url", "http://x", "uplinks[0].url", "mqtt://"),
        ("uplinks.0.owners", [], "uplinks[0].owners", "at least one"),
        ("uplinks.0.sensor_id", "raspi-1", "uplinks[0].sensor_id", "sensor.community"),
        ("uplinks.0.when_full", "panic", "uplinks[0].when_full", "'drop_oldest'"),
        ("gateway.owner", "a b", "gateway.owner", "characters"),
        ("hub.owners", ["x", "x"], "hub.owners", "twice"),
    ],
)
def test_bad_owners_and_uplinks_are_refused_with_the_exact_path(
    path: str, value: Any, expected_path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(owners_document(**{path: value}))
    assert caught.value.path == expected_path
    assert message in str(caught.value)


def test_require_subscribers_of_an_mqtt_uplink_is_passed_on_and_refused_for_http_formats() -> None:
    assert parse_config(owners_document()).uplinks[0].hub_settings("gw-1").require_subscribers
    lenient = parse_config(owners_document(**{"uplinks.0.require_subscribers": False}))
    assert lenient.uplinks[0].hub_settings("gw-1").require_subscribers is False
    document = owners_document()
    document["uplinks"][0] |= {"url": "https://sta.example/v1.1", "format": "sensorthings"}
    document["uplinks"][0]["require_subscribers"] = True
    with pytest.raises(ConfigError, match='only for format = "citygw"') as caught:
        parse_config(document)
    assert caught.value.path == "uplinks[0].require_subscribers"


@pytest.mark.parametrize(
    ("key", "value"),
    [("topic_prefix", "city/v2"), ("protocol", "3.1.1"), ("wire_format", 1), ("client_id", "x")],
)
def test_mqtt_only_keys_on_an_http_uplink_are_refused_not_ignored(key: str, value: Any) -> None:
    document = owners_document()
    document["uplinks"][0] |= {"url": "https://sta.example/v1.1", "format": "sensorthings"}
    parse_config(document)  # the defaults are no mistake
    document["uplinks"][0][key] = value
    with pytest.raises(ConfigError, match='only for format = "citygw"') as caught:
        parse_config(document)
    assert caught.value.path == f"uplinks[0].{key}"


def test_uplink_names_are_unique_and_http_formats_take_http_urls() -> None:
    document = owners_document()
    document["uplinks"].append(dict(document["uplinks"][0]))
    with pytest.raises(ConfigError, match="used twice") as caught:
        parse_config(document)
    assert caught.value.path == "uplinks[1].name"
    document["uplinks"][1] = {
        "name": "sc",
        "owners": ["burgers"],
        "url": "https://api.example/v1/push",
        "format": "sensor.community",
        "sensor_id": "raspi-0000001",
    }
    assert parse_config(document).uplinks[1].tls
