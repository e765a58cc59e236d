"""Health: one snapshot of what the agent is doing, published as `metrics` and served locally.

The local view is a unix socket in the data directory (no disk writes: SD cards wear out);
`citygw status` reads it, and reads the buffer file directly when the agent is not running.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Snapshot = Callable[[], Awaitable[dict[str, Any]]]


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident set size of this process, from /proc/self/status.

    The peak is VmHWM, this process image's own high-water mark. Not getrusage's ru_maxrss:
    Linux carries that over exec from the process that forked us, so an agent started by a
    large process (a test runner, an installer) would report that process's peak."""
    current = peak = 0
    with contextlib.suppress(OSError), Path("/proc/self/status").open("rb") as status:
        for line in status:
            if line.startswith(b"VmRSS:"):
                current = int(line.split()[1]) * 1024
            elif line.startswith(b"VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return current, max(peak, current)


def status_socket_address(data_dir: Path) -> str:
    """A path socket in the data dir; an abstract one (Linux) when the path is too long."""
    path = str(data_dir.resolve() / "agent.sock")
    if len(path.encode()) < 100:
        return path
    return "\0citygw-" + hashlib.sha256(path.encode()).hexdigest()[:24]


async def serve_status(address: str, snapshot: Snapshot) -> None:
    """Answer each connection with one JSON snapshot; runs until cancelled."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(json.dumps(await snapshot()).encode())
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    path = None if address.startswith("\0") else Path(address)  # else: abstract, no file
    if path is not None:
        path.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(answer, path=address)
    if path is not None:
        path.chmod(0o660)
    try:
        async with server:
            await server.serve_forever()
    finally:
        if path is not None:
            path.unlink(missing_ok=True)


async def read_status(address: str, *, timeout_s: float = 3.0) -> dict[str, Any] | None:
    """The running agent's snapshot, or None if no agent answers at this address."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_unix_connection(address)
            try:
                data = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None
    result: dict[str, Any] = json.loads(data)
    return result


async def publish_metrics_every(
    interval_s: float, snapshot: Snapshot, publish: Callable[[dict[str, Any]], Awaitable[bool]]
) -> None:
    """Publish a snapshot every `interval_s` on a fixed grid (a slow publish does not drift it)."""
    next_at = time.monotonic() + interval_s
    while True:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval_s
        await publish(await snapshot())
