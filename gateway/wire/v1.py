"""Wire format v1 (msgpack): encoding on the gateway, decoding for the hub. See docs/protocol.md."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from gateway.readings import CLOCK_UNSYNCED, Series, StoredReading

VERSION = 1
TOPIC_DATA = "data"
TOPIC_STATUS = "status"
TOPIC_METRICS = "metrics"
TOPIC_CONFIG_STATE = "config/state"


class WireError(ValueError):
    """A payload that is not a valid citygw message (of a version this decoder knows)."""


def topic(prefix: str, gateway_id: str, leaf: str) -> str:
    return f"{prefix}/{gateway_id}/{leaf}"


def encode_data(
    gateway_id: str, epoch: int, batch: Sequence[StoredReading], series_of: Callable[[int], Series]
) -> bytes:
    """One self-contained data message: a series table, then readings as deltas from s0/t0.
    Rows are packed as they are made: a list per reading for a batch of 5,000 was ~1 MB of
    peak RSS while the uplink streams (BENCHMARKS.md, memory)."""
    if not batch:
        raise ValueError("empty batch")
    index: dict[int, int] = {}
    table: list[list[str]] = []
    for reading in batch:
        if reading[2] not in index:
            index[reading[2]] = len(table)
            table.append(list(series_of(reading[2])))
    s0, t0 = batch[0][0], batch[0][1]
    packer = msgpack.Packer(autoreset=False, use_bin_type=True, buf_size=16 * len(batch) + 256)
    head = {"v": VERSION, "gw": gateway_id, "ep": epoch, "s0": s0, "t0": t0, "series": table}
    packer.pack_map_header(len(head) + 1)
    for key, item in head.items():
        packer.pack(key)
        packer.pack(item)
    packer.pack("r")
    packer.pack_array_header(len(batch))
    pack = packer.pack
    for seq, ts_ms, sid, value, flags in batch:
        if value.is_integer() and abs(value) < 2**53:
            value = int(value)  # msgpack packs small ints in 1-3 bytes
        if flags:
            pack((seq - s0, ts_ms - t0, index[sid], value, flags))
        else:
            pack((seq - s0, ts_ms - t0, index[sid], value))
    return packer.bytes()  # type: ignore[no-any-return]


def encode_status(
    gateway_id: str, *, state: str, version: str, started_ms: int,
    series: dict[int, Series] | None = None, wire_format: int = 2, epoch: int | None = None,
) -> bytes:
    """Birth/will. With `series` (wire v2, v3) it carries the alias table their data messages
    use, `wire` says which of the two the data messages are, and `ep` names the buffer epoch
    the aliases belong to (a new buffer numbers its series again)."""
    message: dict[str, Any] = {"v": VERSION, "gw": gateway_id, "state": state,
                               "version": version, "started_ms": started_ms}
    if series is not None:
        message["wire"] = wire_format
        if epoch is not None:
            message["ep"] = epoch
        message["series"] = [[alias, *s] for alias, s in sorted(series.items())]
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def encode_metrics(gateway_id: str, metrics: dict[str, Any]) -> bytes:
    return msgpack.packb(  # type: ignore[no-any-return]
        {"v": VERSION, "gw": gateway_id, **metrics}, use_bin_type=True
    )


@dataclass(frozen=True, slots=True)
class HubReading:
    """A reading as the hub sees it. `key` is the same every time this reading is re-sent."""

    gateway: str
    epoch: int
    seq: int
    ts_ms: int
    source: str
    quantity: str
    unit: str
    value: float
    clock_synced: bool

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.gateway, self.epoch, self.seq)

    def as_json(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway, "source": self.source, "quantity": self.quantity,
            "value": self.value, "unit": self.unit, "ts_ms": self.ts_ms,
            "key": f"{self.gateway}/{self.epoch}/{self.seq}", "clock_synced": self.clock_synced,
        }


def _unpack(payload: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(payload, raw=False, strict_map_key=True, max_bin_len=0)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as error:
        raise WireError(f"not msgpack: {error}") from None
    if not isinstance(message, dict):
        raise WireError("expected a msgpack map")
    if message.get("v") != VERSION:
        raise WireError(f"unknown wire version {message.get('v')!r}")
    return message


def decode_data(payload: bytes) -> Iterator[HubReading]:
    """All readings of one data message; WireError if it is malformed."""
    m = _unpack(payload)
    try:
        gw, ep, s0, t0 = str(m["gw"]), int(m["ep"]), int(m["s0"]), int(m["t0"])
        table = [Series(str(s), str(q), str(u)) for s, q, u in m["series"]]
        rows = m["r"]
        decoded = []
        for row in rows:
            dseq, dts, i, value = row[:4]
            flags = row[4] if len(row) > 4 else 0
            series = table[i]
            decoded.append(HubReading(
                gw, ep, s0 + int(dseq), t0 + int(dts), series.source, series.quantity,
                series.unit, float(value), not (int(flags) & CLOCK_UNSYNCED)))
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise WireError(f"malformed data message: {error!r}") from None
    return iter(decoded)


def decode_map(payload: bytes) -> dict[str, Any]:
    """A status or metrics message as a plain dict."""
    return _unpack(payload)


class Deduplicator:
    """Drops readings whose key was seen. Per (gateway, epoch): every seq up to a watermark
    counts as seen, plus the seqs above it (a bounded set; beyond the bound the oldest gap is
    given up, which happens only when the gateway dropped readings)."""

    def __init__(self, *, max_pending: int = 100_000) -> None:
        self._streams: dict[tuple[str, int], _Stream] = {}
        self._max_pending = max_pending
        self.duplicates = 0

    def is_new(self, reading: HubReading) -> bool:
        stream = self._streams.get((reading.gateway, reading.epoch))
        if stream is None:
            stream = self._streams[(reading.gateway, reading.epoch)] = _Stream(reading.seq - 1)
        if not stream.add(reading.seq, self._max_pending):
            self.duplicates += 1
            return False
        return True


class _Stream:
    """Seqs seen of one (gateway, epoch). The stream starts at the first seq seen; seqs below
    it (a re-sent batch older than the first message the hub saw) are remembered apart, so
    they count as new once and as duplicates after."""

    __slots__ = ("above", "below", "below_heap", "first", "heap", "mark")

    def __init__(self, mark: int) -> None:
        self.mark = mark
        self.first = mark + 1
        self.above: set[int] = set()
        self.heap: list[int] = []
        self.below: set[int] = set()
        self.below_heap: list[int] = []

    def add(self, seq: int, max_pending: int) -> bool:
        if seq < self.first:
            return self._add_below(seq, max_pending)
        if seq <= self.mark or seq in self.above:
            return False
        self.above.add(seq)
        heapq.heappush(self.heap, seq)
        while self.heap and (self.heap[0] == self.mark + 1 or len(self.heap) > max_pending):
            self.mark = heapq.heappop(self.heap)
            self.above.discard(self.mark)
        return True

    def _add_below(self, seq: int, max_pending: int) -> bool:
        if seq in self.below:
            return False
        self.below.add(seq)
        heapq.heappush(self.below_heap, seq)
        if len(self.below_heap) > max_pending:  # bounded: forget the oldest
            self.below.discard(heapq.heappop(self.below_heap))
        return True
