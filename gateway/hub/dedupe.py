"""Dropping re-sent readings by key, in bounded memory: what a hub does before it stores."""

from __future__ import annotations

import heapq
from collections import OrderedDict

from gateway.wire import HubReading


class Deduplicator:
    """Drops readings whose key was seen. Per (gateway, epoch): every seq up to a watermark
    counts as seen, plus the seqs above it (a bounded set; beyond the bound the oldest gap is
    given up, which happens only when the gateway dropped readings).

    Anyone on the broker can invent gateways and epochs, so the streams kept are bounded too:
    at most `max_streams`, and at most `max_total_pending` seqs held apart from watermarks
    over all of them; past either bound the least recently used stream is forgotten. A reading
    of a forgotten stream counts as new again (a hub that stores by key drops it there)."""

    def __init__(
        self,
        *,
        max_pending: int = 100_000,
        max_streams: int = 20_000,
        max_total_pending: int = 500_000,
    ) -> None:
        self._streams: OrderedDict[tuple[str, int], _Stream] = OrderedDict()
        self._max_pending = max_pending
        self._max_streams = max_streams
        self._max_total_pending = max_total_pending
        self._total_pending = 0
        self.duplicates = 0
        self.evicted = 0
        """Streams forgotten to stay within the bounds."""

    def is_new(self, reading: HubReading) -> bool:
        """True the first time a reading's sequence number is seen for its gateway and epoch."""
        key = (reading.gateway, reading.epoch)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(reading.seq - 1)
        else:
            self._streams.move_to_end(key)
        before = stream.pending()
        new = stream.add(reading.seq, self._max_pending)
        self._total_pending += stream.pending() - before
        if len(self._streams) > self._max_streams or self._total_pending > self._max_total_pending:
            self._evict(keep=key)
        if not new:
            self.duplicates += 1
        return new

    def _evict(self, *, keep: tuple[str, int]) -> None:
        """Forget least recently used streams until within bounds (never the one in use)."""
        while len(self._streams) > 1 and (
            len(self._streams) > self._max_streams or self._total_pending > self._max_total_pending
        ):
            key, stream = next(iter(self._streams.items()))
            if key == keep:
                self._streams.move_to_end(key)
                continue
            del self._streams[key]
            self._total_pending -= stream.pending()
            self.evicted += 1

    def __len__(self) -> int:
        """How many (gateway, epoch) streams are kept."""
        return len(self._streams)


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

    def pending(self) -> int:
        """Seqs held apart from the watermark (what bounds this stream's memory)."""
        return len(self.above) + len(self.below)

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
