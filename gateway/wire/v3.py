"""Wire format v3: bit-packed data messages for metered links, named by the retained birth.

A v3 data message is byte 0x03, a flags byte, a few varints (epoch, first sequence, count, first
timestamp, tick), then one bit stream: per reading a "same row" bit (same timestamp as the
previous reading, next alias), else a time step and an alias; then its value as a scaled
integer, coded as the difference to a prediction (the series' previous value in this message, or
the previous value of the same quantity) with adaptive Exp-Golomb codes. Lossless: each series
travels at the decimals its values have in this message, or as float64. Every message decodes
on its own given the birth's series table. Layout and a worked example: docs/protocol.md.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise

from gateway.readings import CLOCK_UNSYNCED, Series, StoredReading
from gateway.wire.codec import (
    MAX_DECIMALS,
    MAX_EXACT,
    HubReading,
    WireError,
    put_uvarint,
    read_uvarint,
    tick_ms,
    unzigzag,
    zigzag,
)
from gateway.wire.codec import decimals as exact_decimals

VERSION = 3
RAW = 15  # decimals code: the series' values travel as IEEE 754 float64 (NaN, inf, -0.0, ...)
_GAPS, _FLAGS, _MS = 1, 2, 4  # header flag bits; bits 3-7 hold the alias width
_MAX_ALIAS_BITS = 31


def epoch_of(payload: bytes) -> int:
    """The buffer epoch of a v3 data message (which birth's series table it needs)."""
    if len(payload) < 2 or payload[0] != VERSION:
        raise WireError("not a v3 data message")
    return read_uvarint(payload, 2)[0]


def decimals(value: float) -> int:
    """Decimal places that represent `value` exactly, or RAW (float64)."""
    places = exact_decimals(value)
    return RAW if places is None else places


class _Adaptive:
    """The order k of an Exp-Golomb code, following the running mean of what it coded
    (as in LOCO-I); encoder and decoder update it the same way."""

    __slots__ = ("count", "total")

    def __init__(self, mean: int) -> None:
        self.total, self.count = mean, 1

    def k(self) -> int:
        """The smallest k with count * 2**k >= total."""
        ceiling = -(-self.total // self.count)
        return (ceiling - 1).bit_length() if ceiling > 1 else 0

    def update(self, u: int) -> None:
        self.total += u
        self.count += 1
        if self.count >= 16:
            self.total >>= 1
            self.count >>= 1


class _Contexts:
    """One adaptive code per kind of number; first values of a series one per quantity."""

    __slots__ = ("delta", "first", "gap", "step")

    def __init__(self) -> None:
        self.gap, self.step, self.delta = _Adaptive(1), _Adaptive(4), _Adaptive(64)
        self.first: dict[str, _Adaptive] = {}

    def first_of(self, quantity: str) -> _Adaptive:
        context = self.first.get(quantity)
        if context is None:
            context = self.first[quantity] = _Adaptive(1024)
        return context


class _BitWriter:
    __slots__ = ("acc", "bits", "out")

    def __init__(self) -> None:
        self.out, self.acc, self.bits = bytearray(), 0, 0

    def put(self, value: int, width: int) -> None:
        self.acc = (self.acc << width) | value
        self.bits += width
        if self.bits >= 64:
            whole = self.bits >> 3
            rest = self.bits & 7
            self.out += (self.acc >> rest).to_bytes(whole, "big")
            self.acc &= (1 << rest) - 1
            self.bits = rest

    def golomb(self, u: int, context: _Adaptive) -> None:
        k = context.k()
        v = u + (1 << k)
        length = v.bit_length()
        self.put(v, 2 * length - k - 1)  # length-k-1 zeros, then v
        context.update(u)

    def finish(self) -> bytes:
        if self.bits:
            pad = -self.bits % 8
            self.out += (self.acc << pad).to_bytes((self.bits + pad) >> 3, "big")
        return bytes(self.out)


class _BitReader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, start: int) -> None:
        self.data, self.pos, self.end = data, start * 8, len(data) * 8

    def get(self, width: int) -> int:
        if self.pos + width > self.end:
            raise WireError("v3 data ends inside its bit stream")
        first, last = self.pos >> 3, (self.pos + width + 7) >> 3
        chunk = int.from_bytes(self.data[first:last], "big")
        shift = (last << 3) - self.pos - width
        self.pos += width
        return (chunk >> shift) & ((1 << width) - 1)

    def golomb(self, context: _Adaptive) -> int:
        k = context.k()
        zeros = 0
        while not self.get(1):
            zeros += 1
            if zeros > 80:
                raise WireError("overlong code in v3 data")
        length = zeros + k + 1
        v = (1 << (length - 1)) | self.get(length - 1)
        u = v - (1 << k)
        context.update(u)
        return u


def _put_decimals(bits: _BitWriter, scale: int, expected: int | None) -> None:
    """A series' decimals: one bit when they are those of the quantity's previous series."""
    if expected is not None:
        bits.put(int(scale == expected), 1)
        if scale == expected:
            return
    bits.put(scale, 4)


def _get_decimals(bits: _BitReader, expected: int | None) -> int:
    if expected is not None and bits.get(1):
        return expected
    return bits.get(4)


def _series_decimals(batch: Sequence[StoredReading]) -> dict[int, int]:
    """Per series, the decimals all its values in this batch need (RAW if one needs float64)."""
    places: dict[int, int] = {}
    largest: dict[int, float] = {}
    for _, _, alias, value, _ in batch:
        current = places.get(alias, 0)
        if current != RAW:
            places[alias] = max(current, decimals(value))
            largest[alias] = max(largest.get(alias, 0.0), abs(value))
    for alias, scale in places.items():  # more decimals may push a large value past 2**53
        if scale != RAW and largest[alias] * 10**scale >= MAX_EXACT:
            places[alias] = RAW
    return places


def encode_data(
    epoch: int, batch: Sequence[StoredReading], series_of: Callable[[int], Series]
) -> bytes:
    """One v3 data message for a batch in buffer order; `series_of` gives the quantity names
    the value prediction uses (the same table the birth message carries)."""
    if not batch:
        raise ValueError("empty batch")
    s0, t0 = batch[0][0], batch[0][1]
    tick = tick_ms(batch)
    width = max(alias for _, _, alias, _, _ in batch).bit_length()
    if width > _MAX_ALIAS_BITS or min(alias for _, _, alias, _, _ in batch) < 0:
        raise ValueError("series alias out of range for wire v3")
    gaps = any(b[0] - a[0] != 1 for a, b in pairwise(batch))
    flagged = any(r[4] for r in batch)
    head = bytearray(
        (
            VERSION,
            (width << 3)
            | (_GAPS if gaps else 0)
            | (_FLAGS if flagged else 0)
            | (_MS if t0 % 1000 else 0),
        )
    )
    for n in (epoch, s0, len(batch), zigzag(t0 // 1000)):
        put_uvarint(head, n)
    if t0 % 1000:
        put_uvarint(head, t0 % 1000)
    put_uvarint(head, tick)
    places = _series_decimals(batch)
    bits, ctx = _BitWriter(), _Contexts()
    last: dict[int, int] = {}  # series -> its previous scaled value in this message
    by_quantity: dict[tuple[str, int], int] = {}  # (quantity, decimals) -> previous value
    scale_of: dict[str, int] = {}  # quantity -> decimals of its previous series here
    names: dict[int, str] = {}
    previous_seq, previous_ts, previous_alias = s0, t0, -1
    for index, (seq, ts, alias, value, flags) in enumerate(batch):
        same_row = False
        if index:
            if gaps:
                bits.golomb(seq - previous_seq - 1, ctx.gap)
            same_row = ts == previous_ts and alias == previous_alias + 1
            bits.put(int(same_row), 1)
        if flagged:
            bits.put(int(bool(flags)), 1)
            if flags:
                bits.golomb(flags - 1, ctx.gap)
        if not index or not same_row:
            if index:
                bits.golomb(zigzag((ts - previous_ts) // tick), ctx.step)
            bits.put(alias, width)
        scale = places[alias]
        name = names.get(alias) or names.setdefault(alias, series_of(alias).quantity)
        if alias not in last:
            _put_decimals(bits, scale, scale_of.get(name))
            scale_of[name] = scale
        if scale == RAW:
            bits.put(int.from_bytes(struct.pack(">d", value), "big"), 64)
            last[alias] = 0
        else:
            scaled = round(value * 10**scale)
            quantity = (name, scale)
            if alias in last:
                bits.golomb(zigzag(scaled - last[alias]), ctx.delta)
            else:
                bits.golomb(zigzag(scaled - by_quantity.get(quantity, 0)), ctx.first_of(name))
            last[alias] = by_quantity[quantity] = scaled
        previous_seq, previous_ts, previous_alias = seq, ts, alias
    return bytes(head) + bits.finish()


def decode_data(
    payload: bytes,
    gateway: str,
    series_of: Callable[[int], Series | None],
    *,
    max_readings: int = 100_000,
) -> Iterator[HubReading]:
    """Readings of a v3 message from `gateway` (its topic); `series_of(alias)` comes from the
    gateway's birth message. Raises only WireError."""
    if len(payload) < 2 or payload[0] != VERSION:
        raise WireError("not a v3 data message")
    header = payload[1]
    width, gaps, flagged = header >> 3, bool(header & _GAPS), bool(header & _FLAGS)
    epoch, pos = read_uvarint(payload, 2)
    s0, pos = read_uvarint(payload, pos)
    count, pos = read_uvarint(payload, pos)
    t0_s, pos = read_uvarint(payload, pos)
    t0_ms = 0
    if header & _MS:
        t0_ms, pos = read_uvarint(payload, pos)
    tick, pos = read_uvarint(payload, pos)
    if not 1 <= count <= max_readings:
        raise WireError(f"v3 message claims {count} readings")
    bits, ctx = _BitReader(payload, pos), _Contexts()
    seq, ts, alias = s0, unzigzag(t0_s) * 1000 + t0_ms, -1
    scales: dict[int, int] = {}
    last: dict[int, int] = {}
    by_quantity: dict[tuple[str, int], int] = {}
    scale_of: dict[str, int] = {}
    readings = []
    for index in range(count):
        same_row = False
        if index:
            if gaps:
                seq += bits.golomb(ctx.gap)
            seq += 1
            same_row = bool(bits.get(1))
        flags = 0
        if flagged and bits.get(1):
            flags = bits.golomb(ctx.gap) + 1
        if same_row:
            alias += 1
        else:
            if index:
                ts += unzigzag(bits.golomb(ctx.step)) * tick
            alias = bits.get(width)
        series = series_of(alias)
        if series is None:
            raise WireError(
                f"series alias {alias} unknown: the gateway's birth message has not been seen"
            )
        if alias not in scales:
            scales[alias] = scale_of[series.quantity] = _get_decimals(
                bits, scale_of.get(series.quantity)
            )
        scale = scales[alias]
        if scale == RAW:
            value: float = struct.unpack(">d", bits.get(64).to_bytes(8, "big"))[0]
            last[alias] = 0
        elif scale > MAX_DECIMALS:
            raise WireError(f"v3 series {alias} has {scale} decimals")
        else:
            quantity = (series.quantity, scale)
            if alias in last:
                scaled = last[alias] + unzigzag(bits.golomb(ctx.delta))
            else:
                scaled = by_quantity.get(quantity, 0) + unzigzag(
                    bits.golomb(ctx.first_of(series.quantity))
                )
            last[alias] = by_quantity[quantity] = scaled
            value = scaled / 10**scale if scale else float(scaled)
        readings.append(
            HubReading(
                gateway,
                epoch,
                seq,
                ts,
                series.source,
                series.quantity,
                series.unit,
                value,
                not flags & CLOCK_UNSYNCED,
            )
        )
    if bits.end - bits.pos >= 8:
        raise WireError("trailing bytes after v3 data")
    return iter(readings)
