"""Silence: a sensor whose device is open but that has sent nothing for `silent_after_s`.

Pure: a source tells its `Silence` when it began listening (port opened, scan started), when
it heard the sensor and when it stopped listening (port or adapter missing: that is its own
state, reported by `outage.py`, not silence). The agent's health snapshot, which runs anyway
(metrics, `citygw status`), asks each source to `judge`: no timer per reading or per sensor.
Each change is said once per episode: a warning when a sensor goes silent, an info line when
it is heard again.

The default threshold (`threshold_s`) is three times the longest gap a working sensor leaves
between the things its source hears, and at least a minute (docs/operations.md).
"""

from __future__ import annotations

import logging
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from gateway.config import SerialSourceConfig

MIN_SILENT_AFTER_S = 60.0
"""No default threshold is shorter: a minute of nothing is not worth a line in a log."""
GAP_FACTOR = 3
"""Default threshold = this many times the longest gap a working sensor leaves."""
STREAM_GAP_S = 2.3
"""Longest gap between frames of a free-running sensor: SDS011 1 s (its working period is
set to continuous at connect), PMS5003/7003 0.2-2.3 s, MaxSonar 0.1-0.2 s."""
BLE_ADVERT_GAP_S = 300.0
"""Longest gap between adverts of a BLE sensor we read: RuuviTag 1.3 s, BTHome thermometers
2.5-60 s; five minutes leaves room for adverts lost on the air (default threshold 15 min)."""

Change = Literal["silent", "heard again", "not listening"]


def threshold_s(configured: float | None, longest_gap_s: float | None) -> float | None:
    """The silence threshold: `configured` (0: never silent), or when unset the default from
    the longest gap of a working sensor (None: the sensor may be quiet for any time: off)."""
    if configured is not None:
        return configured or None
    if longest_gap_s is None:
        return None
    return max(MIN_SILENT_AFTER_S, GAP_FACTOR * longest_gap_s)


def serial_gap_s(config: SerialSourceConfig) -> float | None:
    """The longest a working serial sensor goes without a frame (None: no bound). Judged on
    frames, not readings: a duty-cycled sensor warming up is heard, and `aggregate_s` does not
    lengthen it (a radar's aggregation sends counts of zero without hearing anything)."""
    if config.driver == "node":  # a node reports once per its interval
        return None if config.node_interval_s is None else float(config.node_interval_s)
    if config.driver == "ops243":  # the radar says nothing while nothing moves
        return None
    cycle = config.duty_cycle
    return STREAM_GAP_S if cycle is None else cycle.period_s - cycle.on_s + STREAM_GAP_S


@dataclass(slots=True)
class Silence:
    """One sensor's silence; monotonic seconds in, state out."""

    after_s: float | None
    """Silent after this long without hearing it; None: never."""
    due_from_s: float | None = None
    """When it was last heard, or when listening began; None while not listening."""
    silent_from_s: float | None = None
    """`due_from_s` of the silence the last `judge` saw; None when it saw none."""
    said: bool = False
    """The current silence was logged (so its end is logged too)."""

    def listen(self, now_s: float) -> None:
        """The device is open: something is due within `after_s` from now."""
        self.due_from_s = now_s

    def heard(self, now_s: float) -> None:
        """The sensor sent something."""
        self.due_from_s = now_s

    def stop(self) -> None:
        """The device is gone: not silence, its own state."""
        self.due_from_s = None

    def silent_for_s(self, now_s: float) -> float | None:
        """How long it has been silent, if it is."""
        if self.after_s is None or self.due_from_s is None:
            return None
        quiet_s = now_s - self.due_from_s
        return quiet_s if quiet_s >= self.after_s else None

    def judge(self, now_s: float) -> Change | None:
        """What changed since the last judgement, said once per episode."""
        if self.silent_for_s(now_s) is not None:
            if self.silent_from_s is not None:
                return None
            self.silent_from_s = self.due_from_s
            return "silent"
        if self.silent_from_s is None:
            return None
        self.silent_from_s = None
        return "not listening" if self.due_from_s is None else "heard again"


def judge_all(
    sensors: Mapping[str, Silence],
    now_s: float,
    *,
    log: logging.Logger,
    source: str,
    said_elsewhere: Container[str] = (),
) -> dict[str, float]:
    """Judge each sensor (named as its readings are) and log each change; the silent ones and
    for how long. A sensor in `said_elsewhere` when it goes silent (a meter already reported
    as not answering) gets no silence lines of its own in that episode."""
    silent: dict[str, float] = {}
    for sensor, silence in sensors.items():
        went_quiet_s = silence.silent_from_s
        change = silence.judge(now_s)
        quiet_s = silence.silent_for_s(now_s)
        heard_s = silence.due_from_s
        extra = {"source": source, "sensor": sensor}
        if change == "silent" and quiet_s is not None and sensor not in said_elsewhere:
            silence.said = True
            log.warning(
                "%s is silent: nothing heard from it for %.0f s while its port or adapter is "
                "up (silent_after_s %g)",
                sensor,
                quiet_s,
                silence.after_s,
                extra=extra | {"event": "sensor_silent"},
            )
        elif (
            change == "heard again"
            and silence.said
            and heard_s is not None
            and went_quiet_s is not None
        ):
            log.info(
                "%s is heard again after %.0f s of silence",
                sensor,
                heard_s - went_quiet_s,
                extra=extra | {"event": "sensor_heard_again"},
            )
        if change in ("heard again", "not listening"):
            silence.said = False
        if quiet_s is not None:
            silent[sensor] = round(quiet_s, 1)
    return silent
