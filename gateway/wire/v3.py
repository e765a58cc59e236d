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
from typing import NamedTuple

from gateway.readings import CLOCK_UNSYNCED, Series, StoredReading
from gateway.wire.bits import BitReader, BitWriter, Contexts
from gateway.wire.codec import (
    MAX_DECIMALS,
    MAX_EXACT,
    MAX_READINGS,
    HubReading,
    WireError,
    check_size,
    put_uvarint,
    read_uvarint,
    scaled_integer,
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


def _put_decimals(bits: BitWriter, scale: int, expected: int | None) -> None:
    """A series' decimals: one bit when they are those of the quantity's previous series."""
    if expected is not None:
        bits.put(int(scale == expected), 1)
        if scale == expected:
            return
    bits.put(scale, 4)


def _get_decimals(bits: BitReader, expected: int | None) -> int:
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


class _Values:
    """The value prediction encoder and decoder keep alike: per series its previous scaled
    value in this message, per (quantity, decimals) the previous value of any series, per
    quantity the decimals of its previous series."""

    __slots__ = ("by_quantity", "last", "scale_of", "scales")

    def __init__(self) -> None:
        self.last: dict[int, int] = {}
        self.by_quantity: dict[tuple[str, int], int] = {}
        self.scale_of: dict[str, int] = {}
        self.scales: dict[int, int] = {}

    def put(
        self, bits: BitWriter, ctx: Contexts, alias: int, quantity: str, scale: int, value: float
    ) -> None:
        if alias not in self.scales:
            _put_decimals(bits, scale, self.scale_of.get(quantity))
            self.scales[alias] = self.scale_of[quantity] = scale
        if scale == RAW:
            bits.put(int.from_bytes(struct.pack(">d", value), "big"), 64)
            self.last[alias] = 0
            return
        scaled = scaled_integer(value, scale)
        key = (quantity, scale)
        if alias in self.last:
            bits.golomb(zigzag(scaled - self.last[alias]), ctx.delta)
        else:
            bits.golomb(zigzag(scaled - self.by_quantity.get(key, 0)), ctx.first_of(quantity))
        self.last[alias] = self.by_quantity[key] = scaled

    def get(self, bits: BitReader, ctx: Contexts, alias: int, quantity: str) -> float:
        scale = self.scales.get(alias)
        if scale is None:
            scale = _get_decimals(bits, self.scale_of.get(quantity))
            self.scales[alias] = self.scale_of[quantity] = scale
        if scale == RAW:
            self.last[alias] = 0
            value: float = struct.unpack(">d", bits.get(64).to_bytes(8, "big"))[0]
            return value
        if scale > MAX_DECIMALS:
            raise WireError(f"v3 series {alias} has {scale} decimals")
        key = (quantity, scale)
        if alias in self.last:
            scaled = self.last[alias] + unzigzag(bits.golomb(ctx.delta))
        else:
            scaled = self.by_quantity.get(key, 0) + unzigzag(bits.golomb(ctx.first_of(quantity)))
        self.last[alias] = self.by_quantity[key] = scaled
        if not -MAX_EXACT < scaled < MAX_EXACT:
            raise WireError(f"v3 series {alias}: a scaled value beyond 2**53")
        return scaled / 10**scale if scale else float(scaled)


class _Header(NamedTuple):
    """The fields before the bit stream (the flags byte unpacked)."""

    width: int
    gaps: bool
    flagged: bool
    epoch: int
    s0: int
    readings: int
    t0: int
    tick: int
    end: int  # where the bit stream starts


def _encode_header(epoch: int, batch: Sequence[StoredReading], width: int) -> _Header:
    s0, t0 = batch[0][0], batch[0][1]
    gaps = any(b[0] - a[0] != 1 for a, b in pairwise(batch))
    flagged = any(r[4] for r in batch)
    return _Header(width, gaps, flagged, epoch, s0, len(batch), t0, tick_ms(batch), 0)


def _header_bytes(h: _Header) -> bytearray:
    head = bytearray(
        (
            VERSION,
            (h.width << 3)
            | (_GAPS if h.gaps else 0)
            | (_FLAGS if h.flagged else 0)
            | (_MS if h.t0 % 1000 else 0),
        )
    )
    for n in (h.epoch, h.s0, h.readings, zigzag(h.t0 // 1000)):
        put_uvarint(head, n)
    if h.t0 % 1000:
        put_uvarint(head, h.t0 % 1000)
    put_uvarint(head, h.tick)
    return head


def _read_header(payload: bytes, max_readings: int) -> _Header:
    if len(payload) < 2 or payload[0] != VERSION:
        raise WireError("not a v3 data message")
    flags = payload[1]
    epoch, pos = read_uvarint(payload, 2)
    s0, pos = read_uvarint(payload, pos)
    count, pos = read_uvarint(payload, pos)
    t0_s, pos = read_uvarint(payload, pos)
    t0_ms = 0
    if flags & _MS:
        t0_ms, pos = read_uvarint(payload, pos)
    tick, pos = read_uvarint(payload, pos)
    if not 1 <= count <= min(max_readings, (len(payload) - pos) * 8 + 1):
        raise WireError(f"v3 message claims {count} readings")
    if t0_ms > 999:
        raise WireError(f"v3 message: t0_ms {t0_ms} is not 0-999")
    return _Header(
        flags >> 3,
        bool(flags & _GAPS),
        bool(flags & _FLAGS),
        epoch,
        s0,
        count,
        unzigzag(t0_s) * 1000 + t0_ms,
        tick,
        pos,
    )


def encode_data(
    epoch: int, batch: Sequence[StoredReading], series_of: Callable[[int], Series]
) -> bytes:
    """One v3 data message for a batch in buffer order; `series_of` gives the quantity names
    the value prediction uses (the same table the birth message carries)."""
    if not batch:
        raise ValueError("empty batch")
    width = max(alias for _, _, alias, _, _ in batch).bit_length()
    if width > _MAX_ALIAS_BITS or min(alias for _, _, alias, _, _ in batch) < 0:
        raise ValueError("series alias out of range for wire v3")
    h = _encode_header(epoch, batch, width)
    places = _series_decimals(batch)
    bits, ctx, values = BitWriter(), Contexts(), _Values()
    names: dict[int, str] = {}
    previous_seq, previous_ts, previous_alias = h.s0, h.t0, -1
    for index, (seq, ts, alias, value, flags) in enumerate(batch):
        same_row = False
        if index:
            if h.gaps:
                bits.golomb(seq - previous_seq - 1, ctx.gap)
            same_row = ts == previous_ts and alias == previous_alias + 1
            bits.put(int(same_row), 1)
        if h.flagged:
            bits.put(int(bool(flags)), 1)
            if flags:
                bits.golomb(flags - 1, ctx.gap)
        if not same_row:
            if index:
                bits.golomb(zigzag((ts - previous_ts) // h.tick), ctx.step)
            bits.put(alias, width)
        name = names.get(alias) or names.setdefault(alias, series_of(alias).quantity)
        values.put(bits, ctx, alias, name, places[alias], value)
        previous_seq, previous_ts, previous_alias = seq, ts, alias
    return bytes(_header_bytes(h)) + bits.finish()


def decode_data(
    payload: bytes,
    gateway: str,
    series_of: Callable[[int], Series | None],
    *,
    max_readings: int = MAX_READINGS,
) -> Iterator[HubReading]:
    """Readings of a v3 message from `gateway` (its topic); `series_of(alias)` comes from the
    gateway's birth message. Raises only WireError."""
    check_size(payload)
    h = _read_header(payload, max_readings)
    bits, ctx, values = BitReader(payload, h.end), Contexts(), _Values()
    seq, ts, alias = h.s0, h.t0, -1
    readings = []
    for index in range(h.readings):
        same_row = False
        if index:
            if h.gaps:
                seq += bits.golomb(ctx.gap)
            seq += 1
            same_row = bool(bits.get(1))
        flags = bits.golomb(ctx.gap) + 1 if h.flagged and bits.get(1) else 0
        if same_row:
            alias += 1
        else:
            if index:
                ts += unzigzag(bits.golomb(ctx.step)) * h.tick
            alias = bits.get(h.width)
        series = series_of(alias)
        if series is None:
            raise WireError(
                f"series alias {alias} unknown: the gateway's birth message has not been seen"
            )
        value = values.get(bits, ctx, alias, series.quantity)
        readings.append(
            HubReading(
                gateway,
                h.epoch,
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
