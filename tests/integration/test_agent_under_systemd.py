"""The agent as systemd runs it (Type=notify, WatchdogSec=): READY=1 once it is up, then
WATCHDOG=1 from its event loop at half the watchdog interval, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


async def test_agent_reports_ready_and_pings_the_watchdog(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mosquitto: Any,
    write_config: Callable[..., Path],
    agent_process: Callable[[Path], Any],
) -> None:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # pings every 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    agent = agent_process(
        write_config(
            {
                "gateway": {"id": "gw-notify", "data_dir": str(tmp_path / "data")},
                "hub": {
                    "url": mosquitto.url,
                    "topic_prefix": "citygw-test/notify",
                    "metrics_interval_s": 0.5,
                },
            }
        )
    )
    loop = asyncio.get_running_loop()
    messages: list[str] = []

    async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert agent.running, f"agent exited:\n{agent.log_text()[-4000:]}"
            assert time.monotonic() < deadline, f"got only {messages}:\n{agent.log_text()}"
            try:
                async with asyncio.timeout(0.2):
                    messages.append((await loop.sock_recv(sock, 4096)).decode())
            except TimeoutError:
                pass

    try:
        agent.start()
        await until(lambda: "READY=1" in messages)
        ready_at = messages.index("READY=1")
        await until(lambda: messages[ready_at:].count("WATCHDOG=1") >= 5)
        assert any(m.startswith("STATUS=0 sources, uplink") for m in messages)
        agent.terminate()
        await until(lambda: "STOPPING=1" in messages)
        assert agent.wait() == 0
    finally:
        sock.close()
