"""Wire format v1: a self-contained msgpack map per data message. See docs/protocol.md."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import msgpack

from gateway.readings import CLOCK_UNSYNCED, Series, StoredReading
from gateway.wire.codec import HubReading, WireError
from gateway.wire.messages import unpack_map

VERSION = 1


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


def decode_data(payload: bytes) -> Iterator[HubReading]:
    """All readings of one data message; WireError if it is malformed."""
    m = unpack_map(payload)
    try:
        gw, ep, s0, t0 = str(m["gw"]), int(m["ep"]), int(m["s0"]), int(m["t0"])
        table = [Series(str(s), str(q), str(u)) for s, q, u in m["series"]]
        rows = m["r"]
        decoded = []
        for row in rows:
            dseq, dts, i, value = row[:4]
            flags = row[4] if len(row) > 4 else 0
            series = table[i]
            decoded.append(
                HubReading(
                    gw,
                    ep,
                    s0 + int(dseq),
                    t0 + int(dts),
                    series.source,
                    series.quantity,
                    series.unit,
                    float(value),
                    not (int(flags) & CLOCK_UNSYNCED),
                )
            )
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise WireError(f"malformed data message: {error!r}") from None
    return iter(decoded)
