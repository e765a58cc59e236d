"""Remote config under load through a real Mosquitto: a burst of real pushes, a junk flood."""

from __future__ import annotations

import asyncio
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


def local_config(tmp_path: Path, broker: Any, prefix: str, pub: Path) -> dict[str, Any]:
    return {
        "gateway": {"id": "gw-test", "data_dir": str(tmp_path / "data")},
        "hub": {
            "url": broker.url,
            "topic_prefix": prefix,
            "flush_interval_s": 0.2,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
        },
        "remote_config": {"trusted_keys": [str(pub)], "max_payload_bytes": 4096},
    }


def reports(sub: Any) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in sub.messages if m.topic.endswith("/config/state")]


async def started(agent: Any, sub: Any) -> None:
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sub.wait_for(lambda ms: any(m.topic.endswith("/config/state") for m in ms))


async def test_a_burst_of_30_pushes_1_ms_apart_gets_a_report_for_every_push(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    private_path, pub = signing.generate(tmp_path / "keys", "ops")
    private = signing.load_private(private_path)
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/+/config/state")
    agent = agent_process(write_config(local_config(tmp_path, mosquitto, topic_prefix, pub)))
    await started(agent, sub)
    digests = []
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
        for n in range(30):
            level = ("info", "warning")[n % 2]
            payload = sign_config(
                private,
                {
                    "hub": {
                        "url": mosquitto.url,
                        "topic_prefix": topic_prefix,
                        "flush_interval_s": 0.2,
                        "reconnect_min_s": 0.1,
                        "reconnect_max_s": 0.5,
                    },
                    "gateway": {"log_level": level},
                },
                version=1000 + n,
                target={"gateway": "gw-test"},
            )
            digests.append(hashlib.sha256(payload).hexdigest())
            await client.publish(f"{topic_prefix}/gw-test/config/set", payload, qos=1)
            await asyncio.sleep(0.001)
    await sub.wait_for(lambda _: reports(sub)[-1].get("version") == 1029, timeout=30)
    seen = reports(sub)
    for n, digest in enumerate(digests):
        outcomes = [o for o in (find_outcome(r, digest) for r in seen) if o is not None]
        assert outcomes, f"push {n} was never reported"
        assert outcomes[-1]["result"] == "applied", outcomes[-1]
    final = seen[-1]
    assert all(find_outcome(final, d) is not None for d in digests), "the retained one lists all"
    assert agent.running


async def test_2000_junk_pushes_do_not_drown_a_valid_one(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    private_path, pub = signing.generate(tmp_path / "keys", "ops")
    private = signing.load_private(private_path)
    kid = signing.key_id(signing.load_public(pub))
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/+/config/state")
    agent = agent_process(write_config(local_config(tmp_path, mosquitto, topic_prefix, pub)))
    await started(agent, sub)
    state_file = tmp_path / "data" / "remote-config" / "state.json"
    valid = sign_config(
        private,
        {
            "hub": {
                "url": mosquitto.url,
                "topic_prefix": topic_prefix,
                "flush_interval_s": 0.2,
                "reconnect_min_s": 0.1,
                "reconnect_max_s": 0.5,
            }
        },
        version=77,
        target={},
    )
    topic = f"{topic_prefix}/gw-test/config/set"
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
        for n in range(2000):
            junk = json.dumps(
                {
                    "type": signing.ENVELOPE_TYPE,
                    "key_id": kid if n % 2 else f"{n:016x}",
                    "sig": "A" * 86 + "==",
                    "signed": json.dumps({"kind": "config", "n": n}),
                }
            ).encode()
            await client.publish(topic, junk, qos=0)
        await client.publish(topic, valid, qos=1, retain=True)
    assert loop.time() - started_at < 5
    digest = hashlib.sha256(valid).hexdigest()

    def applied(_: Any) -> bool:
        return any((find_outcome(r, digest) or {}).get("result") == "applied" for r in reports(sub))

    await sub.wait_for(applied, timeout=15)
    # The junk is reported coalesced, at most once a second: under load the report that counts
    # the last of it may come a while after the one that says "applied".
    await sub.wait_for(
        lambda _: reports(sub)[-1].get("junk", {}).get("count", 0) >= 2000, timeout=15
    )
    final = reports(sub)[-1]
    assert final["version"] == 77
    assert final["junk"]["count"] == 2000
    assert len(reports(sub)) < 40, "junk reports are coalesced"
    assert state_file.exists()
    assert agent.log_text().count("push rejected") <= 2, "rate-limited per kind of rejection"
