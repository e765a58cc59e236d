"""Wire format v4: v3's bit-packed data messages, with a shorter header and cheaper rows.

A v4 data message starts with one byte 0x40 | flags (5 bits), the epoch and the first sequence as
varints and the first timestamp's seconds as 4 bytes; the count, the alias width and the time
tick are in the bit stream. Per reading: whether its series is the predicted one (the series
that followed the previous reading's series earlier in this message, else the next alias) and
whether its time is the previous reading's, a time step when not; then its value
(`gateway.wire.v4values`). Every message decodes on its own given the birth's series table.
Layout: docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise
from typing import NamedTuple

from gateway.readings import CLOCK_UNSYNCED, Series, StoredReading
from gateway.wire.bits import Adaptive, BitReader, BitWriter
from gateway.wire.codec import (
    MAX_READINGS,
    HubReading,
    WireError,
    check_size,
    put_uvarint,
    read_uvarint,
    tick_ms,
    unzigzag,
    zigzag,
)
from gateway.wire.v4values import Values, series_decimals

VERSION = 4
FIRST_BYTE = 0x40  # 0x40-0x5F: v4, the low 5 bits flags (msgpack positive fixints: no v1 map)
_GAPS, _FLAGS, _MS, _BACK, _VARINT_T0 = 1, 2, 4, 8, 16  # the flag bits
_MAX_ALIAS_BITS = 31
_LENGTH_BITS = 6  # a tick travels as its bit length - 1 (6 bits), then the bits after its top 1


def is_v4(payload: bytes) -> bool:
    """Whether a data message is v4 (by its first byte)."""
    return bool(payload) and payload[0] & 0xE0 == FIRST_BYTE


def epoch_of(payload: bytes) -> int:
    """The buffer epoch of a v4 data message (which birth's series table it needs)."""
    if len(payload) < 2 or not is_v4(payload):
        raise WireError("not a v4 data message")
    return read_uvarint(payload, 1)[0]


class _Header(NamedTuple):
    """What comes before the readings (flags unpacked)."""

    flags: int
    epoch: int
    s0: int
    t0: int
    readings: int
    width: int
    tick: int


def _header(epoch: int, batch: Sequence[StoredReading]) -> _Header:
    s0, t0 = batch[0][0], batch[0][1]
    flags = _MS if t0 % 1000 else 0
    if any(b[0] - a[0] != 1 for a, b in pairwise(batch)):
        flags |= _GAPS
    if any(r[4] for r in batch):
        flags |= _FLAGS
    if any(b[1] < a[1] for a, b in pairwise(batch)):
        flags |= _BACK
    if not 0 <= t0 // 1000 < 2**32:
        flags |= _VARINT_T0
    width = max(alias for _, _, alias, _, _ in batch).bit_length()
    return _Header(flags, epoch, s0, t0, len(batch), width, tick_ms(batch))


def _write_header(h: _Header, bits: BitWriter) -> bytearray:
    head = bytearray((FIRST_BYTE | h.flags,))
    put_uvarint(head, h.epoch)
    put_uvarint(head, h.s0)
    seconds, ms = divmod(h.t0, 1000)
    if h.flags & _VARINT_T0:
        put_uvarint(head, zigzag(seconds))
    else:
        head += seconds.to_bytes(4, "big")
    if ms:
        put_uvarint(head, ms)
    bits.golomb(h.readings - 1, Adaptive(8))
    bits.put(h.width, 5)
    in_seconds = h.tick % 1000 == 0
    units = h.tick // 1000 if in_seconds else h.tick
    bits.put(int(in_seconds), 1)
    length = units.bit_length()  # 1-64
    bits.put(length - 1, _LENGTH_BITS)
    bits.put(units & ((1 << (length - 1)) - 1), length - 1)
    return head


def _read_header(payload: bytes, max_readings: int) -> tuple[_Header, BitReader]:
    if len(payload) < 2 or not is_v4(payload):
        raise WireError("not a v4 data message")
    flags = payload[0] & 0x1F
    epoch, pos = read_uvarint(payload, 1)
    s0, pos = read_uvarint(payload, pos)
    if flags & _VARINT_T0:
        zigzag_seconds, pos = read_uvarint(payload, pos)
        seconds = unzigzag(zigzag_seconds)
    else:
        if pos + 4 > len(payload):
            raise WireError("the data ends inside the v4 header")
        seconds, pos = int.from_bytes(payload[pos : pos + 4], "big"), pos + 4
    ms = 0
    if flags & _MS:
        ms, pos = read_uvarint(payload, pos)
        if not 1 <= ms <= 999:
            raise WireError(f"v4 message: t0_ms {ms} is not 1-999")
    bits = BitReader(payload, pos)
    count = bits.golomb(Adaptive(8)) + 1
    if count > min(max_readings, bits.end - bits.pos + 1):
        raise WireError(f"v4 message claims {count} readings")
    width = bits.get(5)
    if width > _MAX_ALIAS_BITS:
        raise WireError(f"v4 alias width {width}")
    in_seconds, length = bits.get(1), bits.get(_LENGTH_BITS) + 1
    units = (1 << (length - 1)) | bits.get(length - 1)
    tick = units * 1000 if in_seconds else units
    return _Header(flags, epoch, s0, seconds * 1000 + ms, count, width, tick), bits


class _Rows:
    """Alias and time prediction, alike in encoder and decoder: the predicted alias is the one
    that followed the previous alias earlier in this message, else the next one."""

    __slots__ = ("back", "gap", "row_step", "step", "successor")

    def __init__(self, back: bool) -> None:
        self.back = back
        self.gap, self.step, self.row_step = Adaptive(1), Adaptive(4), Adaptive(1)
        self.successor: dict[int, int] = {}

    def predicted(self, alias: int) -> int:
        return self.successor.get(alias, alias + 1)

    def step_code(self, steps: int, nonzero: bool) -> int:
        """A time step (in ticks) as a number >= 0: zigzag only if steps may go back."""
        return (zigzag(steps) if self.back else steps) - nonzero

    def step_of(self, code: int, nonzero: bool) -> int:
        code += nonzero
        return unzigzag(code) if self.back else code


def encode_data(
    epoch: int, batch: Sequence[StoredReading], series_of: Callable[[int], Series]
) -> bytes:
    """One v4 data message for a batch in buffer order; `series_of` gives the quantity names
    the value prediction uses (the same table the birth message carries)."""
    if not batch:
        raise ValueError("empty batch")
    h = _header(epoch, batch)
    if h.width > _MAX_ALIAS_BITS or min(alias for _, _, alias, _, _ in batch) < 0:
        raise ValueError("series alias out of range for wire v4")
    bits = BitWriter()
    head = _write_header(h, bits)
    places = series_decimals(batch)
    rows, values = _Rows(bool(h.flags & _BACK)), Values()
    names: dict[int, str] = {}
    previous_seq, previous_ts, previous_alias = h.s0, h.t0, -1
    for index, (seq, ts, alias, value, flags) in enumerate(batch):
        if h.flags & _FLAGS:
            bits.put(int(bool(flags)), 1)
            if flags:
                bits.golomb(flags - 1, rows.gap)
        if index:
            if h.flags & _GAPS:
                bits.golomb(seq - previous_seq - 1, rows.gap)
            _put_row(bits, rows, h, alias, previous_alias, (ts - previous_ts) // h.tick)
            rows.successor[previous_alias] = alias
        else:
            bits.put(alias, h.width)
        name = names.get(alias) or names.setdefault(alias, series_of(alias).quantity)
        values.put(bits, alias, name, places[alias], value)
        previous_seq, previous_ts, previous_alias = seq, ts, alias
    return bytes(head) + bits.finish()


def _put_row(bits: BitWriter, rows: _Rows, h: _Header, alias: int, last: int, steps: int) -> None:
    """'1': the predicted alias at the same time; '01' the predicted alias, a time step;
    '00' an alias of `width` bits and a time step (which may be 0)."""
    if alias == rows.predicted(last):
        bits.put(int(steps == 0), 1)
        if steps == 0:
            return
        bits.put(1, 1)
        bits.golomb(rows.step_code(steps, True), rows.row_step)
        return
    bits.put(0, 2)
    bits.put(alias, h.width)
    bits.golomb(rows.step_code(steps, False), rows.step)


def _get_row(bits: BitReader, rows: _Rows, h: _Header, last: int) -> tuple[int, int]:
    """The alias and the time step (in ticks) `_put_row` wrote."""
    if bits.get(1):
        return rows.predicted(last), 0
    if bits.get(1):
        return rows.predicted(last), rows.step_of(bits.golomb(rows.row_step), True)
    alias = bits.get(h.width)
    return alias, rows.step_of(bits.golomb(rows.step), False)


def decode_data(
    payload: bytes,
    gateway: str,
    series_of: Callable[[int], Series | None],
    *,
    max_readings: int = MAX_READINGS,
) -> Iterator[HubReading]:
    """Readings of a v4 message from `gateway` (its topic); `series_of(alias)` comes from the
    gateway's birth message. Raises only WireError."""
    check_size(payload)
    h, bits = _read_header(payload, max_readings)
    rows, values = _Rows(bool(h.flags & _BACK)), Values()
    seq, ts, alias = h.s0, h.t0, -1
    readings = []
    for index in range(h.readings):
        flags = bits.golomb(rows.gap) + 1 if h.flags & _FLAGS and bits.get(1) else 0
        if index:
            if h.flags & _GAPS:
                seq += bits.golomb(rows.gap)
            seq += 1
            previous, (alias, steps) = alias, _get_row(bits, rows, h, alias)
            rows.successor[previous] = alias
            ts += steps * h.tick
        else:
            alias = bits.get(h.width)
        series = series_of(alias)
        if series is None:
            raise WireError(
                f"series alias {alias} unknown: the gateway's birth message has not been seen"
            )
        value = values.get(bits, alias, series.quantity)
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
        raise WireError("trailing bytes after v4 data")
    return iter(readings)
