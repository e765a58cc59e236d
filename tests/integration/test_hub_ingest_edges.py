"""`citygw hub ingest` at its edges, with real Mosquitto and PostgreSQL: gaps that close when a
late re-send fills them and stay open when a gateway's full buffer dropped readings, re-birth
after the retained birth is gone, and hostile payloads on every topic it reads."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import msgpack
import pytest
from hub_setup import query, stream_frames, wait_until
from spine_setup import config, frame, sources_open

from gateway import wire
from gateway.readings import Series

pytestmark = pytest.mark.integration
SERIES = {0: Series("pm", "pm2_5", "ug/m3")}


def v1_data(gateway: str, epoch: int, seqs: range, *, source: str = "pm") -> bytes:
    series = {0: Series(source, "pm2_5", "ug/m3")}
    batch = [(s, 1_796_000_000_000 + s * 1000, 0, s / 10, 0) for s in seqs]
    return wire.encode_data(
        1, gateway_id=gateway, epoch=epoch, batch=batch, series_of=series.__getitem__
    )


async def publish(broker: Any, messages: list[tuple[str, bytes, bool]]) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        for topic, payload, retain in messages:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=10)


def start_worker(ingest_process: Any, broker: Any, dsn: str, prefix: str) -> Any:
    worker = ingest_process(
        "--url", broker.url, "--db", dsn, "--topic-prefix", prefix, "--grace-s", "1",
        "--client-id", "ingest-edges",
    )  # fmt: skip
    worker.start()
    return worker


def gaps(dsn: str, gateway: str) -> list[tuple[Any, ...]]:
    return query(
        dsn,
        "SELECT first_seq, last_seq, closed_at IS NULL FROM gaps WHERE gateway_id = ? "
        "ORDER BY first_seq, closed_at",
        (gateway,),
    )


async def test_a_gap_opens_after_the_grace_period_and_closes_when_a_late_resend_fills_it(
    mosquitto: Any, postgres: Any, topic_prefix: str, ingest_process: Any
) -> None:
    dsn = postgres.dsn
    worker = start_worker(ingest_process, mosquitto, dsn, topic_prefix)
    await worker.wait_for_log("connected to")
    topic = f"{topic_prefix}/gw-late/data"
    await publish(
        mosquitto,
        [
            (topic, v1_data("gw-late", 5, range(1, 11)), False),
            (topic, v1_data("gw-late", 5, range(21, 31)), False),
        ],
    )
    await wait_until(
        lambda: gaps(dsn, "gw-late") == [(11, 20, True)], timeout_s=20, what="an open gap 11-20"
    )
    await publish(mosquitto, [(topic, v1_data("gw-late", 5, range(11, 21)), False)])
    await wait_until(
        lambda: gaps(dsn, "gw-late") == [(11, 20, False)], timeout_s=20, what="the gap closed"
    )
    rows = query(dsn, "SELECT seq FROM observations WHERE gateway_id = 'gw-late'")
    assert sorted(s for (s,) in rows) == list(range(1, 31))


async def test_a_gap_stays_open_when_the_gateways_full_buffer_dropped_readings(
    mosquitto: Any,
    postgres: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    ingest_process: Any,
    tmp_path: Path,
) -> None:
    dsn = postgres.dsn
    pty = make_pty("ttyPM0")
    document = config(
        tmp_path, mosquitto, topic_prefix, {"pm": pty.link}, wire_format=3,
        buffer={"max_readings": 100, "when_full": "drop_oldest"},
    )  # fmt: skip
    agent = agent_process(write_config(document))
    worker = start_worker(ingest_process, mosquitto, dsn, topic_prefix)
    await worker.wait_for_log("connected to")
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    await stream_frames(pty, frame, range(1, 21), rate_hz=50)
    await wait_until(
        lambda: query(dsn, "SELECT count(*) FROM observations")[0][0] >= 40,
        timeout_s=20,
        what="the first readings stored",
    )
    mosquitto.stop()
    await stream_frames(pty, frame, range(21, 221), rate_hz=100)  # 400 readings, room for 100
    mosquitto.start()
    await stream_frames(pty, frame, range(221, 241), rate_hz=50)

    def dropped_and_gap() -> Any:
        rows = query(dsn, "SELECT dropped FROM gateways WHERE gateway_id = 'gw-test'")
        open_ = [g for g in gaps(dsn, "gw-test") if g[2]]
        return rows and rows[0][0] and open_ and (rows[0][0], open_)

    dropped, open_ = await wait_until(
        dropped_and_gap, timeout_s=30, what="drops reported and an open gap"
    )
    missing = sum(last - first + 1 for first, last, _ in open_)
    assert 0 < missing <= dropped
    await asyncio.sleep(6)  # another keeper pass: nothing will fill it
    assert [g for g in gaps(dsn, "gw-test") if g[2]] == open_
    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway.cli", "hub", "status", "--db", dsn, "--json"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    fleet = json.loads(shown.stdout)
    assert [(g["gateway_id"], g["open_gaps"], g["missing"]) for g in fleet] == [
        ("gw-test", len(open_), missing)
    ]
    assert fleet[0]["dropped"] == dropped and fleet[0]["online"] is True


async def test_rebirth_a_fresh_hub_without_the_retained_birth_asks_and_decodes_v3_data(
    mosquitto: Any,
    postgres: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    ingest_process: Any,
    tmp_path: Path,
) -> None:
    dsn = postgres.dsn
    pty = make_pty("ttyPM0")
    # No hub listens to frames 1-10: with require_subscribers the agent would keep them and
    # reconnect, publishing its birth again, and the hub would have no birth to ask for.
    settings = {"wire_format": 3, "require_subscribers": False}
    agent = agent_process(
        write_config(config(tmp_path, mosquitto, topic_prefix, {"pm": pty.link}, **settings))
    )
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    await stream_frames(pty, frame, range(1, 11), rate_hz=50)  # its birth names the series now
    await asyncio.sleep(1)
    # The broker forgets the birth (as one without retained messages would).
    await publish(mosquitto, [(f"{topic_prefix}/gw-test/status", b"", True)])
    worker = start_worker(ingest_process, mosquitto, dsn, topic_prefix)
    await worker.wait_for_log("connected to")
    await stream_frames(pty, frame, range(11, 61), rate_hz=50)

    await wait_until(
        lambda: query(dsn, "SELECT count(*) FROM observations")[0][0] >= 100,
        timeout_s=30,
        what="the v3 readings decoded after the birth came again",
    )
    assert "asked gw-test for its birth" in worker.log_text()
    assert query(dsn, "SELECT count(*) FROM quarantine")[0][0] == 0

    def rebirths() -> int:
        rows = query(dsn, "SELECT metrics FROM gateways WHERE gateway_id = 'gw-test'")
        metrics = rows[0][0] if rows else None
        return int(metrics["uplink"]["rebirths"]) if metrics else 0

    assert await wait_until(rebirths, timeout_s=10, what="the agent counted its re-birth") >= 1


async def test_hostile_payloads_on_every_topic_are_quarantined_and_ingest_goes_on(
    mosquitto: Any, postgres: Any, topic_prefix: str, ingest_process: Any
) -> None:
    dsn = postgres.dsn
    worker = start_worker(ingest_process, mosquitto, dsn, topic_prefix)
    await worker.wait_for_log("connected to")
    evil = f"{topic_prefix}/gw-evil"
    hostile = [
        (f"{evil}/data", b"\xff\x00 not a message", False),
        (f"{evil}/data", v1_data("gw-evil", 1, range(1, 3), source="p\x00m"), False),
        (f"{evil}/data", v1_data("gw-other", 1, range(1, 3)), False),  # names another gateway
        (f"{evil}/status", b"\xc1", True),
        (f"{evil}/metrics", msgpack.packb([1, 2, 3]), False),
        (f"{evil}/register", b'{"v": 1, "sources": [{"source": "\\ud800"}]}', True),
        (f"{evil}/config/state", json.dumps([1] * 10).encode(), True),
    ]
    await publish(mosquitto, hostile)
    await publish(
        mosquitto, [(f"{topic_prefix}/gw-good/data", v1_data("gw-good", 1, range(1, 6)), False)]
    )
    await wait_until(
        lambda: query(dsn, "SELECT count(*) FROM observations")[0][0] == 5,
        timeout_s=20,
        what="the good message stored after the hostile ones",
    )
    rows = query(dsn, "SELECT topic, reason FROM quarantine ORDER BY id")
    assert [t for t, _ in rows] == [t for t, _, _ in hostile]
    for (topic, reason), leaf in zip(
        rows, ["data", "data", "data", "status", "metrics", "register", "config/state"], strict=True
    ):
        assert topic.endswith(leaf) and reason.startswith(leaf + ":"), (topic, reason)
    assert worker.running
