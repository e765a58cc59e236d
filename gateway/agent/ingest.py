"""Where sources hand in readings: staged in memory, committed to the buffer in small batches.

The window in which a power cut can lose readings is the staging: at most `commit_interval_s`
(or `commit_max` readings) plus the time one commit takes to reach the disk. A reading counts as
accepted once its batch is committed. While commits fail (disk full), readings stay staged and
the commit is tried again within `RETRY_MAX_S`, so they reach the disk about a second after
space comes back (docs/operations.md, disk full).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from drivers.base import Measurement
from gateway.backoff import Backoff, RateLimitedLog
from gateway.readings import Columns, SeriesIndex
from gateway.store.buffer import BufferWriteError
from gateway.store.worker import AsyncBuffer

log = logging.getLogger(__name__)

RETRY_MAX_S = 1.0
"""After a failed commit the next one is tried within this long (jittered, from a quarter of it),
whatever `commit_interval_s` is: what is staged then is all a power cut would lose."""


class Ingest:
    """Stages readings from the sources in memory and commits them to the buffer in batches."""

    def __init__(
        self,
        buffer: AsyncBuffer,
        *,
        commit_interval_s: float,
        commit_max: int,
        staging_max: int,
        on_committed: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._buffer = buffer
        self._commit_interval_s = commit_interval_s
        self._commit_max = commit_max
        self._staging_max = staging_max
        self._on_committed = on_committed
        self._staged = Columns(SeriesIndex())
        self._owners: dict[str, str] = {}  # source name -> owner (BLE: the part before "/")
        self._default_owner = ""
        self._owner_of: dict[str, str] = {}  # what each reading's source name gave
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._high_water = max(1, min(staging_max, commit_max) // 2)
        self._committing = asyncio.Lock()  # the loop and the uplink's flush both commit
        self._last_commit_s = 0.0  # event loop time
        self._failing_since: float | None = None  # event loop time of the first failed commit
        self._log = RateLimitedLog(log)
        self.accepted = 0
        self.dropped_staging = 0
        self.dropped_full = 0
        self.write_errors = 0

    @property
    def staged(self) -> int:
        """Readings accepted and not yet committed."""
        return len(self._staged)

    def set_owners(self, by_source: dict[str, str], default: str) -> None:
        """Whose readings each source's are, from now on (what is staged keeps its owner)."""
        self._owners, self._default_owner, self._owner_of = by_source, default, {}

    def emit(
        self, source: str, measurements: Sequence[Measurement], ts_ms: int, flags: int = 0
    ) -> None:
        """Called by sources on the event loop; never blocks. Drops (counted) only when the
        disk has been failing long enough for the staging area to fill. The reading's owner
        is fixed here (docs/uplinks.md)."""
        owner = self._owner_of.get(source)
        if owner is None:
            owner = self._owners.get(source.split("/", 1)[0], self._default_owner)
            self._owner_of[source] = owner
        staged = self._staged
        staged.add(source, measurements, ts_ms, flags, owner)
        overflow = len(staged) - self._staging_max
        if overflow > 0:
            staged.drop_first(overflow)
            self.dropped_staging += overflow
            self._log.log(
                logging.ERROR,
                "staging",
                "buffer cannot keep up or disk failing: dropped %d readings from memory",
                overflow,
            )
        if len(staged) >= self._commit_max:
            self._wake.set()

    def dropped_by_cause(self) -> dict[str, int]:
        """Readings this ingest lost, per cause (the buffer's causes come from the buffer)."""
        return {"staging": self.dropped_staging}

    async def room(self) -> None:
        """Returns once staging is below its high-water mark (sources pause their reads)."""
        while len(self._staged) >= self._high_water:
            self._room.clear()
            self._wake.set()
            await self._room.wait()

    async def run(self) -> None:
        """Commit loop; runs until cancelled, then commits what is staged once more."""
        retry = Backoff(base_s=RETRY_MAX_S / 4, cap_s=RETRY_MAX_S)
        self._last_commit_s = asyncio.get_running_loop().time()
        try:
            while True:
                if not retry.attempt:  # counted from the last commit, the flush's too
                    try:
                        async with asyncio.timeout_at(
                            self._last_commit_s + self._commit_interval_s
                        ):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
                self._wake.clear()
                if await self.commit():
                    retry.reset()
                else:  # not the timer: with commit_interval_ms = 300000 that is 5 minutes
                    await asyncio.sleep(retry.next_delay())
        finally:
            await asyncio.shield(self.commit())

    async def commit(self) -> bool:
        """Move staged readings into the buffer; False if the buffer refused them (kept staged).
        Also called by the uplink right before a flush, so a flush carries every reading that
        arrived before it (latency: at most the flush interval, not flush plus commit)."""
        async with self._committing:
            self._last_commit_s = asyncio.get_running_loop().time()
            return await self._commit_staged()

    async def _commit_staged(self) -> bool:
        while self._staged:
            batch = self._staged.take(self._commit_max)  # emit() may add or trim meanwhile
            try:
                result = await self._buffer.append(batch)
            except BufferWriteError as error:
                self.write_errors += 1
                self._staged.put_back(batch)
                if self._failing_since is None:
                    self._failing_since = asyncio.get_running_loop().time()
                self._log.log(
                    logging.ERROR,
                    "write",
                    "%s; keeping %d readings in memory and retrying",
                    error,
                    len(self._staged),
                )
                return False
            if len(self._staged) < self._high_water:
                self._room.set()
            if self._failing_since is not None:
                self._recovered(result.accepted)
            self.accepted += result.accepted
            if result.dropped:
                self.dropped_full += result.dropped
                self._log.log(
                    logging.WARNING,
                    "full",
                    "buffer full: dropped %d readings (policy %s)",
                    result.dropped,
                    self._buffer.sync.when_full,
                )
            if result.accepted:
                self._on_committed(result.accepted)
        return True

    def _recovered(self, accepted: int) -> None:
        """The first commit after failed ones: say once how long readings waited in memory."""
        waited_s = asyncio.get_running_loop().time() - (self._failing_since or 0.0)
        self._failing_since = None
        log.warning(
            "buffer writable again after %.1f s: committed %d readings held in memory (%d left)",
            waited_s,
            accepted,
            len(self._staged),
        )
