"""Wire format v2: compact data messages, decoded with the series table of the retained birth.

A v2 data message is a msgpack array `[2, ep, s0, t0_s, t0_ms, tick_ms, scales, flags, codec,
blob]` (the gateway id is in the topic):
columns of varints (sequence gaps, time steps in ticks, series aliases, per-series value deltas
as scaled integers), deflated when that is smaller. Values stay exact: each series is sent at the
decimal resolution its values have in this message. Aliases are the buffer's series ids, listed
with their names in the gateway's retained `status` (birth) message. See docs/protocol.md.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgpack

from gateway.readings import CLOCK_UNSYNCED, Series, StoredReading
from gateway.wire.codec import (
    MAX_DECIMALS,
    MAX_EXACT,
    MAX_READINGS,
    MAX_SERIES,
    HubReading,
    WireError,
    check_size,
    decimals,
    put_svarint,
    put_uvarint,
    read_uvarint,
    scaled_integer,
    tick_ms,
    unzigzag,
    uvarint_bytes,
    wire_int,
)

VERSION = 2
RAW = 127  # scale marker: values of this series travel as float64
_CODEC_PLAIN, _CODEC_DEFLATE = 0, 1
_FLOAT64 = struct.Struct(">d")


def encode_data(epoch: int, batch: Sequence[StoredReading]) -> bytes:
    """One v2 data message for a batch in buffer order."""
    if not batch:
        raise ValueError("empty batch")
    s0, t0 = batch[0][0], batch[0][1]
    tick = tick_ms(batch)
    scales: dict[int, int] = {}
    for _, _, alias, value, _ in batch:
        places = decimals(value)
        current = scales.get(alias, 0)
        scale = RAW if places is None or current == RAW else max(current, places)
        if scale != RAW and abs(value) * 10**scale >= 2**53:
            scale = RAW
        scales[alias] = scale
    for _, _, alias, value, _ in batch:  # a later value may have raised the series' decimals
        if scales[alias] != RAW and abs(value) * 10 ** scales[alias] >= 2**53:
            scales[alias] = RAW
    seqs, times, aliases, values = bytearray(), bytearray(), bytearray(), bytearray()
    flags: list[list[int]] = []
    previous_seq, previous_ts = s0 - 1, t0
    last: dict[int, int] = {}
    for index, (seq, ts, alias, value, flag) in enumerate(batch):
        put_uvarint(seqs, seq - previous_seq - 1)
        put_svarint(times, (ts - previous_ts) // tick)
        put_uvarint(aliases, alias)
        scale = scales[alias]
        if scale == RAW:
            values += msgpack.packb(float(value))
        else:
            scaled = scaled_integer(value, scale)
            put_svarint(values, scaled - last.get(alias, 0))
            last[alias] = scaled
        if flag:
            flags.append([index, flag])
        previous_seq, previous_ts = seq, ts
    blob = bytes(uvarint_bytes(len(batch)) + seqs + times + aliases + values)
    deflated = zlib.compress(blob, 9, wbits=-15)
    codec, body = (_CODEC_DEFLATE, deflated) if len(deflated) < len(blob) else (_CODEC_PLAIN, blob)
    scale_list = [x for alias, scale in sorted(scales.items()) for x in (alias, scale)]
    return msgpack.packb(  # type: ignore[no-any-return]
        [VERSION, epoch, s0, t0 // 1000, t0 % 1000, tick, scale_list, flags, codec, body],
        use_bin_type=True,
    )


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def uvarint(self) -> int:
        value, self.pos = read_uvarint(self.data, self.pos)
        return value

    def svarint(self) -> int:
        return unzigzag(self.uvarint())

    def float64(self) -> float:
        chunk = self.data[self.pos : self.pos + 9]
        self.pos += 9
        if len(chunk) != 9 or chunk[0] != 0xCB:
            raise WireError("bad float in v2 data")
        value: float = _FLOAT64.unpack_from(chunk, 1)[0]
        return value


def epoch_of(payload: bytes) -> int:
    """The buffer epoch of a v2 data message (which birth's series table it needs)."""
    unpacker = msgpack.Unpacker(max_bin_len=1 << 22)
    unpacker.feed(payload)
    try:
        if unpacker.read_array_header() != 10 or unpacker.unpack() != VERSION:
            raise WireError("not a v2 data message")
        epoch = unpacker.unpack()
    except (
        ValueError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
        msgpack.OutOfData,
    ) as error:
        raise WireError(f"not a v2 data message: {error!r}") from None
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise WireError("v2 data message: the epoch is not an integer")
    return epoch


MAX_INFLATED_BYTES = 1 << 22
"""A deflated body may inflate to at most this (4 MiB: 10,000 readings take ~300 kB)."""


def _inflate(body: bytes) -> bytes:
    """A raw-deflate body inflated; WireError past MAX_INFLATED_BYTES or when cut short."""
    inflater = zlib.decompressobj(wbits=-15)
    try:
        inflated = inflater.decompress(body, MAX_INFLATED_BYTES)
    except zlib.error as error:
        raise WireError(f"v2 data message: the body does not inflate: {error}") from None
    if inflater.unconsumed_tail:
        raise WireError(f"v2 data message: the body inflates beyond {MAX_INFLATED_BYTES} bytes")
    if not inflater.eof:
        raise WireError("v2 data message: the deflated body is cut short")
    return inflated


def _unpack(payload: bytes) -> list[Any]:
    try:
        message: Any = msgpack.unpackb(payload, raw=False, max_bin_len=1 << 22)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as error:
        raise WireError(f"not msgpack: {error}") from None
    if not isinstance(message, list) or len(message) != 10 or message[0] != VERSION:
        raise WireError("not a v2 data message")
    return message


def decode_data(
    payload: bytes,
    gateway: str,
    series_of: Callable[[int], Series | None],
    *,
    max_readings: int = MAX_READINGS,
) -> Iterator[HubReading]:
    """Readings of a v2 message from `gateway` (its topic); `series_of(alias)` comes from the
    gateway's birth message. Raises only WireError."""
    check_size(payload)
    _, ep, s0, t0_s, t0_ms, tick, scale_list, flag_list, codec, body = _unpack(payload)
    ep, s0 = wire_int(ep, "v2 data: ep"), wire_int(s0, "v2 data: s0")
    ts = wire_int(t0_s, "v2 data: t0_s") * 1000 + wire_int(t0_ms, "v2 data: t0_ms", 0, 999)
    tick = wire_int(tick, "v2 data: tick_ms", 1)
    scales, flags = _scales(scale_list), _flags(flag_list, max_readings)
    if type(codec) is not int or codec not in (_CODEC_PLAIN, _CODEC_DEFLATE):
        raise WireError("v2 data: unknown codec")
    if type(body) is not bytes:
        raise WireError("v2 data: the body is not a byte string")
    reader = _Reader(_inflate(body) if codec == _CODEC_DEFLATE else body)
    count = reader.uvarint()
    if count > max_readings or count > len(reader.data):
        raise WireError(f"v2 message claims {count} readings")
    gaps = [reader.uvarint() for _ in range(count)]
    steps = [reader.svarint() for _ in range(count)]
    aliases = [reader.uvarint() for _ in range(count)]
    seq = s0 - 1
    last: dict[int, int] = {}
    readings = []
    for index in range(count):
        seq += gaps[index] + 1
        ts += steps[index] * tick
        alias = aliases[index]
        scale = scales.get(alias)
        if scale is None:
            raise WireError(f"v2 data: no decimals for series alias {alias}")
        if scale == RAW:
            value = reader.float64()
        else:
            scaled = last[alias] = last.get(alias, 0) + reader.svarint()
            if not -MAX_EXACT < scaled < MAX_EXACT:
                raise WireError(f"v2 data: a value of series {alias} is out of range")
            value = scaled / 10**scale if scale else float(scaled)
        series = series_of(alias)
        if series is None:
            raise WireError(
                f"series alias {alias} unknown: the gateway's birth message has not been seen"
            )
        synced = not (flags.get(index, 0) & CLOCK_UNSYNCED)
        readings.append(HubReading(gateway, ep, seq, ts, *series, value, synced))
    return iter(readings)


def _scales(scale_list: object) -> dict[int, int]:
    """`[alias, decimals, ...]` as a dict; decimals 0-9 or RAW."""
    if not isinstance(scale_list, list) or len(scale_list) % 2 or len(scale_list) > 2 * MAX_SERIES:
        raise WireError("v2 data: scales must be a list of alias, decimals pairs")
    scales: dict[int, int] = {}
    for alias, scale in zip(scale_list[::2], scale_list[1::2], strict=True):
        scales[wire_int(alias, "v2 data: alias", 0)] = wire_int(scale, "v2 data: decimals", 0)
        if MAX_DECIMALS < scale != RAW:
            raise WireError(f"v2 data: {scale} decimals for series alias {alias}")
    return scales


def _flags(flag_list: object, max_readings: int) -> dict[int, int]:
    """`[[index, flags], ...]` as a dict."""
    if not isinstance(flag_list, list) or len(flag_list) > max_readings:
        raise WireError("v2 data: flags must be a list of [index, flags] pairs")
    flags: dict[int, int] = {}
    for pair in flag_list:
        if not isinstance(pair, list) or len(pair) != 2:
            raise WireError("v2 data: flags must be a list of [index, flags] pairs")
        flags[wire_int(pair[0], "v2 data: flag index")] = wire_int(pair[1], "v2 data: flags")
    return flags
