"""Per-interval aggregation of a serial source (`aggregate_s`): the aggregator each driver has.

Instead of every frame, the source feeds the frames to an aggregator and sends its readings at
the end of each interval: vehicle counts and speed percentiles for the OPS243 radar
(`traffic.py`), the median distance and water level for the MaxSonar (`rangefinder.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from drivers.base import Measurement
from gateway.config import SerialSourceConfig


class IntervalAggregator(Protocol):
    """Frames in, readings per interval out; the serial source calls `flush` at `due_s`."""

    due_s: float
    """When the current interval ends (monotonic seconds)."""

    def take(self, frames: Sequence[object], now_s: float) -> list[Measurement]:
        """Feed decoded frames; what to send now (what the frames measured that is not
        aggregated, or the readings of an interval that a frame after its end closed)."""
        ...

    def flush(self, now_s: float) -> list[Measurement]:
        """The readings of the interval that ended by `now_s`; empty before `due_s`."""
        ...


def next_due_s(due_s: float, interval_s: float, now_s: float) -> float:
    """The end of the interval after the one that ended at `due_s`, flushed at `now_s`:
    intervals missed meanwhile (nothing ran to flush them) are skipped, not sent empty."""
    missed = math.floor((now_s - due_s) / interval_s)
    return due_s + (missed + 1) * interval_s


def interval_aggregator(config: SerialSourceConfig, *, start_s: float) -> IntervalAggregator:
    """The aggregator of a source with `aggregate_s` (the config allows it for ops243 and
    maxbotix); imported only when configured."""
    if config.aggregate_s is None:
        raise ValueError(f"source {config.name}: aggregate_s is not set")
    if config.driver == "maxbotix":
        from gateway.sources.serial.rangefinder import RangeAggregator

        return RangeAggregator(
            interval_s=config.aggregate_s,
            start_s=start_s,
            mount_height_mm=config.mount_height_mm,
        )
    from gateway.sources.serial.traffic import TrafficAggregator

    return TrafficAggregator(
        interval_s=config.aggregate_s, units=config.units or "mps", start_s=start_s
    )
