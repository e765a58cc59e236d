"""What every driver shares: the measurement record and the one error a codec may raise."""

from __future__ import annotations

from dataclasses import dataclass


class DecodeError(Exception):
    """Bytes that are not a valid frame. `offset` says where in the given bytes it went wrong."""

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measured value of a frame, in the unit named (SI-ish, as written in docs/protocol.md)."""

    quantity: str
    value: float
    unit: str


@dataclass(slots=True)
class StreamStats:
    """Counters a stream decoder keeps; the gateway reports them in its metrics."""

    frames: int = 0
    bad_frames: int = 0
    skipped_bytes: int = 0
