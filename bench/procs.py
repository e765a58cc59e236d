"""Child processes of the bench: started pinned, talked to in JSON lines, always cleaned up.

Every child runs in its own session (process group), so stopping it also stops whatever it
started (`taskset` execs the real program, so the pid is the program's own). `Children.close()`
is called from a `finally` and from atexit: SIGTERM to every group still alive, SIGKILL after a
grace period.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A bench step failed or timed out; the message says which and why."""


class Deadline:
    """The whole run's time budget; every wait asks it how long it may still take."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def cap(self, seconds: float, what: str) -> float:
        """min(seconds, what is left); raises BenchError once the budget is spent."""
        left = self.remaining()
        if left <= 0:
            raise BenchError(
                f"time budget of {self.seconds:.0f} s spent while {what} (raise it with --timeout)"
            )
        return min(seconds, left)


def cores() -> list[int]:
    """CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0))


class Pinning:
    """Agent on one core, everything else (broker, feeder, hub, tools) on another."""

    def __init__(self, enabled: bool = True) -> None:
        available = cores()
        self.taskset = shutil.which("taskset") if enabled else None
        self.active = self.taskset is not None and len(available) >= 2
        self.agent_core = available[0]
        self.other_core = available[1] if len(available) >= 2 else available[0]

    def agent(self, argv: list[str]) -> list[str]:
        return self._wrap(self.agent_core, argv)

    def other(self, argv: list[str]) -> list[str]:
        return self._wrap(self.other_core, argv)

    def _wrap(self, core: int, argv: list[str]) -> list[str]:
        if not self.active or self.taskset is None:
            return argv
        return [self.taskset, "-c", str(core), *argv]

    def describe(self) -> str:
        if not self.active:
            return "not pinned (taskset missing or fewer than 2 cores)"
        return (
            f"agent on core {self.agent_core}, Mosquitto and bench helpers on core "
            f"{self.other_core} (taskset)"
        )


def python_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


class Child:
    """One child process. With `lines=True` its stdout is read as JSON lines by a thread."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], log_path: Path | None) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path
        self.started_s = time.monotonic()
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        if proc.stdout is not None:
            threading.Thread(
                target=self._read, args=(proc.stdout,), daemon=True, name=f"bench-{name}-stdout"
            ).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                self._lines.put(json.loads(line))
            except json.JSONDecodeError:
                self._lines.put({"event": "text", "text": line})
        self._lines.put(None)

    def send(self, line: str) -> None:
        if self.proc.stdin is None:
            raise BenchError(f"{self.name}: no stdin")
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, event: str | tuple[str, ...], timeout_s: float) -> dict[str, Any]:
        """The next message whose "event" is `event` (or one of them); BenchError on timeout,
        exit or an "error" message. Messages of other kinds are skipped."""
        wanted = (event,) if isinstance(event, str) else event
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise BenchError(
                    f"{self.name}: no {' or '.join(wanted)!r} within "
                    f"{timeout_s:.0f} s{self.log_tail()}"
                )
            try:
                message = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if message is None:
                self._lines.put(None)
                self.proc.wait()
                raise BenchError(
                    f"{self.name} exited ({self.proc.returncode}) before "
                    f"{' or '.join(wanted)!r}{self.log_tail()}"
                )
            if message.get("event") == "error":
                raise BenchError(f"{self.name}: {message.get('message')}{self.log_tail()}")
            if message.get("event") in wanted:
                return message

    def poll_event(self, event: str | tuple[str, ...]) -> dict[str, Any] | None:
        """A waiting message of this kind (or kinds), if any; others are skipped; never blocks."""
        wanted = (event,) if isinstance(event, str) else event
        while True:
            try:
                message = self._lines.get_nowait()
            except queue.Empty:
                return None
            if message is None:
                self._lines.put(None)
                return None
            if message.get("event") == "error":
                raise BenchError(f"{self.name}: {message.get('message')}{self.log_tail()}")
            if message.get("event") in wanted:
                return message

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return f"\n--- last lines of {self.log_path} ---\n{text[-chars:]}" if text else ""


class Children:
    """Every process the bench started; `close()` ends those still running."""

    def __init__(self) -> None:
        self._children: list[Child] = []
        atexit.register(self.close)

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        log_path: Path | None = None,
        lines: bool = False,
        stdin: bool = False,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        log = log_path.open("ab") if log_path else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd or REPO_ROOT,
                env=env or python_env(),
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if lines else log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            if log_path:
                log.close()  # type: ignore[union-attr]
        child = Child(name, proc, log_path)
        self._children.append(child)
        return child

    def stop(self, child: Child, *, sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
        """Signal the child's process group and wait; SIGKILL after `grace_s`."""
        if child.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, sig)
            try:
                child.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.proc.wait()
        # also whatever it left in its group (e.g. a tool it started)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        for stream in (child.proc.stdin, child.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Stops the processes started inside the block when it ends, newest first."""
        mark = len(self._children)
        try:
            yield
        finally:
            for child in reversed(self._children[mark:]):
                self.stop(child)

    def close(self) -> None:
        alive = [c for c in self._children if c.running]
        for child in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        end = time.monotonic() + 5.0
        for child in alive:
            try:
                child.proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(
                    f"bench: {child.name} (pid {child.pid}) ignored SIGTERM; killing",
                    file=sys.stderr,
                )
        for child in self._children:
            self.stop(child, sig=signal.SIGKILL, grace_s=5.0)
        self._children.clear()


def install_signal_handlers() -> None:
    """SIGINT (also when started in the background, where it is inherited as ignored),
    SIGTERM and SIGHUP end the bench as Ctrl-C does, so `finally` blocks clean up."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
