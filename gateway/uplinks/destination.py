"""What the per-uplink delivery loop hands batches to: a Destination, and what it raises.

The loop acks in the buffer only what `deliver` returned for; a `DeliveryError` means nothing
of the batch counts as delivered. (Shape agreed in the helpers' contracts, "Uplink
destinations".)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingReading:
    """One reading on its way to a destination, with the key that makes re-sends harmless."""

    gateway_id: str
    epoch: int
    seq: int  # (gateway_id, epoch, seq) is the key; stable across re-sends
    ts_ms: int  # UTC milliseconds
    source: str
    quantity: str
    unit: str
    value: float
    owner: str
    flags: int


class DeliveryError(Exception):
    """Nothing of the batch counts as delivered; retry after `retry_after_s` (None: backoff)."""

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, refused: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.refused = refused


class Destination(Protocol):
    """Where one uplink's batches go (an HTTP format, or a broker)."""

    name: str

    async def deliver(self, batch: Sequence[OutgoingReading]) -> None:
        """Returns once the far end has durably accepted every reading of `batch`; raises
        DeliveryError otherwise. Must be idempotent per key: the same batch (or an overlapping
        one) may come again after a crash or a timeout, and must not create duplicates."""
        ...

    async def close(self) -> None:
        """Releases connections; the destination is not used again."""
        ...
