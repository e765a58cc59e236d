"""What the hub ingest tests share: the ingest worker as a process, the hub database read back,
and an SDS011 stream into an agent's pseudo-terminal.

``IngestProcess(argv, log_path)`` runs ``python -m gateway.cli hub ingest ...``; ``kill9()`` and
``start()`` again with the same command line is a worker crash and its restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


class IngestProcess:
    """`citygw hub ingest` as a subprocess; its output appended to `log_path`."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        argv = [sys.executable, "-m", "gateway.cli", "hub", "ingest", *self.args]
        with self.log_path.open("ab") as log:
            log.write(f"--- start: {json.dumps(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def kill9(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_for_log(self, needle: str, *, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while needle not in self.log_text():
            if not self.running:
                raise AssertionError(f"ingest exited:\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} not in the ingest log:\n{self.log_text()[-4000:]}")
            await asyncio.sleep(0.05)


def query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of `sql` on the hub database (`?` placeholders)."""
    if dsn.startswith("sqlite:///"):
        conn = sqlite3.connect(dsn.removeprefix("sqlite:///"), timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(sql.replace("?", "%s"), params).fetchall()  # type: ignore[arg-type]


async def wait_until(
    check: Callable[[], Any], *, timeout_s: float, what: str, every_s: float = 0.25
) -> Any:
    """Polls `check` (run in a thread) until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        last = await asyncio.to_thread(check)
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout_s} s (last: {last!r})")
        await asyncio.sleep(every_s)


async def stream_frames(
    pty: Any, frame: Callable[[int], bytes], numbers: range, rate_hz: float
) -> None:
    """Write SDS011 frames `numbers` to `pty` at about `rate_hz`."""
    for n in numbers:
        await pty.write_async(frame(n))
        await asyncio.sleep(1 / rate_hz)
