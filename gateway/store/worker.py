"""The buffer off the event loop: every SqliteBuffer call on one worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from gateway.readings import Columns, Series, StoredReading
from gateway.store.buffer import SqliteBuffer
from gateway.store.lanes import DEFAULT_LANE, LaneSpec
from gateway.store.stats import AppendResult, BufferStats

T = TypeVar("T")


class AsyncBuffer:
    """Runs every SqliteBuffer call on one worker thread, so the event loop never blocks on disk."""

    def __init__(self, factory: Callable[[], SqliteBuffer]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="citygw-buffer")
        self._factory = factory
        self._buffer: SqliteBuffer | None = None

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def open(self) -> SqliteBuffer:
        """Open the buffer on the worker thread; the other calls need it open."""
        self._buffer = await self._call(self._factory)
        return self._buffer

    @property
    def sync(self) -> SqliteBuffer:
        """The buffer itself, for calls cheap enough for the loop (its epoch, series names)."""
        if self._buffer is None:
            raise RuntimeError("the buffer is not open: await open() first")
        return self._buffer

    async def append(self, readings: Columns) -> AppendResult:
        """`SqliteBuffer.append` on the worker thread."""
        return await self._call(lambda: self.sync.append(readings))

    async def peek(
        self, after_seq: int, limit: int, *, lane: str = DEFAULT_LANE
    ) -> list[StoredReading]:
        """`SqliteBuffer.peek` on the worker thread."""
        return await self._call(lambda: self.sync.peek(after_seq, limit, lane=lane))

    async def ack(self, first_seq: int, last_seq: int, *, lane: str = DEFAULT_LANE) -> int:
        """`SqliteBuffer.ack` on the worker thread."""
        return await self._call(lambda: self.sync.ack(first_seq, last_seq, lane=lane))

    async def backlog(self, lane: str = DEFAULT_LANE) -> int:
        """Readings `lane` must still carry (0 for a lane the buffer does not have)."""
        return await self._call(lambda: self.sync.backlog(lane))

    async def set_lanes(self, specs: list[LaneSpec]) -> None:
        """`SqliteBuffer.set_lanes` on the worker thread."""
        await self._call(lambda: self.sync.set_lanes(specs))

    async def stats(self) -> BufferStats:
        """`SqliteBuffer.stats` on the worker thread."""
        return await self._call(self.sync.stats)

    async def series_table(self, lane: str | None = None) -> dict[int, Series]:
        """`SqliteBuffer.series_table` on the worker thread."""
        return await self._call(lambda: self.sync.series_table(lane))

    async def close(self) -> None:
        """Close the buffer (if open) and stop the worker thread."""
        if self._buffer is not None:
            await self._call(self._buffer.close)
        self._executor.shutdown(wait=True)
