"""Wire format v2: compact data messages, decoded with the series table of the retained birth.

A v2 data message is a msgpack array `[2, ep, s0, t0_s, t0_ms, tick_ms, scales, flags, codec,
blob]` (the gateway id is in the topic):
columns of varints (sequence gaps, time steps in ticks, series aliases, per-series value deltas
as scaled integers), deflated when that is smaller. Values stay exact: each series is sent at the
decimal resolution its values have in this message. Aliases are the buffer's series ids, listed
with their names in the gateway's retained `status` (birth) message. See docs/protocol.md.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgpack

from gateway.readings import CLOCK_UNSYNCED, Series, StoredReading
from gateway.wire.codec import (
    HubReading,
    WireError,
    decimals,
    put_svarint,
    put_uvarint,
    read_uvarint,
    scaled_integer,
    tick_ms,
    unzigzag,
    uvarint_bytes,
)

VERSION = 2
RAW = 127  # scale marker: values of this series travel as float64
_CODEC_PLAIN, _CODEC_DEFLATE = 0, 1


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
        try:
            value = msgpack.unpackb(chunk)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError) as error:
            raise WireError(f"bad float in v2 data: {error}") from None
        if not isinstance(value, float):
            raise WireError("bad float in v2 data")
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


MAX_INFLATED_BYTES = 1 << 24
"""A deflated body may inflate to at most this (16 MiB: 100,000 readings take ~2 MB)."""


def _inflate(body: bytes) -> bytes:
    """A raw-deflate body inflated; WireError past MAX_INFLATED_BYTES or when cut short."""
    inflater = zlib.decompressobj(wbits=-15)
    inflated = inflater.decompress(body, MAX_INFLATED_BYTES)
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
    max_readings: int = 100_000,
) -> Iterator[HubReading]:
    """Readings of a v2 message from `gateway` (its topic); `series_of(alias)` comes from the
    gateway's birth message."""
    _, ep, s0, t0_s, t0_ms, tick, scale_list, flag_list, codec, body = _unpack(payload)
    try:
        scales = dict(zip(scale_list[::2], scale_list[1::2], strict=True))
        flags = {int(i): int(f) for i, f in flag_list}
        reader = _Reader(_inflate(body) if codec == _CODEC_DEFLATE else bytes(body))
        count = reader.uvarint()
        if count > max_readings:
            raise WireError(f"v2 message claims {count} readings")
        gaps = [reader.uvarint() for _ in range(count)]
        steps = [reader.svarint() for _ in range(count)]
        aliases = [reader.uvarint() for _ in range(count)]
        seq, ts = int(s0) - 1, int(t0_s) * 1000 + int(t0_ms)
        last: dict[int, int] = {}
        readings = []
        for index in range(count):
            seq += gaps[index] + 1
            ts += steps[index] * int(tick)
            alias = aliases[index]
            scale = scales[alias]
            if scale == RAW:
                value = reader.float64()
            else:
                last[alias] = last.get(alias, 0) + reader.svarint()
                value = last[alias] / 10**scale if scale else float(last[alias])
            series = series_of(alias)
            if series is None:
                raise WireError(
                    f"series alias {alias} unknown: the gateway's birth message has not been seen"
                )
            synced = not (flags.get(index, 0) & CLOCK_UNSYNCED)
            readings.append(HubReading(gateway, int(ep), seq, ts, *series, value, synced))
    except (KeyError, TypeError, ValueError, IndexError, zlib.error) as error:
        raise WireError(f"malformed v2 data message: {error!r}") from None
    return iter(readings)
