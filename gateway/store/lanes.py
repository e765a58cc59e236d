"""Each uplink's place in the one buffer: which owners it carries and which keys it is done with.

A lane is done with a key once its uplink acknowledged the reading, gave it up (its own
when-full policy, or the buffer's), or the key is not its to carry (another owner's reading, or
a key no reading has). What it is done with is `mark` (every key up to it) plus ranges above it;
an uplink that acknowledges in order keeps a single number. The mark is written to the buffer's
`meta` table now and then, so after a restart an uplink starts where it was, not
at the oldest reading another uplink still waits for (`MARK_SAVE_S`). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.store import ranges
from gateway.store.drops import Drops

WhenFull = Literal["drop_oldest", "drop_newest"]

DEFAULT_LANE = "hub"
"""The lane of a buffer opened without lanes: it carries every owner."""

MARK_SAVE_S = 30.0
MARK_SAVE_KEYS = 5000
"""A lane's mark and drop count are written with a commit's transaction (a meta page per save)
once MARK_SAVE_S passed or a mark moved MARK_SAVE_KEYS keys since the last save; while another
lane lags behind, also in a transaction of its own at the acknowledgement (no commit may come:
a backlog draining). A crash re-sends a lane at most about that much it had acknowledged,
whatever the others hold; a lone lane's acknowledged chunks are deleted anyway."""


@dataclass(frozen=True, slots=True)
class LaneSpec:
    """An uplink as the buffer sees it."""

    name: str
    owners: frozenset[str] | None = None
    """The owners whose readings it carries; None: every owner (a gateway with one uplink)."""
    max_backlog: int | None = None
    """Readings it may have waiting; None: only the buffer's own bound."""
    when_full: WhenFull = "drop_oldest"


@dataclass(slots=True)
class Lane:
    """One uplink's progress through the buffer (see the module docstring)."""

    spec: LaneSpec
    mark: int
    done: ranges.Ranges = field(default_factory=list)
    backlog: int = 0
    """Readings stored that this lane must still carry."""
    drops: Drops = field(default_factory=Drops)
    saved_mark: int = -1

    @property
    def name(self) -> str:
        """The uplink's name."""
        return self.spec.name

    def carries(self, owner: str) -> bool:
        """Whether readings of `owner` go through this lane."""
        return self.spec.owners is None or owner in self.spec.owners

    def add(self, span: tuple[int, int]) -> ranges.Ranges:
        """Mark keys lo..hi done; returns the parts that were not done before."""
        lo, hi = max(span[0], self.mark + 1), span[1]
        if lo > hi:
            return []
        newly = ranges.missing((lo, hi), self.done)
        if not newly:
            return []
        self.done = ranges.merge(self.done, (lo, hi))
        while self.done and self.done[0][0] <= self.mark + 1:
            self.mark = max(self.mark, self.done.pop(0)[1])
        return newly

    def done_within(self, lo: int, hi: int) -> ranges.Ranges:
        """The keys of lo..hi this lane is done with."""
        below = [(lo, min(hi, self.mark))] if lo <= self.mark else []
        return below + ranges.intersect(self.done, (max(lo, self.mark + 1), hi))

    def save_due(self) -> bool:
        """Whether its mark moved far enough, or it dropped readings, since the last save."""
        return self.drops.dirty or self.mark - self.saved_mark >= MARK_SAVE_KEYS

    def as_meta(self) -> list[tuple[str, int]]:
        """Its durable part, as `meta` rows."""
        return [
            (f"lane:{self.name}", self.mark),
            (f"lane_dropped:{self.name}", self.drops.total),
        ]


def meta_names(name: str) -> tuple[str, str]:
    """The `meta` keys of lane `name` (see `Lane.as_meta`)."""
    return f"lane:{name}", f"lane_dropped:{name}"
