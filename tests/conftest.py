"""Shared test fixtures: pseudo-terminal serial ports, TOML config files, the agent as a process.

Everything is handed out through fixtures (conftest modules are not importable by name):

- ``make_pty(name)`` / ``pty_pair``: a raw pseudo-terminal behind a stable symlink in tmp_path.
- ``write_config(data, name=...)``: writes a dict as TOML into tmp_path, returns the path.
- ``agent_process(config_path)``: the agent as ``python -m gateway.cli run --config PATH``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


# --- pseudo-terminals ----------------------------------------------------------------------


class PtyPair:
    """The far end of a serial port: tests write sensor bytes to ``master_fd`` (or hand it to a
    simulator from ``gateway.devtools.sim_serial``); the code under test opens ``link``.
    ``unplug()`` and ``replug()`` simulate a USB adapter going away and coming back at the same
    path, with a new raw pty behind it. Built on ``sim_serial.open_pty`` / ``close_pty``."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master_fd = -1
        self.slave_name = ""
        self.replug()

    def replug(self) -> None:
        """(Re)creates the device: a fresh raw pty behind the same ``link``."""
        from gateway.devtools.sim_serial import (
            open_pty,  # lazily: a broken gateway fails only pty tests
        )

        self.close()
        self.master_fd, self.slave_name = open_pty(str(self.link))

    def unplug(self) -> None:
        """Removes the device: the link disappears and readers of the old pty get a hangup."""
        self.close()
        self.link.unlink(missing_ok=True)

    def write(self, data: bytes, *, timeout_s: float = 5.0) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + timeout_s
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"pty write: {len(view)} bytes not accepted in {timeout_s}s")
            _, writable, _ = select.select([], [self.master_fd], [], remaining)
            if writable:
                view = view[os.write(self.master_fd, view) :]

    def read(self, max_bytes: int = 4096, *, timeout_s: float = 1.0) -> bytes:
        """Bytes the code under test wrote to the port; b"" if none arrived in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self.master_fd], [], [], max(remaining, 0))
            if readable:
                try:
                    return os.read(self.master_fd, max_bytes)
                except BlockingIOError:
                    pass
                except OSError:  # EIO: nobody has the port open (yet); keep waiting
                    time.sleep(min(0.02, max(remaining, 0)))
            if remaining <= 0:
                return b""

    async def write_async(self, data: bytes, *, timeout_s: float = 5.0) -> None:
        """``write`` off the event loop, for in-process readers that must keep draining."""
        await asyncio.to_thread(self.write, data, timeout_s=timeout_s)

    def close(self) -> None:
        if self.master_fd >= 0:
            os.close(self.master_fd)
        self.master_fd = -1


@pytest.fixture
def make_pty(tmp_path: Path) -> Iterator[Callable[[str], PtyPair]]:
    """Factory: ``make_pty("ttyPM0")`` -> PtyPair whose ``link`` is ``tmp_path/"ttyPM0"``."""
    pairs: list[PtyPair] = []

    def make(name: str = "ttySIM0") -> PtyPair:
        pair = PtyPair(tmp_path / name)
        pairs.append(pair)
        return pair

    yield make
    for pair in pairs:
        pair.close()


@pytest.fixture
def pty_pair(make_pty: Callable[[str], PtyPair]) -> PtyPair:
    return make_pty("ttySIM0")


# --- TOML ----------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_str(key)


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str | os.PathLike):
        return _toml_str(os.fspath(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML: {value!r}")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _toml_table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    nested = [(k, v) for k, v in table.items() if isinstance(v, Mapping) or _is_table_array(v)]
    for key, value in table.items():
        if not (isinstance(value, Mapping) or _is_table_array(value)):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in nested:
        sub = [*path, _toml_key(key)]
        if isinstance(value, Mapping):
            lines += ["", f"[{'.'.join(sub)}]"]
            _toml_table(value, sub, lines)
        else:
            for item in value:
                lines += ["", f"[[{'.'.join(sub)}]]"]
                _toml_table(item, sub, lines)


def dumps_toml(data: Mapping[str, Any]) -> str:
    """TOML for the shapes configs use: tables, arrays of tables, str/int/float/bool/list values
    (paths are written as strings)."""
    lines: list[str] = []
    _toml_table(data, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config(data, name="citygw.toml") -> Path``; the text is checked with tomllib."""
    import tomllib

    def write(data: Mapping[str, Any], name: str = "citygw.toml") -> Path:
        text = dumps_toml(data)
        tomllib.loads(text)  # a writer bug should fail here, not as a confusing config error
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --- the agent as a process ----------------------------------------------------------------


class AgentProcess:
    """``python -m gateway.cli run --config PATH``; stdout and stderr go to ``log_path``
    (appended across restarts, so a test sees the whole history)."""

    def __init__(
        self,
        config_path: Path,
        *,
        log_path: Path | None = None,
        python_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.config_path = config_path
        self.log_path = log_path or config_path.with_suffix(".log")
        self.python_args = python_args
        """Interpreter options, e.g. ("-OO",) as the systemd unit runs it."""
        self.env = env or {}
        """Set on top of this process's environment ("": unset)."""
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._run_offset = 0  # where the latest start's lines begin in the log

    @property
    def pid(self) -> int:
        assert self.proc is not None, "agent not started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *extra_args: str) -> None:
        assert not self.running, "agent already running"
        self.starts += 1
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        env.update(self.env)
        env = {k: v for k, v in env.items() if v}
        argv = [sys.executable, *self.python_args, "-m", "gateway.cli", "run"]
        argv += ["--config", str(self.config_path)]
        argv += extra_args
        with self.log_path.open("ab") as log:
            self._run_offset = log.tell()
            log.write(f"--- test harness: start #{self.starts}: {json.dumps(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _signal(self, sig: signal.Signals) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def kill9(self) -> int:
        """SIGKILL, as a power cut would; returns the exit status (-9)."""
        self._signal(signal.SIGKILL)
        return self.wait()

    def terminate(self) -> None:
        """SIGTERM (ordered shutdown); follow with ``wait()``."""
        self._signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 15.0) -> int:
        assert self.proc is not None, "agent not started"
        return self.proc.wait(timeout=timeout_s)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def run_log_text(self) -> str:
        """The log of the latest start only."""
        with self.log_path.open("rb") as log:
            log.seek(self._run_offset)
            return log.read().decode("utf-8", errors="replace")

    async def wait_for_log(self, needle: str, *, timeout_s: float = 10.0) -> str:
        """Waits until ``needle`` appears in the latest start's log (after a restart, the line
        an earlier run wrote does not count); fails early if the agent exits."""
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.run_log_text()
            if needle in text:
                return text
            if not self.running:
                raise AssertionError(f"agent exited before logging {needle!r}:\n{text[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{needle!r} not in agent log after {timeout_s}s:\n{text[-4000:]}"
                )
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        """Teardown: SIGTERM, then SIGKILL if the agent has not exited after 10 s."""
        if not self.running:
            return
        self.terminate()
        try:
            self.wait(10.0)
        except subprocess.TimeoutExpired:
            self.kill9()


@pytest.fixture
def agent_process() -> Iterator[Callable[..., AgentProcess]]:
    """Factory: ``agent = agent_process(config_path); agent.start()``; stopped at teardown."""
    agents: list[AgentProcess] = []

    def make(config_path: Path, **options: Any) -> AgentProcess:
        agent = AgentProcess(config_path, **options)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()
