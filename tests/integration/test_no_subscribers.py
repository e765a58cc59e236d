"""MQTT 5 "No matching subscribers" (PUBACK 0x10) against a real Mosquitto, which answers it
whenever nothing subscribes to the topic.

With `require_subscribers` (the default) a 0x10 delivers nothing, but the uplink keeps its
connection: a fleet whose hub ingest is down must not reconnect and re-announce every backoff
round. With `require_subscribers = false` on an `[[uplinks]]` broker the acceptance is enough.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from spine_setup import config, frame, frame_numbers, readings, sources_open

from drivers.base import Measurement
from gateway.agent.health import read_status, status_socket_address
from gateway.config import HubSection
from gateway.readings import Columns, SeriesIndex
from gateway.store.buffer import SqliteBuffer
from gateway.store.worker import AsyncBuffer
from gateway.uplinks.client import HubSession
from gateway.uplinks.mqtt import Uplink

pytestmark = pytest.mark.integration

FRAMES = 100


async def status_until(
    tmp_path: Path, holds: Callable[[dict[str, Any]], bool], timeout_s: float = 20.0
) -> dict[str, Any]:
    """Polls the agent's status socket (it has no event to wait on) until `holds`."""
    for _ in range(int(timeout_s / 0.1)):
        status = await read_status(status_socket_address(tmp_path / "data"))
        if status is not None and holds(status):
            return status
        await asyncio.sleep(0.1)
    raise TimeoutError(f"status never matched; last: {status}")


def keys(messages: list[Any]) -> list[tuple[int, int]]:
    return [(r.epoch, r.seq) for r in readings(messages)]


async def agent_fed_frames(agent_process: Any, path: Path, pty: Any) -> Any:
    """The agent, started and connected, and FRAMES sensor frames written to its port."""
    agent = agent_process(path)
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    for n in range(1, FRAMES + 1):
        await pty.write_async(frame(n))
    return agent


async def test_while_no_one_subscribes_the_agent_keeps_one_connection_and_sends_no_new_birth(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    """The readings stay buffered until a hub subscribes, then arrive each once and in order;
    meanwhile one connection, one birth, one log line, however many rounds were refused."""
    births = await hub_subscriber(mosquitto, f"{topic_prefix}/+/status")  # not the data topic
    pty = make_pty("ttyUSB0")
    path = write_config(config(tmp_path, mosquitto, topic_prefix, {"pm": pty.link}))
    agent = await agent_fed_frames(agent_process, path, pty)
    await agent.wait_for_log("no one subscribes to it", timeout_s=10)
    refusing = await status_until(tmp_path, lambda s: s["uplink"]["refused"] >= 6)  # 6 rounds

    assert refusing["uplink"]["connected"] and refusing["uplink"]["reconnects"] == 0
    assert "No matching subscribers (0x10)" in refusing["uplink"]["last_refusal"]
    sub = await hub_subscriber(
        mosquitto, f"{topic_prefix}/+/data", identifier="late-hub", persistent=True
    )
    msgs = await sub.wait_for(lambda ms: len(frame_numbers(readings(ms))) >= FRAMES, timeout=30)
    await agent.wait_for_log("accepts our publishes on", timeout_s=10)
    done = await status_until(tmp_path, lambda s: s["uplinks"]["hub"]["backlog"] == 0)

    assert frame_numbers(readings(msgs)) == list(range(1, FRAMES + 1)), "each once, in order"
    assert keys(msgs) == sorted(set(keys(msgs))), "each key once, in order"
    log = agent.log_text()
    assert log.count("connected to hub") == 1, log[-3000:]
    assert log.count(f"refuses our publishes on {topic_prefix}/gw-test/data") == 1, log[-3000:]
    assert mosquitto.log_text().count(" as citygw-gw-test ") == 1, mosquitto.log_text()[-3000:]
    assert len(births.messages) == 1, f"one birth, not one per round: {births.messages}"
    assert done["uplink"]["reconnects"] == 0 and not done["uplink"]["refusing"]


async def test_an_uplink_without_require_subscribers_delivers_to_a_broker_no_one_listens_on(
    tmp_path: Path,
    mosquitto: Any,
    make_broker: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    """Two `[[uplinks]]` on a broker nobody subscribes on: the one with `require_subscribers =
    false` counts the broker's acceptance as delivery; the other (the default) keeps its
    readings. The hub has a subscriber and delivers as usual."""
    citizens = make_broker()
    await hub_subscriber(mosquitto, f"{topic_prefix}/+/data")
    pty = make_pty("ttyUSB0")
    cfg = config(tmp_path, mosquitto, topic_prefix, {"pm": pty.link})
    common = {"owners": ["operator"], "url": citizens.url, "flush_interval_s": 0.2}
    common |= {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5}
    cfg["uplinks"] = [
        {"name": "strict", "topic_prefix": f"{topic_prefix}-strict", **common},
        {
            "name": "lenient",
            "topic_prefix": f"{topic_prefix}-lenient",
            "require_subscribers": False,
            **common,
        },
    ]
    agent = await agent_fed_frames(agent_process, write_config(cfg), pty)

    status = await status_until(
        tmp_path,
        lambda s: (
            s["uplinks"]["hub"]["backlog"] == 0
            and s["uplinks"]["lenient"]["backlog"] == 0
            and s["uplinks"]["strict"]["refused"] >= 2
            and s["uplinks"]["hub"]["sent"] > 0
        ),
    )

    hub, lenient, strict = (status["uplinks"][name] for name in ("hub", "lenient", "strict"))
    assert lenient["sent"] == hub["sent"] > 0 and lenient["refused"] == 0
    assert strict["sent"] == 0 and strict["backlog"] == hub["sent"], "kept, all of them"
    assert strict["connected"]
    assert "require_subscribers of uplink strict" in agent.log_text()


# --- in process: the window of batches in flight --------------------------------------------


def hub_settings(broker: Any, prefix: str, **overrides: Any) -> HubSection:
    settings: dict[str, Any] = {
        "url": broker.url,
        "topic_prefix": prefix,
        "flush_interval_s": 0.1,
        "batch_max_readings": 10,
        "max_inflight_batches": 4,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.3,
    }
    return HubSection(**(settings | overrides))


def pm_readings(count: int) -> Columns:
    out = Columns(SeriesIndex())
    for n in range(1, count + 1):
        out.add("pm", [Measurement("pm2_5_ugm3", float(n), "ug/m3")], 1_765_000_000_000 + n)
    return out


@contextlib.asynccontextmanager
async def uplink_running(
    tmp_path: Path, hub: HubSection, count: int
) -> AsyncIterator[tuple[Uplink, AsyncBuffer]]:
    """An uplink on a real buffer holding `count` readings, running until the block ends."""
    buffer = AsyncBuffer(lambda: SqliteBuffer(tmp_path / "buffer.db", max_readings=10_000))
    await buffer.open()
    await buffer.append(pm_readings(count))
    uplink = Uplink(hub, gateway_id="gw-1", buffer=buffer, version="t", started_ms=0)
    try:
        yield uplink, buffer
    finally:
        await buffer.close()


class SecondBatchHeld:
    """The uplink's session, but its second data message leaves only once `release` is set: a
    batch of the window that reaches the broker after the one before it was refused."""

    def __init__(self, session: HubSession, release: asyncio.Event, sent: list[int]) -> None:
        self._session = session
        self._release = release
        self._sent = sent  # data messages handed to this uplink's sessions so far

    def __getattr__(self, name: str) -> Any:  # the session's own methods
        return getattr(self._session, name)

    async def publish_data(self, payload: bytes, *, heard: bool = False) -> None:
        self._sent.append(len(self._sent) + 1)
        if len(self._sent) == 2:
            await self._release.wait()
        await self._session.publish_data(payload, heard=heard)


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


async def test_a_batch_accepted_after_a_refused_one_stays_acknowledged_and_nothing_is_skipped(
    tmp_path: Path, mosquitto: Any, topic_prefix: str, hub_subscriber: Any
) -> None:
    release, sent = asyncio.Event(), []
    async with uplink_running(tmp_path, hub_settings(mosquitto, topic_prefix), 40) as (
        uplink,
        buffer,
    ):
        connect = uplink._connect

        @contextlib.asynccontextmanager
        async def held() -> AsyncIterator[Any]:
            async with connect() as session:
                yield SecondBatchHeld(session, release, sent)

        uplink._connect = held  # type: ignore[method-assign]
        task = asyncio.create_task(uplink.run())
        try:
            await until(lambda: uplink.stats.refused >= 1)  # batch 1: no one subscribes
            sub = await hub_subscriber(mosquitto, f"{topic_prefix}/+/data", persistent=True)
            release.set()  # batch 2 now reaches a broker where someone subscribes
            msgs = await sub.wait_for(lambda ms: len(set(keys(ms))) >= 40)
            await until(lambda: not uplink.stats.refusing)
            backlog = await buffer.backlog()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    seqs = [seq for _, seq in keys(msgs)]
    assert sorted(seqs) == list(range(1, 41)), "nothing lost, nothing sent twice"
    assert seqs.index(11) < seqs.index(1), "batch 2 went before batch 1 was sent again"
    assert backlog == 0
    assert uplink.stats.connects == 1 and uplink.stats.refused >= 1


async def test_a_drain_and_a_stop_during_the_backoff_after_a_0x10_end_at_once(
    tmp_path: Path, mosquitto: Any, topic_prefix: str
) -> None:
    hub = hub_settings(mosquitto, topic_prefix, reconnect_min_s=30.0, reconnect_max_s=60.0)
    async with uplink_running(tmp_path, hub, 5) as (uplink, buffer):
        task = asyncio.create_task(uplink.run())
        try:
            await until(lambda: uplink.stats.refused >= 1)
            assert uplink.stats.connected and uplink.stats.connects == 1, "still connected"

            left = await asyncio.wait_for(uplink.drain(timeout_s=60.0), 5.0)
            assert left == 5, "no one hears them: drain does not wait for its deadline"
        finally:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2)
        assert done == {task} and task.cancelled(), "the backoff (>= 3 s) ended at the stop"
        assert await buffer.backlog() == 5
