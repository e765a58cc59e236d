"""What the buffer does when it must let readings go, and where the oldest unsent one is.

`drop_oldest` is the buffer's own bound (every lane loses the readings); `give_up` is one lane's
bound (only that lane gives them up). Both run on the buffer's worker thread, with its SQLite
connection; `drop_oldest` inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from gateway.readings import Columns
from gateway.store import chunks, ranges
from gateway.store.lanes import Lane
from gateway.store.routing import ChunkRow, Routing
from gateway.store.stats import LaneStats

Dropped = list[tuple[tuple[int, int], str]]
"""Keys deleted, with their owner."""


def by_owner(readings: Columns, owner_of: dict[int, str]) -> list[tuple[str, Columns]]:
    """A commit split by owner (series id -> owner): each owner's readings in their order."""
    if len(set(owner_of.values())) == 1:
        return [(owner_of[readings.sid[0]], readings)]
    positions: dict[str, list[int]] = {}
    for at, sid in enumerate(readings.sid):
        positions.setdefault(owner_of[sid], []).append(at)
    return [(owner, readings.select(p)) for owner, p in positions.items()]


def room_for(readings: Columns, room: int, depth: int, when_full: str) -> tuple[Columns, int, int]:
    """The buffer's own when-full policy: (readings to store, stored ones to drop, new ones
    dropped), given `room` for more and `depth` stored."""
    if len(readings) <= room:
        return readings, 0, 0
    if when_full == "drop_newest":
        return readings.part(0, max(room, 0)), 0, len(readings) - max(room, 0)
    drop_old = min(len(readings) - room, depth)
    dropped_new = max(0, len(readings) - (room + depth))
    return readings.part(dropped_new), drop_old, dropped_new  # keep the newest


def discard(db: sqlite3.Connection, routing: Routing, first_seq: int, size: int) -> int:
    """Delete a chunk that no longer decodes (it would stop every uplink forever), inside the
    caller's transaction; how many readings some lane still needed (lost, counted)."""
    (owner,) = db.execute("SELECT owner FROM chunks WHERE first_seq = ?", (first_seq,)).fetchone()
    db.execute("DELETE FROM chunks WHERE first_seq = ?", (first_seq,))
    acked = routing.acked.get(first_seq, [])
    lost = size - ranges.covered(acked)
    routing.forget(first_seq)
    routing.depth -= lost
    spans = ranges.missing((first_seq, first_seq + size - 1), acked)
    routing.dropped([(span, owner) for span in spans], damaged=True)
    return lost


def drop_oldest(db: sqlite3.Connection, routing: Routing, count: int) -> Dropped:
    """Delete the `count` oldest readings some lane still needs (inside append's transaction);
    which keys went (a PUBACK may still come for them: `Drops.acknowledged`)."""
    dropped: Dropped = []
    while count > 0:
        row = db.execute(
            "SELECT first_seq, count, owner, data FROM chunks ORDER BY first_seq LIMIT 1"
        ).fetchone()
        if row is None:
            break
        c0, size, owner, data = row
        acked = routing.acked.pop(c0, [])
        routing.unneeded.discard(c0)
        live = size - ranges.covered(acked)
        db.execute("DELETE FROM chunks WHERE first_seq = ?", (c0,))
        if live > count:  # keep the newest of this chunk
            keep = [r for r in chunks.unpack(c0, data) if not ranges.is_acked(acked, r[0])]
            for first, rows in chunks.runs(keep[count:]):
                db.execute(
                    "INSERT INTO chunks (first_seq, count, owner, data) VALUES (?, ?, ?, ?)",
                    (first, len(rows), owner, chunks.pack_rows(rows)),
                )
            dropped += [((f, f + len(rows) - 1), owner) for f, rows in chunks.runs(keep[:count])]
        else:
            dropped += [(span, owner) for span in ranges.missing((c0, c0 + size - 1), acked)]
        count -= min(live, count)
    return dropped


def give_up(
    routing: Routing, lane: Lane, rows: Iterable[ChunkRow], excess: int, *, newest: bool
) -> int:
    """`lane` gives up `excess` of its readings: the oldest in `rows` (ascending), or the newest
    (`rows` descending). Keys before them that are not the lane's are marked done on the way,
    so its mark moves on. Returns how many it gave up."""
    taken = 0
    seen = lane.mark
    for row in rows:
        c0, size, owner = row
        end = c0 + size - 1
        if not newest and c0 > seen + 1:
            lane.add((seen + 1, c0 - 1))
        if not lane.carries(owner) or c0 in routing.unneeded:
            if not newest:
                lane.add((c0, end))
                seen = max(seen, end)
            continue
        waiting = ranges.missing((c0, end), lane.done_within(c0, end))
        for lo, hi in reversed(waiting) if newest else waiting:
            n = min(hi - lo + 1, excess - taken)
            routing.given_up(lane, row, (hi - n + 1, hi) if newest else (lo, lo + n - 1))
            taken += n
            if taken >= excess:
                return taken
        seen = max(seen, end)
    return taken


def oldest_ts_ms(db: sqlite3.Connection, routing: Routing) -> int | None:
    """The timestamp of the oldest reading some lane still needs (ChunkError if its chunk no
    longer decodes)."""
    cursor = db.execute("SELECT first_seq, data FROM chunks ORDER BY first_seq")
    try:
        row = next((r for r in cursor if r[0] not in routing.unneeded), None)
    finally:
        cursor.close()
    if row is None:
        return None
    c0, data = row
    oldest = c0
    for lo, hi in routing.acked.get(c0, []):
        if lo <= oldest <= hi:
            oldest = hi + 1
    return chunks.ts_at(c0, data, oldest)


def lane_oldest_ts_ms(db: sqlite3.Connection, lane: Lane, routing: Routing) -> int | None:
    """The timestamp of the oldest reading `lane` still has to carry (None if none, or if its
    chunk no longer decodes: the next peek drops that, counted)."""
    start = db.execute(
        "SELECT max(first_seq) FROM chunks WHERE first_seq <= ?", (lane.mark + 1,)
    ).fetchone()[0]
    cursor = db.execute(
        "SELECT first_seq, count, owner FROM chunks WHERE first_seq >= ? ORDER BY first_seq",
        (start or 0,),
    )
    found = None
    try:
        for c0, size, owner in cursor:
            if lane.carries(owner) and c0 not in routing.unneeded:
                end = c0 + size - 1
                waiting = ranges.missing((c0, end), lane.done_within(c0, end))
                if waiting:
                    found = (c0, waiting[0][0])
                    break
    finally:
        cursor.close()
    if found is None:
        return None
    (data,) = db.execute("SELECT data FROM chunks WHERE first_seq = ?", (found[0],)).fetchone()
    try:
        return chunks.ts_at(found[0], data, found[1])
    except chunks.ChunkError:
        return None


def lane_stats(db: sqlite3.Connection, routing: Routing) -> dict[str, LaneStats]:
    """Each lane's backlog, oldest reading waiting and drops."""
    return {
        name: LaneStats(
            backlog=lane.backlog,
            oldest_ts_ms=lane_oldest_ts_ms(db, lane, routing),
            dropped=lane.drops.total,
        )
        for name, lane in routing.lanes.items()
    }
