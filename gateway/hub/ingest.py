"""`citygw hub ingest`: messages from the broker into the hub database, exactly once.

One loop: take what arrived (up to a batch, lingering briefly), route every message into one
`Batch` (route.py), store it in one transaction, and only then acknowledge those messages
(PUBACK). A worker killed at any point loses nothing: what it had not acknowledged comes back
from its session, and the database's unique key stores each reading once. Between batches:
birth requests for parked data, the gap keeper, a line of counters now and then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.hub.db import Batch, Database, Refused, Unavailable
from gateway.hub.inbox import Inbox
from gateway.hub.pending import Incoming, Pending
from gateway.hub.route import HANDLED, Router, quarantine
from gateway.hub.session import AckingSession

log = logging.getLogger(__name__)
BIRTH_REQUEST = "cmd/birth"


@dataclass(frozen=True, slots=True)
class Settings:
    """How the ingest batches and keeps gaps."""

    grace_s: float = 60.0
    """A sequence range missing this long is an open gap."""
    batch_max_messages: int = 2000
    batch_max_readings: int = 200_000
    """A transaction ends after the message that brings it to this many readings (memory)."""
    linger_s: float = 0.05
    """How long to wait for more messages before storing a batch that is not full."""
    keeper_every_s: float = 5.0
    stats_every_s: float = 60.0


@dataclass(slots=True)
class Counters:
    """What the ingest did since it started (logged every `stats_every_s`)."""

    messages: int = 0
    readings: int = 0
    quarantined: int = 0
    parked: int = 0
    birth_requests: int = 0
    transactions: int = 0
    retries: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Ingest:
    """The loop between an AckingSession's inbox and a Database."""

    def __init__(
        self,
        db: Database,
        session: AckingSession,
        inbox: Inbox,
        router: Router,
        *,
        settings: Settings | None = None,
        pending: Pending | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._db, self._session, self._inbox, self._router = db, session, inbox, router
        self._settings = settings or Settings()
        self._pending = pending or Pending()
        self._clock_ms = clock_ms
        self.counters = Counters()
        self._next_keeper = self._next_stats = time.monotonic()

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set: take, store, acknowledge, chores."""
        while not stop.is_set():
            messages = self._take()
            if messages:
                self._handle(messages, stop)
            self._chores(stop)

    def _take(self) -> list[Incoming]:
        first = self._inbox.get(timeout_s=0.2)
        if first is None:
            return []
        messages = [first]
        deadline = time.monotonic() + self._settings.linger_s
        while len(messages) < self._settings.batch_max_messages:
            message = self._inbox.get(timeout_s=max(0.0, deadline - time.monotonic()))
            if message is None:
                break
            messages.append(message)
        return messages

    def _handle(self, messages: list[Incoming], stop: threading.Event) -> None:
        """Store `messages` in transactions of at most `batch_max_readings` readings (and the
        message that crossed it)."""
        while messages and not stop.is_set():
            messages = self._handle_some(messages, stop)

    def _handle_some(self, messages: list[Incoming], stop: threading.Event) -> list[Incoming]:
        """Route, store in one transaction, then acknowledge; parked data waits for a birth.
        Returns the messages left for the next transaction."""
        batch, done = Batch(), []
        now_s = time.monotonic()
        started = time.perf_counter()
        rest: list[Incoming] = []
        for index, message in enumerate(messages):
            if len(batch.observations) >= self._settings.batch_max_readings:
                rest = messages[index:]
                break
            if self._router.route(message, batch) == HANDLED:
                done.append(message)
                continue
            gateway = self._router.gateway_of(message.topic)
            if self._pending.park(gateway, message, now_s=now_s):
                self.counters.parked += 1
            else:
                quarantine(batch, message, gateway, "data: series table unknown; pending full")
                done.append(message)
        for message in self._unparked():  # births in this very batch
            if self._router.route(message, batch) == HANDLED:
                done.append(message)
            else:
                self._pending.park(self._router.gateway_of(message.topic), message, now_s=now_s)
        routed = time.perf_counter()
        if not self._store(batch, done, stop):
            return []  # stopping: what was not acknowledged comes again from the broker
        for message in done:
            self._session.ack(message)
        log.debug(
            "batch of %d messages, %d readings: routed in %.3f s, stored in %.3f s",
            len(done), len(batch.observations), routed - started, time.perf_counter() - routed,
        )  # fmt: skip
        self.counters.messages += len(done)
        self._ask_births(now_s)
        return rest

    def _unparked(self) -> list[Incoming]:
        """Parked messages of the gateways whose birth arrived since the last call."""
        out: list[Incoming] = []
        for gateway in sorted(self._router.births):
            out.extend(self._pending.take(gateway))
        self._router.births.clear()
        return out

    def _store(self, batch: Batch, messages: list[Incoming], stop: threading.Event) -> bool:
        """Commit `batch`, retrying while the database is away; False if stopped first. A batch
        the database refuses is stored message by message, quarantining what it refuses."""
        delay_s = 0.2
        while not stop.is_set():
            try:
                self._db.write(batch)
            except Unavailable as error:
                self.counters.retries += 1
                log.warning("database unavailable (%s); retrying in %.1f s", error, delay_s)
                stop.wait(delay_s)
                delay_s = min(delay_s * 2, 10.0)
                continue
            except Refused as error:
                log.warning("database refused a batch (%s); storing it message by message", error)
                return self._store_each(messages, stop)
            self.counters.transactions += 1
            self.counters.readings += len(batch.observations)
            self.counters.quarantined += len(batch.quarantine)
            return True
        return False

    def _store_each(self, messages: list[Incoming], stop: threading.Event) -> bool:
        for message in messages:
            single = Batch()
            self._router.route(message, single)
            try:
                self._db.write(single)
                continue
            except Refused as error:
                reason = f"refused by the database: {error}"
            except Unavailable:
                return False  # the whole batch comes again from the broker
            single = Batch()
            quarantine(single, message, self._router.gateway_of(message.topic), reason)
            if not self._store(single, [], stop):
                return False
        return not stop.is_set()

    def _ask_births(self, now_s: float) -> None:
        for gateway in self._pending.to_ask(now_s=now_s):
            self._session.publish(f"{self._router.prefix}/{gateway}/{BIRTH_REQUEST}", b"")
            self.counters.birth_requests += 1
            log.info(
                "asked %s for its birth (its data names series this hub does not know)", gateway
            )

    def _chores(self, stop: threading.Event) -> None:
        now = time.monotonic()
        expired = self._pending.expired(now_s=now)
        if expired:
            batch = Batch()
            for gateway, message in expired:
                quarantine(batch, message, gateway, "data: series table unknown; no birth came")
            if self._store(batch, [], stop):
                for _, message in expired:
                    self._session.ack(message)
        self._ask_births(now)
        if now >= self._next_keeper:
            self._next_keeper = now + self._settings.keeper_every_s
            try:
                grace_ms = round(self._settings.grace_s * 1000)
                self._db.keep_gaps(now_ms=self._clock_ms(), grace_ms=grace_ms)
            except (Unavailable, Refused) as error:
                log.warning("gap keeper skipped: %s", error)
        if now >= self._next_stats:
            self._next_stats = now + self._settings.stats_every_s
            c = self.counters
            log.info(
                "ingest: %d messages, %d readings, %d quarantined, %d parked, %d birth requests",
                c.messages,
                c.readings,
                c.quarantined,
                c.parked,
                c.birth_requests,
            )
