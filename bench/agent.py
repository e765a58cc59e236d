"""The agent under test: `python -m gateway.cli run --config X` as a process, and what /proc and
its status socket (the one `citygw status` reads) say about it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import REPO_ROOT, BenchError, Child, Children, Pinning, python_env

CLK_TCK = os.sysconf("SC_CLK_TCK")
UNIT = REPO_ROOT / "deploy" / "citygw.service"
UNIT_ENV_KEYS = ("PYTHONOPTIMIZE",)
"""What the bench takes from the unit's Environment= so it measures the agent as deployed;
PYTHONPYCACHEPREFIX is replaced by the bench's own compiled tree (see `deployed_env`)."""
WARM_UP = ["-m", "gateway.system.bytecode"]
"""Compiles what the running agent imports, as deploy/install.sh does."""


def unit_environment(unit: Path = UNIT) -> dict[str, str]:
    """The variables the systemd unit sets (Environment= lines, space-separated KEY=VALUE)."""
    env: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        if line.startswith("Environment="):
            for item in line.removeprefix("Environment=").split():
                key, _, value = item.partition("=")
                env[key] = value
    return env


def deployed_env(pycache: Path) -> dict[str, str]:
    """The agent's environment as the unit gives it (-OO), with its bytecode compiled first
    into `pycache`, as deploy/install.sh does: without that every start compiles from source
    (PYTHONDONTWRITEBYTECODE, a read-only /opt), which costs memory and time."""
    unit = unit_environment()
    env = python_env()
    env.update({k: unit[k] for k in UNIT_ENV_KEYS if k in unit})
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    warm = subprocess.run(
        [sys.executable, *WARM_UP],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if warm.returncode != 0:
        raise BenchError(f"compiling the agent's bytecode failed:\n{warm.stderr[-2000:]}")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # measured runs only read what was compiled
    return env


@dataclass(frozen=True)
class AgentSettings:
    hub_url: str
    topic_prefix: str
    ports: list[str]
    flush_interval_s: float = 1.0
    batch_max_readings: int = 5000
    commit_max_readings: int = 5000
    commit_interval_ms: int = 250
    synchronous: str = "full"
    max_readings: int = 2_000_000
    gateway_id: str = "bench-gw"
    extra_uplinks: int = 0
    """More MQTT uplinks ([[uplinks]]) for the same owner, on the same broker, each under
    `<topic_prefix>/u<i>`: every reading then leaves once per uplink."""
    sta_url: str = ""
    """When set, one more uplink, `format = "sensorthings"`, named `sta`, to this service
    root (docs/uplinks-sensorthings.md), for the same owner."""


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string for these values


def config_toml(settings: AgentSettings, data_dir: Path) -> str:
    s = settings
    lines = [
        "[gateway]",
        f"id = {_q(s.gateway_id)}",
        f"data_dir = {_q(str(data_dir))}",
        'log_level = "warning"',
        "",
        "[hub]",
        f"url = {_q(s.hub_url)}",
        f"topic_prefix = {_q(s.topic_prefix)}",
        f"flush_interval_s = {float(s.flush_interval_s)!r}",
        f"batch_max_readings = {s.batch_max_readings}",
        "metrics_interval_s = 86400.0  # keep metrics messages out of the byte counts",
        "wire_format = 1  # the bench's subscribers decode each message alone",
        "",
        "[buffer]",
        f"max_readings = {s.max_readings}",
        f"commit_max_readings = {s.commit_max_readings}",
        f"commit_interval_ms = {s.commit_interval_ms}",
        f"synchronous = {_q(s.synchronous)}",
    ]
    for i in range(s.extra_uplinks):
        lines += [
            "",
            "[[uplinks]]",
            f'name = "u{i}"',
            'owners = ["operator"]',
            f"url = {_q(s.hub_url)}",
            f"topic_prefix = {_q(f'{s.topic_prefix}/u{i}')}",
            f"flush_interval_s = {float(s.flush_interval_s)!r}",
            f"batch_max_readings = {s.batch_max_readings}",
            "wire_format = 1",
        ]
    if s.sta_url:
        lines += [
            "",
            "[[uplinks]]",
            'name = "sta"',
            'owners = ["operator"]',
            'format = "sensorthings"',
            f"url = {_q(s.sta_url)}",
            f"flush_interval_s = {float(s.flush_interval_s)!r}",
            f"batch_max_readings = {s.batch_max_readings}",
        ]
    for i, port in enumerate(s.ports):
        lines += [
            "",
            "[[sources]]",
            'type = "serial"',
            f'name = "pm-{i}"',
            f"port = {_q(port)}",
            'driver = "sds011"',
        ]
    return "\n".join(lines) + "\n"


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def io_counters(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/io").read_text()
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and friends from /proc/PID/status, and Pss (shared pages
    divided among the processes that map them) from /proc/PID/smaps_rollup, in kB."""
    out: dict[str, int] = {}
    for name in ("status", "smaps_rollup"):
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.startswith(("Vm", "Rss", "Pss")) and value.strip().endswith("kB"):
                out[key] = int(value.split()[0])
    return out


class Agent:
    def __init__(
        self,
        children: Children,
        pinning: Pinning,
        workdir: Path,
        settings: AgentSettings,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.config_path = workdir / "citygw.toml"
        self.log_path = workdir / "agent.log"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config_toml(settings, self.data_dir))
        self._children = children
        self._pinning = pinning
        self.child: Child | None = None
        self.started_s = 0.0
        self._env = env

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config_path)]

    @property
    def pid(self) -> int:
        assert self.child is not None, "agent not started"
        return self.child.pid

    def start(self) -> None:
        self.started_s = time.monotonic()
        self.child = self._children.start(
            "agent", self._pinning.agent(self.argv), log_path=self.log_path, env=self._env
        )

    def check_alive(self) -> None:
        if self.child is None or not self.child.running:
            code = None if self.child is None else self.child.proc.returncode
            tail = "" if self.child is None else self.child.log_tail()
            raise BenchError(f"the agent exited ({code}){tail}")

    def stop(self) -> None:
        if self.child is not None:
            self._children.stop(self.child, grace_s=20.0)

    def status(self, timeout_s: float = 3.0) -> dict[str, Any] | None:
        """The snapshot `citygw status --json` shows, read from the agent's status socket."""
        from gateway.agent.health import status_socket_address

        address = status_socket_address(self.data_dir)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout_s)
                sock.connect(address)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError:
            return None
        try:
            result: dict[str, Any] = json.loads(b"".join(chunks))
        except json.JSONDecodeError:
            return None
        return result

    def wait_status(
        self,
        what: str,
        ready: Any,
        timeout_s: float,
        interval_s: float = 0.05,
        allow_drops: bool = False,
    ) -> dict[str, Any]:
        """Polls the status until `ready(status)` holds; fails if the agent exits, cannot write
        its buffer, or (unless allowed) drops readings."""
        end = time.monotonic() + timeout_s
        last: dict[str, Any] | None = None
        while True:
            self.check_alive()
            status = self.status()
            if status is not None:
                last = status
                check_no_drops(status, allow_drops)
                if ready(status):
                    return status
            if time.monotonic() > end:
                shown = json.dumps(last, indent=1)[:3000] if last else "no status answer"
                raise BenchError(
                    f"agent: {what} not reached in {timeout_s:.0f} s; last status:"
                    f"\n{shown}{self.child.log_tail() if self.child else ''}"
                )
            time.sleep(interval_s)


def check_no_drops(status: dict[str, Any], allow_drops: bool = False) -> None:
    buffer = status.get("buffer", {})
    if (buffer.get("dropped") and not allow_drops) or buffer.get("write_errors"):
        raise BenchError(f"the agent dropped readings or failed to write: buffer = {buffer}")
