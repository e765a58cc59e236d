"""The window of an MQTT connection's data batches: published and awaiting their PUBACKs.

At most `size` batches are in flight. A batch the broker answered "no matching subscribers"
(0x10, where subscribers are required) marks the window `unheard`: the batch loop then starts no
batch, lets the others `settle` and sends its lane again from the oldest unacknowledged reading
(`gateway.uplinks.mqtt`). A window lives as long as its connection.
"""

from __future__ import annotations

import asyncio
import contextlib


class BatchWindow:
    """Slots for batches awaiting PUBACK; `unheard` once one of them was heard by no one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.unheard = False
        self._slots = asyncio.Semaphore(size)

    async def take(self) -> None:
        """Wait for room for one more batch."""
        await self._slots.acquire()

    def give_back(self) -> None:
        """A batch was acknowledged or refused, or turned out not to be due."""
        self._slots.release()

    async def settle(self) -> None:
        """Until no batch is in flight (each PUBACK is bounded by the session's timeout)."""
        for _ in range(self.size):
            await self._slots.acquire()
        for _ in range(self.size):
            self._slots.release()

    async def close(self, *, timeout_s: float) -> None:
        """Take every slot for good (no batch starts again), waiting at most `timeout_s` for
        the batches in flight."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                for _ in range(self.size):
                    await self._slots.acquire()
