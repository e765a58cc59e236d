"""A serial source paused by the ingest (no room: a full disk) stops reading its port.

The backlog then waits in the kernel's tty buffer, not in the agent: the test measures how many
bytes the kernel takes with nobody reading (a second pty, opened the same way) and how many it
takes while the paused source has the port open; the difference is what the source read.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from drivers import new_stream, sds011
from gateway.config import SerialSourceConfig
from gateway.sources.serial.source import SerialSource, open_serial
from gateway.system.clock import WallClock

pytestmark = pytest.mark.integration

FRAME_BYTES = 10
STREAM = b"".join(
    sds011.encode_data(n % 1000 / 10, n % 999 / 10, device_id=0x1234) for n in range(30_000)
)
READINGS_PER_FRAME = len(new_stream("sds011").feed(STREAM[:FRAME_BYTES])[0].measurements)
TAKEN_MAX_BYTES = 8 * 1024
"""What a paused source may have read beyond the kernel's share: a read or two (4 KiB each)
before its decode loop found the ingest without room. Reading on into its 16 KiB inbox took
~20 KiB."""


class PausedSink:
    """An ingest without room until `resume()`."""

    def __init__(self) -> None:
        self.readings = 0
        self._room = asyncio.Event()

    def emit(self, source: str, measurements: Sequence[Any], ts_ms: int, flags: int) -> None:
        self.readings += len(measurements)

    async def room(self) -> None:
        await self._room.wait()

    def resume(self) -> None:
        self._room.set()


async def fill(master_fd: int) -> int:
    """Write STREAM to the master until the pty takes nothing more for 0.2 s; bytes written."""
    os.set_blocking(master_fd, False)
    written, idle_rounds = 0, 0
    while idle_rounds < 10:
        before = written
        try:
            while True:
                written += os.write(master_fd, STREAM[written : written + 1000])
        except BlockingIOError:
            pass
        idle_rounds = idle_rounds + 1 if written == before else 0
        await asyncio.sleep(0.02)
    assert written < len(STREAM), "the stream is longer than any tty buffer"
    return written


async def until(predicate: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls the sink's count, which has no event
            await asyncio.sleep(0.02)


async def test_a_paused_serial_source_leaves_the_backlog_in_the_kernel_and_loses_nothing(
    make_pty: Any,
) -> None:
    unread = make_pty("ttyUNREAD")
    held_open = open_serial(str(unread.link), 9600)  # configured like the source's port
    try:
        kernel_bytes = await fill(unread.master_fd)
    finally:
        held_open.close()

    pty = make_pty("ttyUSB0")
    config = SerialSourceConfig(name="pm", port=str(pty.link), driver="sds011")
    source = SerialSource(config, clock=WallClock())
    sink = PausedSink()
    task = asyncio.create_task(source.run(sink))
    try:
        await until(lambda: source.stats.state == "measuring")
        written = await fill(pty.master_fd)
        taken = written - kernel_bytes
        assert taken <= TAKEN_MAX_BYTES, (taken, written, kernel_bytes)
        assert sink.readings <= 4096 // FRAME_BYTES * READINGS_PER_FRAME, "one slice at most"

        sink.resume()
        end = -(-written // FRAME_BYTES) * FRAME_BYTES  # the last frame whole
        await asyncio.to_thread(pty.write, STREAM[written:end])
        frames = end // FRAME_BYTES
        await until(lambda: sink.readings >= frames * READINGS_PER_FRAME)
        await asyncio.sleep(0.1)
        assert sink.readings == frames * READINGS_PER_FRAME, "every frame, once"
        assert (source.stats.bad_frames, source.stats.skipped_bytes) == (0, 0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
