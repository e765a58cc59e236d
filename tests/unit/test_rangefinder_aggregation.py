"""Rangefinder aggregation: the median distance and level per interval (odd and even counts,
outliers), min and max, report counts, no-target intervals, half-open interval boundaries; and
alert rules watching the aggregate see the median, not a single outlier."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import maxbotix
from drivers.base import Measurement
from drivers.maxbotix import AT_MAX, AT_MIN, IN_RANGE, NO_TARGET
from drivers.quantities import quantities
from gateway.agent.alerts import AlertEngine
from gateway.config import AlertRule
from gateway.sources.serial.rangefinder import RangeAggregator

MOUNT_MM = 4000


def _values(readings: list[Measurement]) -> dict[str, float]:
    return {m.quantity: m.value for m in readings}


def _interval(distances: list[int | None], *, mount_height_mm: int | None = MOUNT_MM) -> dict:
    """One 10 s interval of reports 0.1 s apart, flushed at its end."""
    agg = RangeAggregator(interval_s=10, start_s=0.0, mount_height_mm=mount_height_mm)
    for i, distance in enumerate(distances):
        status = NO_TARGET if distance is None else IN_RANGE
        assert agg.observe(status, distance, 0.1 * i) == []
    return _values(agg.flush(10.0))


def test_an_odd_count_sends_the_middle_distance_and_the_level_from_it() -> None:
    assert _interval([3010, 2990, 3000, 3020, 2980]) == {
        "range_status": IN_RANGE,
        "distance_reports": 5,
        "no_target_reports": 0,
        "distance_mm": 3000,
        "distance_min_mm": 2980,
        "distance_max_mm": 3020,
        "water_level_mm": 1000,
        "water_level_min_mm": 980,  # from the farthest distance
        "water_level_max_mm": 1020,  # from the nearest
    }


def test_an_even_count_sends_the_mean_of_the_two_middle_distances() -> None:
    values = _interval([3000, 3011, 2990, 3020])
    assert (values["distance_mm"], values["water_level_mm"]) == (3005.5, 994.5)
    assert _interval([3000, 3010])["distance_mm"] == 3005
    assert isinstance(_interval([3000, 3010])["distance_mm"], int), "whole mm stay integers"


def test_a_bird_or_a_wave_crest_moves_min_and_max_but_not_the_median() -> None:
    values = _interval([3000, 3002, 450, 2998, 3001, 3000, 4990])
    assert values["distance_mm"] == 3000
    assert (values["distance_min_mm"], values["distance_max_mm"]) == (450, 4990)
    assert (values["water_level_min_mm"], values["water_level_max_mm"]) == (-990, 3550)


def test_an_interval_of_only_no_target_reports_sends_the_counts_and_status_3() -> None:
    assert _interval([None, None, None]) == {
        "range_status": NO_TARGET,
        "distance_reports": 0,
        "no_target_reports": 3,
    }


def test_no_target_reports_are_counted_but_never_a_distance() -> None:
    values = _interval([None, 3000, None, 3100, 3200])
    assert (values["distance_reports"], values["no_target_reports"]) == (3, 2)
    assert values["distance_mm"] == 3100 and values["range_status"] == IN_RANGE


def test_without_mount_height_there_is_no_level() -> None:
    assert "water_level_mm" not in _interval([3000], mount_height_mm=None)
    assert not any(q.startswith("water_level") for q in _interval([3000], mount_height_mm=None))


def test_the_status_is_the_medians_at_the_minimum_or_maximum_and_in_range_between() -> None:
    agg = RangeAggregator(interval_s=10, start_s=0.0)
    for status, distance in ((AT_MIN, 300), (AT_MIN, 300), (IN_RANGE, 900)):
        agg.observe(status, distance, 1.0)
    assert _values(agg.flush(10.0))["range_status"] == AT_MIN, "the water is at least this high"
    for status, distance in ((AT_MIN, 300), (IN_RANGE, 320)):
        agg.observe(status, distance, 11.0)
    assert _values(agg.flush(20.0))["range_status"] == IN_RANGE, "310 mm is a distance"
    for status, distance in ((AT_MAX, 7650), (AT_MAX, 7650), (IN_RANGE, 7000)):
        agg.observe(status, distance, 21.0)
    assert _values(agg.flush(30.0))["range_status"] == AT_MAX


def test_an_interval_without_reports_sends_nothing_and_missed_intervals_are_skipped() -> None:
    agg = RangeAggregator(interval_s=10, start_s=100.0)
    assert agg.flush(109.9) == [], "not yet due"
    assert agg.flush(110.0) == [], "due, but the sensor was silent"
    agg.observe(IN_RANGE, 3000, 111.0)
    assert agg.flush(145.0) != []
    assert agg.due_s == 150.0


def test_a_report_at_the_end_of_an_interval_belongs_to_the_next_and_closes_the_last() -> None:
    agg = RangeAggregator(interval_s=10, start_s=0.0)
    agg.observe(IN_RANGE, 1000, 9.999)
    closed = agg.observe(IN_RANGE, 2000, 10.0)  # the flush task has not run yet
    assert _values(closed)["distance_mm"] == 1000 and _values(closed)["distance_reports"] == 1
    assert agg.flush(10.001) == [], "the source's flush finds it sent"
    assert _values(agg.flush(20.0))["distance_mm"] == 2000


def test_take_feeds_decoded_lines_and_returns_nothing_until_an_interval_ends() -> None:
    decoder = maxbotix.StreamDecoder(model="MB7389", mount_height_mm=MOUNT_MM)
    agg = RangeAggregator(interval_s=10, start_s=0.0, mount_height_mm=MOUNT_MM)
    frames = decoder.feed(b"HRXL-MaxSonar-WR\rR3000\rR5000\rR0300\rR3100\r")
    assert agg.take(frames, 1.0) == []
    values = _values(agg.take(decoder.feed(b"R2000\r"), 10.0))
    assert (values["distance_reports"], values["no_target_reports"]) == (3, 1)
    assert (values["distance_mm"], values["distance_min_mm"]) == (3000, 300)


def test_the_register_table_lists_what_an_aggregate_sends_in_order() -> None:
    agg = RangeAggregator(interval_s=10, start_s=0.0, mount_height_mm=MOUNT_MM)
    agg.observe(IN_RANGE, 3000, 1.0)
    sent = agg.flush(10.0)
    assert quantities("maxbotix", aggregated=True) == tuple((m.quantity, m.unit) for m in sent)
    assert quantities("ops243", aggregated=True) == ()


def test_an_alert_on_the_aggregated_source_sees_the_median_not_one_outlier() -> None:
    """A bird under the sensor reads as a 3.5 m flood for one report: per report that raises
    the alert; aggregated, the interval's median level stays where the water is."""
    rule = AlertRule(name="flood", source="canal", quantity="water_level_mm", above=2000)
    reports = [3000, 3001, 500, 2999, 3000]  # level 1000 mm, one report at 3500 mm
    per_report, aggregated = AlertEngine([rule]), AlertEngine([rule])
    decoder = maxbotix.StreamDecoder(model="MB7389", mount_height_mm=MOUNT_MM)
    agg = RangeAggregator(interval_s=10, start_s=0.0, mount_height_mm=MOUNT_MM)
    raised = []
    for i, distance in enumerate(reports):
        frames = decoder.feed(maxbotix.encode(distance, model="MB7389"))
        raised += per_report.feed("canal", frames[0].measurements, i * 150, i * 0.15)
        agg.take(frames, i * 0.15)
    assert [e.value for e in raised] == [3500]
    medians = agg.flush(10.0)
    assert aggregated.feed("canal", medians, 10_000, 10.0) == []
    assert _values(medians)["water_level_max_mm"] == 3500, "the outlier is still in the max"


_REPORT = st.one_of(st.none(), st.integers(300, 4999))


@given(st.lists(_REPORT, min_size=1, max_size=200))
def test_any_interval_gives_the_statistics_of_its_reports(reports: list[int | None]) -> None:
    values = _interval(reports)
    distances = [d for d in reports if d is not None]
    assert values["distance_reports"] == len(distances)
    assert values["no_target_reports"] == len(reports) - len(distances)
    if not distances:
        assert values == {
            "range_status": NO_TARGET,
            "distance_reports": 0,
            "no_target_reports": len(reports),
        }
        return
    assert values["distance_mm"] == statistics.median(distances)
    assert (values["distance_min_mm"], values["distance_max_mm"]) == (
        min(distances),
        max(distances),
    )
    assert values["water_level_mm"] == MOUNT_MM - statistics.median(distances)
    assert values["water_level_min_mm"] == MOUNT_MM - max(distances)
    assert values["water_level_max_mm"] == MOUNT_MM - min(distances)


@given(
    st.lists(st.tuples(st.floats(0, 95), _REPORT, st.booleans()), max_size=100),
    st.floats(0.5, 30),
)
def test_each_report_counts_once_in_the_half_open_interval_it_arrived_in(
    timed: list[tuple[float, int | None, bool]], interval_s: float
) -> None:
    """Reports in time order, the source's flush task having run before some of them (or not
    yet): each interval with reports is sent once, with exactly the reports of [due -
    interval_s, due); an interval without any sends nothing."""
    timed.sort(key=lambda report: report[0])
    agg = RangeAggregator(interval_s=interval_s, start_s=0.0)
    sent: dict[float, list[Measurement]] = {}
    members: dict[float, list[int | None]] = {}

    def send(due_s: float, readings: list[Measurement]) -> None:
        if readings:
            assert due_s not in sent
            sent[due_s] = readings

    for t, distance, task_ran in timed:
        if task_ran:
            send(agg.due_s, agg.flush(t))
        send(agg.due_s, agg.observe(NO_TARGET if distance is None else IN_RANGE, distance, t))
        assert agg.due_s - interval_s <= t + 1e-9 and t < agg.due_s
        members.setdefault(agg.due_s, []).append(distance)
    send(agg.due_s, agg.flush(agg.due_s))
    assert set(sent) == set(members)
    for due_s, readings in sent.items():
        values, inside = _values(readings), members[due_s]
        distances = [d for d in inside if d is not None]
        assert values["no_target_reports"] == len(inside) - len(distances)
        assert values["distance_reports"] == len(distances)
        assert values.get("distance_mm") == (statistics.median(distances) if distances else None)


def test_a_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        RangeAggregator(interval_s=0, start_s=0.0)
