"""The reading as the gateway handles it: a measurement with its source and a UTC timestamp."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

CLOCK_UNSYNCED = 1
"""Flag bit: the gateway's clock was not synchronised (NTP) when the reading was timestamped."""


class Reading(NamedTuple):
    """One reading before it is stored. A tuple: millions pass through, so it stays cheap."""

    source: str
    quantity: str
    unit: str
    value: float
    ts_ms: int
    flags: int = 0


StoredReading = tuple[int, int, int, float, int]
"""A reading the buffer accepted, as SQLite returns it (no object per row on the hot path):
(seq, ts_ms, series id, value, flags). `seq` is its key, unique per gateway buffer epoch."""


class Series(NamedTuple):
    """What a run of readings measures: which source, which quantity, in which unit."""

    source: str
    quantity: str
    unit: str


class Sink(Protocol):
    """Where sources hand readings (the ingest). `emit` never blocks; a source that can pause
    its input (a serial port) awaits `room()` after emitting, so a slow disk slows the reader
    instead of dropping readings it already took."""

    def emit(self, readings: Iterable[Reading]) -> None: ...

    async def room(self) -> None: ...
