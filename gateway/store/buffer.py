"""The durable buffer: readings in SQLite (WAL) until the hub acknowledged them.

The promise: a reading that `append` accepted (its transaction committed) is handed out by
`peek` in order until `ack` removes it, across crashes and restarts. `seq` keys never repeat
within an epoch; a new epoch starts only when the database file is new.

Readings are stored as chunks, one compact blob per commit (`chunks`): about a third of the
SD-card writes of a row per reading (BENCHMARKS.md, disk). A chunk is deleted once every
reading in it is acknowledged; which readings of a partly acknowledged chunk the hub already has
is kept in memory only, so after a crash or restart those few are sent again, with their keys,
and the hub drops them as duplicates.

A fully acknowledged chunk is not deleted at the PUBACK either: the delete rides in the next
commit's transaction (or, once `DELETE_PENDING_MAX` chunks wait, in one of its own, and at
close). At a sensor's pace that is one transaction per flush instead of two, and every durable
transaction writes at least a page (BENCHMARKS.md, disk). Until then the chunk is acknowledged
in memory like a partly acknowledged one: after a crash it is sent again and dropped by the hub.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Literal

from gateway.readings import Columns, Series, StoredReading
from gateway.store import chunks, database, ranges
from gateway.store.drops import Drops

log = logging.getLogger(__name__)

WhenFull = Literal["drop_oldest", "drop_newest"]

DELETE_PENDING_MAX = 64
"""Fully acknowledged chunks that may wait for the next commit's transaction to be deleted; at
more, `ack` deletes them in a transaction of its own (a backlog draining with no new readings)."""


class BufferWriteError(Exception):
    """The buffer could not store readings (disk full, I/O error); nothing was accepted."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What `append` did: readings stored, and readings the when-full policy dropped."""

    accepted: int
    dropped: int
    first_seq: int = 0
    """The key of the first reading stored (the rest follow it: an alert needs its key)."""


@dataclass(frozen=True, slots=True)
class BufferStats:
    """Where the buffer stands: depth, oldest unsent reading, size on disk, drops."""

    epoch: int
    depth: int
    oldest_ts_ms: int | None
    bytes_on_disk: int
    dropped_total: int
    next_seq: int
    dropped_by_cause: dict[str, int] = field(default_factory=dict)


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
        self._db = database.open_database(self.path, synchronous)
        self._series_ids: dict[Series, int] = {}
        self._series: dict[int, Series] = {}
        for sid, source, quantity, unit in self._db.execute("SELECT * FROM series"):
            self._remember_series(sid, Series(source, quantity, unit))
        self.epoch = self._meta("epoch", default=None)
        if self.epoch is None:
            self.epoch = secrets.randbits(31)
            with self._db:
                self._set_meta("epoch", self.epoch)
        database.convert_rows(self._db, self.path)
        last = self._db.execute(
            "SELECT first_seq + count FROM chunks ORDER BY first_seq DESC LIMIT 1"
        ).fetchone()
        self._next_seq = max(self._meta("next_seq", default=1) or 1, last[0] if last else 1)
        damaged = self._meta("dropped_damaged", default=0) or 0
        total = self._meta("dropped_total", default=0) or 0
        self.drops = Drops(when_full=total - damaged, damaged=damaged)
        self._acked: dict[int, ranges.Ranges] = {}  # chunk first_seq -> what the hub has of it
        self._unneeded: set[int] = set()  # chunks the hub has all of: deleted with the next commit
        self.depth: int = self._db.execute("SELECT coalesce(sum(count), 0) FROM chunks").fetchone()[
            0
        ]

    @property
    def dropped_total(self) -> int:
        """Readings lost, every cause (`drops` has them per cause)."""
        return self.drops.total

    def _insert(self, first_seq: int, count: int, blob: bytes) -> None:
        self._db.execute(
            "INSERT INTO chunks (first_seq, count, data) VALUES (?, ?, ?)", (first_seq, count, blob)
        )

    def _delete(self, first_seq: int) -> None:
        self._db.execute("DELETE FROM chunks WHERE first_seq = ?", (first_seq,))

    def _chunk_start(self, seq: int) -> int:
        """The first_seq of the chunk that holds `seq` (or of the first chunk after it)."""
        row = self._db.execute(
            "SELECT max(first_seq) FROM chunks WHERE first_seq <= ?", (seq,)
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

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
        """The series named `sid` (KeyError if this buffer never named it)."""
        return self._series[sid]

    def series_table(self) -> dict[int, Series]:
        """Every series this buffer has named, by id (the wire v2 aliases)."""
        return dict(self._series)

    def append(self, readings: Columns) -> AppendResult:
        """Store readings in one transaction, applying the when-full policy."""
        if not readings:
            return AppendResult(0, 0)
        room = self.max_readings - self.depth
        dropped_new = 0
        drop_old = 0
        if len(readings) > room:
            if self.when_full == "drop_newest":
                dropped_new = len(readings) - max(room, 0)
                readings = readings.part(0, max(room, 0))
            else:
                drop_old = min(len(readings) - room, self.depth)
                if len(readings) > self.max_readings:
                    dropped_new = len(readings) - self.max_readings
                    readings = readings.part(dropped_new)  # keep the newest
        first = self._next_seq
        acked_before = {c0: list(ranges) for c0, ranges in self._acked.items()}
        dropped: ranges.Ranges = []
        try:
            with self._db:
                series = readings.index.series
                ids = {i: self._series_id(series[i]) for i in set(readings.sid)}
                self._delete_unneeded(keys_kept=len(readings) > 0)
                if drop_old:
                    self._set_meta("next_seq", first)
                    dropped = self._drop_oldest(drop_old)
                for start in range(0, len(readings), chunks.MAX_READINGS):
                    stop = start + chunks.MAX_READINGS
                    sids = readings.sid[start:stop]
                    self._insert(
                        first + start,
                        len(sids),
                        chunks.pack(
                            readings.ts_ms[start:stop],
                            [ids[i] for i in sids],
                            readings.values[start:stop],
                            readings.flags[start:stop],
                            try_scaled=len(readings) <= chunks.SCALED_MAX,
                        ),
                    )
                if dropped or dropped_new or self.drops.dirty:
                    lost = ranges.covered(dropped) + dropped_new
                    self._set_meta("dropped_total", self.drops.total + lost)
                    self._set_meta("dropped_damaged", self.drops.damaged)
        except sqlite3.Error as error:
            self._forget_uncommitted_series()
            self._acked = acked_before
            raise BufferWriteError(f"cannot store {len(readings)} readings: {error}") from error
        self._forget_deleted()
        self._next_seq = first + len(readings)
        self.depth += len(readings) - drop_old
        self.drops.dropped(dropped, newest=dropped_new)
        self.drops.dirty = False
        return AppendResult(accepted=len(readings), dropped=drop_old + dropped_new, first_seq=first)

    def _delete_unneeded(self, *, keys_kept: bool) -> None:
        """Delete the fully acknowledged chunks, inside the caller's transaction. Keys must
        never repeat: unless the transaction stores newer chunks (`keys_kept`), which carry
        where the sequence stands (see __init__), remember it before the chunks go."""
        if not self._unneeded:
            return
        if not keys_kept:
            self._set_meta("next_seq", self._next_seq)
        self._db.executemany(
            "DELETE FROM chunks WHERE first_seq = ?", [(c0,) for c0 in self._unneeded]
        )

    def _forget_deleted(self) -> None:
        """After the transaction of `_delete_unneeded` committed."""
        for c0 in self._unneeded:
            self._acked.pop(c0, None)
        self._unneeded.clear()

    def _drop_oldest(self, count: int) -> ranges.Ranges:
        """Delete the `count` oldest unacknowledged readings (inside append's transaction);
        which keys went (a PUBACK may still come for them: `Drops.acknowledged`)."""
        dropped: ranges.Ranges = []
        while count > 0:
            row = self._db.execute(
                "SELECT first_seq, count, data FROM chunks ORDER BY first_seq LIMIT 1"
            ).fetchone()
            if row is None:
                break
            c0, size, data = row
            acked = self._acked.pop(c0, [])
            live = size - ranges.covered(acked)
            self._delete(c0)
            if live > count:  # keep the newest of this chunk
                keep = [r for r in chunks.unpack(c0, data) if not ranges.is_acked(acked, r[0])]
                for first, rows in chunks.runs(keep[count:]):
                    self._insert(first, len(rows), chunks.pack_rows(rows))
                dropped += [(f, f + len(rows) - 1) for f, rows in chunks.runs(keep[:count])]
            else:
                dropped += ranges.missing((c0, c0 + size - 1), acked)
            count -= min(live, count)
        return dropped

    def _forget_uncommitted_series(self) -> None:
        stored = {row[0] for row in self._db.execute("SELECT id FROM series")}
        for sid in [sid for sid in self._series if sid not in stored]:
            del self._series_ids[self._series.pop(sid)]

    def peek(self, after_seq: int, limit: int) -> list[StoredReading]:
        """Up to `limit` unacknowledged readings with seq > after_seq, oldest first."""
        out: list[StoredReading] = []
        cursor = self._db.execute(
            "SELECT first_seq, count, data FROM chunks WHERE first_seq >= ? ORDER BY first_seq",
            (self._chunk_start(after_seq + 1),),
        )
        damaged: list[tuple[int, int, chunks.ChunkError]] = []
        try:  # closed early: an open statement would hold back WAL checkpoints
            for c0, size, data in cursor:
                if c0 in self._unneeded:
                    continue
                try:
                    rows = chunks.unpack(c0, data)
                except chunks.ChunkError as error:
                    damaged.append((c0, size, error))
                    continue
                acked = self._acked.get(c0)
                if acked or c0 <= after_seq:
                    rows = (
                        r
                        for r in rows
                        if r[0] > after_seq and not (acked and ranges.is_acked(acked, r[0]))
                    )
                out.extend(islice(rows, limit - len(out)))
                if len(out) >= limit:
                    break
        finally:
            cursor.close()
        for c0, size, problem in damaged:
            self._discard(c0, size, problem)
        return out

    def _discard(self, first_seq: int, size: int, error: chunks.ChunkError) -> None:
        """A chunk that no longer decodes would stop the uplink forever: drop it, counted."""
        lost = size - ranges.covered(self._acked.pop(first_seq, []))
        log.error("buffer %s: %s; dropping its %d readings", self.path, error, lost)
        with self._db:
            self._set_meta("next_seq", self._next_seq)  # it may have been the newest chunk
            self._delete(first_seq)
            self._set_meta("dropped_total", self.drops.total + lost)
            self._set_meta("dropped_damaged", self.drops.damaged + lost)
        self.drops.damaged += lost
        self.depth -= lost

    def ack(self, first_seq: int, last_seq: int) -> int:
        """The hub acknowledged seq first..last: remove them. Returns how many were removed.
        Writes nothing itself: fully acknowledged chunks are deleted with the next commit."""
        removed = 0
        for c0, size in self._db.execute(
            "SELECT first_seq, count FROM chunks WHERE first_seq BETWEEN ? AND ? "
            "ORDER BY first_seq",
            (self._chunk_start(first_seq), last_seq),
        ).fetchall():
            lo, hi = max(first_seq, c0), min(last_seq, c0 + size - 1)
            if lo > hi or c0 in self._unneeded:
                continue
            before = self._acked.get(c0, [])
            after = ranges.merge(before, (lo, hi))
            removed += ranges.covered(after) - ranges.covered(before)
            self._acked[c0] = after
            if ranges.covered(after) >= size:
                self._unneeded.add(c0)
        self.depth -= removed
        self.drops.acknowledged(first_seq, last_seq)  # dropped as oldest while in flight?
        if len(self._unneeded) > DELETE_PENDING_MAX:
            self.delete_acknowledged()
        return removed

    def delete_acknowledged(self) -> None:
        """Delete the fully acknowledged chunks now, in a transaction of their own."""
        try:
            with self._db:
                self._delete_unneeded(keys_kept=False)
        except sqlite3.Error as error:  # they stay acknowledged in memory; the next commit retries
            log.warning("buffer %s: cannot delete acknowledged readings: %s", self.path, error)
            return
        self._forget_deleted()

    def _oldest_ts_ms(self) -> int | None:
        """The timestamp of the oldest unacknowledged reading."""
        cursor = self._db.execute("SELECT first_seq, data FROM chunks ORDER BY first_seq")
        try:
            row = next((r for r in cursor if r[0] not in self._unneeded), None)
        finally:
            cursor.close()
        if row is None:
            return None
        c0, data = row
        oldest = c0
        for lo, hi in self._acked.get(c0, []):
            if lo <= oldest <= hi:
                oldest = hi + 1
        try:
            return chunks.ts_at(c0, data, oldest)
        except chunks.ChunkError:
            first = self.peek(0, 1)  # drops the damaged chunk, counted
            return first[0][1] if first else None

    def stats(self) -> BufferStats:
        """Depth, oldest unsent timestamp, bytes on disk (file and WAL) and drops, now."""
        oldest_ts_ms = self._oldest_ts_ms()
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += Path(f"{self.path}{suffix}").stat().st_size
        return BufferStats(
            epoch=self.epoch or 0,
            depth=self.depth,
            oldest_ts_ms=oldest_ts_ms,
            bytes_on_disk=size,
            dropped_total=self.drops.total,
            next_seq=self._next_seq,
            dropped_by_cause=self.drops.by_cause(),
        )

    def close(self) -> None:
        """Delete what was acknowledged, record the sequence, checkpoint the WAL, close."""
        try:
            with self._db:  # where the sequence stands, even with nothing to delete
                self._set_meta("next_seq", self._next_seq)
                self._set_meta("dropped_total", self.drops.total)  # less any acked after all
                self._delete_unneeded(keys_kept=True)
            self._forget_deleted()
        except sqlite3.Error as error:
            log.warning(
                "buffer %s: cannot delete acknowledged readings at close: %s", self.path, error
            )
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            log.warning("buffer checkpoint at close failed: %s", error)
        self._db.close()
