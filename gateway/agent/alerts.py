"""Edge alert rules evaluated as readings arrive: pure, the clock passed in (docs/alerts.md).

`AlertEngine.feed` takes the readings the ingest takes and returns the raises and clears they
cause. Per rule and source it keeps a verdict (`wanted`: the condition held for `for_s`, not yet
back past the level by `hysteresis`), what was last said (`said`), and for a rate of change a
bounded window of samples. What is said follows the verdict, but no sooner than
`min_interval_s` after the last thing said; a verdict that turns back before then is never said
and counts as a suppression. A reading that is not a finite number changes nothing. State is
bounded: at most `MAX_STATES` (rule, source) pairs, the least recently fed forgotten first
(counted).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from drivers.base import Measurement
from gateway.config.alerts import AlertRule
from gateway.readings import Series

ALERT_PREFIX = "alert/"
"""An alert reading's quantity is `alert/<rule name>`, its unit "1", its value 1 or 0."""
ALERT_UNIT = "1"
MAX_STATES = 4096
"""(rule, source) pairs kept: a rule on a BLE source watches each of its devices."""
MAX_SAMPLES = 256
"""Samples a rate window keeps; faster readings replace the newest sample (decimation)."""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A raise or a clear, said at `ts_ms` (the reading's time) about `source`'s `quantity`."""

    rule: str
    source: str
    quantity: str
    unit: str
    raised: bool
    value: float | None
    """The reading that made this transition go out (None: sent again after a restart)."""
    threshold: float | None
    """Raise: the level crossed; clear: the level minus/plus hysteresis it came back past;
    None where the rate alone decided."""
    rate_per_min: float | None
    """The rate of change measured at that reading (rules with `rate_per_min` only)."""
    ts_ms: int

    @property
    def series(self) -> Series:
        """The series of the alert reading: (source, "alert/<rule>", "1")."""
        return Series(self.source, ALERT_PREFIX + self.rule, ALERT_UNIT)


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """An alert reading the buffer accepted, with its key: what an uplink sends at once."""

    seq: int
    epoch: int
    event: AlertEvent
    clock_synced: bool = True


class _State:
    """One rule's view of one source."""

    __slots__ = ("holding_since_s", "last_said_s", "pending", "said", "samples", "side", "wanted")

    def __init__(self) -> None:
        self.wanted = False
        self.said = False
        self.holding_since_s: float | None = None
        self.last_said_s: float | None = None
        self.pending = False  # the verdict differs from what was said, waiting for min_interval
        self.side = ""  # "above" or "below": the level that raised it
        self.samples: deque[tuple[float, float]] = deque(maxlen=MAX_SAMPLES)


class AlertEngine:
    """Every configured rule against every reading fed; returns what to say."""

    def __init__(self, rules: Sequence[AlertRule]) -> None:
        self.rules = list(rules)
        self._exact: dict[str, list[AlertRule]] = {}
        self._devices: dict[str, list[AlertRule]] = {}  # a BLE source's name -> its device rules
        for rule in self.rules:
            self._exact.setdefault(rule.source, []).append(rule)
            if "/" not in rule.source:
                self._devices.setdefault(rule.source, []).append(rule)
        self._states: OrderedDict[tuple[str, str], _State] = OrderedDict()
        self.raised = 0
        self.cleared = 0
        self.suppressed: dict[str, int] = {}
        """Transitions not said, by rule (they turned back within min_interval_s)."""
        self.evicted = 0

    def feed(
        self, source: str, measurements: Sequence[Measurement], ts_ms: int, now_s: float
    ) -> list[AlertEvent]:
        """The raises and clears these readings cause (usually none). `now_s`: monotonic."""
        rules = self._exact.get(source)
        if "/" in source:
            by_device = self._devices.get(source.partition("/")[0])
            if by_device:
                rules = [*(rules or ()), *by_device]
        if not rules:
            return []
        events: list[AlertEvent] = []
        for rule in rules:
            for m in measurements:
                if m.quantity == rule.quantity and math.isfinite(m.value):  # NaN: no verdict
                    event = self._step(rule, source, m, ts_ms, now_s)
                    if event is not None:
                        events.append(event)
        return events

    def _state(self, rule: AlertRule, source: str) -> _State:
        key = (rule.name, source)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State()
            while len(self._states) > MAX_STATES:
                self._states.popitem(last=False)
                self.evicted += 1
        else:
            self._states.move_to_end(key)
        return state

    def _step(
        self, rule: AlertRule, source: str, m: Measurement, ts_ms: int, now_s: float
    ) -> AlertEvent | None:
        state = self._state(rule, source)
        value = m.value
        rate = _rate(state, rule, value, now_s) if rule.rate_per_min is not None else None
        if not state.wanted:
            side = _triggered(rule, value, rate)
            if side is None:
                state.holding_since_s = None
            else:
                if state.holding_since_s is None:
                    state.holding_since_s = now_s
                if now_s - state.holding_since_s >= rule.for_s:
                    state.wanted, state.side = True, side
        else:
            cleared_by = _cleared(rule, value, rate)
            if cleared_by is not None:
                state.wanted, state.holding_since_s = False, None
                if cleared_by == "rate":
                    state.side = "rate"  # the level was not crossed back: no threshold
        if state.wanted == state.said:
            if state.pending:  # turned back before it could be said
                state.pending = False
                self.suppressed[rule.name] = self.suppressed.get(rule.name, 0) + 1
            return None
        if state.last_said_s is not None and now_s - state.last_said_s < rule.min_interval_s:
            state.pending = True
            return None
        state.said, state.last_said_s, state.pending = state.wanted, now_s, False
        if state.said:
            self.raised += 1
        else:
            self.cleared += 1
        return AlertEvent(
            rule=rule.name,
            source=source,
            quantity=rule.quantity,
            unit=m.unit,
            raised=state.said,
            value=value,
            threshold=_threshold(rule, state.side, raised=state.said),
            rate_per_min=rate,
            ts_ms=ts_ms,
        )

    def stats(self) -> dict[str, object]:
        """Counters for the metrics message and `citygw status`."""
        return {
            "rules": len(self.rules),
            "active": sum(1 for s in self._states.values() if s.said),
            "raised": self.raised,
            "cleared": self.cleared,
            "suppressed": sum(self.suppressed.values()),
            "suppressed_by_rule": dict(self.suppressed),
            "states_evicted": self.evicted,
        }


def is_alert(series: Series) -> bool:
    """Whether `series` is an alert rule's (quantity `alert/<rule>`, unit "1")."""
    return series.quantity.startswith(ALERT_PREFIX) and series.unit == ALERT_UNIT


def recovered_event(
    series: Series,
    value: float,
    ts_ms: int,
    rules: Mapping[str, AlertRule],
    known: Iterable[Series],
) -> AlertEvent:
    """An alert reading found in the buffer at the start, as an event: what the reading and the
    rule (if still configured) say; the crossing value and the rate were not stored."""
    name = series.quantity[len(ALERT_PREFIX) :]
    rule = rules.get(name)
    quantity = rule.quantity if rule is not None else ""
    unit = next((s.unit for s in known if (s.source, s.quantity) == (series.source, quantity)), "")
    raised = value != 0
    threshold = None
    if rule is not None and (rule.above is None) != (rule.below is None):
        threshold = _threshold(rule, "above" if rule.below is None else "below", raised=raised)
    return AlertEvent(
        rule=name,
        source=series.source,
        quantity=quantity,
        unit=unit,
        raised=raised,
        value=None,
        threshold=threshold,
        rate_per_min=None,
        ts_ms=ts_ms,
    )


def _triggered(rule: AlertRule, value: float, rate: float | None) -> str | None:
    """Which condition holds ("above", "below", "rate"), or None."""
    side = "rate"
    if rule.above is not None or rule.below is not None:
        if rule.above is not None and value > rule.above:
            side = "above"
        elif rule.below is not None and value < rule.below:
            side = "below"
        else:
            return None
    if rule.rate_per_min is not None and not _rate_holds(rule.rate_per_min, rate):
        return None
    return side


def _cleared(rule: AlertRule, value: float, rate: float | None) -> str | None:
    """Why a raised alert clears: "rate" (a rate rule whose rate no longer holds), "level"
    (back inside the levels by the hysteresis), or None."""
    if rule.rate_per_min is not None and not _rate_holds(rule.rate_per_min, rate):
        return "rate"
    if rule.above is None and rule.below is None:
        return None
    above_ok = rule.above is None or value <= rule.above - rule.hysteresis
    below_ok = rule.below is None or value >= rule.below + rule.hysteresis
    return "level" if above_ok and below_ok else None


def _rate_holds(limit: float, rate: float | None) -> bool:
    if rate is None:
        return False
    return rate >= limit if limit > 0 else rate <= limit


def _rate(state: _State, rule: AlertRule, value: float, now_s: float) -> float | None:
    """Change per minute from the oldest sample in the window to this one; None until the
    samples span half the window."""
    samples, window_s = state.samples, rule.rate_window_s
    if len(samples) >= 2 and now_s - samples[-2][0] < window_s / (MAX_SAMPLES - 16):
        samples[-1] = (now_s, value)  # decimate: the window keeps at most MAX_SAMPLES
    else:
        samples.append((now_s, value))
    while samples and samples[0][0] < now_s - window_s:
        samples.popleft()
    first_s, first_value = samples[0]
    span_s = now_s - first_s
    if span_s < window_s / 2:
        return None
    return (value - first_value) / span_s * 60.0


def _threshold(rule: AlertRule, side: str, *, raised: bool) -> float | None:
    level = rule.above if side == "above" else rule.below if side == "below" else None
    if level is None or raised:
        return level
    return level - rule.hysteresis if side == "above" else level + rule.hysteresis
