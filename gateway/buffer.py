"""The durable buffer: readings in SQLite (WAL) until the hub acknowledged them.

The promise: a reading that `append` accepted (its transaction committed) is handed out by
`peek` in order until `ack` removes it, across crashes and restarts. `seq` keys never repeat
within an epoch; a new epoch starts only when the database file is new.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from gateway.readings import Reading, Series, StoredReading

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, quantity TEXT NOT NULL, unit TEXT NOT NULL,
    UNIQUE (source, quantity, unit));
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, series INTEGER NOT NULL,
    value REAL NOT NULL, flags INTEGER NOT NULL);
"""

WhenFull = Literal["drop_oldest", "drop_newest"]


class BufferWriteError(Exception):
    """The buffer could not store readings (disk full, I/O error); nothing was accepted."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    accepted: int
    dropped: int


@dataclass(frozen=True, slots=True)
class BufferStats:
    epoch: int
    depth: int
    oldest_ts_ms: int | None
    bytes_on_disk: int
    dropped_total: int
    next_seq: int


class SqliteBuffer:
    """Thread-confined: create and use it from one thread (AsyncBuffer does that)."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_readings: int,
        when_full: WhenFull = "drop_oldest",
        synchronous: Literal["full", "normal"] = "full",
    ) -> None:
        self.path = Path(path)
        self.max_readings = max_readings
        self.when_full = when_full
        self._db = self._open(synchronous)
        self._series_ids: dict[Series, int] = {}
        self._series: dict[int, Series] = {}
        for sid, source, quantity, unit in self._db.execute("SELECT * FROM series"):
            self._remember_series(sid, Series(source, quantity, unit))
        self.epoch = self._meta("epoch", default=None)
        if self.epoch is None:
            self.epoch = secrets.randbits(31)
            with self._db:
                self._set_meta("epoch", self.epoch)
        self._next_seq = max(
            self._meta("next_seq", default=1) or 1,
            (self._db.execute("SELECT max(seq) FROM readings").fetchone()[0] or 0) + 1,
        )
        self.dropped_total = self._meta("dropped_total", default=0) or 0
        self.depth: int = self._db.execute("SELECT count(*) FROM readings").fetchone()[0]

    def _open(self, synchronous: str) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect(synchronous)
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
                raise
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error("buffer %s is unreadable (%s); moved aside to %s", self.path, error, aside)
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._connect(synchronous)

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.isolation_level = "DEFERRED"  # explicit transactions via `with db:`
        # Small pages: a commit of a few readings writes one page to the WAL, so 1 KiB pages
        # wear an SD card 4x less than the default 4 KiB at a sensor's pace (BENCHMARKS.md).
        # Takes effect only when the file is created.
        db.execute("PRAGMA page_size=1024")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        # 128 KiB page cache: inserts touch the b-tree's right edge, peek and ack its left
        # edge; a larger cache only adds RSS (BENCHMARKS.md, memory). Flat at any depth.
        db.execute("PRAGMA cache_size=-128")
        db.execute("PRAGMA wal_autocheckpoint=1000")
        db.executescript(_SCHEMA)
        db.execute("SELECT count(*) FROM readings").fetchone()  # fails here if not a database
        return db

    def _meta(self, key: str, *, default: int | None) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _remember_series(self, sid: int, series: Series) -> None:
        self._series_ids[series] = sid
        self._series[sid] = series

    def _series_id(self, series: Series) -> int:
        sid = self._series_ids.get(series)
        if sid is None:
            cursor = self._db.execute(
                "INSERT INTO series (source, quantity, unit) VALUES (?, ?, ?)", series
            )
            sid = int(cursor.lastrowid or 0)
            self._remember_series(sid, series)
        return sid

    def series(self, sid: int) -> Series:
        return self._series[sid]

    def series_table(self) -> dict[int, Series]:
        """Every series this buffer has named, by id (the wire v2 aliases)."""
        return dict(self._series)

    def append(self, readings: Sequence[Reading]) -> AppendResult:
        """Store readings in one transaction, applying the when-full policy."""
        if not readings:
            return AppendResult(0, 0)
        room = self.max_readings - self.depth
        dropped_new = 0
        drop_old = 0
        if len(readings) > room:
            if self.when_full == "drop_newest":
                dropped_new = len(readings) - max(room, 0)
                readings = readings[: max(room, 0)]
            else:
                drop_old = min(len(readings) - room, self.depth)
                if len(readings) > self.max_readings:
                    dropped_new = len(readings) - self.max_readings
                    readings = readings[dropped_new:]  # keep the newest
        first = self._next_seq
        try:
            with self._db:
                # Series ids first (a new series is an INSERT), then the rows as a generator:
                # no list of row tuples beside the readings (peak memory, BENCHMARKS.md).
                ids = {key: self._series_id(Series(*key))
                       for key in {(r.source, r.quantity, r.unit) for r in readings}}
                rows = ((first + i, r.ts_ms, ids[r.source, r.quantity, r.unit], r.value, r.flags)
                        for i, r in enumerate(readings))
                if drop_old:
                    self._set_meta("next_seq", first)
                    self._db.execute(
                        "DELETE FROM readings WHERE seq IN "
                        "(SELECT seq FROM readings ORDER BY seq LIMIT ?)", (drop_old,))
                self._db.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?)", rows)
                if drop_old or dropped_new:
                    self._set_meta("dropped_total", self.dropped_total + drop_old + dropped_new)
        except sqlite3.Error as error:
            self._forget_uncommitted_series()
            raise BufferWriteError(f"cannot store {len(readings)} readings: {error}") from error
        self._next_seq = first + len(readings)
        self.depth += len(readings) - drop_old
        self.dropped_total += drop_old + dropped_new
        return AppendResult(accepted=len(readings), dropped=drop_old + dropped_new)

    def _forget_uncommitted_series(self) -> None:
        stored = {row[0] for row in self._db.execute("SELECT id FROM series")}
        for sid in [sid for sid in self._series if sid not in stored]:
            del self._series_ids[self._series.pop(sid)]

    def peek(self, after_seq: int, limit: int) -> list[StoredReading]:
        """Up to `limit` unacknowledged readings with seq > after_seq, oldest first."""
        cursor = self._db.execute(
            "SELECT seq, ts_ms, series, value, flags FROM readings "
            "WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        rows: list[StoredReading] = cursor.fetchall()
        return rows

    def ack(self, first_seq: int, last_seq: int) -> int:
        """The hub acknowledged seq first..last: remove them. Returns how many were removed."""
        with self._db:
            # Keys must never repeat: before rows go, remember where the sequence stands (the
            # rows still stored carry it otherwise; see __init__). Not per append: one page
            # write less per commit, which is most of an SD card's wear at a sensor's pace.
            self._set_meta("next_seq", self._next_seq)
            removed = self._db.execute(
                "DELETE FROM readings WHERE seq BETWEEN ? AND ?", (first_seq, last_seq)
            ).rowcount
        self.depth -= removed
        return int(removed)

    def stats(self) -> BufferStats:
        row = self._db.execute("SELECT ts_ms FROM readings ORDER BY seq LIMIT 1").fetchone()
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += os.path.getsize(f"{self.path}{suffix}")
        return BufferStats(
            epoch=self.epoch or 0, depth=self.depth, oldest_ts_ms=None if row is None else row[0],
            bytes_on_disk=size, dropped_total=self.dropped_total, next_seq=self._next_seq,
        )

    def close(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            log.warning("buffer checkpoint at close failed: %s", error)
        self._db.close()


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
        self._buffer = await self._call(self._factory)
        return self._buffer

    @property
    def sync(self) -> SqliteBuffer:
        assert self._buffer is not None, "open() first"
        return self._buffer

    async def append(self, readings: Sequence[Reading]) -> AppendResult:
        return await self._call(lambda: self.sync.append(readings))

    async def peek(self, after_seq: int, limit: int) -> list[StoredReading]:
        return await self._call(lambda: self.sync.peek(after_seq, limit))

    async def ack(self, first_seq: int, last_seq: int) -> int:
        return await self._call(lambda: self.sync.ack(first_seq, last_seq))

    async def stats(self) -> BufferStats:
        return await self._call(self.sync.stats)

    async def series_table(self) -> dict[int, Series]:
        return await self._call(self.sync.series_table)

    async def close(self) -> None:
        if self._buffer is not None:
            await self._call(self._buffer.close)
        self._executor.shutdown(wait=True)
