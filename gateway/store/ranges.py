"""Which sequence numbers of a chunk are acknowledged: sorted, disjoint inclusive ranges."""

from __future__ import annotations

Ranges = list[tuple[int, int]]
"""Inclusive (first, last) seq ranges, sorted and disjoint."""


def merge(ranges: Ranges, new: tuple[int, int]) -> Ranges:
    """`ranges` with `new` added, adjacent and overlapping ranges joined."""
    merged: Ranges = []
    for lo, hi in sorted([*ranges, new]):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def covered(ranges: Ranges) -> int:
    """How many sequence numbers the ranges hold."""
    return sum(hi - lo + 1 for lo, hi in ranges)


def is_acked(ranges: Ranges, seq: int) -> bool:
    """Whether `seq` lies in one of the ranges."""
    return any(lo <= seq <= hi for lo, hi in ranges)


def missing(span: tuple[int, int], ranges: Ranges) -> Ranges:
    """The parts of the inclusive `span` that `ranges` do not cover."""
    out: Ranges = []
    at, last = span
    for lo, hi in ranges:
        if lo > at:
            out.append((at, min(lo - 1, last)))
        at = max(at, hi + 1)
        if at > last:
            return out
    out.append((at, last))
    return out


def intersect(ranges: Ranges, span: tuple[int, int]) -> Ranges:
    """The parts of `ranges` inside the inclusive `span`."""
    lo, hi = span
    return [(max(a, lo), min(b, hi)) for a, b in ranges if b >= lo and a <= hi]


def common(first: Ranges, second: Ranges) -> Ranges:
    """What both sorted, disjoint range lists cover."""
    out: Ranges = []
    i = j = 0
    while i < len(first) and j < len(second):
        lo = max(first[i][0], second[j][0])
        hi = min(first[i][1], second[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return out
