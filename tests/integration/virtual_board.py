"""A virtual MicroPython board on a pseudo-terminal, for tests that drive a board with mpremote.

The real MicroPython interpreter (npm, WebAssembly; firmware/sim/board.mjs) with its REPL on a
pty that socat bridges, its flash a host directory (`root`) and its `sys.platform` whatever the
test asks (esp32, rp2). Real mpremote talks to it as to a board on /dev/ttyACM0:

    with VirtualBoard(tmp_path, platform="rp2") as board:
        subprocess.run(["mpremote", "connect", str(board.port), "fs", "ls"])
        board.files()  # {"main.py": b"...", ...}
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

from gateway.devtools import sim_node as nodesim

BOARD_RUNNER = nodesim.SIM_DIR / "board.mjs"
START_TIMEOUT_S = 10.0


def missing() -> str | None:
    """Why a virtual board cannot run here, or None."""
    if shutil.which("socat") is None:
        return "socat is not installed (make deps)"
    return nodesim.missing()


def require() -> None:
    """Skip the test when a virtual board cannot run here; fail in CI."""
    reason = missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"virtual board cannot run in CI: {reason}")
        pytest.skip(reason)


class VirtualBoard:
    """socat holding a pty (symlinked at `port`) to board.mjs's stdin/stdout."""

    def __init__(self, workdir: Path, *, platform: str = "esp32", name: str = "ttyBOARD0") -> None:
        self.port = workdir / name
        self.root = workdir / f"{name}-flash"
        self.platform = platform
        self.log_path = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> VirtualBoard:
        self.root.mkdir(parents=True, exist_ok=True)
        runner = f"node {BOARD_RUNNER} --root {self.root} --platform {self.platform}"
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                ["socat", f"PTY,link={self.port},raw,echo=0", f"EXEC:{runner}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.port.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"virtual board did not start: {self.log_text()}")
            time.sleep(0.05)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def files(self) -> dict[str, bytes]:
        """The board's flash, read on the host: name -> content (top level)."""
        return {p.name: p.read_bytes() for p in sorted(self.root.iterdir()) if p.is_file()}
