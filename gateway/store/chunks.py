"""How the buffer stores readings on disk: one compact blob per run of consecutive keys.

A row per reading cost ~27 B in the b-tree, written twice (WAL, then the checkpoint) and
rewritten again when the hub's acknowledgement deleted it: ~80 B of SD-card writes per reading.
A chunk packs a run of readings with consecutive `seq` (one commit) as columns:

    msgpack [ts_ms deltas (the first from 0), series ids, values (float64 little-endian), flags]

~11 B per reading (timestamps within a commit mostly repeat; values stay exact float64), and
deleting a chunk frees its overflow pages without rewriting them. A small chunk (a commit at a
sensor's pace, where every page a commit writes counts) stores its values as [scale, integers]
instead when every value is exactly integer / scale (an SDS011's tenths of ug/m3): ~5 B per
reading. Pure functions, no I/O.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, pairwise, repeat
from typing import Any

import msgpack

from gateway.readings import StoredReading

MAX_READINGS = 4096
"""Readings per chunk at most: `peek` from the middle of a chunk decodes all of it."""

SCALED_MAX = 2048
"""Chunks of at most this many readings (10 minutes of an SDS011: 1,200) try the scaled values;
larger ones (full rate, where a chunk's pages are full anyway) keep float64 and save the CPU."""

_SCALES = (1, 10, 100, 1000)

Row = tuple[int, int, float, int]
"""A reading as a chunk stores it, without its key: (ts_ms, series id, value, flags)."""


class ChunkError(ValueError):
    """A stored chunk does not decode (the file was damaged)."""


def pack(
    ts_ms: Sequence[int],
    series: Sequence[int],
    values: Sequence[float],
    flags: Sequence[int],
    *,
    try_scaled: bool = True,
) -> bytes:
    """Readings with consecutive keys, as columns -> one blob (the key of the first is stored
    beside it). Columns, not rows: no tuple per reading while a commit is packed (RSS).
    `try_scaled=False`: float64 values whatever the size (the tail of a large commit)."""
    blob: bytes = msgpack.packb(
        [
            [ts_ms[0], *(b - a for a, b in pairwise(ts_ms))] if ts_ms else [],
            list(series),
            (try_scaled and len(values) <= SCALED_MAX and _scaled(values)) or _float64(values),
            0 if not any(flags) else list(flags),  # nearly always: clock synchronised, no flags
        ],
        buf_size=12 * len(series) + 64,
    )  # what a chunk needs; msgpack's default is 256 KiB
    return blob


def _float64(values: Sequence[float]) -> bytes:
    raw = array("d", values)
    if sys.byteorder != "little":
        raw.byteswap()
    return raw.tobytes()


def _scaled(values: Sequence[float]) -> list[Any] | None:
    """[scale, integers] that give back every value bit for bit (-0.0, NaN, infinities and
    what no scale fits keep float64: None)."""
    for scale in _SCALES:
        try:
            ints = [round(v * scale) for v in values]
        except (ValueError, OverflowError):  # NaN, infinity
            return None
        if all(
            i / scale == v and (i or math.copysign(1.0, v) > 0)
            for i, v in zip(ints, values, strict=True)
        ):
            return [scale, ints] if max(map(abs, ints), default=0) < 2**63 else None
    return None


def pack_rows(rows: Sequence[Row]) -> bytes:
    """`pack` for rows (ts_ms, series, value, flags)."""
    ts_ms, series, values, flags = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pack(ts_ms, series, values, flags)


def _columns(first_seq: int, blob: bytes) -> tuple[list[int], list[int], array[float], Any]:
    try:
        deltas, series, raw, flags = msgpack.unpackb(blob)
        if isinstance(raw, list):
            scale, ints = raw
            values = array("d", [i / scale for i in ints])
        else:
            values = array("d")
            values.frombytes(raw)
            if sys.byteorder != "little":
                values.byteswap()
    except (ValueError, TypeError, ZeroDivisionError, msgpack.UnpackException) as error:
        raise ChunkError(f"chunk at seq {first_seq} does not decode: {error}") from error
    count = len(series)
    if len(deltas) != count or len(values) != count or (flags != 0 and len(flags) != count):
        raise ChunkError(f"chunk at seq {first_seq}: columns of different lengths")
    return deltas, series, values, flags


def unpack(first_seq: int, blob: bytes) -> Iterator[StoredReading]:
    """A blob -> its readings as the buffer hands them out: (seq, ts_ms, series, value, flags).
    Checked at once (ChunkError); the tuples are made as they are taken, so a peek that needs
    a few readings of a chunk does not hold 4,096 of them (peak RSS)."""
    deltas, series, values, flags = _columns(first_seq, blob)
    count = len(series)
    return zip(
        range(first_seq, first_seq + count),
        accumulate(deltas),
        series,
        values,
        repeat(0, count) if flags == 0 else flags,
        strict=True,
    )


def ts_at(first_seq: int, blob: bytes, seq: int) -> int:
    """The ts_ms of reading `seq` of a chunk, without a tuple per reading (the status asks for
    the oldest one every time: unpacking all 4,096 cost ~0.6 MB of peak RSS)."""
    deltas = _columns(first_seq, blob)[0]
    if not 0 <= seq - first_seq < len(deltas):
        raise ChunkError(f"chunk at seq {first_seq} has no seq {seq}")
    return sum(deltas[: seq - first_seq + 1])


def runs(readings: Iterable[StoredReading]) -> Iterator[tuple[int, list[Row]]]:
    """Stored readings (ascending keys) -> (first seq, rows) per run of consecutive keys,
    each at most MAX_READINGS long: what to write when part of a chunk goes, or when a buffer
    of the older row-per-reading format is converted."""
    rows: list[Row] = []
    first = expected = 0
    for seq, ts_ms, series, value, flags in readings:
        if rows and (seq != expected or len(rows) >= MAX_READINGS):
            yield first, rows
            rows = []
        if not rows:
            first = seq
        rows.append((ts_ms, series, value, flags))
        expected = seq + 1
    if rows:
        yield first, rows
