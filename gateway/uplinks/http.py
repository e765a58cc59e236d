"""An uplink over a `Destination` (HTTP formats): its lane's readings, in order, one batch at a
time, acknowledged in the buffer only once the destination accepted the whole batch.

A batch that fails (`DeliveryError`, or no answer within the bound) is tried again, from the
buffer and with the same keys, after `retry_after_s` when the far end said when (capped at
`RETRY_AFTER_MAX_S`), else after a capped jittered backoff. Only this uplink waits: every uplink
runs its own loop on its own lane of the buffer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.agent.supervise import raise_if_cancelling
from gateway.backoff import Backoff, RateLimitedLog
from gateway.config import UplinkSection
from gateway.readings import StoredReading
from gateway.store.worker import AsyncBuffer
from gateway.uplinks.destination import DeliveryError, Destination, OutgoingReading
from gateway.uplinks.report import UplinkStats

log = logging.getLogger(__name__)

RETRY_AFTER_MAX_S = 3600.0
"""A server's Retry-After is honoured up to this long."""


class HttpUplink:
    """Batches of one lane to a Destination (see the module docstring)."""

    def __init__(
        self,
        section: UplinkSection,
        *,
        gateway_id: str,
        buffer: AsyncBuffer,
        destination: Destination,
        monotonic_s: Callable[[], float] = time.monotonic,
        before_flush: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.name = section.name
        self.section = section
        self._gateway_id = gateway_id
        self._buffer = buffer
        self._destination = destination
        self._monotonic_s = monotonic_s
        self._before_flush = before_flush
        self._new_data = asyncio.Event()
        self._unsent = 0
        self._flush_now = False
        self._backoff = Backoff(base_s=section.reconnect_min_s, cap_s=section.reconnect_max_s)
        self._log = RateLimitedLog(log, interval_s=300)
        self.stats = UplinkStats()
        self.reached = asyncio.Event()
        """Set once a batch was delivered."""

    def notify(self, committed: int) -> None:
        """The ingest committed readings (some may be this lane's): a batch may be due."""
        self._unsent += committed
        if self._unsent >= self.section.batch_max_readings:
            self._new_data.set()

    async def run(self) -> None:
        """Deliver until cancelled; the destination is closed on the way out."""
        self.stats.connected = True  # over HTTP: "the last delivery did not fail"
        try:
            self._unsent = await self._buffer.backlog(self.name)
            next_flush = self._monotonic_s()  # the backlog goes at once
            while True:
                raise_if_cancelling()
                timeout = next_flush - self._monotonic_s()
                full = self._unsent >= self.section.batch_max_readings
                if timeout > 0 and not full and not self._flush_now:
                    self._new_data.clear()
                    try:
                        async with asyncio.timeout(timeout):
                            await self._new_data.wait()
                    except TimeoutError:
                        pass
                    continue
                flush = timeout <= 0 or self._flush_now
                if flush:
                    next_flush = self._monotonic_s() + self.section.flush_interval_s
                    self._flush_now = False
                    if self._before_flush is not None:
                        await self._before_flush()
                await self._send(flush=flush)
        finally:
            await asyncio.shield(self._destination.close())

    async def _send(self, *, flush: bool) -> None:
        """Full batches, then (at a flush) what is left; each until it is delivered."""
        limit = self.section.batch_max_readings
        while True:
            batch = await self._buffer.peek(0, limit, lane=self.name)
            if len(batch) < limit and not flush:
                self._unsent = len(batch)
                return
            if not batch:
                self._unsent = 0
                return
            await self._deliver(batch)
            self._unsent = max(0, self._unsent - len(batch))
            if len(batch) < limit:
                return

    async def _deliver(self, batch: list[StoredReading]) -> None:
        """Deliver `batch`, retrying until it is accepted; then acknowledge it."""
        outgoing = self._outgoing(batch)
        bound_s = 6 * self.section.timeout_s  # the destination bounds each network await
        while True:
            retry_after: float | None = None
            try:
                async with asyncio.timeout(bound_s):
                    await self._destination.deliver(outgoing)
                break
            except DeliveryError as error:
                retry_after = error.retry_after_s
                self._failed(str(error), refused=error.refused)
            except TimeoutError:
                self._failed(f"no answer within {bound_s:g} s", refused=False)
            raise_if_cancelling()
            delay = self._backoff.next_delay() if retry_after is None else retry_after
            await asyncio.sleep(min(max(delay, 0.0), RETRY_AFTER_MAX_S))
        await self._buffer.ack(batch[0][0], batch[-1][0], lane=self.name)
        self._backoff.reset()
        if not self.stats.connected:
            log.info("uplink %s delivers again", self.name, extra={"event": "uplink_up"})
        self.stats.connected = True
        self.reached.set()
        self.stats.messages_out += 1
        self.stats.readings_out += len(batch)

    def _failed(self, error: str, *, refused: bool) -> None:
        self.stats.connected = False
        self.stats.last_error = error
        if refused:
            self.stats.refused += 1
            self.stats.last_refusal = error
        self._log.log(
            logging.WARNING,
            "refused" if refused else "down",
            "uplink %s (%s): %s; its readings stay buffered, retrying",
            self.name,
            self.section.format,
            error,
            extra={"event": "uplink_down"},
        )

    def _outgoing(self, batch: list[StoredReading]) -> list[OutgoingReading]:
        buffer = self._buffer.sync
        epoch = buffer.epoch or 0
        out = []
        for seq, ts_ms, sid, value, flags in batch:
            series = buffer.series(sid)
            out.append(
                OutgoingReading(
                    gateway_id=self._gateway_id,
                    epoch=epoch,
                    seq=seq,
                    ts_ms=ts_ms,
                    source=series.source,
                    quantity=series.quantity,
                    unit=series.unit,
                    value=value,
                    owner=buffer.series_owner(sid),
                    flags=flags,
                )
            )
        return out

    async def drain(self, timeout_s: float) -> int:
        """Deliver what is waiting now (orderly shutdown); returns how many remain."""
        deadline = self._monotonic_s() + timeout_s
        while True:
            left = await self._buffer.backlog(self.name)
            if left == 0 or not self.stats.connected or self._monotonic_s() >= deadline:
                return left
            self._flush_now = True
            self._new_data.set()
            await asyncio.sleep(0.05)
