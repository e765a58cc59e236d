"""`[sources.register]` and the owners in the config: valid records pass, and every wrong
value is refused with its exact path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.config import ConfigError, parse_config

RECORD: dict[str, Any] = {
    "purpose": "Fijnstof meten rond de school",
    "theme": "Air",
    "personal_data": False,
    "legal_ground": "",
    "location": [52.0907, 5.1214],
    "active_until": "2028-12-31",
    "open_data": True,
    "privacy_statement": "https://burgermeetnet.example/privacy",
}
DOCUMENT: dict[str, Any] = {
    "gateway": {"id": "gw-1", "data_dir": "/tmp/citygw", "owner": "gemeente"},
    "hub": {"url": "mqtt://127.0.0.1:1883", "owners": ["gemeente", "burgermeetnet"]},
    "sources": [
        {
            "type": "serial",
            "name": "pm",
            "owner": "burgermeetnet",
            "port": "/dev/ttyUSB0",
            "driver": "sds011",
            "register": RECORD,
        },
        {
            "type": "ble",
            "name": "ble",
            "devices": [{"name": "tag", "address": "F4:A5:74:89:16:57", "kind": "ruuvi"}],
            "register": {"purpose": "Hitte meten"},
        },
    ],
}


def with_record(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(DOCUMENT)
    record = document["sources"][0]["register"]
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return document


def test_a_full_record_and_a_minimal_one_are_valid() -> None:
    config = parse_config(copy.deepcopy(DOCUMENT))
    first, second = config.sources
    assert first.register is not None and second.register is not None
    assert first.register.lat_lon == (52.0907, 5.1214)
    assert first.owner == "burgermeetnet"
    assert config.gateway.owner == "gemeente"
    assert second.owner == ""
    assert second.register.location is None and second.register.lat_lon is None
    assert second.register.active_until == "" and second.register.open_data is False


def test_the_gateway_owner_defaults_to_operator_and_a_source_needs_no_record() -> None:
    document = copy.deepcopy(DOCUMENT)
    del document["gateway"]["owner"]
    del document["sources"][0]["register"]
    document["hub"]["owners"] = ["operator", "burgermeetnet"]
    config = parse_config(document)
    assert config.gateway.owner == "operator"
    assert config.sources[0].register is None


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"purpose": None}, "purpose", "missing required key"),
        ({"purpose": "  "}, "purpose", "why the sensor measures"),
        ({"purpose": "x" * 501}, "purpose", "at most 500"),
        ({"purpose": "a\x07b"}, "purpose", "control characters"),
        ({"theme": "t" * 101}, "theme", "at most 100"),
        ({"location": [52.0]}, "location", "[latitude, longitude]"),
        ({"location": [52.0, 5.0, 3.0]}, "location", "got 3 numbers"),
        ({"location": [91.0, 5.0]}, "location[0]", "latitude from -90 to 90"),
        ({"location": [5.1214, 182.0]}, "location[1]", "longitude from -180 to 180"),
        ({"location": [float("nan"), 5.0]}, "location[0]", "latitude"),
        ({"location": ["52", 5.0]}, "location[0]", "expected a number"),
        ({"location": "52,5"}, "location", "expected an array"),
        ({"active_until": "31-12-2028"}, "active_until", "ISO date"),
        ({"active_until": "2028-02-30"}, "active_until", "ISO date"),
        ({"active_until": "20281231"}, "active_until", "ISO date"),
        ({"privacy_statement": "http://x.example/p"}, "privacy_statement", "https://"),
        ({"privacy_statement": "https://u:p@x.example/"}, "privacy_statement", "credentials"),
        ({"privacy_statement": "https:///nohost"}, "privacy_statement", "https://"),
        ({"privacy_statement": "https://x.example/a b"}, "privacy_statement", "spaces"),
        ({"personal_data": True}, "legal_ground", "needs the legal ground"),
        (
            {"personal_data": True, "legal_ground": "public task", "privacy_statement": ""},
            "privacy_statement",
            "needs a privacy statement",
        ),
        ({"personal_data": "no"}, "personal_data", "true or false"),
        ({"colour": "red"}, "colour", "unknown key"),
    ],
)
def test_bad_records_are_refused_with_the_exact_path(
    changes: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(with_record(**changes))
    assert error.value.path == f"sources[0].register.{path}"
    assert message in str(error.value)


def test_personal_data_with_ground_and_statement_is_valid() -> None:
    config = parse_config(with_record(personal_data=True, legal_ground="public task (art. 6e)"))
    record = config.sources[0].register
    assert record is not None and record.personal_data


@pytest.mark.parametrize(
    ("where", "value", "path"),
    [
        ("gateway", "gemeente utrecht", "gateway.owner"),
        ("gateway", "", "gateway.owner"),
        ("serial", "a/b", "sources[0].owner"),
        ("ble", "#", "sources[1].owner"),
    ],
)
def test_bad_owner_names_are_refused_with_the_exact_path(where: str, value: str, path: str) -> None:
    document = copy.deepcopy(DOCUMENT)
    target = {
        "gateway": document["gateway"],
        "serial": document["sources"][0],
        "ble": document["sources"][1],
    }[where]
    target["owner"] = value
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert error.value.path == path


@pytest.mark.parametrize(
    ("owner_keys", "path", "message"),
    [
        ({"burgers": ["relative.pub"]}, "remote_config.owner_keys.burgers[0]", "absolute path"),
        ({"a b": ["/k.pub"]}, "remote_config.owner_keys", "not an owner name"),
        ({"burgers": "/k.pub"}, "remote_config.owner_keys.burgers", "expected an array"),
        (["/k.pub"], "remote_config.owner_keys", "expected a table"),
    ],
)
def test_bad_owner_keys_are_refused_with_the_path(owner_keys: Any, path: str, message: str) -> None:
    document = copy.deepcopy(DOCUMENT)
    document["remote_config"] = {"owner_keys": owner_keys}
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert error.value.path == path
    assert message in str(error.value)


def test_owner_keys_alone_turn_remote_config_on() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["remote_config"] = {"owner_keys": {"burgermeetnet": ["/etc/citygw/b.pub"]}}
    config = parse_config(document)
    assert config.remote_config.enabled
    assert config.remote_config.owner_keys == {"burgermeetnet": ["/etc/citygw/b.pub"]}
    document["remote_config"] = {"owner_keys": {"burgermeetnet": []}}
    assert not parse_config(document).remote_config.enabled
