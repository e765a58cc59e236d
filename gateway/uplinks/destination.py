"""What an HTTP uplink format implements: a destination that takes batches of readings.

The per-uplink loop (`gateway.uplinks.http.HttpUplink`) takes a batch of the readings its owners
have from the buffer, hands it to `Destination.deliver`, and acknowledges it in the buffer only
when `deliver` returned: nothing of a batch that raised counts as delivered, and the same
readings come again (with the same keys) after a backoff, or after `retry_after_s`. The formats
(SensorThings, sensor.community) live in their own modules of this package, each with a
`destination(section, *, gateway_id, ...)` builder (the table in `gateway.uplinks.factory`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingReading:
    """One reading on its way out, with everything a format may need."""

    gateway_id: str
    epoch: int
    seq: int
    """(gateway_id, epoch, seq) is the reading's key; stable across re-sends."""
    ts_ms: int
    """UTC milliseconds."""
    source: str
    quantity: str
    unit: str
    value: float
    owner: str
    flags: int


class DeliveryError(Exception):
    """Nothing of the batch counts as delivered; retry after `retry_after_s` (None: backoff).
    `refused`: the far end said no (4xx, a refusal), not merely "unreachable"."""

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, refused: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.refused = refused


class Destination(Protocol):
    """Where an HTTP uplink delivers (see the module docstring)."""

    name: str

    async def deliver(self, batch: Sequence[OutgoingReading]) -> None:
        """Returns once the far end has durably accepted every reading of `batch`; raises
        DeliveryError otherwise. Must be idempotent per key: the same batch (or an overlapping
        one) may come again after a crash or a timeout, and must not create duplicates. Every
        await on the network inside is bounded by a timeout."""
        ...

    async def close(self) -> None:
        """Let go of connections (the uplink is stopping or being replaced)."""
        ...
