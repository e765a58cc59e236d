"""The keys of the last batches a destination delivered, so the same batch again sends nothing.

The delivery loop acks a batch once `deliver` returns; should the same readings come again in
this process anyway (an ack that failed, an overlapping batch), an HTTP destination skips the
ones it delivered instead of storing them twice. Exact (no assumption about order), and small:
a sorted array of 8-byte sequence numbers per (gateway, epoch), bisected; the oldest batches
are forgotten past `max_keys` keys or `max_batches` batches (a lookup visits each batch).
"""

from __future__ import annotations

import bisect
from array import array
from collections import deque
from collections.abc import Iterable

from gateway.uplinks.destination import OutgoingReading


class RecentKeys:
    """Keys of recently delivered readings, at most about `max_keys` of them."""

    def __init__(self, *, max_keys: int = 40_000, max_batches: int = 64) -> None:
        self._batches: deque[dict[tuple[str, int], array[int]]] = deque()
        self._count = 0
        self._max_keys = max_keys
        self._max_batches = max_batches

    def add(self, readings: Iterable[OutgoingReading]) -> None:
        """Remember `readings` as delivered."""
        batch: dict[tuple[str, int], list[int]] = {}
        for reading in readings:
            batch.setdefault((reading.gateway_id, reading.epoch), []).append(reading.seq)
        if not batch:
            return
        packed = {where: array("q", sorted(seqs)) for where, seqs in batch.items()}
        self._batches.append(packed)
        self._count += sum(len(seqs) for seqs in packed.values())
        while len(self._batches) > 1 and (
            self._count > self._max_keys or len(self._batches) > self._max_batches
        ):
            dropped = self._batches.popleft()
            self._count -= sum(len(seqs) for seqs in dropped.values())

    def __contains__(self, reading: OutgoingReading) -> bool:
        where = (reading.gateway_id, reading.epoch)
        for batch in self._batches:
            seqs = batch.get(where)
            if seqs is not None:
                at = bisect.bisect_left(seqs, reading.seq)
                if at < len(seqs) and seqs[at] == reading.seq:
                    return True
        return False

    def __len__(self) -> int:
        return self._count
