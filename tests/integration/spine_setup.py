"""What the spine tests (test_spine.py, test_wire3_broker.py) feed the agent and read back.

SDS011 frames that carry their own number (``frame``, ``frame_numbers``), the agent's config for
a broker (``config``), and the buffer's next sequence number as the agent left it on disk
(``buffer_next_seq``, also read by test_remote_config.py). The running agent's status
(``wait_for_status``), and ``sources_open``: wait for it before writing the first frame."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers import sds011
from gateway import wire
from gateway.agent.health import read_status, status_socket_address

PM10_MARK = 77.7  # every frame's PM10; PM2.5 carries the frame number (0.1 units)


def frame(n: int) -> bytes:
    """Frame number n (1..9999): PM2.5 = n/10, so each reading says which frame it came from."""
    return sds011.encode_data(n / 10, PM10_MARK, device_id=0xA160)


def readings(messages: list[Any]) -> list[wire.HubReading]:
    """Every reading in the data messages a hub subscriber collected."""
    out: list[wire.HubReading] = []
    for m in messages:
        if m.topic.endswith("/data"):
            out.extend(wire.decode_data(m.payload))
    return out


def frame_numbers(rs: list[wire.HubReading]) -> list[int]:
    return [round(r.value * 10) for r in rs if r.quantity == "pm2_5_ugm3"]


def config(
    tmp_path: Path, broker: Any, prefix: str, ports: dict[str, Path], **hub: Any
) -> dict[str, Any]:
    buffer = hub.pop("buffer", {})
    return {
        "gateway": {"id": "gw-test", "data_dir": str(tmp_path / "data")},
        "hub": {
            "url": broker.url,
            "topic_prefix": prefix,
            "flush_interval_s": 0.2,
            "metrics_interval_s": 0.5,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            "wire_format": 1,  # these tests decode each message alone
            **hub,
        },
        "buffer": {"commit_interval_ms": 50, **buffer},
        "sources": [
            {
                "type": "serial",
                "name": name,
                "port": str(port),
                "driver": "sds011",
                "reopen_max_s": 0.5,
            }
            for name, port in ports.items()
        ],
    }


def buffer_next_seq(tmp_path: Path) -> int:
    """Read once the agent stopped: it holds the file exclusively while it runs. The chunks
    still stored carry the sequence as well as `meta` (which is written when chunks go)."""
    db = sqlite3.connect(tmp_path / "data" / "buffer.db")
    try:
        return int(
            db.execute(
                "SELECT max((SELECT coalesce(max(value), 1) FROM meta WHERE key = 'next_seq'), "
                "(SELECT coalesce(max(first_seq + count), 1) FROM chunks))"
            ).fetchone()[0]
        )
    finally:
        db.close()


async def wait_for_status(
    agent: Any, ready: Callable[[dict[str, Any]], bool], *, what: str, timeout_s: float = 15.0
) -> dict[str, Any]:
    """Polls the running agent's status socket until `ready(status)`; returns that status."""
    data_dir = tomllib.loads(agent.config_path.read_text())["gateway"]["data_dir"]
    address = status_socket_address(Path(data_dir))
    deadline = time.monotonic() + timeout_s
    while True:
        status = await read_status(address, timeout_s=2.0)  # None until the agent serves it
        if status is not None and ready(status):
            return status
        if not agent.running:
            raise AssertionError(f"agent exited before {what}:\n{agent.log_text()[-4000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} after {timeout_s} s; last status: {status}")
        await asyncio.sleep(0.05)


async def sources_open(agent: Any, *names: str) -> None:
    """Returns once the running agent's status shows the named sources (all, if none named)
    connected. pyserial flushes a port's input when it opens it, so a frame written before the
    open is lost: a fixed sleep after start loses frames when the machine is slow."""

    def is_open(status: dict[str, Any]) -> bool:
        sources = status["sources"]
        return all(sources.get(n, {}).get("connected") for n in names or sources)

    await wait_for_status(agent, is_open, what=f"sources {names or 'all'} open")
