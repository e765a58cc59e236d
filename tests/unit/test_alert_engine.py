"""The alert engine: levels, for_s, hysteresis, rate of change, min interval (suppressions
counted), clears, per-device state for a BLE source, bounded state. Pure: the clock is passed."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.base import Measurement
from gateway.agent import alerts as engine_module
from gateway.agent.alerts import AlertEngine, AlertEvent
from gateway.config import AlertRule


def rule(**overrides: Any) -> AlertRule:
    fields: dict[str, Any] = {
        "name": "pm-high",
        "source": "pm",
        "quantity": "pm2_5_ugm3",
        "min_interval_s": 0.0,
    }
    return AlertRule(**(fields | overrides))


class Feeder:
    """Feeds one value a call at the given monotonic time; collects the events."""

    def __init__(self, *rules: AlertRule) -> None:
        self.engine = AlertEngine(rules)
        self.events: list[AlertEvent] = []

    def __call__(
        self, t: float, value: float, *, source: str = "pm", quantity: str = "pm2_5_ugm3"
    ) -> list[str]:
        measurements = [Measurement(quantity, value, "ug/m3"), Measurement("pm10_ugm3", 1, "ug/m3")]
        events = self.engine.feed(source, measurements, int(t * 1000), t)
        self.events += events
        return [("raise" if e.raised else "clear") for e in events]


def test_above_raises_at_the_first_reading_past_the_level_and_clears_back_below() -> None:
    feed = Feeder(rule(above=50.0))
    assert feed(0, 49.9) == []
    assert feed(1, 50.0) == [], "at the level is not above it"
    assert feed(2, 57.3) == ["raise"]
    assert feed(3, 60.0) == [], "said once"
    assert feed(4, 50.0) == ["clear"]
    raised, cleared = feed.events
    assert (raised.value, raised.threshold, raised.ts_ms) == (57.3, 50.0, 2000)
    assert (raised.rule, raised.source, raised.quantity, raised.unit) == (
        "pm-high",
        "pm",
        "pm2_5_ugm3",
        "ug/m3",
    )
    assert raised.series == ("pm", "alert/pm-high", "1")
    assert (cleared.raised, cleared.value, cleared.threshold) == (False, 50.0, 50.0)
    assert feed.engine.stats()["raised"] == 1 and feed.engine.stats()["cleared"] == 1


def test_below_raises_under_the_level() -> None:
    feed = Feeder(rule(below=10.0, hysteresis=2.0))
    assert feed(0, 10.0) == []
    assert feed(1, 9.0) == ["raise"]
    assert feed(2, 11.9) == [], "not back past below + hysteresis"
    assert feed(3, 12.0) == ["clear"]
    assert feed.events[-1].threshold == 12.0


def test_above_and_below_raise_outside_the_band() -> None:
    feed = Feeder(rule(above=100.0, below=10.0))
    assert feed(0, 50) == []
    assert feed(1, 5) == ["raise"]
    assert feed.events[-1].threshold == 10.0
    assert feed(2, 50) == ["clear"]
    assert feed(3, 150) == ["raise"]
    assert feed.events[-1].threshold == 100.0


def test_for_s_needs_the_condition_on_every_reading_for_that_long() -> None:
    feed = Feeder(rule(above=50.0, for_s=10.0))
    assert feed(0, 60) == []
    assert feed(5, 60) == []
    assert feed(6, 40) == [], "dropped back: the wait starts again"
    assert feed(7, 60) == []
    assert feed(16, 60) == []
    assert feed(17, 61) == ["raise"]
    assert feed.events[0].value == 61


def test_hysteresis_keeps_a_value_hovering_at_the_level_from_flapping() -> None:
    feed = Feeder(rule(above=50.0, hysteresis=5.0))
    said = [feed(t, v) for t, v in enumerate([51, 49, 51, 48, 52, 46, 51, 44.9])]
    assert [s for s in said if s] == [["raise"], ["clear"]]
    assert feed.events[1].value == 44.9 and feed.events[1].threshold == 45.0


def test_rate_of_change_rising_fast_raises_and_clears_when_it_slows() -> None:
    feed = Feeder(rule(rate_per_min=6.0, rate_window_s=60.0))
    said = [feed(t * 10, 100 + t) for t in range(30)]  # 1 per 10 s: 6 a minute
    assert said.index(["raise"]) == 3, "no rate until the samples span half the window"
    first = feed.events[0]
    assert first.threshold is None and first.rate_per_min == pytest.approx(6.0)
    feed2 = Feeder(rule(rate_per_min=6.0, rate_window_s=60.0))
    assert feed2(0, 100) == []
    assert feed2(20, 101) == [], "under half the window: no rate yet"
    assert feed2(30, 104) == ["raise"], "4 over 30 s is 8 a minute"
    assert feed2(60, 104) == ["clear"], "4 over 60 s is 4 a minute"


def test_a_falling_rate_with_a_level_needs_both() -> None:
    feed = Feeder(rule(below=50.0, rate_per_min=-10.0, rate_window_s=60.0))
    assert feed(0, 100) == []
    assert feed(30, 40) == ["raise"], "below 50 and falling 120 a minute"
    assert feed(60, 40) == [], "still falling over the window (60 in 60 s)"
    assert feed(90, 40) == ["clear"], "stopped falling"
    assert feed.events[0].threshold == 50.0, "raised: the level crossed"
    assert feed.events[1].threshold is None, "cleared by the rate: no level was crossed back"
    assert feed.events[1].rate_per_min == 0.0
    feed = Feeder(rule(below=50.0, rate_per_min=-10.0, rate_window_s=60.0))
    assert feed(0, 45) == []
    assert feed(30, 44) == [], "below, but falling only 2 a minute"


def test_min_interval_holds_transitions_back_and_counts_what_it_suppressed() -> None:
    feed = Feeder(rule(above=50.0, min_interval_s=60.0))
    assert feed(0, 60) == ["raise"]
    flapping = [feed(t, 40 if t % 2 else 60) for t in range(1, 59)]
    assert not any(flapping), "nothing said within the minute"
    assert feed.engine.stats()["suppressed"] == 29
    assert feed.engine.stats()["suppressed_by_rule"] == {"pm-high": 29}
    assert feed(59, 40) == [], "wants to clear, must wait"
    assert feed(60, 40) == ["clear"], "a minute after the raise"
    assert feed(61, 60) == [], "the next raise waits a minute after the clear"
    assert feed(120, 61) == ["raise"]
    assert feed.events[-1].value == 61


def test_only_the_rules_source_and_quantity_count() -> None:
    feed = Feeder(rule(above=50.0))
    assert feed(0, 60, source="other") == []
    assert feed(1, 60, quantity="temperature_c") == []
    assert feed(2, 60) == ["raise"]


def test_a_rule_on_a_ble_source_watches_each_device_on_its_own() -> None:
    feed = Feeder(rule(source="ble", above=50.0), rule(name="one", source="ble/kitchen", below=0))
    assert feed(0, 60, source="ble/garden") == ["raise"]
    assert feed(1, 60, source="ble/kitchen") == ["raise"]
    assert feed(2, -1, source="ble/kitchen") == ["raise", "clear"]
    assert [(e.rule, e.source, e.raised) for e in feed.events] == [
        ("pm-high", "ble/garden", True),
        ("pm-high", "ble/kitchen", True),
        ("one", "ble/kitchen", True),
        ("pm-high", "ble/kitchen", False),
    ]
    assert feed.engine.stats()["active"] == 2


def test_state_is_bounded_and_evictions_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "MAX_STATES", 8)
    feed = Feeder(rule(source="ble", above=50.0))
    for n in range(20):
        feed(n, 1, source=f"ble/dev{n}")
    assert len(feed.engine._states) == 8
    assert feed.engine.stats()["states_evicted"] == 12


def test_a_rate_window_keeps_a_bounded_number_of_samples() -> None:
    feed = Feeder(rule(rate_per_min=1000.0, rate_window_s=60.0))
    for n in range(10_000):
        feed(n * 0.01, 1.0)
    (state,) = feed.engine._states.values()
    assert len(state.samples) <= engine_module.MAX_SAMPLES
    assert state.samples[-1][0] - state.samples[0][0] >= 59, "the window still spans a minute"


def test_a_reading_that_is_not_a_number_neither_raises_nor_clears() -> None:
    feed = Feeder(rule(above=50.0), rule(name="rising", rate_per_min=1.0, rate_window_s=10))
    assert feed(0, 10) == []
    assert feed(5, 60) == ["raise", "raise"]
    assert feed(6, float("nan")) == []
    assert feed(7, float("inf")) == []
    assert feed.engine.stats()["active"] == 2
