"""The sensor register and owners' keys end to end: a running agent, a real Mosquitto.

A citizen who subscribes after the gateway connected gets the register at once (retained), and
it holds nothing local or secret; an owner's signed push over MQTT changes its own sensor (and
the register follows) and is refused, naming the path, for the municipality's sensor.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.hub.fleet import sign_config
from gateway.remote import signing
from gateway.remote.report import find_outcome

pytestmark = pytest.mark.integration

PURPOSE = "Fijnstof meten rond de school"


def local_config(
    tmp_path: Path, broker: Any, prefix: str, ports: dict[str, Path], keys: dict[str, Any]
) -> dict[str, Any]:
    return {
        "gateway": {"id": "gw-test", "data_dir": str(tmp_path / "data"), "owner": "gemeente"},
        "hub": {
            "url": broker.url,
            "topic_prefix": prefix,
            "flush_interval_s": 0.2,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            "owners": ["gemeente", "burgers"],
        },
        "sources": [
            {
                "type": "serial",
                "name": "pm-school",
                "owner": "burgers",
                "port": str(ports["pm-school"]),
                "driver": "sds011",
                "register": {
                    "purpose": PURPOSE,
                    "theme": "Air",
                    "location": [52.0907, 5.1214],
                    "open_data": True,
                    "privacy_statement": "https://burgers.example/privacy",
                },
            },
            {
                "type": "serial",
                "name": "pm-city",
                "port": str(ports["pm-city"]),
                "driver": "pms5003",
            },
        ],
        "remote_config": {
            "trusted_keys": [str(keys["ops"][1])],
            "owner_keys": {"burgers": [str(keys["burgers"][1])]},
            "allowed_ports": [str(tmp_path / "tty*")],
        },
    }


def registers(sub: Any) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in sub.messages if m.topic.endswith("/gw-test/register")]


async def push(broker: Any, prefix: str, payload: bytes) -> str:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(f"{prefix}/gw-test/config/set", payload, qos=1, retain=True)
    return hashlib.sha256(payload).hexdigest()


async def outcome(sub: Any, digest: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for message in reversed(sub.messages):
            if message.topic.endswith("/config/state"):
                hit = find_outcome(json.loads(message.payload), digest)
                if hit is not None:
                    return dict(hit)
        return None

    await sub.wait_for(lambda _: found() is not None, timeout=15)
    result = found()
    assert result is not None
    return result


async def test_the_register_is_retained_and_owner_pushes_stay_in_their_part(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    keys = {}
    for name in ("ops", "burgers"):
        private, public = signing.generate(tmp_path / "keys", name)
        keys[name] = (signing.load_private(private), public)
    ports = {name: make_pty(f"tty{name}").link for name in ("pm-school", "pm-city")}
    local = local_config(tmp_path, mosquitto, topic_prefix, ports, keys)
    agent = agent_process(write_config(local))
    agent.start()
    await agent.wait_for_log("connected to hub")

    # A citizen subscribes after the gateway connected: the broker hands out the register.
    citizen = await hub_subscriber(mosquitto, f"{topic_prefix}/gw-test/register")
    await citizen.wait_for(lambda ms: len(ms) >= 1)
    first = citizen.messages[0]
    assert first.retain, "the register is retained"
    register = json.loads(first.payload)
    assert register["gateway"] == "gw-test" and register["owner"] == "gemeente"
    school, city = register["sources"]
    assert (school["source"], school["owner"], school["driver"]) == (
        "pm-school",
        "burgers",
        "sds011",
    )
    assert school["register"]["purpose"] == PURPOSE
    assert school["register"]["location"] == [52.0907, 5.1214]
    assert school["quantities"][0] == {"quantity": "pm2_5_ugm3", "unit": "ug/m3"}
    assert (city["owner"], city["register"]) == ("gemeente", None)
    text = first.payload.decode()
    for local_detail in (str(tmp_path), "/dev/", str(mosquitto.port), "trusted", ".pub"):
        assert local_detail not in text, local_detail

    # The owner changes its own sensor's record with its own key: applied, the register follows.
    hub = await hub_subscriber(mosquitto, f"{topic_prefix}/gw-test/#")
    own = json.loads(json.dumps(local["sources"]))
    own[0]["register"]["purpose"] = "Fijnstof en hitte rond de school"
    digest = await push(
        mosquitto,
        topic_prefix,
        sign_config(keys["burgers"][0], {"sources": own}, version=2, target={}, base_version=0),
    )
    applied = await outcome(hub, digest)
    assert applied["result"] == "applied", applied
    await citizen.wait_for(lambda _: len(registers(citizen)) >= 2)
    assert registers(citizen)[-1]["sources"][0]["register"]["purpose"].startswith("Fijnstof en")
    late = await hub_subscriber(mosquitto, f"{topic_prefix}/gw-test/register")
    await late.wait_for(lambda ms: len(ms) >= 1)
    assert json.loads(late.messages[0].payload) == registers(citizen)[-1]

    # The same owner's key on the municipality's sensor: refused, naming it; nothing changes.
    theirs = json.loads(json.dumps(own))
    theirs[1]["driver"] = "sds011"
    digest = await push(
        mosquitto,
        topic_prefix,
        sign_config(keys["burgers"][0], {"sources": theirs}, version=3, target={}, base_version=2),
    )
    refused = await outcome(hub, digest)
    assert refused["result"] == "rejected"
    assert "sources[1]: source 'pm-city' belongs to 'gemeente'" in refused["reason"]
    assert "owner 'burgers'" in refused["reason"]
    assert len(registers(citizen)) == 2, "the config in force, and its register, stay"
    assert agent.running and agent.starts == 1
