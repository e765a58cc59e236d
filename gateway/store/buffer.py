"""The durable buffer: readings in SQLite (WAL) until every uplink that must carry them has.

The promise: a reading that `append` accepted (its transaction committed) is handed out by
`peek` to each uplink (lane) that carries its owner, in order, until that uplink's `ack`,
across crashes and restarts. `seq` keys never repeat within an epoch; a new epoch starts only
when the database file is new. A reading's owner is stamped when it is stored: each chunk holds
one owner's readings, and a lane only ever sees chunks of owners it lists (`routing`).

Readings are stored as chunks, one compact blob per commit (`chunks`): about a third of the
SD-card writes of a row per reading (BENCHMARKS.md, disk). A chunk is deleted once every
reading in it is acknowledged by every lane that carries it; what each lane has of the rest is
kept in memory, plus a mark per lane written now and then (`lanes.MARK_SAVE_S`), so after a
crash or restart a few readings are sent again, with their keys, and the hub drops them as
duplicates, while an uplink that kept up is not sent the backlog a down one still waits for.

A chunk no lane needs is not deleted at the PUBACK either: the delete rides in the next
commit's transaction (or, once `DELETE_PENDING_MAX` chunks wait, in one of its own, and at
close): one transaction per flush instead of two, and every durable one writes at least a page
(BENCHMARKS.md, disk). After a crash before it, the chunk is sent again and dropped by the hub.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path
from typing import Literal

from gateway.readings import Columns, Series, StoredReading
from gateway.store import chunks, database, marks, ranges, upkeep
from gateway.store.drops import Drops
from gateway.store.lanes import DEFAULT_LANE, MARK_SAVE_S, LaneSpec, WhenFull
from gateway.store.names import SeriesNames
from gateway.store.routing import ChunkRow, Routing
from gateway.store.stats import AppendResult, BufferStats

log = logging.getLogger(__name__)

DELETE_PENDING_MAX = 64
"""Fully acknowledged chunks that may wait for the next commit's transaction to be deleted; at
more, `ack` deletes them in a transaction of its own (a backlog draining with no new readings)."""


class BufferWriteError(Exception):
    """The buffer could not store readings (disk full, I/O error); nothing was accepted."""


class SqliteBuffer:
    """Thread-confined: create and use it from one thread (AsyncBuffer does that). Without
    `lanes` it has one lane, `hub`, that carries every owner; `owner` is whose readings with
    no owner of their own (and those stored before owners existed) are."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_readings: int,
        when_full: WhenFull = "drop_oldest",
        synchronous: Literal["full", "normal"] = "full",
        owner: str = "operator",
        lanes: Sequence[LaneSpec] | None = None,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.max_readings = max_readings
        self.when_full = when_full
        self.owner = owner
        self._monotonic_s = monotonic_s
        self._db = database.open_database(self.path, synchronous)
        database.add_owners(self._db, self.path, owner)
        self._names = SeriesNames(self._db)
        self.epoch = self._meta("epoch", default=None)
        if self.epoch is None:
            self.epoch = secrets.randbits(31)
            with self._db:
                self._set_meta("epoch", self.epoch)
        database.convert_rows(self._db, self.path, owner)
        last = self._db.execute(
            "SELECT first_seq + count FROM chunks ORDER BY first_seq DESC LIMIT 1"
        ).fetchone()
        self._next_seq = max(self._meta("next_seq", default=1) or 1, last[0] if last else 1)
        damaged = self._meta("dropped_damaged", default=0) or 0
        total = self._meta("dropped_total", default=0) or 0
        self.drops = Drops(when_full=total - damaged, damaged=damaged)
        self.routing = Routing()
        self._saved_at = monotonic_s()
        self.set_lanes(lanes or [LaneSpec(DEFAULT_LANE)])

    @property
    def depth(self) -> int:
        """Readings stored that at least one uplink still has to carry."""
        return self.routing.depth

    def backlog(self, lane: str = DEFAULT_LANE) -> int:
        """Readings `lane` must still carry (0 for a lane the buffer does not have)."""
        return getattr(self.routing.lanes.get(lane), "backlog", 0)

    @property
    def dropped_total(self) -> int:
        """Readings lost, every cause (`drops` has them per cause)."""
        return self.drops.total

    def set_lanes(self, specs: Sequence[LaneSpec]) -> None:
        """The uplinks now (at open, at a config push). A lane the buffer knew resumes where it
        was, a new one carries what is stored from then on, a removed one's backlog is let go."""
        known = marks.load(self._db)
        fresh = not known and not self.routing.lanes  # a new buffer, or one from before lanes
        gone = self.routing.replace(specs, known, 0 if fresh else self._next_seq - 1)
        with self._db:
            marks.delete(self._db, gone)
            marks.save(self._db, self.routing.lanes.values())
        marks.saved(self.routing.lanes.values())
        self.routing.rebuild(self._db.execute("SELECT first_seq, count, owner FROM chunks"))
        self._enforce_lane_bounds([])

    def _save_lanes(self, *, force: bool = False) -> bool:
        """Write the lanes' marks and drops (inside the caller's transaction) when due (see
        `lanes.MARK_SAVE_S`) or `force`d; if it did, `marks.saved` after the commit."""
        lanes = self.routing.lanes.values()
        if force or self._monotonic_s() - self._saved_at >= MARK_SAVE_S:
            self._saved_at = self._monotonic_s()
        elif not any(lane.save_due() for lane in lanes):
            return False
        marks.save(self._db, lanes)
        return True

    def _chunk_start(self, seq: int) -> int:
        """The first_seq of the chunk that holds `seq` (or of the first chunk after it)."""
        row = self._db.execute(
            "SELECT max(first_seq) FROM chunks WHERE first_seq <= ?", (seq,)
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _rows_between(self, first: int, last: int) -> list[ChunkRow]:
        return self._db.execute(
            "SELECT first_seq, count, owner FROM chunks WHERE first_seq BETWEEN ? AND ? "
            "ORDER BY first_seq",
            (self._chunk_start(first), last),
        ).fetchall()

    def _meta(self, key: str, *, default: int | None) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def series(self, sid: int) -> Series:
        """The series named `sid` (KeyError if this buffer never named it)."""
        return self._names.series[sid]

    def series_owner(self, sid: int) -> str:
        """The owner of the readings of series `sid`."""
        return self._names.owner[sid]

    def series_table(self, lane: str | None = None) -> dict[int, Series]:
        """Every series this buffer has named, by id (the wire v2 aliases); with `lane`, only
        those of the owners that lane carries (a birth never names another owner's series)."""
        return self._names.table(None if lane is None else self.routing.lane(lane).carries)

    def append(self, readings: Columns) -> AppendResult:
        """Store readings in one transaction, one chunk per owner, applying the when-full
        policies (the buffer's, then each lane's)."""
        if not readings:
            return AppendResult(0, 0)
        readings, drop_old, dropped_new = upkeep.room_for(
            readings, self.max_readings - self.depth, self.depth, self.when_full
        )
        first = self._next_seq
        acked_before = {c0: list(r) for c0, r in self.routing.acked.items()}
        dropped: list[tuple[tuple[int, int], str]] = []
        inserted: list[ChunkRow] = []
        lost, saved = 0, False
        try:
            with self._db:
                self._delete_unneeded(keys_kept=len(readings) > 0)
                if drop_old:
                    self._set_meta("next_seq", first)
                    dropped = upkeep.drop_oldest(self._db, self.routing, drop_old)
                inserted = self._insert_by_owner(readings, first)
                lost = ranges.covered([span for span, _ in dropped])
                if lost or dropped_new or self.drops.dirty:
                    self._set_meta("dropped_total", self.drops.total + lost + dropped_new)
                    self._set_meta("dropped_damaged", self.drops.damaged)
                saved = self._save_lanes()
        except sqlite3.Error as error:
            self._names.forget_uncommitted()
            self.routing.acked = acked_before
            raise BufferWriteError(f"cannot store {len(readings)} readings: {error}") from error
        self._forget_deleted()
        if saved:
            marks.saved(self.routing.lanes.values())
        self._next_seq = first + len(readings)
        self.routing.depth -= lost
        self.drops.dropped([span for span, _ in dropped], newest=dropped_new)
        self.drops.dirty = False
        self.routing.dropped(dropped, damaged=False)
        for row in inserted:
            self.routing.stored(*row)
        self._enforce_lane_bounds(inserted)
        return AppendResult(accepted=len(readings), dropped=drop_old + dropped_new, first_seq=first)

    def _insert_by_owner(self, readings: Columns, first: int) -> list[ChunkRow]:
        """Chunks of at most MAX_READINGS, one owner each, keys from `first` (a commit of
        several owners: each owner's readings in their order, owner after owner)."""
        owner_of = {i: readings.index.owners[i] or self.owner for i in set(readings.sid)}
        ids = {i: self._names.id(readings.index.series[i], o) for i, o in owner_of.items()}
        inserted: list[ChunkRow] = []
        at = first
        for owner, part in upkeep.by_owner(readings, owner_of):
            for start in range(0, len(part), chunks.MAX_READINGS):
                stop = start + chunks.MAX_READINGS
                part_sids = part.sid[start:stop]
                blob = chunks.pack(
                    part.ts_ms[start:stop],
                    [ids[i] for i in part_sids],
                    part.values[start:stop],
                    part.flags[start:stop],
                    try_scaled=len(part) <= chunks.SCALED_MAX,
                )
                self._db.execute(
                    "INSERT INTO chunks (first_seq, count, owner, data) VALUES (?, ?, ?, ?)",
                    (at, len(part_sids), owner, blob),
                )
                inserted.append((at, len(part_sids), owner))
                at += len(part_sids)
        return inserted

    def _enforce_lane_bounds(self, inserted: list[ChunkRow]) -> None:
        """Each lane's own bound: past it, the lane gives up its oldest (or the newest just
        stored), counted as its drops; no other lane loses anything."""
        for lane in self.routing.lanes.values():
            limit = lane.spec.max_backlog
            if limit is None or lane.backlog <= limit:
                continue
            excess = lane.backlog - limit
            if lane.spec.when_full == "drop_newest":
                newest = [r for r in reversed(inserted) if lane.carries(r[2])]
                upkeep.give_up(self.routing, lane, newest, excess, newest=True)
                continue
            cursor = self._db.execute(  # read lazily: give_up stops at `excess`
                "SELECT first_seq, count, owner FROM chunks WHERE first_seq >= ? "
                "ORDER BY first_seq",
                (self._chunk_start(lane.mark + 1),),
            )
            try:
                upkeep.give_up(self.routing, lane, cursor, excess, newest=False)
            finally:
                cursor.close()
        if len(self.routing.unneeded) > DELETE_PENDING_MAX:
            self.delete_acknowledged()

    def _delete_unneeded(self, *, keys_kept: bool) -> None:
        """Delete the chunks no lane needs, inside the caller's transaction. Keys must never
        repeat: unless the transaction stores newer chunks (`keys_kept`), which carry where the
        sequence stands (see __init__), remember it before the chunks go."""
        if not self.routing.unneeded:
            return
        if not keys_kept:
            self._set_meta("next_seq", self._next_seq)
        self._db.executemany(
            "DELETE FROM chunks WHERE first_seq = ?", [(c0,) for c0 in self.routing.unneeded]
        )

    def _forget_deleted(self) -> None:
        """After the transaction of `_delete_unneeded` committed."""
        for c0 in list(self.routing.unneeded):
            self.routing.forget(c0)

    def peek(self, after_seq: int, limit: int, *, lane: str = DEFAULT_LANE) -> list[StoredReading]:
        """Up to `limit` readings with seq > after_seq that `lane` must still carry, oldest
        first: only readings of the owners it lists, ever."""
        state = self.routing.lane(lane)
        after = max(after_seq, state.mark)
        owners = state.spec.owners
        only = "" if owners is None else f" AND owner IN ({','.join('?' * len(owners))})"
        cursor = self._db.execute(
            f"SELECT first_seq, count, data FROM chunks WHERE first_seq >= ?{only} "
            "ORDER BY first_seq",
            (self._chunk_start(after + 1), *(sorted(owners) if owners else ())),
        )
        out: list[StoredReading] = []
        nothing: ranges.Ranges = []  # keys after `after` with nothing for this lane
        seen = after  # the highest key looked at
        damaged: list[tuple[int, int, chunks.ChunkError]] = []
        try:  # closed early: an open statement would hold back WAL checkpoints
            for c0, size, data in cursor:
                if c0 > seen + 1:
                    nothing.append((seen + 1, c0 - 1))
                seen = max(seen, c0 + size - 1)
                if c0 in self.routing.unneeded:
                    continue
                try:
                    rows = chunks.unpack(c0, data)
                except chunks.ChunkError as error:
                    damaged.append((c0, size, error))
                    continue
                done = ranges.intersect(state.done, (c0, c0 + size - 1))
                if done or c0 <= after:
                    rows = (
                        r
                        for r in rows
                        if r[0] > after and not (done and ranges.is_acked(done, r[0]))
                    )
                out.extend(islice(rows, limit - len(out)))
                if len(out) >= limit:
                    break
            else:
                if seen < self._next_seq - 1:
                    nothing.append((seen + 1, self._next_seq - 1))
        finally:
            cursor.close()
        for span in nothing:
            state.add(span)
        for c0, size, problem in damaged:
            log.error("buffer %s: %s; dropping its readings", self.path, problem)
            with self._db:
                self._set_meta("next_seq", self._next_seq)  # it may have been the newest chunk
                lost = upkeep.discard(self._db, self.routing, c0, size)
                self._set_meta("dropped_total", self.drops.total + lost)
                self._set_meta("dropped_damaged", self.drops.damaged + lost)
            self.drops.damaged += lost
        return out

    def ack(self, first_seq: int, last_seq: int, *, lane: str = DEFAULT_LANE) -> int:
        """`lane`'s uplink acknowledged seq first..last: how many of its readings that were
        waiting. Writes nothing itself: chunks no lane needs any more go with the next commit."""
        state = self.routing.lane(lane)
        removed = self.routing.ack(
            state, first_seq, last_seq, self._rows_between(first_seq, last_seq)
        )
        if len(self.routing.lanes) == 1:  # dropped as oldest while in flight?
            self.drops.acknowledged(first_seq, last_seq)
        if len(self.routing.unneeded) > DELETE_PENDING_MAX or self.routing.holds_back(state):
            self.delete_acknowledged()  # a backlog draining with no commits: its mark too
        return removed

    def delete_acknowledged(self) -> None:
        """Delete the chunks no lane needs now, in a transaction of their own."""
        try:
            with self._db:
                self._delete_unneeded(keys_kept=False)
                saved = self._save_lanes()
        except sqlite3.Error as error:  # they stay acknowledged in memory; the next commit retries
            log.warning("buffer %s: cannot delete acknowledged readings: %s", self.path, error)
            return
        self._forget_deleted()
        if saved:
            marks.saved(self.routing.lanes.values())

    def stats(self) -> BufferStats:
        """Depth, oldest unsent timestamp, bytes on disk (file and WAL), drops, and per lane."""
        try:
            oldest_ts_ms = upkeep.oldest_ts_ms(self._db, self.routing)
        except chunks.ChunkError:  # peek drops the damaged chunk, counted
            first = self.peek(0, 1, lane=next(iter(self.routing.lanes)))
            oldest_ts_ms = first[0][1] if first else None
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
            lanes=upkeep.lane_stats(self._db, self.routing),
        )

    def close(self) -> None:
        """Delete what no lane needs, record the sequence and the lanes, checkpoint, close."""
        try:
            with self._db:  # where the sequence stands, even with nothing to delete
                self._set_meta("next_seq", self._next_seq)
                self._set_meta("dropped_total", self.drops.total)  # less any acked after all
                self._delete_unneeded(keys_kept=True)
                self._save_lanes(force=True)
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
