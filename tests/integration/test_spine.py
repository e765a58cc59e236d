"""The spine end to end: real frames on pseudo-terminals -> agent process -> real Mosquitto -> hub.

Each test runs `citygw run` as a subprocess (as on a gateway), so kill -9 is a real crash.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest
from spine_setup import (
    PM10_MARK,
    buffer_next_seq,
    config,
    frame,
    frame_numbers,
    readings,
    sources_open,
    wait_for_status,
)

from drivers import sds011
from gateway.hub.dedupe import Deduplicator

pytestmark = pytest.mark.integration


def latest_metrics(messages: list[Any]) -> dict[str, Any] | None:
    for m in reversed(messages):
        if m.topic.endswith("/metrics"):
            return msgpack.unpackb(m.payload)  # type: ignore[no-any-return]
    return None


async def test_frames_on_the_serial_line_reach_the_hub_with_their_values(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    agent = agent_process(
        write_config(config(tmp_path, mosquitto, topic_prefix, {"pm-north": pty.link}))
    )
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sub.wait_for(lambda ms: any(m.topic.endswith("/status") for m in ms))
    await sources_open(agent)
    for n in (1236, 9, 4325):
        await pty.write_async(frame(n))
    msgs = await sub.wait_for(lambda ms: len(readings(ms)) >= 6)
    got = readings(msgs)
    assert [(r.source, r.quantity, r.value, r.unit) for r in got] == [
        ("pm-north", "pm2_5_ugm3", 123.6, "ug/m3"),
        ("pm-north", "pm10_ugm3", PM10_MARK, "ug/m3"),
        ("pm-north", "pm2_5_ugm3", 0.9, "ug/m3"),
        ("pm-north", "pm10_ugm3", PM10_MARK, "ug/m3"),
        ("pm-north", "pm2_5_ugm3", 432.5, "ug/m3"),
        ("pm-north", "pm10_ugm3", PM10_MARK, "ug/m3"),
    ]
    assert all(r.gateway == "gw-test" for r in got)
    assert len({r.key for r in got}) == 6
    status = [m for m in msgs if m.topic == f"{topic_prefix}/gw-test/status"]
    assert status[0].retain or msgpack.unpackb(status[0].payload)["state"] == "online"
    # The SDS011 was told to work and to report actively (it may have been left asleep).
    sent = pty.read(timeout_s=1)
    assert sds011.cmd_set_sleep(False) in sent


async def test_kill_9_while_streaming_loses_no_accepted_reading_and_keys_dedupe(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/+/data", persistent=True)
    agent = agent_process(
        write_config(
            config(tmp_path, mosquitto, topic_prefix, {"pm-north": pty.link}, batch_max_readings=50)
        )
    )
    n = 0
    for _round in range(4):
        agent.start()
        await agent.wait_for_log("connected to hub")
        await sources_open(agent)
        for _ in range(150):  # ~1.5 s of frames at 100/s; the kill lands mid-stream
            n += 1
            await pty.write_async(frame(n))
            await asyncio.sleep(0.01)
        if _round < 3:
            agent.kill9()
            pty.replug()  # what the kernel does to a USB adapter is not the point here
    await asyncio.sleep(1.0)
    agent.terminate()
    assert agent.wait() == 0
    stored = buffer_next_seq(tmp_path) - 1
    assert stored > 300, "the agent should have accepted most frames"
    msgs = await sub.wait_for(lambda ms: len({r.key for r in readings(ms)}) >= stored, timeout=20)
    got = readings(msgs)
    dedup = Deduplicator()
    unique = [r for r in got if dedup.is_new(r)]
    seqs = sorted(r.seq for r in unique)
    assert seqs == list(range(1, stored + 1)), "every accepted reading arrives, no gap"
    numbers = frame_numbers(sorted(unique, key=lambda r: r.seq))
    assert len(numbers) == len(set(numbers)), "after dedup by key, each reading exactly once"
    assert numbers == sorted(numbers), "in the order the sensor sent them"


async def test_broker_outage_loses_nothing_and_the_backlog_drains_in_order(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/+/data", persistent=True)
    agent = agent_process(
        write_config(config(tmp_path, mosquitto, topic_prefix, {"pm-north": pty.link}))
    )
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    for n in range(1, 51):
        await pty.write_async(frame(n))
    await sub.wait_for(lambda ms: len(readings(ms)) >= 100)
    mosquitto.stop()
    for n in range(51, 301):  # 250 frames while the hub is unreachable
        await pty.write_async(frame(n))
        await asyncio.sleep(0.005)
    await agent.wait_for_log("unreachable")
    await asyncio.sleep(1.0)
    mosquitto.start()
    msgs = await sub.wait_for(lambda ms: len({r.key for r in readings(ms)}) >= 600, timeout=20)
    dedup = Deduplicator()
    numbers = frame_numbers([r for r in readings(msgs) if dedup.is_new(r)])
    assert numbers == list(range(1, 301))
    assert agent.log_text().count("unreachable") == 1, "one log line per outage"


async def test_serial_device_unplugged_and_replugged_recovers_by_itself(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/+/data")
    agent = agent_process(
        write_config(config(tmp_path, mosquitto, topic_prefix, {"pm-north": pty.link}))
    )
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    await pty.write_async(frame(1))
    await sub.wait_for(lambda ms: 1 in frame_numbers(readings(ms)))
    pty.unplug()
    await agent.wait_for_log("vanished")
    await asyncio.sleep(2.0)  # several reopen attempts fail meanwhile
    pty.replug()
    await agent.wait_for_log("is back")
    await pty.write_async(frame(2))
    await sub.wait_for(lambda ms: 2 in frame_numbers(readings(ms)))
    log = agent.log_text()
    assert log.count("vanished") == 1 and log.count("cannot open") <= 1, "once per outage"
    assert agent.running


async def test_garbage_and_truncated_frames_are_counted_and_good_frames_still_arrive(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    agent = agent_process(
        write_config(config(tmp_path, mosquitto, topic_prefix, {"pm-north": pty.link}))
    )
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    bad_checksum = bytearray(frame(5))
    bad_checksum[8] ^= 0xFF
    line = (
        b"\xff\x00garbage\xaa\xab"
        + frame(1)
        + frame(2)[:6]
        + bytes(bad_checksum)
        + b"\xaa\xc0\x01"
        + frame(3)
        + bytes(range(256))
        + frame(4)
    )
    await pty.write_async(line)
    msgs = await sub.wait_for(lambda ms: {1, 3, 4} <= set(frame_numbers(readings(ms))))
    assert set(frame_numbers(readings(msgs))) == {1, 3, 4}
    msgs = await sub.wait_for(
        lambda ms: (
            (latest_metrics(ms) or {}).get("sources", {}).get("pm-north", {}).get("bad_frames", 0)
            >= 1
        )
    )
    source = latest_metrics(msgs)["sources"]["pm-north"]  # type: ignore[index]
    assert source["skipped_bytes"] > 0
    assert agent.running


@pytest.mark.parametrize(
    ("policy", "kept"), [("drop_oldest", range(101, 201)), ("drop_newest", range(1, 101))]
)
async def test_full_buffer_applies_its_policy_and_counts_every_drop(
    tmp_path: Path,
    make_broker: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
    policy: str,
    kept: range,
) -> None:
    broker = make_broker()
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(broker, f"{topic_prefix}/#", persistent=True)
    broker.stop()
    cfg = config(
        tmp_path,
        broker,
        topic_prefix,
        {"pm-north": pty.link},
        buffer={"max_readings": 200, "when_full": policy},
    )
    path = write_config(cfg)
    agent = agent_process(path)
    agent.start()
    await agent.wait_for_log("unreachable")
    await sources_open(agent)
    for n in range(1, 201):  # 400 readings into a buffer of 200
        await pty.write_async(frame(n))
        await asyncio.sleep(0.002)
    await wait_for_status(  # a slow machine reads them later than a fixed sleep allowed
        agent,
        lambda s: s["buffer"]["depth"] + s["buffer"]["dropped"] >= 400,
        what="all 400 readings kept or dropped",
    )
    status = json.loads(
        (
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "gateway.cli", "status", "--config", str(path), "--json"],
                capture_output=True,
                text=True,
                check=True,
            )
        ).stdout
    )
    assert status["buffer"]["depth"] == 200
    assert status["buffer"]["dropped"] == 200
    broker.start()
    msgs = await sub.wait_for(
        lambda ms: (
            len(readings(ms)) >= 200
            and (latest_metrics(ms) or {}).get("buffer", {}).get("dropped") == 200
        ),
        timeout=20,
    )
    assert sorted(set(frame_numbers(readings(msgs)))) == list(kept)
    assert "buffer full" in agent.log_text()


def test_invalid_config_is_refused_with_the_exact_path(tmp_path: Path, write_config: Any) -> None:
    path = write_config(
        {
            "gateway": {"id": "gw-1"},
            "hub": {"url": "mqtt://127.0.0.1:1883", "flush_interval_s": "soon"},
            "sources": [
                {
                    "type": "serial",
                    "name": "a",
                    "port": "/dev/x",
                    "driver": "sds011",
                    "baud": 9600,
                    "colour": "red",
                }
            ],
        }
    )
    run = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run.returncode == 2
    assert "hub.flush_interval_s: expected a number, got a string" in run.stderr
    check = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert check.returncode == 2 and "hub.flush_interval_s" in check.stderr
    path.write_text(path.read_text().replace('"soon"', "2"))
    check = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert check.returncode == 2 and "sources[0].colour: unknown key" in check.stderr


async def test_birth_is_retained_and_the_last_will_says_offline_after_kill_9(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    agent = agent_process(
        write_config(config(tmp_path, mosquitto, topic_prefix, {"pm-north": pty.link}))
    )
    agent.start()
    await agent.wait_for_log("connected to hub")
    await asyncio.sleep(0.3)
    late = await hub_subscriber(mosquitto, f"{topic_prefix}/+/status")  # joins after the birth
    msgs = await late.wait_for(lambda ms: len(ms) >= 1)
    birth = msgpack.unpackb(msgs[0].payload)
    assert msgs[0].retain and birth["state"] == "online" and birth["version"]
    agent.kill9()
    msgs = await late.wait_for(lambda ms: len(ms) >= 2)
    assert msgpack.unpackb(msgs[1].payload)["state"] == "offline"


async def test_a_flush_carries_readings_not_yet_committed_by_the_ingest_timer(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    """The uplink commits what is staged right before it flushes, so a reading waits for one
    flush at most, never for the (here very long) commit interval on top."""
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    agent = agent_process(
        write_config(
            config(
                tmp_path,
                mosquitto,
                topic_prefix,
                {"pm-north": pty.link},
                flush_interval_s=0.5,
                buffer={"commit_interval_ms": 60_000},
            )
        )
    )
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    await pty.write_async(frame(321))
    msgs = await sub.wait_for(lambda ms: len(readings(ms)) >= 2, timeout=20)
    assert frame_numbers(readings(msgs)) == [321]
