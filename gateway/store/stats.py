"""What the buffer reports: the result of an append, and where it stands (per lane too)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    lanes: dict[str, LaneStats] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LaneStats:
    """One uplink's part: readings waiting for it, the oldest of them, what it gave up."""

    backlog: int
    oldest_ts_ms: int | None
    dropped: int
