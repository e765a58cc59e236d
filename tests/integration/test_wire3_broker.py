"""Wire format v3 through a real Mosquitto: kill -9 and re-sending keep every reading exactly once,
with the data topic sent by MQTT 5 topic alias, and without it when the broker allows none; the
PUBLISH packets the agent really sends are the size `citygw bench wire` counts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from relay import Relay
from spine_setup import buffer_next_seq, config, frame, frame_numbers, sources_open

from gateway.devtools.wirebench import TOPIC_ALIAS_PROPERTY, mqtt_publish_size
from gateway.hub.tail import HubDecoder
from gateway.wire import HubReading

pytestmark = pytest.mark.integration


def publishes(stream: bytes) -> Iterator[tuple[int, str, int, bytes]]:
    """(packet size, topic, properties length, payload) of each QoS 1 PUBLISH in an MQTT 5
    client stream."""
    pos = 0
    while pos < len(stream):
        kind, length, shift, start = stream[pos] >> 4, 0, 0, pos + 1
        while True:
            byte = stream[start]
            start += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        end = start + length
        if kind == 3:  # PUBLISH
            topic_len = int.from_bytes(stream[start : start + 2], "big")
            topic = stream[start + 2 : start + 2 + topic_len].decode()
            at = start + 2 + topic_len + 2  # packet id (QoS 1)
            properties_len = stream[at]  # < 128 here: one byte
            yield end - pos, topic, properties_len, bytes(stream[at + 1 + properties_len : end])
        pos = end


def decoded(messages: list[Any]) -> tuple[list[HubReading], int]:
    """Every reading as a hub decodes it (births first, in arrival order), duplicates dropped;
    and how many messages it could not decode."""
    decoder = HubDecoder()
    events = [decoder.decode(m.topic, m.payload) for m in messages]
    return ([r for e in events for r in e.readings], sum(e.kind == "invalid" for e in events))


@pytest.mark.parametrize("max_topic_alias", [10, 0], ids=["alias", "no-alias-broker"])
async def test_v3_after_kill_9_every_reading_arrives_once_in_order(
    tmp_path: Path,
    make_broker: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
    max_topic_alias: int,
) -> None:
    broker = make_broker(extra_config=f"max_topic_alias {max_topic_alias}")
    async with Relay(broker) as tap:
        pty = make_pty("ttyUSB0")
        sub = await hub_subscriber(broker, f"{topic_prefix}/#", persistent=True)
        agent = agent_process(
            write_config(
                config(
                    tmp_path,
                    SimpleNamespace(url=tap.url),
                    topic_prefix,
                    {"pm-north": pty.link},
                    batch_max_readings=50,
                    wire_format=3,
                )
            )
        )
        n = 0
        for round_ in range(3):
            agent.start()
            await agent.wait_for_log("connected to hub")
            await sources_open(agent)
            for _ in range(120):  # ~1.2 s of frames; the kill lands mid-stream
                n += 1
                await pty.write_async(frame(n))
                await asyncio.sleep(0.01)
            if round_ < 2:
                agent.kill9()
                pty.replug()
        await asyncio.sleep(1.0)
        agent.terminate()
        assert agent.wait() == 0
        assert "topic alias" not in agent.log_text().lower(), agent.log_text()
        stored = buffer_next_seq(tmp_path) - 1
        assert stored > 200, "the agent should have accepted most frames"
        msgs = await sub.wait_for(lambda ms: len(decoded(ms)[0]) >= stored, timeout=20)
        unique, invalid = decoded(msgs)
        assert invalid == 0
        assert sorted(r.seq for r in unique) == list(range(1, stored + 1)), "no gap, no duplicate"
        numbers = frame_numbers(sorted(unique, key=lambda r: r.seq))
        assert numbers == sorted(set(numbers)), "each frame once, in the order the sensor sent"
        assert {(r.source, r.quantity, r.unit) for r in unique} == {
            ("pm-north", "pm2_5_ugm3", "ug/m3"),
            ("pm-north", "pm10_ugm3", "ug/m3"),
        }
        assert {r.value for r in unique if r.quantity == "pm10_ugm3"} == {77.7}
        data = [m for m in msgs if m.topic.endswith("/data")]
        assert all(m.topic == f"{topic_prefix}/gw-test/data" for m in data)
        data_topic = f"{topic_prefix}/gw-test/data"
        sent = [p for stream in tap.streams for p in publishes(stream) if p[1] in ("", data_topic)]
        assert len(sent) >= len(data) - 1  # (a publish may die with the agent before the broker)
        for size, topic, properties_len, payload in sent:  # what `citygw bench wire` counts
            assert payload[0] == 3
            assert size == mqtt_publish_size(topic, len(payload), properties_len=properties_len)
        named = sum(topic == data_topic for _, topic, _, _ in sent)
        if max_topic_alias:  # the topic travels once per connection, then by its alias
            assert {p[2] for p in sent} == {TOPIC_ALIAS_PROPERTY}
            assert named <= len(tap.streams) < len(sent) / 4, (named, len(tap.streams), len(sent))
        else:
            assert named == len(sent) and {p[2] for p in sent} == {0}
