"""Traffic counts from radar detections: vehicles and speed percentiles per interval (pure).

A busy street gives the radar ~10-20 detections a second while a car is in view; sending each
one costs bandwidth and says little. With `aggregate_s` the source feeds every detection here
and sends, at the end of each interval, per direction (inbound, towards the radar; outbound):

    vehicles_<dir>                      (unit 1) vehicles that passed, 0 included
    speed_v50_<dir>_<u>, speed_v85_<dir>_<u>, speed_max_<dir>_<u>
                                        in the radar's unit, only when vehicles_<dir> > 0

A vehicle is a run of detections in one direction without a gap longer than `gap_s` (1 s: at
50 km/h a car is in a radar's beam for 1-3 s, and two cars in one lane follow each other by
about 2 s); its speed is the run's peak (the speed the radar saw when the car was closest to
straight on, as the radar's own ON mode reports it). A run longer than `max_vehicle_s` is
closed and counted (a queue crawling past is not one endless vehicle). Two vehicles side by side
in one direction count as one: the radar reports the strongest reflection per direction.
A vehicle counts in the interval in which it ends. Percentiles are nearest-rank (v85: the
speed 85 % of the vehicles did not exceed). Time is monotonic seconds, passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drivers.base import Measurement
from drivers.ops243_units import UNITS, Unit
from gateway.sources.serial.aggregate import next_due_s

GAP_S = 1.0
MAX_VEHICLE_S = 15.0
MAX_SPEEDS = 50_000
"""Vehicle speeds kept per interval and direction (bounded memory); more are counted only."""
_NAMES = {1: "inbound", -1: "outbound"}


@dataclass(slots=True)
class _Vehicle:
    first_s: float
    last_s: float
    peak: float


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ascending, non-empty values."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class TrafficAggregator:
    """Detections in, per-interval readings out. Not thread-safe; never raises on input."""

    def __init__(
        self,
        *,
        interval_s: float,
        units: str,
        start_s: float,
        gap_s: float = GAP_S,
        max_vehicle_s: float = MAX_VEHICLE_S,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.unit: Unit = UNITS[units]
        if not self.unit.speed:
            raise ValueError(f"units {units!r} is a range unit, not a speed")
        self.interval_s = interval_s
        self.gap_s = gap_s
        self.max_vehicle_s = max_vehicle_s
        self.due_s = start_s + interval_s
        """When the current interval ends (monotonic seconds)."""
        self._open: dict[int, _Vehicle] = {}
        self._counts = {1: 0, -1: 0}
        self._speeds: dict[int, list[float]] = {1: [], -1: []}

    def observe(self, speed: float, direction: int, now_s: float, unit: Unit | None = None) -> None:
        """One detection: `speed` >= 0 in `unit` (default: the aggregator's), direction +1/-1;
        others (direction 0, no speed, not finite) are ignored."""
        if direction not in _NAMES or not speed > 0 or not math.isfinite(speed):
            return
        if unit is not None and unit is not self.unit:
            speed = speed * unit.si / self.unit.si
        vehicle = self._open.get(direction)
        if vehicle is not None and (
            now_s - vehicle.last_s > self.gap_s or now_s - vehicle.first_s > self.max_vehicle_s
        ):
            self._close(direction)
            vehicle = None
        if vehicle is None:
            self._open[direction] = _Vehicle(now_s, now_s, speed)
        else:
            vehicle.last_s = now_s
            vehicle.peak = max(vehicle.peak, speed)

    def take(self, frames: Sequence[object], now_s: float) -> list[Measurement]:
        """Feed the speed detections of radar `frames`; what else the frames measured (range
        reports, the radar's own counts) is returned to be sent as it is."""
        from drivers.ops243 import Report

        passed: list[Measurement] = []
        for frame in frames:
            if isinstance(frame, Report) and UNITS[frame.unit].speed:
                unit = UNITS[frame.unit]
                for detection in frame.detections:
                    self.observe(detection.value, detection.direction, now_s, unit)
            else:
                passed.extend(getattr(frame, "measurements", ()))
        return passed

    def _close(self, direction: int) -> None:
        vehicle = self._open.pop(direction)
        self._counts[direction] += 1
        if len(self._speeds[direction]) < MAX_SPEEDS:
            self._speeds[direction].append(vehicle.peak)

    def flush(self, now_s: float) -> list[Measurement]:
        """The readings of the interval that ended by `now_s` (empty before `due_s`); vehicles
        still in view stay open for the next interval. Missed intervals are skipped."""
        if now_s < self.due_s:
            return []
        for direction, vehicle in list(self._open.items()):
            if now_s - vehicle.last_s > self.gap_s:
                self._close(direction)
        readings = list(self._readings())
        self._counts = {1: 0, -1: 0}
        self._speeds = {1: [], -1: []}
        self.due_s = next_due_s(self.due_s, self.interval_s, now_s)
        return readings

    def _readings(self) -> Iterable[Measurement]:
        unit = self.unit
        for direction, name in _NAMES.items():
            yield Measurement(f"vehicles_{name}", self._counts[direction], "1")
        for direction, name in _NAMES.items():
            speeds = sorted(self._speeds[direction])
            if not speeds:
                continue
            for label, value in (
                ("v50", percentile(speeds, 50)),
                ("v85", percentile(speeds, 85)),
                ("max", speeds[-1]),
            ):
                rounded = round(value, unit.decimals)
                yield Measurement(f"speed_{label}_{name}_{unit.suffix}", rounded, unit.ucum)
