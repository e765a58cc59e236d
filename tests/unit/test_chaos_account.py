"""The chaos run's accounting (bench/chaos_account.py) on made-up runs: every offered reading is
delivered or lost with a cause, and a loss outside the documented window is caught."""

from __future__ import annotations

import pytest

from bench.chaos_account import (
    Arrival,
    Fault,
    Frame,
    Run,
    account,
    frame_values,
    identify,
)

RATE = 10.0  # frames a second
T0_MS = 1_800_000_000_000


def frames(count: int, *, detached: frozenset[int] = frozenset()) -> list[Frame]:
    return [
        Frame(n, n / RATE, T0_MS + int(n * 1000 / RATE), True, n not in detached)
        for n in range(1, count + 1)
    ]


def arrivals(numbers: list[int], *, epoch: int = 7, delay_s: float = 0.5) -> list[Arrival]:
    out = []
    seq = 0
    for n in numbers:
        pm2_5, pm10 = frame_values(n)
        t_s, ts_ms = n / RATE + delay_s, T0_MS + int(n * 1000 / RATE) + 3
        out.append(Arrival(t_s, epoch, seq, ts_ms, "pm2_5_ugm3", pm2_5))
        out.append(Arrival(t_s, epoch, seq + 1, ts_ms, "pm10_ugm3", pm10))
        seq += 2
    return out


def test_every_reading_maps_back_to_its_frame_number_past_the_moduli() -> None:
    offered = frames(25_000)
    wall = [f.wall_ms for f in offered]
    for n in (1, 9966, 9967, 9973, 19_940, 24_999):
        for arrival in arrivals([n]):
            assert identify(offered, wall, arrival) == n


def test_a_run_without_faults_delivers_everything_and_balances() -> None:
    offered = frames(300)
    report = account(Run(offered, [], arrivals(list(range(1, 301))), [0.0], window_s=1.0))
    assert report["readings_delivered"] == 600
    assert report["readings_lost"] == 0
    assert report["unaccounted"] == 0
    assert report["goal_met"]


def test_losses_just_before_a_kill_are_the_documented_window() -> None:
    offered = frames(300)
    kill = Fault("kill9", 1, start_s=15.0, end_s=15.05)
    lost = set(range(141, 151))  # written 0.9 .. 0.0 s before the kill
    run = Run(offered, [kill], arrivals([n for n in range(1, 301) if n not in lost]), [0.0], 1.0)
    report = account(run)
    assert report["lost_by_cause"]["power_cut_window"] == 20
    assert report["lost_by_cause"]["other"] == 0
    assert report["unaccounted"] == 0
    assert report["goal_met"]


def test_a_loss_outside_the_window_is_listed_with_the_nearest_fault_and_breaks_the_goal() -> None:
    offered = frames(300)
    kill = Fault("kill9", 1, start_s=15.0, end_s=15.05)
    lost = {120}  # 3 s before the kill
    run = Run(offered, [kill], arrivals([n for n in range(1, 301) if n not in lost]), [0.0], 1.0)
    report = account(run)
    assert report["lost_by_cause"]["other"] == 2
    assert report["lost_other"][0]["frame"] == 120
    assert report["lost_other"][0]["nearest"]["fault"] == "kill9 #1"
    assert not report["goal_met"]
    assert report["unaccounted"] == 0


def test_frames_written_while_no_agent_had_the_port_open_are_documented_losses() -> None:
    offered = frames(100, detached=frozenset(range(40, 50)))
    run = Run(offered, [], arrivals([n for n in range(1, 101) if not 40 <= n < 50]), [0.0], 1.0)
    report = account(run)
    assert report["lost_by_cause"]["agent_not_running"] == 20
    assert report["goal_met"]


def test_re_sent_readings_are_duplicates_before_dedupe_only() -> None:
    offered = frames(50)
    sent = arrivals(list(range(1, 51)))
    run = Run(offered, [], sent + sent[10:20], [0.0], 1.0)
    report = account(run)
    assert report["duplicates_before_dedupe"] == 10
    assert report["duplicates_after_dedupe"] == 0
    assert report["readings_delivered"] == 100


def test_a_reading_re_sent_under_a_new_key_survives_dedupe_and_is_reported() -> None:
    offered = frames(50)
    again = arrivals([10], epoch=8)
    report = account(Run(offered, [], arrivals(list(range(1, 51))) + again, [0.0], 1.0))
    assert report["duplicates_after_dedupe"] == 2
    assert not report["goal_met"]


@pytest.mark.parametrize("recovery_s", [2.0, 20.0])
def test_recovery_is_measured_from_the_fault_end_to_the_first_newer_reading(
    recovery_s: float,
) -> None:
    offered = frames(400)
    hang = Fault("broker_hang", 1, start_s=10.0, end_s=15.0)
    sent = [a for a in arrivals(list(range(1, 401))) if a.t_s < 15.0]
    late = [
        Arrival(15.0 + recovery_s + a.t_s / 1000, a.epoch, a.seq, a.ts_ms, a.quantity, a.value)
        for a in arrivals(list(range(1, 401)))
        if a.t_s >= 15.0
    ]
    report = account(Run(offered, [hang], sent + late, [0.0], 1.0))
    assert report["recovery"]["broker_hang"]["max_s"] == pytest.approx(recovery_s, abs=0.1)
    assert report["goal_met"] == (recovery_s < 15.0)
