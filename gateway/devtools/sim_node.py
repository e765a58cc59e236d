"""`citygw node simulate`: a virtual sensor node on a pseudo-terminal.

The real firmware (firmware/*.py) runs in the MicroPython interpreter (npm
@micropython/micropython-webassembly-pyscript, WebAssembly under Node.js) on a virtual board
(firmware/sim/): a BME280, an SHT3x and a supply voltage whose values drift. The node's UART is
the runner's stdin/stdout; this module owns the master side of a raw pty and copies bytes both
ways, so the agent opens the slave (or the symlink `link`) like a node on a USB-serial adapter.
Bytes the node sends while no host has the slave open are dropped, as on an unplugged line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from pathlib import Path

from gateway.devtools.sim_serial import REATTACH_S, close_pty, host_attached, open_pty, read_master

log = logging.getLogger(__name__)

SIM_DIR = Path(__file__).resolve().parents[2] / "firmware" / "sim"  # gateway/devtools/sim_node.py
RUNNER = SIM_DIR / "simulate.mjs"
PACKAGE = SIM_DIR / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
_READ_SIZE = 4096


class SimulatorUnavailable(RuntimeError):
    """Node.js or the MicroPython npm package is missing."""


def missing() -> str | None:
    """Why the virtual node cannot run here, or None."""
    if not RUNNER.is_file():
        return f"the node simulator is not at {RUNNER} (it needs a source checkout)"
    if shutil.which("node") is None:
        return "Node.js is not installed (install nodejs, then run make firmware-interpreter)"
    if not PACKAGE.is_dir():
        return (
            f"the MicroPython npm package is missing under {SIM_DIR}; run make firmware-interpreter"
        )
    return None


class _PtyBridge:
    """Copies bytes between the pty master and the runner's pipes."""

    def __init__(self, master_fd: int, proc: asyncio.subprocess.Process) -> None:
        self.master_fd = master_fd
        self.proc = proc
        self.loop = asyncio.get_running_loop()
        self.to_host = 0
        self.to_node = 0
        self.dropped = 0

    def watch(self) -> None:
        self.loop.add_reader(self.master_fd, self._on_readable)

    def _on_readable(self) -> None:
        chunk = read_master(self.master_fd)
        if chunk is None:
            return
        if not chunk:  # no host yet: look again shortly
            self.loop.remove_reader(self.master_fd)
            self.loop.call_later(REATTACH_S, self.watch)
            return
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write(chunk)
            self.to_node += len(chunk)

    async def node_to_host(self) -> None:
        stdout = self.proc.stdout
        if stdout is None:
            raise RuntimeError("the runner was started without stdout=PIPE")
        while chunk := await stdout.read(_READ_SIZE):
            if not host_attached(self.master_fd):
                self.dropped += len(chunk)
                continue
            try:
                os.write(self.master_fd, chunk)
                self.to_host += len(chunk)
            except OSError as exc:  # BlockingIOError: the host does not read
                log.debug("virtual node: dropped %d bytes: %s", len(chunk), exc)
                self.dropped += len(chunk)

    def stop(self) -> None:
        self.loop.remove_reader(self.master_fd)


async def simulate(link: str | None, *, interval_s: int, node_id: int) -> int:
    """Run the virtual node until SIGINT/SIGTERM or until the interpreter exits; its exit code."""
    reason = missing()
    if reason is not None:
        raise SimulatorUnavailable(reason)
    master_fd, slave_path = open_pty(link)
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(RUNNER),
        "--node-id",
        str(node_id),
        "--interval-s",
        str(interval_s),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=SIM_DIR,
    )
    bridge = _PtyBridge(master_fd, proc)
    bridge.watch()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    where = f"{link} -> {slave_path}" if link else slave_path
    print(f"virtual node {node_id} (interval {interval_s} s) on {where}", flush=True)
    copier = asyncio.create_task(bridge.node_to_host())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({copier, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        bridge.stop()
        stopper.cancel()
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()  # the runner ends when its stdin closes
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        copier.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await copier
        close_pty(master_fd, link)
    log.info(
        "virtual node: %d bytes to the host, %d to the node, %d dropped",
        bridge.to_host,
        bridge.to_node,
        bridge.dropped,
    )
    if stop.is_set():
        return 0
    return proc.returncode or 1  # the interpreter ended on its own: that is a failure
