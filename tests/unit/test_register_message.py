"""The retained `register` message: built from the config by whitelisting, so it carries what
citizens may read (owners, quantities, register records) and nothing else: no credentials,
ports, file paths, MAC addresses or bind keys."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import parse_config
from gateway.wire import WireError
from gateway.wire.register import decode_register, encode_register, register_body

SECRETS = {
    "password": "hunter2-secret",
    "username": "gw-user-secret",
    "port": "/dev/ttyUSB7",
    "ca_file": "/etc/citygw/ca-secret.pem",
    "bind_key": "231d39c1d7cc1ab1aee224cd096db932",
    "mac": "A4:C1:38:12:34:56",
    "mac2": "F4:A5:74:89:16:57",
    "trusted": "/etc/citygw/keys/ops-secret.pub",
    "owner_key": "/etc/citygw/keys/burgers-secret.pub",
}
DOCUMENT: dict[str, Any] = {
    "gateway": {"id": "gw-0001", "data_dir": "/var/lib/citygw", "owner": "gemeente"},
    "hub": {
        "url": "mqtts://hub.example.org:8883",
        "username": SECRETS["username"],
        "password": SECRETS["password"],
        "ca_file": SECRETS["ca_file"],
        "owners": ["gemeente", "burgermeetnet"],
    },
    "remote_config": {
        "trusted_keys": [SECRETS["trusted"]],
        "owner_keys": {"burgermeetnet": [SECRETS["owner_key"]]},
    },
    "sources": [
        {
            "type": "serial",
            "name": "pm-school",
            "owner": "burgermeetnet",
            "port": SECRETS["port"],
            "driver": "sds011",
            "register": {
                "purpose": "Fijnstof meten rond de school",
                "theme": "Air",
                "location": [52.0907, 5.1214],
                "active_until": "2028-12-31",
                "open_data": True,
                "privacy_statement": "https://burgermeetnet.example/privacy",
            },
        },
        {"type": "serial", "name": "node-7", "port": "/dev/ttyACM0", "driver": "node"},
        {
            "type": "ble",
            "name": "ble",
            "devices": [
                {"name": "kerb", "address": SECRETS["mac"], "kind": "bthome"},
                {"name": "lamp", "kind": "bthome", "bind_key": SECRETS["bind_key"]},
                {"name": "tag", "address": SECRETS["mac2"], "kind": "ruuvi"},
            ],
            "register": {
                "purpose": "Hitte meten",
                "personal_data": True,
                "legal_ground": "public task",
                "privacy_statement": "https://gemeente.example/privacy",
            },
        },
    ],
}


def message() -> dict[str, Any]:
    body = register_body(parse_config(json.loads(json.dumps(DOCUMENT))))
    decoded: dict[str, Any] = json.loads(encode_register(body, now_s=1_796_621_400))
    return decoded


def test_the_message_has_the_contract_shape() -> None:
    got = message()
    assert got["v"] == 1 and got["gateway"] == "gw-0001" and got["owner"] == "gemeente"
    assert got["ts"] == "2026-12-07T05:30:00Z"
    school, node, ble = got["sources"]
    assert school == {
        "source": "pm-school",
        "owner": "burgermeetnet",
        "type": "serial",
        "driver": "sds011",
        "quantities": [
            {"quantity": "pm2_5_ugm3", "unit": "ug/m3"},
            {"quantity": "pm10_ugm3", "unit": "ug/m3"},
        ],
        "register": {
            "purpose": "Fijnstof meten rond de school",
            "theme": "Air",
            "personal_data": False,
            "legal_ground": "",
            "location": [52.0907, 5.1214],
            "active_until": "2028-12-31",
            "open_data": True,
            "privacy_statement": "https://burgermeetnet.example/privacy",
        },
    }
    assert node["owner"] == "gemeente"  # no owner of its own: the gateway's
    assert node["register"] is None and node["quantities"] == []  # a node says what it has
    assert ble["driver"] == "bthome+ruuvi" and ble["type"] == "ble"
    assert ble["devices"] == [
        {"device": "kerb", "kind": "bthome"},
        {"device": "lamp", "kind": "bthome"},
        {"device": "tag", "kind": "ruuvi"},
    ]
    assert {"quantity": "temperature_c", "unit": "Cel"} in ble["quantities"]
    assert ble["register"]["personal_data"] is True


def test_nothing_secret_or_local_reaches_the_message() -> None:
    text = json.dumps(message()).lower()
    for name, secret in SECRETS.items():
        assert secret.lower() not in text, name
    assert "/dev/" not in text and "hub.example.org" not in text and "8883" not in text
    assert "mqtt" not in text and "/etc/" not in text and "/var/" not in text
    # the only URLs are the privacy statements
    urls = [word for word in text.replace('"', " ").split() if "://" in word]
    assert all(url.startswith("https://") and "privacy" in url for url in urls), urls


def test_the_body_changes_only_with_what_it_lists() -> None:
    config = parse_config(json.loads(json.dumps(DOCUMENT)))
    changed = json.loads(json.dumps(DOCUMENT))
    changed["hub"]["password"] = "another"
    changed["sources"][0]["port"] = "/dev/ttyUSB1"
    assert register_body(parse_config(changed)) == register_body(config)
    changed["sources"][0]["register"]["purpose"] = "Iets anders"
    assert register_body(parse_config(changed)) != register_body(config)


def test_a_rangefinder_lists_its_aggregates_when_it_sends_them() -> None:
    from drivers.quantities import AGGREGATED, QUANTITIES

    canal = {"type": "serial", "name": "canal", "port": "/dev/ttyUSB1", "driver": "maxbotix"}
    canal |= {"model": "MB7389", "mount_height_mm": 4000}
    for extra, expected in (
        ({}, QUANTITIES["maxbotix"]),
        ({"aggregate_s": 60}, AGGREGATED["maxbotix"]),
    ):
        document = {**DOCUMENT, "sources": [canal | extra]}
        (entry,) = register_body(parse_config(json.loads(json.dumps(document))))["sources"]
        assert [(q["quantity"], q["unit"]) for q in entry["quantities"]] == list(expected or ())


def test_decode_register_round_trips_and_refuses_junk() -> None:
    payload = encode_register(register_body(parse_config(json.loads(json.dumps(DOCUMENT)))))
    assert decode_register(payload)["sources"][0]["source"] == "pm-school"
    bad: list[bytes] = [
        b"not json",
        b"[]",
        b'{"v": 2}',
        b'{"v": 1, "gateway": "g", "owner": "o", "ts": "t", "sources": {}}',
        b'{"v": 1, "gateway": "g", "owner": "o", "ts": "t", "sources": [{"source": 1}]}',
        b'{"v": 1, "gateway": "g", "owner": "o", "ts": "t", "sources": '
        b'[{"source": "s", "owner": "o", "type": "t", "register": []}]}',
        b"[" * 100_000,
    ]
    for junk in bad:
        with pytest.raises(WireError):
            decode_register(junk)


VALID = encode_register(register_body(parse_config(json.loads(json.dumps(DOCUMENT)))))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=512),
        st.tuples(st.integers(0, len(VALID) - 1), st.binary(min_size=1, max_size=8)).map(
            lambda cut: VALID[: cut[0]] + cut[1] + VALID[cut[0] + len(cut[1]) :]
        ),
    )
)
def test_any_payload_decodes_or_is_a_wire_error(payload: bytes) -> None:
    try:
        message = decode_register(payload)
    except WireError:
        return
    assert isinstance(message["sources"], list)
