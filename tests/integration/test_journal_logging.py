"""The agent under systemd logs straight to journald with fields, and never logs a secret.

systemd is not running here: the test gives the agent what systemd would ($JOURNAL_STREAM naming
its stderr) and a real unix datagram socket standing in for /run/systemd/journal/socket
($CITYGW_JOURNAL_SOCKET). The agent talks to a TLS + password broker, once with the right
password and once with a wrong one, at debug level; the password is in no datagram and no line."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from secure_mqtt import PASSWORD, SecureBroker, agent_config

pytestmark = pytest.mark.integration


async def collect(
    sock: socket.socket,
    until: bytes,
    agent: Any,
    timeout_s: float = 15.0,
) -> list[bytes]:
    """Datagrams from ``sock`` until one contains ``until``."""
    loop = asyncio.get_running_loop()
    datagrams: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while not any(until in datagram for datagram in datagrams):
        assert agent.running, f"agent exited:\n{agent.log_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no {until!r} in {datagrams}\n{agent.log_text()}"
        try:
            async with asyncio.timeout(0.5):
                datagrams.append(await loop.sock_recv(sock, 1 << 16))
        except TimeoutError:
            pass
    return datagrams


@pytest.mark.parametrize("password", [PASSWORD, "wrong-but-secret-pw"])
async def test_agent_logs_fields_to_journald_and_no_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    secure_broker: SecureBroker,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    password: str,
) -> None:
    journal_path = tmp_path / "journal.socket"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(journal_path))
    sock.setblocking(False)
    pty = make_pty("ttyUSB0")
    config = write_config(
        agent_config(
            tmp_path,
            secure_broker,
            pty.link,
            password=password,
            ca_file=str(secure_broker.pki / "ca.crt"),
        )
    )
    agent = agent_process(config)
    agent.log_path.touch()  # the agent's stderr: $JOURNAL_STREAM names this file
    st = agent.log_path.stat()
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    monkeypatch.setenv("CITYGW_JOURNAL_SOCKET", str(journal_path))
    try:
        agent.start("--log-level", "debug")
        expected = b"connected to hub" if password == PASSWORD else b"refused us"
        datagrams = await collect(sock, expected, agent)
        agent.terminate()
        assert agent.wait() == 0
        while True:  # what the agent logged while stopping
            try:
                datagrams.append(sock.recv(1 << 16))
            except BlockingIOError:
                break
    finally:
        sock.close()

    record = next(d for d in datagrams if expected in d)
    lines = record.split(b"\n")
    for line in (
        b"SYSLOG_IDENTIFIER=citygw",
        b"CITYGW_GATEWAY=gw-sec",
        b"CITYGW_LOGGER=gateway.uplinks.mqtt",
    ):
        assert line in lines, record
    assert (
        b"CITYGW_EVENT=hub_connected" if password == PASSWORD else b"CITYGW_EVENT=hub_down"
    ) in lines
    assert (b"PRIORITY=6" if password == PASSWORD else b"PRIORITY=4") in lines
    code_file = next(line for line in lines if line.startswith(b"CODE_FILE="))
    assert b"/gateway/uplinks/" in code_file and code_file.endswith(b".py"), code_file
    assert any(b"PRIORITY=7" in d for d in datagrams), "debug records were not sent"
    assert any(b"stopped" in d for d in datagrams)
    # Records went to the journal, not to stderr as well.
    assert expected.decode() not in agent.log_text()

    for datagram in datagrams:
        assert password.encode() not in datagram, datagram
    assert password not in agent.log_text()
