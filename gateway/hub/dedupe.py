"""Dropping re-sent readings by key, in bounded memory: what a hub does before it stores."""

from __future__ import annotations

import heapq

from gateway.wire import HubReading


class Deduplicator:
    """Drops readings whose key was seen. Per (gateway, epoch): every seq up to a watermark
    counts as seen, plus the seqs above it (a bounded set; beyond the bound the oldest gap is
    given up, which happens only when the gateway dropped readings)."""

    def __init__(self, *, max_pending: int = 100_000) -> None:
        self._streams: dict[tuple[str, int], _Stream] = {}
        self._max_pending = max_pending
        self.duplicates = 0

    def is_new(self, reading: HubReading) -> bool:
        """True the first time a reading's sequence number is seen for its gateway and epoch."""
        stream = self._streams.get((reading.gateway, reading.epoch))
        if stream is None:
            stream = self._streams[(reading.gateway, reading.epoch)] = _Stream(reading.seq - 1)
        if not stream.add(reading.seq, self._max_pending):
            self.duplicates += 1
            return False
        return True


class _Stream:
    """Seqs seen of one (gateway, epoch). The stream starts at the first seq seen; seqs below
    it (a re-sent batch older than the first message the hub saw) are remembered apart, so
    they count as new once and as duplicates after."""

    __slots__ = ("above", "below", "below_heap", "first", "heap", "mark")

    def __init__(self, mark: int) -> None:
        self.mark = mark
        self.first = mark + 1
        self.above: set[int] = set()
        self.heap: list[int] = []
        self.below: set[int] = set()
        self.below_heap: list[int] = []

    def add(self, seq: int, max_pending: int) -> bool:
        if seq < self.first:
            return self._add_below(seq, max_pending)
        if seq <= self.mark or seq in self.above:
            return False
        self.above.add(seq)
        heapq.heappush(self.heap, seq)
        while self.heap and (self.heap[0] == self.mark + 1 or len(self.heap) > max_pending):
            self.mark = heapq.heappop(self.heap)
            self.above.discard(self.mark)
        return True

    def _add_below(self, seq: int, max_pending: int) -> bool:
        if seq in self.below:
            return False
        self.below.add(seq)
        heapq.heappush(self.below_heap, seq)
        if len(self.below_heap) > max_pending:  # bounded: forget the oldest
            self.below.discard(heapq.heappop(self.below_heap))
        return True
