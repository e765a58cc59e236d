"""Traffic aggregation: vehicles separated by gaps, counts per direction, nearest-rank v50/v85."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import ops243
from drivers.base import Measurement
from drivers.ops243_units import UNITS
from gateway.sources.serial.traffic import TrafficAggregator, percentile


def _car(agg: TrafficAggregator, start_s: float, speeds: list[float], direction: int) -> float:
    """Detections 0.1 s apart; returns the time of the last one."""
    t = start_s
    for i, speed in enumerate(speeds):
        t = start_s + 0.1 * i
        agg.observe(speed, direction, t)
    return t


def _values(readings: list[Measurement]) -> dict[str, float]:
    return {m.quantity: m.value for m in readings}


def test_each_run_of_detections_is_one_vehicle_at_its_peak_speed() -> None:
    agg = TrafficAggregator(interval_s=60, units="kmh", start_s=0.0)
    _car(agg, 1.0, [40, 44, 47, 45, 41], 1)  # peak 47
    _car(agg, 5.0, [30, 33, 31], 1)  # 3.6 s later: another car
    _car(agg, 9.0, [52, 55, 50], -1)
    readings = agg.flush(60.0)
    assert _values(readings) == {
        "vehicles_inbound": 2,
        "vehicles_outbound": 1,
        "speed_v50_inbound_kmh": 33,
        "speed_v85_inbound_kmh": 47,
        "speed_max_inbound_kmh": 47,
        "speed_v50_outbound_kmh": 55,
        "speed_v85_outbound_kmh": 55,
        "speed_max_outbound_kmh": 55,
    }
    assert {m.unit for m in readings} == {"1", "km/h"}


def test_a_gap_shorter_than_gap_s_does_not_split_a_vehicle_and_a_longer_one_does() -> None:
    agg = TrafficAggregator(interval_s=10, units="kmh", start_s=0.0, gap_s=1.0)
    agg.observe(40, 1, 1.0)
    agg.observe(41, 1, 1.9)  # 0.9 s later: same vehicle
    agg.observe(42, 1, 3.0)  # 1.1 s later: the next one
    assert _values(agg.flush(10.0))["vehicles_inbound"] == 2


def test_opposite_directions_at_once_are_two_vehicles() -> None:
    agg = TrafficAggregator(interval_s=10, units="mps", start_s=0.0)
    for i in range(10):
        agg.observe(10.0, 1, 1 + i * 0.1)
        agg.observe(12.0, -1, 1 + i * 0.1)
    values = _values(agg.flush(10.0))
    assert (values["vehicles_inbound"], values["vehicles_outbound"]) == (1, 1)


def test_a_vehicle_still_in_view_counts_in_the_interval_it_ends_in() -> None:
    agg = TrafficAggregator(interval_s=10, units="kmh", start_s=0.0)
    _car(agg, 9.5, [30, 31, 32, 33, 34, 35, 36], 1)  # 9.5 .. 10.1 s
    first = agg.flush(10.0)
    assert _values(first) == {"vehicles_inbound": 0, "vehicles_outbound": 0}
    assert _values(agg.flush(20.0))["speed_max_inbound_kmh"] == 36


def test_endless_detections_are_split_at_max_vehicle_s() -> None:
    agg = TrafficAggregator(interval_s=100, units="kmh", start_s=0.0, max_vehicle_s=15)
    for i in range(400):  # 40 s of a crawling queue
        agg.observe(8.0, -1, i * 0.1)
    assert _values(agg.flush(100.0))["vehicles_outbound"] == 3


def test_zero_speed_direction_zero_and_nan_detections_are_ignored() -> None:
    agg = TrafficAggregator(interval_s=10, units="kmh", start_s=0.0)
    agg.observe(0.0, 1, 1.0)
    agg.observe(30.0, 0, 1.0)
    agg.observe(float("nan"), 1, 2.0)
    agg.observe(float("inf"), -1, 2.0)
    assert _values(agg.flush(10.0)) == {"vehicles_inbound": 0, "vehicles_outbound": 0}


def test_flush_before_the_interval_ends_gives_nothing_and_missed_intervals_are_skipped() -> None:
    agg = TrafficAggregator(interval_s=10, units="kmh", start_s=100.0)
    assert agg.flush(109.9) == []
    assert agg.flush(135.0) != []
    assert agg.due_s == 140.0


def test_detections_in_another_unit_are_converted() -> None:
    agg = TrafficAggregator(interval_s=10, units="kmh", start_s=0.0)
    agg.observe(10.0, 1, 1.0, UNITS["mps"])
    assert _values(agg.flush(10.0))["speed_max_inbound_kmh"] == 36.0


def test_take_feeds_speed_reports_and_passes_the_rest_on() -> None:
    agg = TrafficAggregator(interval_s=10, units="kmh", start_s=0.0)
    frames = ops243.StreamDecoder(units="kmh").feed(
        b'45.6\r\n-33\r\n{"Version":"1.3.1"}\r\n'
        b'{"TimedSpeedCounts":{"direction":"outbound","units":"kmh","count":"3","average":"-30"}}'
        b"\r\n"
    )
    passed = agg.take(frames, 1.0)
    assert [m.quantity for m in passed] == ["vehicles_outbound", "speed_avg_outbound_kmh"]
    values = _values(agg.flush(10.0))
    assert (values["vehicles_inbound"], values["vehicles_outbound"]) == (1, 1)


def test_range_units_are_refused() -> None:
    with pytest.raises(ValueError, match="range unit"):
        TrafficAggregator(interval_s=10, units="m", start_s=0.0)


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([50.0], 85, 50.0),
        ([10.0, 20.0], 50, 10.0),
        ([float(v) for v in range(1, 21)], 85, 17.0),  # ceil(0.85 * 20) = 17th
        ([float(v) for v in range(1, 21)], 50, 10.0),
        ([float(v) for v in range(1, 8)], 85, 6.0),  # ceil(5.95) = 6th
    ],
)
def test_percentiles_are_nearest_rank(values: list[float], pct: float, expected: float) -> None:
    assert percentile(values, pct) == expected


@given(
    st.lists(
        st.tuples(st.floats(1, 200), st.sampled_from([1, -1]), st.floats(1.5, 30)),
        max_size=30,
    )
)
def test_every_car_separated_by_more_than_the_gap_is_counted_once(
    cars: list[tuple[float, int, float]],
) -> None:
    agg = TrafficAggregator(interval_s=10_000, units="kmh", start_s=0.0)
    t = 0.0
    for speed, direction, gap in cars:
        t = _car(agg, t + gap, [speed * 0.9, speed, speed * 0.95], direction) + 0.0
    values = _values(agg.flush(10_000.0))
    assert values["vehicles_inbound"] == sum(1 for c in cars if c[1] == 1)
    assert values["vehicles_outbound"] == sum(1 for c in cars if c[1] == -1)
    for name, sign in (("inbound", 1), ("outbound", -1)):
        speeds = [round(c[0], 1) for c in cars if c[1] == sign]
        if speeds:
            assert values[f"speed_max_{name}_kmh"] == pytest.approx(max(speeds), abs=0.051)
