"""Rangefinder reports per interval: the median distance and water level, min, max, counts (pure).

A MaxSonar-WR free-runs at 6-10 reports a second, and over a canal the surface ripples: sending
every report costs the uplinks' bandwidth, and one report is noisy. With `aggregate_s` the
serial source feeds every report here and sends, at the end of each interval in which the
sensor reported at all:

    range_status                          (1)  3 when no report had a target, else the status
                                               of the median (0 a distance, 1 at the minimum,
                                               2 at the maximum)
    distance_reports, no_target_reports   (1)  reports with a distance (status 0-2); without
    distance_mm                           (mm) the median distance
    distance_min_mm, distance_max_mm      (mm)
    water_level_mm                        (mm) with mount_height_mm: mount height - median
    water_level_min_mm, water_level_max_mm (mm) from the largest and the smallest distance

The distances only when a report had one. The median, not the mean: a wave crest or a bird
under the sensor is an outlier, not a change of level. With an even count it is the mean of the
two middle distances (so it may end in .5 mm). An interval is [start, start + interval_s): a
report at its end belongs to the next; an interval without any report sends nothing (a silent
sensor is the source's state and counters, not a reading). Missed intervals are skipped. Time
is monotonic seconds, passed in; the source stamps the readings when it sends them, at the end
of the interval. Memory: one counter per distinct (distance, status), at most the 10,000
values a 4-digit line can carry.
"""

from __future__ import annotations

from collections.abc import Sequence

from drivers.base import Measurement
from drivers.maxbotix import IN_RANGE, NO_TARGET, RangeFrame
from gateway.sources.serial.aggregate import next_due_s

_MM = "mm"


class RangeAggregator:
    """Range reports in, per-interval readings out. Not thread-safe; never raises on input."""

    def __init__(
        self, *, interval_s: float, start_s: float, mount_height_mm: int | None = None
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.mount_height_mm = mount_height_mm
        self.due_s = start_s + interval_s
        """When the current interval ends (monotonic seconds)."""
        self._counts: dict[tuple[int, int], int] = {}  # (distance_mm, status) -> reports
        self._no_target = 0

    def observe(self, status: int, distance_mm: int | None, now_s: float) -> list[Measurement]:
        """One report (`distance_mm` None: no target) at `now_s`; returns the readings of the
        interval it closed, if it came after that interval's end (else an empty list)."""
        ended = self.flush(now_s)
        if distance_mm is None or status == NO_TARGET:
            self._no_target += 1
        else:
            key = (distance_mm, status)
            self._counts[key] = self._counts.get(key, 0) + 1
        return ended

    def take(self, frames: Sequence[object], now_s: float) -> list[Measurement]:
        """Feed the range reports among `frames`; what to send now: the readings of an interval
        they closed (the serial source's hook, as `TrafficAggregator.take`)."""
        out: list[Measurement] = []
        for frame in frames:
            if isinstance(frame, RangeFrame):
                out += self.observe(frame.status, frame.distance_mm, now_s)
        return out

    def flush(self, now_s: float) -> list[Measurement]:
        """The readings of the interval that ended by `now_s` (empty before `due_s`, or when it
        had no report); the next interval starts empty."""
        if now_s < self.due_s:
            return []
        readings = self._readings()
        self._counts = {}
        self._no_target = 0
        self.due_s = next_due_s(self.due_s, self.interval_s, now_s)
        return readings

    def _readings(self) -> list[Measurement]:
        ordered = sorted(self._counts.items())
        reports = sum(count for _, count in ordered)
        if reports == 0 and self._no_target == 0:
            return []
        counts = [
            Measurement("distance_reports", reports, "1"),
            Measurement("no_target_reports", self._no_target, "1"),
        ]
        if reports == 0:
            return [Measurement("range_status", NO_TARGET, "1"), *counts]
        (low, low_status), (high, high_status) = _middle(ordered, reports)
        median = _exact((low + high) / 2)
        nearest, farthest = ordered[0][0][0], ordered[-1][0][0]
        status = low_status if low_status == high_status else IN_RANGE
        readings = [
            Measurement("range_status", status, "1"),
            *counts,
            Measurement("distance_mm", median, _MM),
            Measurement("distance_min_mm", nearest, _MM),
            Measurement("distance_max_mm", farthest, _MM),
        ]
        if self.mount_height_mm is not None:
            height = self.mount_height_mm
            readings += [
                Measurement("water_level_mm", height - median, _MM),
                Measurement("water_level_min_mm", height - farthest, _MM),
                Measurement("water_level_max_mm", height - nearest, _MM),
            ]
        return readings


def _middle(
    ordered: list[tuple[tuple[int, int], int]], reports: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The (distance, status) at the lower and the upper middle rank of `reports` (> 0) reports,
    counted in ascending `ordered`; the same one twice for an odd count."""
    low_rank, high_rank = (reports - 1) // 2, reports // 2
    low = high = ordered[0][0]
    seen = 0
    for key, count in ordered:
        if seen <= low_rank < seen + count:
            low = key
        if seen <= high_rank < seen + count:
            high = key
            break
        seen += count
    return low, high


def _exact(value: float) -> float:
    """A whole number as an int (the wire sends it without decimals)."""
    return int(value) if value == int(value) else value
