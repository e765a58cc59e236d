"""A config change while the agent runs adds, removes and replaces uplinks (`Agent.apply`, as a
signed push does): a removed uplink stops and its lane goes, an added one carries what is
stored from then on, the others go on unchanged. In-process agent, real Mosquitto."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from drivers.base import Measurement
from gateway import wire
from gateway.agent.root import Agent
from gateway.config import parse_config
from gateway.remote.policy import diff

pytestmark = pytest.mark.integration


def document(tmp_path: Path, broker: Any, prefix: str, *uplinks: str) -> dict[str, Any]:
    fast = {
        "flush_interval_s": 0.1,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "wire_format": 1,  # each message decoded alone
    }
    return {
        "gateway": {"id": "gw-apply", "data_dir": str(tmp_path / "data"), "owner": "city"},
        "hub": {"url": broker.url, "topic_prefix": f"{prefix}/hub", **fast},
        "buffer": {"commit_interval_ms": 50},
        "uplinks": [
            {
                "name": name,
                "owners": ["city"],
                "url": broker.url,
                "topic_prefix": f"{prefix}/{name}",
                **fast,
            }
            for name in uplinks
        ],
    }


def values(sub: Any) -> set[float]:
    return {
        r.value
        for m in sub.messages
        if m.topic.endswith("/data")
        for r in wire.decode_data(m.payload)
    }


async def test_apply_adds_removes_and_replaces_uplinks_while_running(
    tmp_path: Path, mosquitto: Any, topic_prefix: str, hub_subscriber: Any
) -> None:
    subs = {
        name: await hub_subscriber(mosquitto, f"{topic_prefix}/{name}/#")
        for name in ("hub", "a", "b")
    }
    agent = Agent(parse_config(document(tmp_path, mosquitto, topic_prefix, "a")))
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))

    def emit(value: float) -> None:
        agent.ingest.emit("pm", [Measurement("pm2_5", value, "ug/m3")], 1_000, 0)

    try:
        async with asyncio.timeout(10):
            await agent.uplink.reached.wait()
        emit(1.0)
        await subs["a"].wait_for(lambda ms: 1.0 in values(subs["a"]))
        await subs["hub"].wait_for(lambda ms: 1.0 in values(subs["hub"]))

        new = parse_config(document(tmp_path, mosquitto, topic_prefix, "b"))
        changes = diff(agent.config, new)
        assert changes.uplinks and not changes.hub
        await agent.apply(new, changes)
        assert set(agent.extras.running) == {"b"}
        assert set((await agent.buffer.stats()).lanes) == {"hub", "b"}
        emit(2.0)
        await subs["b"].wait_for(lambda ms: 2.0 in values(subs["b"]))
        await subs["hub"].wait_for(lambda ms: 2.0 in values(subs["hub"]))
        assert 2.0 not in values(subs["a"]), "a removed uplink carries nothing more"
        assert 1.0 not in values(subs["b"]), "an added one carries what is stored from then on"

        changed = document(tmp_path, mosquitto, topic_prefix, "b")
        changed["uplinks"][0]["batch_max_readings"] = 5
        await agent.apply(parse_config(changed), diff(agent.config, parse_config(changed)))
        emit(3.0)
        await subs["b"].wait_for(lambda ms: 3.0 in values(subs["b"]))
        assert set((await agent.snapshot())["uplinks"]) == {"hub", "b"}
        for _ in range(100):  # the PUBACK may follow the subscriber's copy by a moment
            if (await agent.snapshot())["uplinks"]["b"]["backlog"] == 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("uplink b still has readings waiting")
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
