"""A sensor whose port stays open but that stops sending is seen as silent: by the agent (its
status socket, the metrics message, one warning in its log), and at the hub (`citygw hub
status` over the database `citygw hub ingest` writes). Real parts: the agent as a process, an
SDS011 on a pseudo-terminal, Mosquitto, the ingest worker as a process, SQLite and a throwaway
PostgreSQL cluster."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hub_setup import REPO_ROOT, stream_frames, wait_until
from spine_setup import config, frame, sources_open

from gateway.agent.health import read_status, status_socket_address
from gateway.wire.messages import decode_map

pytestmark = pytest.mark.integration

SILENT_AFTER_S = 3.0
SILENT_LINE = "pm-north is silent"
HEARD_LINE = "pm-north is heard again"


async def agent_status(data_dir: Path) -> dict[str, Any]:
    status = await read_status(status_socket_address(data_dir), timeout_s=3.0)
    assert status is not None, "the agent's status socket did not answer"
    return status


def hub_status(dsn: str, *options: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "hub", "status", "--db", dsn, *options],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout


def silent_at_hub(dsn: str) -> dict[str, float]:
    rows = json.loads(hub_status(dsn, "--json"))
    silent: dict[str, float] = rows[0]["silent_sources"] if rows else {}
    return silent


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_a_sensor_that_stops_sending_is_silent_on_the_gateway_and_at_the_hub(
    database: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    pty_pair: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
    ingest_process: Any,
) -> None:
    data_dir = tmp_path / "data"
    dsn = (
        f"sqlite:///{tmp_path}/hub.db"
        if database == "sqlite"
        else request.getfixturevalue("postgres").dsn
    )
    document = config(tmp_path, mosquitto, topic_prefix, {"pm-north": pty_pair.link})
    document["sources"][0]["silent_after_s"] = SILENT_AFTER_S
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/+/metrics")
    worker = ingest_process("--url", mosquitto.url, "--db", dsn, "--topic-prefix", topic_prefix)
    worker.start()
    await worker.wait_for_log("connected to")
    agent = agent_process(write_config(document))
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)

    await stream_frames(pty_pair, frame, range(1, 21), rate_hz=20)
    status = await agent_status(data_dir)
    source = status["sources"]["pm-north"]
    assert source["readings"] > 0 and source["state"] == "measuring"
    assert source["silent_for_s"] is None and status["silent"] == {}
    mark = len(agent.log_text())  # a slow start may have been silent before the first frame

    def log_since_frames() -> str:
        return agent.log_text()[mark:]

    # The port stays open; nothing comes.
    async def silent_for_s() -> float | None:
        return (await agent_status(data_dir))["sources"]["pm-north"]["silent_for_s"]  # type: ignore[no-any-return]

    async with asyncio.timeout(10):
        while await silent_for_s() is None:  # noqa: ASYNC110 - polls the agent's socket
            await asyncio.sleep(0.1)
    status = await agent_status(data_dir)
    assert status["silent"]["pm-north"] >= SILENT_AFTER_S
    assert status["sources"]["pm-north"]["state"] == "measuring"  # the existing key is kept
    messages = await sub.wait_for(
        lambda ms: any(decode_map(m.payload).get("silent", {}).get("pm-north") for m in ms)
    )
    metrics = next(decode_map(m.payload) for m in messages if decode_map(m.payload)["silent"])
    assert metrics["sources"]["pm-north"]["silent_for_s"] >= SILENT_AFTER_S
    await wait_until(lambda: "pm-north" in silent_at_hub(dsn), timeout_s=20, what="hub: silent")
    table = hub_status(dsn)
    assert "silent sources" in table.splitlines()[0] and "pm-north" in table.splitlines()[1]

    async with asyncio.timeout(10):  # several more judgements (metrics every 0.5 s): one line
        while (await silent_for_s() or 0) < SILENT_AFTER_S + 2:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    assert log_since_frames().count(SILENT_LINE) == 1
    assert "WARNING" in next(
        line for line in log_since_frames().splitlines() if SILENT_LINE in line
    )

    # It sends again.
    await stream_frames(pty_pair, frame, range(21, 41), rate_hz=20)
    assert await silent_for_s() is None
    assert (await agent_status(data_dir))["silent"] == {}
    await wait_until(lambda: HEARD_LINE in log_since_frames(), timeout_s=10, what="info line")
    await wait_until(lambda: not silent_at_hub(dsn), timeout_s=20, what="hub: heard again")
    assert log_since_frames().count(SILENT_LINE) == 1
    assert log_since_frames().count(HEARD_LINE) == 1
