"""Gap tracking (gateway/hub/gaps.py): runs merged, holes found, gaps opened after the grace
period, closed when filled, and what is left of a partly filled gap kept open."""

from __future__ import annotations

from gateway.hub.gaps import Hole, Run, holes, merge, plan, reconcile, runs_of


def test_runs_of_splits_at_missing_numbers_in_any_order_with_duplicates() -> None:
    assert runs_of([5, 1, 2, 3, 3, 7, 6, 10]) == [(1, 3), (5, 7), (10, 10)]
    assert runs_of([]) == []


def test_merge_joins_overlapping_and_adjacent_runs_keeping_the_earliest_arrival() -> None:
    merged = merge([Run(11, 20, 300), Run(1, 10, 100), Run(5, 12, 50), Run(30, 40, 200)])
    assert merged == [Run(1, 20, 50), Run(30, 40, 200)]


def test_a_hole_is_visible_since_the_earliest_arrival_of_anything_beyond_it() -> None:
    merged = [Run(1, 10, 100), Run(21, 30, 500), Run(41, 50, 300)]
    assert holes(merged) == [Hole(11, 20, 300), Hole(31, 40, 300)]
    assert holes([Run(5, 9, 1)]) == []  # nothing before the first run is a gap


def test_a_hole_becomes_a_gap_only_after_the_grace_period() -> None:
    found = [Hole(11, 20, 1000)]
    assert reconcile([], found, now_ms=1500, grace_ms=1000).open == []
    assert reconcile([], found, now_ms=2000, grace_ms=1000).open == found


def test_a_filled_gap_closes_and_an_unchanged_one_stays() -> None:
    open_gaps = [Hole(11, 20, 1000), Hole(31, 40, 1000)]
    change = reconcile(open_gaps, [Hole(31, 40, 1000)], now_ms=9000, grace_ms=1000)
    assert change.close == [(11, 20)]
    assert change.open == []


def test_what_is_left_of_a_partly_filled_gap_opens_at_once_with_its_old_opening_time() -> None:
    change = reconcile([Hole(11, 20, 1000)], [Hole(15, 20, 8900)], now_ms=9000, grace_ms=1000)
    assert change.close == [(11, 20)]
    assert change.open == [Hole(15, 20, 1000)]


def test_the_keeper_plan_merges_runs_and_opens_gaps_per_stream() -> None:
    runs = [
        (1, "gw", 7, 1, 10, 100),
        (2, "gw", 7, 11, 20, 200),
        (3, "gw", 7, 31, 40, 300),
        (4, "other", 1, 1, 5, 100),
    ]
    change = plan(runs, [], now_ms=10_000, grace_ms=1000)
    assert sorted(change.delete_run_ids) == [1, 2, 3]
    assert sorted(change.insert_runs) == [("gw", 7, 1, 20, 100), ("gw", 7, 31, 40, 300)]
    assert change.open == [("gw", 7, 21, 30, 300)]
    assert change.close == []


def test_the_keeper_plan_closes_a_gap_once_a_resend_arrived() -> None:
    runs = [(1, "gw", 7, 1, 20, 100), (2, "gw", 7, 21, 30, 900), (3, "gw", 7, 31, 40, 300)]
    change = plan(runs, [("gw", 7, 21, 30, 500)], now_ms=10_000, grace_ms=1000)
    assert change.close == [("gw", 7, 21, 30)]
    assert change.insert_runs == [("gw", 7, 1, 40, 100)]
