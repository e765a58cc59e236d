"""Wire format v1: a self-contained msgpack map per data message. See docs/protocol.md."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import msgpack

from gateway.readings import CLOCK_UNSYNCED, Series, StoredReading
from gateway.wire.codec import (
    MAX_READINGS,
    MAX_SERIES,
    HubReading,
    WireError,
    check_size,
    wire_int,
    wire_name,
)
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


def decode_data(payload: bytes, gateway: str | None = None) -> Iterator[HubReading]:
    """All readings of one data message; WireError if it is malformed. `gateway` is the one
    the message's topic names: a hub always passes it, and a message whose `gw` names another
    gateway is refused (anyone may publish on any topic the broker lets them). Tools that read
    their own gateway's messages may leave it out and take `gw` as the message says."""
    check_size(payload)
    m = unpack_map(payload)
    named = wire_name(m.get("gw"), "v1 data: gw")
    if gateway is not None and named != gateway:
        raise WireError(f"v1 data names gateway {named!r} but came on the topic of {gateway!r}")
    ep, s0, t0 = (wire_int(m.get(k), f"v1 data: {k}") for k in ("ep", "s0", "t0"))
    table, rows = m.get("series"), m.get("r")
    if not isinstance(table, list) or len(table) > MAX_SERIES:
        raise WireError(f"v1 data: series must be a list of at most {MAX_SERIES}")
    if not isinstance(rows, list) or len(rows) > MAX_READINGS:
        raise WireError(f"v1 data: r must be a list of at most {MAX_READINGS} readings")
    names = [_series(entry) for entry in table]
    return iter([_reading(named, ep, s0, t0, names, row) for row in rows])


def _series(entry: object) -> Series:
    if not isinstance(entry, list) or len(entry) != 3:
        raise WireError("v1 data: a series is [source, quantity, unit]")
    return Series(*(wire_name(part, "v1 data: series name") for part in entry))


def _reading(gw: str, ep: int, s0: int, t0: int, names: list[Series], row: object) -> HubReading:
    if not isinstance(row, list) or len(row) not in (4, 5):
        raise WireError("v1 data: a reading is [dseq, dts, series, value] or with flags")
    dseq, dts = wire_int(row[0], "v1 data: dseq"), wire_int(row[1], "v1 data: dts")
    index = wire_int(row[2], "v1 data: series index", 0, len(names) - 1)
    flags = wire_int(row[4], "v1 data: flags") if len(row) > 4 else 0
    value = row[3]
    if type(value) is not float:
        value = float(wire_int(value, "v1 data: value"))
    source, quantity, unit = names[index]
    synced = not flags & CLOCK_UNSYNCED
    return HubReading(gw, ep, s0 + dseq, t0 + dts, source, quantity, unit, value, synced)
