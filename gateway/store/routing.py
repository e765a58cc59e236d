"""Which stored readings each uplink still needs, and which no uplink needs any more.

Every chunk holds the readings of one owner (the buffer splits a commit by owner), and a lane
carries a chunk if its uplink lists that owner: isolation is decided per chunk, by the owner
stamped when the readings were stored. A chunk may go once every lane that carries it is done
with all of it; what every carrier is done with in a chunk still needed (`acked`) and the
chunks none needs any more (`unneeded`, deleted with the next commit) live in memory; each
lane's own progress is its `Lane`. Pure: the buffer hands in chunk rows (first_seq, count,
owner) read from SQLite.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from gateway.store import ranges
from gateway.store.drops import Drops
from gateway.store.lanes import Lane, LaneSpec

log = logging.getLogger(__name__)

ChunkRow = tuple[int, int, str]
"""A chunk as the routing sees it: (first_seq, count, owner)."""


class Routing:
    """The lanes of one buffer and what they are done with (see the module docstring)."""

    def __init__(self) -> None:
        self.lanes: dict[str, Lane] = {}
        self.acked: dict[int, ranges.Ranges] = {}  # chunk -> keys every carrier is done with
        self.unneeded: set[int] = set()  # chunks no lane needs: deleted with the next commit
        self.depth = 0
        """Readings stored that at least one lane still needs."""
        self.released = 0
        """Readings let go because no lane carries their owner any more (an uplink removed)."""

    def lane(self, name: str) -> Lane:
        """The lane of uplink `name` (KeyError names it)."""
        try:
            return self.lanes[name]
        except KeyError:
            raise KeyError(f"the buffer has no uplink {name!r}") from None

    def replace(
        self, specs: Sequence[LaneSpec], marks: dict[str, tuple[int, int]], new_mark: int
    ) -> list[str]:
        """Lanes for `specs`: a lane kept keeps its progress; one the buffer knew (`marks`:
        name -> (mark, dropped)) starts from its mark; a new one at `new_mark`. Returns the
        names of lanes gone (their durable marks are to be deleted)."""
        lanes: dict[str, Lane] = {}
        for spec in specs:
            old = self.lanes.get(spec.name)
            if old is not None:
                lanes[spec.name] = Lane(spec, old.mark, old.done, drops=old.drops)
            elif spec.name in marks:
                mark, dropped = marks[spec.name]
                lanes[spec.name] = Lane(spec, mark, drops=Drops(when_full=dropped))
                lanes[spec.name].saved_mark = mark
            else:
                lanes[spec.name] = Lane(spec, new_mark)
        gone = [name for name in (*self.lanes, *marks) if name not in lanes]
        self.lanes = lanes
        return sorted(set(gone))

    def rebuild(self, rows: Iterable[ChunkRow]) -> None:
        """Recompute backlogs, `acked`, `unneeded` and `depth` from every stored chunk (at open,
        and when the lanes change)."""
        was_unneeded = self.unneeded
        self.acked, self.unneeded, self.depth = {}, set(), 0
        for lane in self.lanes.values():
            lane.backlog = 0
        released = 0
        for c0, size, owner in rows:
            end = c0 + size - 1
            common: ranges.Ranges | None = None
            for lane in self.lanes.values():
                if lane.carries(owner):
                    done = lane.done_within(c0, end)
                    lane.backlog += size - ranges.covered(done)
                    common = done if common is None else ranges.common(common, done)
            if common is None and c0 not in was_unneeded:
                released += size
            if common is None or ranges.covered(common) >= size:
                self.unneeded.add(c0)
                continue
            if common:
                self.acked[c0] = common
            self.depth += size - ranges.covered(common)
        if released:
            self.released += released
            log.warning("%d stored readings are no uplink's any more: released", released)

    def stored(self, c0: int, count: int, owner: str) -> None:
        """A new chunk was committed (of an owner no lane carries: released at once)."""
        carriers = [lane for lane in self.lanes.values() if lane.carries(owner)]
        for lane in carriers:
            lane.backlog += count
        if carriers:
            self.depth += count
        else:
            self.unneeded.add(c0)
            self.released += count

    def done_in_chunk(self, lane: Lane, row: ChunkRow, newly: ranges.Ranges) -> int:
        """`lane` just became done with `newly` (keys, some maybe in chunk `row`): its backlog
        drops by its readings among them; keys every carrier is now done with are acked."""
        c0, size, owner = row
        if not lane.carries(owner) or c0 in self.unneeded:
            return 0
        end = c0 + size - 1
        part = ranges.intersect(newly, (c0, end))
        count = ranges.covered(part)
        lane.backlog -= count
        for other in self.lanes.values():
            if part and other is not lane and other.carries(owner):
                part = ranges.common(part, other.done_within(c0, end))
        if part:
            before = self.acked.get(c0, [])
            after = before
            for span in part:
                after = ranges.merge(after, span)
            self.depth -= ranges.covered(after) - ranges.covered(before)
            self.acked[c0] = after
            if ranges.covered(after) >= size:
                self.unneeded.add(c0)
        return count

    def ack(self, lane: Lane, first: int, last: int, rows: Iterable[ChunkRow]) -> int:
        """The uplink of `lane` acknowledged keys first..last (`rows`: the chunks they may be
        in): how many of its readings that were waiting."""
        newly = lane.add((first, last))
        removed = sum(self.done_in_chunk(lane, row, newly) for row in rows) if newly else 0
        lane.drops.acknowledged(first, last)  # given up while in flight: not lost after all
        return removed

    def dropped(self, spans: Iterable[tuple[tuple[int, int], str]], *, damaged: bool) -> None:
        """The buffer deleted these keys (of these owners) before every lane was done: each
        lane that carries them and had not sent them counts them as its drops."""
        for span, owner in spans:
            for lane in self.lanes.values():
                newly = lane.add(span)
                if newly and lane.carries(owner):
                    lane.backlog -= ranges.covered(newly)
                    if damaged:
                        lane.drops.damaged += ranges.covered(newly)
                    else:
                        lane.drops.dropped(newly)

    def given_up(self, lane: Lane, row: ChunkRow, span: tuple[int, int]) -> None:
        """`lane`'s own when-full policy gave up these keys of chunk `row` (counted as its drops;
        other lanes may still carry them)."""
        newly = lane.add(span)
        lane.drops.dropped(newly)
        self.done_in_chunk(lane, row, newly)

    def holds_back(self, lane: Lane) -> bool:
        """Whether `lane`'s mark is due to be written and another lane lags behind it (so
        chunks it is done with stay stored and a restart would send them to it again)."""
        if not lane.save_due():
            return False
        return any(other.mark < lane.mark for other in self.lanes.values())

    def forget(self, c0: int) -> None:
        """Chunk `c0` was deleted."""
        self.acked.pop(c0, None)
        self.unneeded.discard(c0)
