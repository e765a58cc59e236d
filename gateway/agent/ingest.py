"""Where sources hand in readings: staged in memory, committed to the buffer in small batches.

The window in which a power cut can lose readings is the staging: at most `commit_interval_s`
(or `commit_max` readings) plus the time one commit takes to reach the disk. A reading counts as
accepted once its batch is committed. While commits fail (disk full), readings stay staged and
the commit is tried again within `RETRY_MAX_S`, so they reach the disk about a second after
space comes back (docs/operations.md, disk full).

With `[[alerts]]` rules, the readings are fed to the alert engine as they arrive; a raise or a
clear becomes a reading of its own (series (source, "alert/<rule>", "1")), committed at once
rather than at the next commit interval, and handed with its key to `on_alert` (the uplinks
send it at once; docs/alerts.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from drivers.base import Measurement
from gateway.agent.alerts import (
    ALERT_UNIT,
    AlertEngine,
    AlertEvent,
    AlertNotice,
    is_alert,
    recovered_event,
)
from gateway.backoff import Backoff, RateLimitedLog
from gateway.readings import CLOCK_UNSYNCED, Columns, SeriesIndex
from gateway.store.buffer import BufferWriteError
from gateway.store.worker import AsyncBuffer

log = logging.getLogger(__name__)

ALERTS_STAGED_MAX = 1000
"""Alert readings kept in memory while the disk fails; beyond, the oldest go (counted)."""
RECOVERY_PAGE = 5000
"""Readings per peek while looking for an earlier run's alerts at the start."""
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
        alerts: AlertEngine | None = None,
        on_alert: Callable[[AlertNotice], None] = lambda notice: None,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buffer = buffer
        self._commit_interval_s = commit_interval_s
        self._commit_max = commit_max
        self._staging_max = staging_max
        self._on_committed = on_committed
        self._staged = Columns(SeriesIndex())
        self.alerts = alerts if alerts is not None and alerts.rules else None
        self._on_alert = on_alert
        self._monotonic_s = monotonic_s
        self._alerts_staged: list[tuple[AlertEvent, int]] = []  # (event, flags)
        self._owners: dict[str, str] = {}  # source name -> owner (BLE: the part before "/")
        self._default_owner = ""
        self._owner_of: dict[str, str] = {}  # what each reading's source name gave
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._high_water = max(1, min(staging_max, commit_max) // 2)
        self._committing = asyncio.Lock()  # the loop and the uplink's flush both commit
        self._commits: set[asyncio.Task[bool]] = set()  # running; see commit()
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

    def owner(self, source: str) -> str:
        """Whose readings `source` gives (a BLE device's: its source's, the part before "/")."""
        owner = self._owner_of.get(source)
        if owner is None:
            owner = self._owners.get(source.split("/", 1)[0], self._default_owner)
            self._owner_of[source] = owner
        return owner

    def emit(
        self, source: str, measurements: Sequence[Measurement], ts_ms: int, flags: int = 0
    ) -> None:
        """Called by sources on the event loop; never blocks. Drops (counted) only when the
        disk has been failing long enough for the staging area to fill. The reading's owner
        is fixed here (docs/uplinks.md)."""
        staged = self._staged
        staged.add(source, measurements, ts_ms, flags, self.owner(source))
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
        if self.alerts is not None:
            events = self.alerts.feed(source, measurements, ts_ms, self._monotonic_s())
            if events:
                self._stage_alerts(events, flags)

    def _stage_alerts(self, events: list[AlertEvent], flags: int) -> None:
        """Alert readings wait for no commit interval: the commit loop wakes now."""
        self._alerts_staged.extend((event, flags) for event in events)
        overflow = len(self._alerts_staged) - ALERTS_STAGED_MAX
        if overflow > 0:
            del self._alerts_staged[:overflow]
            self.dropped_staging += overflow  # lost from memory like other staged readings
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
        recovery = asyncio.create_task(_logged(self._recover_alerts()), name="alerts-recovery")
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
            recovery.cancel()
            await self.commit()  # after the one a cancel interrupted, if any (the lock)

    async def _recover_alerts(self) -> None:
        """Alert readings an earlier run committed and the buffer still holds (the agent
        stopped before an uplink acknowledged them) go to `on_alert` again, once, at the start:
        the uplinks send them on the alert topic too, not only in data messages. Their value
        and the crossing are not stored, so those go as unknown (docs/alerts.md)."""
        if self.alerts is None:
            return
        stop = (await self._buffer.stats()).next_seq  # what this run commits is offered anyway
        table = await self._buffer.series_table()
        if not any(is_alert(s) for s in table.values()):
            return  # no alert ever stored here: nothing to scan
        rules = {rule.name: rule for rule in self.alerts.rules}
        epoch, cursor, found = self._buffer.sync.epoch or 0, 0, 0
        while batch := await self._buffer.peek(cursor, RECOVERY_PAGE):
            cursor = batch[-1][0]
            for seq, ts_ms, sid, value, flags in batch:
                series = table.get(sid)
                if seq < stop and series is not None and is_alert(series):
                    event = recovered_event(series, value, ts_ms, rules, table.values())
                    self._on_alert(AlertNotice(seq, epoch, event, not flags & CLOCK_UNSYNCED))
                    found += 1
            if cursor >= stop - 1:
                break
        if found:
            log.warning("%d alerts of an earlier run not yet acknowledged: sending them", found)

    async def commit(self) -> bool:
        """Move staged readings into the buffer; False if the buffer refused them (kept staged).
        Also called by the uplink right before a flush, so a flush carries every reading that
        arrived before it (latency: at most the flush interval, not flush plus commit).

        The commit is a task of its own that a cancelled caller (the ordered stop, an uplink
        whose connection ends during its flush) does not cut short: readings it took from
        staging would be lost, as cancelling an append that still waits for the buffer's
        worker thread keeps it from ever running."""
        task = asyncio.create_task(self._commit(), name="ingest-commit")
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)
        return await asyncio.shield(task)

    async def _commit(self) -> bool:
        async with self._committing:
            self._last_commit_s = asyncio.get_running_loop().time()
            # The readings first: an alert is durable (and sent) only after the readings that
            # raised it, so a kill -9 between the two never leaves an alert without its cause.
            staged_ok = await self._commit_staged()
            return await self._commit_alerts() and staged_ok

    async def _commit_alerts(self) -> bool:
        """Alert readings in a transaction of their own, so their keys are known: each goes to
        `on_alert` once it is durable. False if the buffer refused them (kept)."""
        if not self._alerts_staged:
            return True
        events, self._alerts_staged = self._alerts_staged, []
        # Owner after owner, as the buffer stores a commit: each key is first_seq + its index.
        events.sort(key=lambda staged: self.owner(staged[0].source))
        batch = Columns(self._staged.index)
        for event, flags in events:
            alert = Measurement(event.series.quantity, 1.0 if event.raised else 0.0, ALERT_UNIT)
            batch.add(event.source, [alert], event.ts_ms, flags, self.owner(event.source))
        try:
            result = await self._buffer.append(batch)
        except BufferWriteError as error:
            self.write_errors += 1
            self._alerts_staged[0:0] = events
            self._log.log(logging.ERROR, "write", "%s; keeping alerts in memory", error)
            return False
        self.accepted += result.accepted
        self.dropped_full += result.dropped
        kept = events[: result.accepted]  # drop_newest keeps the first ones
        if self._buffer.sync.when_full != "drop_newest":
            kept = events[len(events) - result.accepted :]  # drop_oldest the last ones
        epoch = self._buffer.sync.epoch or 0
        for index, (event, flags) in enumerate(kept):
            synced = not flags & CLOCK_UNSYNCED
            notice = AlertNotice(result.first_seq + index, epoch, event, clock_synced=synced)
            log.log(
                logging.WARNING if event.raised else logging.INFO,
                "alert %s %s: %s %s = %g (key %d/%d)",
                event.rule,
                "raised" if event.raised else "cleared",
                event.source,
                event.quantity,
                event.value,
                notice.epoch,
                notice.seq,
                extra={"event": "alert"},
            )
            self._on_alert(notice)
        if result.accepted:
            self._on_committed(result.accepted)
        return True

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


async def _logged(job: Coroutine[Any, Any, None]) -> None:
    """A side job whose failure is logged, not lost (the data path does not depend on it)."""
    try:
        await job
    except Exception:
        log.exception("looking for unsent alerts of an earlier run failed; they go as readings")
