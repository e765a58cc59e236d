"""What the buffer lost, per cause, and the dropped readings that reached the hub after all.

The when-full policy `drop_oldest` deletes the oldest unacknowledged readings, and those may be
in flight: published, PUBACK pending (a hung broker). When that PUBACK arrives the hub has them,
so they are not lost: they leave the `when_full` count and are counted as `acked_after_drop`.
A reading dropped in flight whose publish then fails stays counted. Which sequence numbers were
dropped is kept in memory only, at most `TRACKED_RANGES_MAX` ranges (the oldest are forgotten and
stay counted: an acknowledgement that late is not expected); the counts are durable (`meta`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.store import ranges

TRACKED_RANGES_MAX = 1024
"""Ranges of dropped sequence numbers remembered for a late PUBACK. drop_oldest drops runs of
consecutive keys (a gap only where the hub already acknowledged some), so one per commit or so."""


@dataclass(slots=True)
class Drops:
    """Readings lost, per cause: `when_full` (the policy), `damaged` (a chunk that no longer
    decodes); `acked_after_drop` (in memory) were dropped by the policy, then acknowledged."""

    when_full: int = 0
    damaged: int = 0
    acked_after_drop: int = 0
    dirty: bool = False  # counts changed since they were last written
    _dropped: ranges.Ranges = field(default_factory=list)

    @property
    def total(self) -> int:
        """Readings lost, all causes (`dropped_total`)."""
        return self.when_full + self.damaged

    def by_cause(self) -> dict[str, int]:
        """The counts as the metrics show them."""
        return {
            "when_full": self.when_full,
            "damaged": self.damaged,
            "acked_after_drop": self.acked_after_drop,
        }

    def dropped(self, seqs: ranges.Ranges, *, newest: int = 0) -> None:
        """The policy dropped these stored readings (`seqs`) and `newest` that had no key yet."""
        self.when_full += ranges.covered(seqs) + newest
        for seq_range in seqs:
            self._dropped = ranges.merge(self._dropped, seq_range)
        del self._dropped[:-TRACKED_RANGES_MAX]

    def acknowledged(self, first_seq: int, last_seq: int) -> int:
        """The hub acknowledged first..last: how many of them had been counted as dropped."""
        kept: ranges.Ranges = []
        found = 0
        for lo, hi in self._dropped:
            if hi < first_seq or lo > last_seq:
                kept.append((lo, hi))
                continue
            found += min(hi, last_seq) - max(lo, first_seq) + 1
            if lo < first_seq:
                kept.append((lo, first_seq - 1))
            if hi > last_seq:
                kept.append((last_seq + 1, hi))
        if found:
            self._dropped = kept
            self.when_full -= found
            self.acked_after_drop += found
            self.dirty = True
        return found
