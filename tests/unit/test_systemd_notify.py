"""gateway.system.systemd against a real unix datagram socket standing in for systemd's notify
socket."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.system import systemd


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_each_message_arrives_as_one_datagram(notify_socket: socket.socket) -> None:
    assert systemd.notify_ready()
    assert systemd.notify_watchdog()
    assert systemd.notify_status("2 sources,\nuplink connected")
    assert systemd.notify_stopping()
    assert [received(notify_socket) for _ in range(4)] == [
        "READY=1",
        "WATCHDOG=1",
        "STATUS=2 sources, uplink connected",
        "STOPPING=1",
    ]


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"citygw-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify_ready()
        assert received(sock) == "READY=1"


def test_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not systemd.notify_ready()
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert not systemd.notify_watchdog()  # an error is swallowed, never raised


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd.watchdog_interval_s() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert systemd.watchdog_interval_s() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval_s() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert systemd.watchdog_interval_s() is None
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("0", "-5", "soon"):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert systemd.watchdog_interval_s() is None


async def test_watchdog_pings_from_the_loop(notify_socket: socket.socket) -> None:
    task = asyncio.create_task(systemd.ping_watchdog_every(0.01))
    await asyncio.sleep(0.1)
    task.cancel()
    notify_socket.setblocking(False)
    pings = []
    while True:
        try:
            pings.append(received(notify_socket))
        except BlockingIOError:
            break
    assert len(pings) >= 3
    assert set(pings) == {"WATCHDOG=1"}
