"""`citygw hub ingest` with real parts: Mosquitto, a throwaway PostgreSQL cluster (or SQLite),
the agent as a process reading an SDS011 on a pseudo-terminal (wire v3, the default), and the
ingest workers as processes killed with -9 mid-stream.

"Every reading" is what the agent's buffer numbered: after the run the agent is stopped, its
buffer's next sequence number read, and the database must hold each of 1..next-1 exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hub_setup import query, stream_frames, wait_until
from spine_setup import buffer_next_seq, config, frame, sources_open

from gateway.hub.gaps import runs_of

pytestmark = pytest.mark.integration
GATEWAY = "gw-test"


def stored(dsn: str) -> list[tuple[int, int]]:
    return [(e, s) for e, s in query(dsn, "SELECT epoch, seq FROM observations")]


def open_gaps(dsn: str) -> list[tuple[Any, ...]]:
    return query(dsn, "SELECT epoch, first_seq, last_seq FROM gaps WHERE closed_at IS NULL")


async def stream_with_one_worker(
    mosquitto: Any,
    dsn: str,
    topic_prefix: str,
    client_id: str,
    pty: Any,
    agent: Any,
    ingest_process: Any,
    fault: Callable[[Any], Awaitable[None]],
) -> Any:
    """A worker (not shared), then the agent; 700 frames at 100 Hz with `fault(worker)` 2.5 s
    into the stream. Returns the worker."""
    worker = ingest_process(
        "--url", mosquitto.url, "--db", dsn, "--topic-prefix", topic_prefix, "--grace-s", "1",
        "--client-id", client_id,
    )  # fmt: skip
    worker.start()
    await worker.wait_for_log("connected to")
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    writer = asyncio.create_task(stream_frames(pty, frame, range(1, 701), rate_hz=100))
    await asyncio.sleep(2.5)
    await fault(worker)
    await writer
    return worker


async def settle_and_check(dsn: str, agent: Any, tmp_path: Path) -> None:
    """Stop the agent (its buffer now says what it numbered), start it again to send what is
    left, and wait until the database holds every sequence number once, with no open gap."""
    agent.terminate()
    agent.wait()
    expected = buffer_next_seq(tmp_path) - 1
    assert expected > 300, "the stream was too short to mean anything"
    agent.start()
    try:
        await wait_until(
            lambda: len(stored(dsn)) >= expected, timeout_s=60, what=f"{expected} readings stored"
        )
    except TimeoutError:
        have = {s for _, s in stored(dsn)}
        missing = runs_of(set(range(1, expected + 1)) - have)
        raise AssertionError(f"missing {missing}; open gaps {open_gaps(dsn)}") from None
    rows = stored(dsn)
    epochs = {e for e, _ in rows}
    assert len(epochs) == 1
    assert sorted(s for _, s in rows) == list(range(1, expected + 1))  # none missing, none twice
    values = query(dsn, "SELECT value FROM observations WHERE quantity = 'pm2_5_ugm3'")
    assert len(values) == len({v for (v,) in values})  # no frame stored under two keys
    await wait_until(
        lambda: not open_gaps(dsn) and query(dsn, "SELECT count(*) FROM seq_runs")[0][0] == 1,
        timeout_s=20,
        what="no open gap, the arrived runs merged into one",
    )


async def test_two_shared_workers_store_every_reading_once_through_worker_and_agent_kills(
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
    agent = agent_process(
        write_config(config(tmp_path, mosquitto, topic_prefix, {"pm": pty.link}, wire_format=3))
    )
    common = ["--url", mosquitto.url, "--db", dsn, "--topic-prefix", topic_prefix]
    common += ["--share", "hub", "--grace-s", "1"]
    workers = [ingest_process(*common, "--client-id", f"ingest-{n}") for n in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        await worker.wait_for_log("connected to")
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    writer = asyncio.create_task(stream_frames(pty, frame, range(1, 1001), rate_hz=100))

    await asyncio.sleep(2)
    workers[0].kill9()  # mid-stream: what it stored but did not acknowledge comes again
    await asyncio.sleep(1)
    workers[0].start()  # the same command line, so the same client id and session
    await asyncio.sleep(1.5)
    agent.kill9()
    await asyncio.sleep(0.3)
    agent.start()
    await writer

    await settle_and_check(dsn, agent, tmp_path)
    assert all(worker.running for worker in workers)
    # The restart's birth may still be on its way to the workers when the last reading is
    # stored (nothing was left to send): the stop's "offline" is what the row says until then.
    await wait_until(
        lambda: (
            query(dsn, "SELECT online FROM gateways WHERE gateway_id = ?", (GATEWAY,)) == [(True,)]
        ),
        timeout_s=20,
        what="the gateway online again after its restart",
    )


async def test_a_broker_restart_mid_stream_loses_nothing_with_a_persistent_subscription(
    mosquitto: Any,
    postgres: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    ingest_process: Any,
    tmp_path: Path,
) -> None:
    """One worker without --share: Mosquitto 2.0.11 keeps a session's plain subscriptions over
    a restart, so what gateways publish before the worker is back is queued for it. (It does
    not keep shared subscriptions: docs/hub.md, "Broker restarts".)"""
    dsn = postgres.dsn
    pty = make_pty("ttyPM0")
    agent = agent_process(
        write_config(config(tmp_path, mosquitto, topic_prefix, {"pm": pty.link}, wire_format=3))
    )

    async def fault(worker: Any) -> None:
        mosquitto.stop()
        await asyncio.sleep(0.5)
        mosquitto.start()

    await stream_with_one_worker(
        mosquitto, dsn, topic_prefix, "ingest-one", pty, agent, ingest_process, fault
    )

    await settle_and_check(dsn, agent, tmp_path)


async def test_sqlite_one_worker_stores_every_reading_once_through_a_kill(
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    ingest_process: Any,
    tmp_path: Path,
) -> None:
    dsn = f"sqlite:///{tmp_path}/hub.db"
    pty = make_pty("ttyPM0")
    agent = agent_process(
        write_config(config(tmp_path, mosquitto, topic_prefix, {"pm": pty.link}, wire_format=3))
    )

    async def fault(worker: Any) -> None:
        worker.kill9()
        await asyncio.sleep(1)
        worker.start()

    await stream_with_one_worker(
        mosquitto, dsn, topic_prefix, "ingest-sqlite", pty, agent, ingest_process, fault
    )

    await settle_and_check(dsn, agent, tmp_path)


async def test_postgresql_killed_mid_stream_loses_nothing_and_stores_nothing_twice(
    mosquitto: Any,
    postgres: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    ingest_process: Any,
    tmp_path: Path,
) -> None:
    """The database goes away (SIGKILL, then recovery from its WAL): the worker acknowledges
    nothing it could not commit, retries, and carries on."""
    dsn = postgres.dsn
    pty = make_pty("ttyPM0")
    agent = agent_process(
        write_config(config(tmp_path, mosquitto, topic_prefix, {"pm": pty.link}, wire_format=3))
    )

    async def fault(worker: Any) -> None:
        postgres.kill()
        await asyncio.sleep(1.5)
        postgres.start()

    worker = await stream_with_one_worker(
        mosquitto, dsn, topic_prefix, "ingest-pg-crash", pty, agent, ingest_process, fault
    )

    await settle_and_check(dsn, agent, tmp_path)
    assert "database unavailable" in worker.log_text()
    assert worker.running
