"""Loss made visible: which sequence ranges of a (gateway, epoch) never arrived. Pure.

Every stored data message leaves its runs of consecutive sequence numbers in `seq_runs` (with
the time they arrived); the gap keeper merges a stream's runs (`merge`), finds the holes between
them (`holes`: a hole counts once it has been visible for the grace period: the time the first
sequence beyond it arrived), and reconciles them with the open gaps (`reconcile`): a new hole
opens a gap, a gap no longer a hole (a late re-send filled it) is closed. Nothing before a
stream's first run is a gap: the hub cannot know where a stream it joined late began.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple


class Run(NamedTuple):
    """Sequence numbers first..last (inclusive), all arrived, the earliest at `received_ms`."""

    first: int
    last: int
    received_ms: int


class Hole(NamedTuple):
    """Sequence numbers first..last missing; visible since `since_ms` (the gap's opened_at for
    a new gap)."""

    first: int
    last: int
    since_ms: int


def runs_of(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Runs of consecutive numbers in `seqs` (any order, duplicates allowed) as (first, last)."""
    ordered = sorted(set(seqs))
    out: list[tuple[int, int]] = []
    for seq in ordered:
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def merge(runs: Iterable[Run]) -> list[Run]:
    """Overlapping and adjacent runs joined, in order; each keeps its earliest arrival."""
    out: list[Run] = []
    for run in sorted(runs):
        if out and run.first <= out[-1].last + 1:
            last = out[-1]
            out[-1] = Run(
                last.first, max(last.last, run.last), min(last.received_ms, run.received_ms)
            )
        else:
            out.append(run)
    return out


def holes(merged: Sequence[Run]) -> list[Hole]:
    """The holes between merged runs, each visible since the earliest arrival of anything
    beyond it."""
    out: list[Hole] = []
    beyond_ms: int | None = None
    for left, right in zip(reversed(merged[:-1]), reversed(merged[1:]), strict=True):
        beyond_ms = right.received_ms if beyond_ms is None else min(beyond_ms, right.received_ms)
        out.append(Hole(left.last + 1, right.first - 1, beyond_ms))
    out.reverse()
    return out


class Plan(NamedTuple):
    """What the keeper changes for one stream: gaps to close, gaps to open."""

    close: list[tuple[int, int]]
    """(first, last) of open gaps no longer missing as they are (wholly or partly filled)."""
    open: list[Hole]
    """Holes to open as gaps; a remnant of a partly filled gap keeps that gap's opening time."""


def reconcile(
    open_gaps: Sequence[Hole], found: Sequence[Hole], *, now_ms: int, grace_ms: int
) -> Plan:
    """Compare a stream's open gaps with the holes found now. A gap that is exactly a hole stays;
    any other open gap closes (a re-send filled it, or part of it). A hole not yet a gap opens
    once it has been visible for `grace_ms`, or at once if it is what is left of an open gap
    (keeping that gap's opening time)."""
    kept = {(g.first, g.last) for g in open_gaps}
    now = {(h.first, h.last) for h in found}
    close = sorted(span for span in kept if span not in now)
    opened: list[Hole] = []
    for hole in found:
        if (hole.first, hole.last) in kept:
            continue
        was = [g.since_ms for g in open_gaps if g.first <= hole.last and hole.first <= g.last]
        if was:
            opened.append(hole._replace(since_ms=min(was)))
        elif now_ms - hole.since_ms >= grace_ms:
            opened.append(hole)
    return Plan(close, opened)


class KeeperPlan(NamedTuple):
    """One keeper pass over every stream: run rows replaced by merged ones, gaps changed."""

    delete_run_ids: list[int]
    insert_runs: list[tuple[str, int, int, int, int]]
    """(gateway_id, epoch, first_seq, last_seq, received_ms)."""
    close: list[tuple[str, int, int, int]]
    """(gateway_id, epoch, first_seq, last_seq) of open gaps to close."""
    open: list[tuple[str, int, int, int, int]]
    """(gateway_id, epoch, first_seq, last_seq, opened_ms) of gaps to open."""


def plan(
    run_rows: Iterable[tuple[int, str, int, int, int, int]],
    open_rows: Iterable[tuple[str, int, int, int, int]],
    *,
    now_ms: int,
    grace_ms: int,
) -> KeeperPlan:
    """The keeper's pass: `run_rows` are (id, gateway_id, epoch, first, last, received_ms),
    `open_rows` the open gaps as (gateway_id, epoch, first, last, opened_ms)."""
    streams: dict[tuple[str, int], list[tuple[int, Run]]] = {}
    for row_id, gateway, epoch, first, last, received_ms in run_rows:
        streams.setdefault((gateway, epoch), []).append((row_id, Run(first, last, received_ms)))
    gaps: dict[tuple[str, int], list[Hole]] = {}
    for gateway, epoch, first, last, opened_ms in open_rows:
        gaps.setdefault((gateway, epoch), []).append(Hole(first, last, opened_ms))
    result = KeeperPlan([], [], [], [])
    for key in streams.keys() | gaps.keys():
        rows = streams.get(key, [])
        merged = merge(run for _, run in rows)
        if len(rows) > len(merged):
            result.delete_run_ids.extend(row_id for row_id, _ in rows)
            result.insert_runs.extend((*key, r.first, r.last, r.received_ms) for r in merged)
        if not merged:
            continue  # no runs known (never expected): leave its gaps as they are
        change = reconcile(gaps.get(key, []), holes(merged), now_ms=now_ms, grace_ms=grace_ms)
        result.close.extend((*key, first, last) for first, last in change.close)
        result.open.extend((*key, h.first, h.last, h.since_ms) for h in change.open)
    return result
