"""The chaos run's accounting: which offered frame reached the hub, which was lost and why.

Pure functions over what bench/chaos.py recorded (no I/O, no clocks), so the rules can be tested
with made-up runs (tests/unit/test_chaos_account.py).

Every SDS011 data frame the feeder offers carries its frame number n (1, 2, ...) in its two
16-bit values: PM2.5 raw = n mod 9973, PM10 raw = n mod 9967 (0.1 ug/m3 units; both moduli are
prime, so the pair names n up to 99 M frames, and each value alone names n given the reading's
timestamp: a frame is decoded well within 9967 frames of being written). A delivered reading is
mapped back to (n, quantity) from its value and timestamp.

Causes of a lost reading, in the order they are tried:

- ``not_written``: the feeder could not write it (the port was unplugged, or the line was full
  because nobody read it). Documented: a sensor's data while nobody reads the port is not seen.
- ``agent_not_running``: written while no process had the port open (between a kill and the
  restart's open, during an orderly stop). Documented the same way.
- ``port_open_flush``: written within ``OPEN_FLUSH_S`` after the agent opened the port: opening a
  serial port discards pending input (pyserial's open), as on a real UART.
- ``power_cut_window``: written at most the documented window (``commit_interval_ms``, or
  ``flush_interval_s`` if shorter; docs/operations.md) before a kill -9.
- ``other``: anything else. These break the goal; each is listed with the nearest fault.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

MODULI = {"pm2_5_ugm3": 9973, "pm10_ugm3": 9967}
QUANTITIES = tuple(MODULI)
OPEN_FLUSH_S = 0.1
DOCUMENTED_CAUSES = ("not_written", "agent_not_running", "port_open_flush", "power_cut_window")
RECOVERY_GOAL_S = 15.0


def frame_values(n: int) -> tuple[float, float]:
    """(PM2.5, PM10) in ug/m3 that carry frame number n."""
    return (n % MODULI["pm2_5_ugm3"]) / 10, (n % MODULI["pm10_ugm3"]) / 10


@dataclass(frozen=True)
class Frame:
    n: int
    t_s: float  # monotonic, when written (or due, if not written)
    wall_ms: int  # wall clock at the same moment, to compare with readings' ts_ms
    written: bool
    attached: bool  # a process had the port open when it was written


@dataclass(frozen=True)
class Fault:
    kind: str
    index: int  # 1, 2, ... per kind
    start_s: float
    end_s: float  # when the fault was over (restart, SIGCONT, replug, space freed, ...)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Arrival:
    t_s: float  # monotonic, at the hub subscriber
    epoch: int
    seq: int
    ts_ms: int
    quantity: str
    value: float


@dataclass
class Run:
    frames: list[Frame]
    faults: list[Fault]
    arrivals: list[Arrival]
    attach_edges_s: list[float]  # when the feeder saw a process open the port
    window_s: float  # the documented power-cut window


def identify(frames: Sequence[Frame], wall_index: Sequence[int], arrival: Arrival) -> int | None:
    """The frame number a delivered reading carries, or None if it matches no offered frame."""
    modulus = MODULI.get(arrival.quantity)
    if modulus is None or not frames:
        return None
    residue = round(arrival.value * 10)
    # the last frame written at or before the reading's timestamp (+ a little clock slack)
    last = bisect.bisect_right(wall_index, arrival.ts_ms + 50)
    if last == 0:
        return None
    newest = frames[last - 1].n
    n = newest - ((newest - residue) % modulus)
    if n < 1 or n > frames[-1].n:
        return None
    return n


def _nearest_fault(faults: Sequence[Fault], t_s: float) -> dict[str, Any] | None:
    best: tuple[float, Fault] | None = None
    for fault in faults:
        if fault.start_s <= t_s <= fault.end_s:
            distance = 0.0
        else:
            distance = min(abs(t_s - fault.start_s), abs(t_s - fault.end_s))
        if best is None or distance < best[0]:
            best = (distance, fault)
    if best is None:
        return None
    fault = best[1]
    return {
        "fault": f"{fault.kind} #{fault.index}",
        "written_minus_fault_start_s": round(t_s - fault.start_s, 3),
        "written_minus_fault_end_s": round(t_s - fault.end_s, 3),
    }


def classify(run: Run, frame: Frame, kills_s: Sequence[float]) -> str:
    """Why a reading of this frame may be missing (see the module docstring)."""
    if not frame.written:
        return "not_written"
    if not frame.attached:
        return "agent_not_running"
    i = bisect.bisect_right(run.attach_edges_s, frame.t_s)
    if i and frame.t_s - run.attach_edges_s[i - 1] <= OPEN_FLUSH_S:
        return "port_open_flush"
    k = bisect.bisect_left(kills_s, frame.t_s)
    if k < len(kills_s) and kills_s[k] - frame.t_s <= run.window_s:
        return "power_cut_window"
    if k and frame.t_s > kills_s[k - 1] and (i == 0 or run.attach_edges_s[i - 1] < kills_s[k - 1]):
        # written after a kill, before the restarted agent opened the port: the feeder's
        # check for an open port raced the process's death
        return "agent_not_running"
    return "other"


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _ranges(numbers: Iterable[int], limit: int = 20) -> list[str]:
    out: list[str] = []
    ordered = sorted(numbers)
    start = prev = None
    for x in ordered:
        if start is None:
            start = prev = x
        elif prev is not None and x == prev + 1:
            prev = x
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = x
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


def account(run: Run) -> dict[str, Any]:
    """The report's figures: delivered, lost by cause, duplicates, gaps, order, recovery."""
    frames = run.frames
    wall_index = [f.wall_ms for f in frames]
    kills_s = sorted(f.start_s for f in run.faults if f.kind == "kill9")

    delivered: dict[tuple[int, str], int] = {}  # (n, quantity) -> first arrival index
    keys_of: dict[tuple[int, str], set[tuple[int, int]]] = defaultdict(set)
    key_count: Counter[tuple[int, int]] = Counter()
    phantoms: list[dict[str, Any]] = []
    first_arrival_n: list[tuple[float, int]] = []  # (arrival time, n), first arrivals only
    out_of_order_keys = 0
    out_of_order_frames = 0
    max_seq: dict[int, int] = {}
    max_n = 0
    for i, arrival in enumerate(run.arrivals):
        key = (arrival.epoch, arrival.seq)
        key_count[key] += 1
        n = identify(frames, wall_index, arrival)
        if n is None:
            phantoms.append(
                {"epoch": arrival.epoch, "seq": arrival.seq, "quantity": arrival.quantity,
                 "value": arrival.value, "ts_ms": arrival.ts_ms}
            )  # fmt: skip
            continue
        keys_of[(n, arrival.quantity)].add(key)
        if key_count[key] > 1:
            continue  # a re-sent reading: dropped by the hub's dedupe
        if arrival.seq < max_seq.get(arrival.epoch, -1):
            out_of_order_keys += 1
        max_seq[arrival.epoch] = max(max_seq.get(arrival.epoch, -1), arrival.seq)
        if (n, arrival.quantity) not in delivered:
            delivered[(n, arrival.quantity)] = i
            first_arrival_n.append((arrival.t_s, n))
            if n < max_n:
                out_of_order_frames += 1
            max_n = max(max_n, n)

    lost_by_cause: Counter[str] = Counter()
    others: list[dict[str, Any]] = []
    window_used_s = 0.0  # the oldest loss inside the window: how much of it a kill cost
    for frame in frames:
        missing = [q for q in QUANTITIES if (frame.n, q) not in delivered]
        if not missing:
            continue
        cause = classify(run, frame, kills_s)
        lost_by_cause[cause] += len(missing)
        if cause == "power_cut_window":
            k = bisect.bisect_left(kills_s, frame.t_s)
            window_used_s = max(window_used_s, kills_s[k] - frame.t_s)
        if cause == "other":
            k = bisect.bisect_left(kills_s, frame.t_s)
            others.append(
                {"frame": frame.n, "readings": missing, "t_s": round(frame.t_s, 3),
                 "before_next_kill_s": round(kills_s[k] - frame.t_s, 3)
                 if k < len(kills_s) else None,
                 "nearest": _nearest_fault(run.faults, frame.t_s)}
            )  # fmt: skip

    offered_readings = len(frames) * len(QUANTITIES)
    delivered_readings = len(delivered)
    lost_readings = sum(lost_by_cause.values())

    # keys: per epoch, the sequence numbers that never arrived between the first and the last
    gaps: dict[str, dict[str, Any]] = {}
    seqs_by_epoch: dict[int, set[int]] = defaultdict(set)
    for epoch, seq in key_count:
        seqs_by_epoch[epoch].add(seq)
    for epoch, seqs in sorted(seqs_by_epoch.items()):
        missing_seqs = set(range(min(seqs), max(seqs) + 1)) - seqs
        gaps[str(epoch)] = {
            "first_seq": min(seqs),
            "last_seq": max(seqs),
            "missing": len(missing_seqs),
            "missing_ranges": _ranges(missing_seqs),
        }

    arrivals_total = len(run.arrivals)
    distinct_keys = len(key_count)
    multi_key = sum(1 for keys in keys_of.values() if len(keys) > 1)

    # recovery: fault end -> first arrival of a reading of a frame written after it
    recovery: dict[str, list[float | None]] = defaultdict(list)
    arrival_order = sorted(first_arrival_n)
    per_fault: list[dict[str, Any]] = []
    for fault in run.faults:
        first_after = next((f.n for f in frames if f.t_s > fault.end_s), None)
        seconds: float | None = None
        if first_after is not None:
            for t_s, n in arrival_order:
                if n >= first_after and t_s >= fault.end_s:
                    seconds = round(t_s - fault.end_s, 2)
                    break
        recovery[fault.kind].append(seconds)
        per_fault.append(
            {"fault": f"{fault.kind} #{fault.index}", "start_s": round(fault.start_s, 3),
             "held_s": round(fault.end_s - fault.start_s, 2), "recovery_s": seconds,
             **fault.detail}
        )  # fmt: skip
    recovery_summary = {
        kind: {
            "count": len(values),
            "max_s": max((v for v in values if v is not None), default=None),
            "median_s": _median([v for v in values if v is not None]),
            "not_recovered": sum(1 for v in values if v is None),
        }
        for kind, values in sorted(recovery.items())
    }

    unaccounted = offered_readings - delivered_readings - lost_readings
    faults_by_kind = Counter(f.kind for f in run.faults)
    problems: list[str] = []
    if lost_by_cause["other"]:
        problems.append(
            f"{lost_by_cause['other']} readings lost outside the documented window "
            f"({len(others)} frames; listed under lost_other)"
        )
    for kind, summary in recovery_summary.items():
        if summary["not_recovered"]:
            problems.append(f"{kind}: {summary['not_recovered']} faults never recovered")
        if summary["max_s"] is not None and summary["max_s"] >= RECOVERY_GOAL_S:
            problems.append(
                f"{kind}: recovery took up to {summary['max_s']} s (goal < {RECOVERY_GOAL_S:.0f} s)"
            )
    if multi_key:
        problems.append(f"{multi_key} readings arrived under two keys (dedupe cannot drop them)")
    if phantoms:
        problems.append(f"{len(phantoms)} delivered readings match no offered frame")
    return {
        "frames_offered": len(frames),
        "readings_offered": offered_readings,
        "readings_delivered": delivered_readings,
        "readings_lost": lost_readings,
        "lost_by_cause": {c: lost_by_cause.get(c, 0) for c in (*DOCUMENTED_CAUSES, "other")},
        "lost_other": others,
        "unaccounted": unaccounted,
        "window_s": run.window_s,
        "window_used_max_s": round(window_used_s, 3),
        "messages_readings_arrived": arrivals_total,
        "duplicates_before_dedupe": arrivals_total - distinct_keys,
        "duplicates_after_dedupe": multi_key,
        "phantoms": phantoms[:20],
        "key_gaps": gaps,
        "out_of_order_keys": out_of_order_keys,
        "out_of_order_frames": out_of_order_frames,
        "faults_by_kind": dict(sorted(faults_by_kind.items())),
        "recovery": recovery_summary,
        "faults": per_fault,
        "goal_met": not problems,
        "problems": problems,
    }
