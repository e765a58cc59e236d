"""Readings as the gateway handles them before they are stored: columns with a series index."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from itertools import repeat
from typing import NamedTuple, Protocol

from drivers.base import Measurement

CLOCK_UNSYNCED = 1
"""Flag bit: the gateway's clock was not synchronised (NTP) when the reading was timestamped."""


StoredReading = tuple[int, int, int, float, int]
"""A reading the buffer accepted, as SQLite returns it (no object per row on the hot path):
(seq, ts_ms, series id, value, flags). `seq` is its key, unique per gateway buffer epoch."""


class Series(NamedTuple):
    """What a run of readings measures: which source, which quantity, in which unit."""

    source: str
    quantity: str
    unit: str


class SeriesIndex:
    """(Series, owner) -> a small number for this process, so a staged reading names its series
    and its owner in 4 bytes. Only grows: a number never changes meaning while readings that use
    it wait. The owner is fixed here, when the reading is staged: a config change afterwards
    never re-routes it (docs/uplinks.md). An empty owner: the gateway's own."""

    __slots__ = ("_ids", "owners", "series")

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str, str, str], int] = {}
        self.series: list[Series] = []
        self.owners: list[str] = []

    def ids(self, source: str, measurements: Sequence[Measurement], owner: str = "") -> list[int]:
        """The number of each measurement's series (new series are numbered on the way)."""
        get = self._ids.get
        found = [get((source, m.quantity, m.unit, owner), -1) for m in measurements]
        if -1 not in found:
            return found
        return [self.id(Series(source, m.quantity, m.unit), owner) for m in measurements]

    def id(self, series: Series, owner: str = "") -> int:
        """The number of `series` of `owner`, given one if it is new."""
        key = (*series, owner)
        known = self._ids.get(key)
        if known is None:
            known = self._ids[key] = len(self.series)
            self.series.append(series)
            self.owners.append(owner)
        return known


class Columns:
    """Readings as parallel arrays: ~21 bytes a reading where a tuple per reading with its
    float cost ~150. Thousands wait between a serial read and a commit at full rate, so this
    is most of the agent's peak RSS above idle (BENCHMARKS.md, memory)."""

    __slots__ = ("flags", "index", "sid", "ts_ms", "values")

    def __init__(self, index: SeriesIndex) -> None:
        self.index = index
        self.sid = array("I")
        self.ts_ms = array("q")
        self.values = array("d")
        self.flags = array("B")

    def __len__(self) -> int:
        return len(self.sid)

    def add(
        self,
        source: str,
        measurements: Sequence[Measurement],
        ts_ms: int,
        flags: int = 0,
        owner: str = "",
    ) -> None:
        """Readings of one source (of `owner`) taken at one moment."""
        count = len(measurements)
        self.sid.extend(self.index.ids(source, measurements, owner))
        self.values.extend([m.value for m in measurements])
        self.ts_ms.extend(repeat(ts_ms, count))
        self.flags.extend(repeat(flags, count))

    def part(self, start: int, stop: int | None = None) -> Columns:
        """A copy of readings start..stop."""
        out = Columns(self.index)
        out.sid, out.ts_ms = self.sid[start:stop], self.ts_ms[start:stop]
        out.values, out.flags = self.values[start:stop], self.flags[start:stop]
        return out

    def select(self, positions: Sequence[int]) -> Columns:
        """A copy of the readings at `positions` (in that order)."""
        out = Columns(self.index)
        out.sid = array("I", [self.sid[i] for i in positions])
        out.ts_ms = array("q", [self.ts_ms[i] for i in positions])
        out.values = array("d", [self.values[i] for i in positions])
        out.flags = array("B", [self.flags[i] for i in positions])
        return out

    def take(self, count: int) -> Columns:
        """Remove the first `count` readings and return them."""
        out = self.part(0, count)
        self.drop_first(count)
        return out

    def drop_first(self, count: int) -> None:
        """Forget the first `count` readings (they were committed)."""
        for column in (self.sid, self.ts_ms, self.values, self.flags):
            del column[:count]

    def put_back(self, first: Columns) -> None:
        """Readings taken earlier go back in front (a commit that failed)."""
        self.sid[0:0] = first.sid
        self.ts_ms[0:0] = first.ts_ms
        self.values[0:0] = first.values
        self.flags[0:0] = first.flags


class Sink(Protocol):
    """Where sources hand readings (the ingest). `emit` never blocks; a source that can pause
    its input (a serial port) awaits `room()` after emitting, so a slow disk slows the reader
    instead of dropping readings it already took."""

    def emit(
        self, source: str, measurements: Sequence[Measurement], ts_ms: int, flags: int
    ) -> None:
        """Hand over readings of `source` taken at `ts_ms`; never blocks."""
        ...

    async def room(self) -> None:
        """Returns once there is room for more readings (backpressure)."""
        ...
