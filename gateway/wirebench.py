"""`citygw bench wire`: replay recorded readings through the real encoder and count MQTT bytes.

Simulated time, no waiting: readings are batched per flush window of the gateway (and by
`batch_max_readings`), encoded with gateway.wire exactly as the uplink does, and framed as the
MQTT PUBLISH packets the gateway sends to the broker (QoS 1, so with a packet id).
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway import wire, wire2, wire3
from gateway.readings import Series, StoredReading

_UNITS = (("_ugm3", "ug/m3"), ("_c", "Cel"), ("_pct", "%"), ("_hpa", "hPa"), ("_ppm", "ppm"))


def unit_of(quantity: str) -> str:
    """The unit a quantity name carries in its suffix (`pm10_ugm3` -> `ug/m3`)."""
    return next((unit for suffix, unit in _UNITS if quantity.endswith(suffix)), "")


@dataclass(frozen=True, slots=True)
class Row:
    ts_ms: int
    sensor: str
    quantity: str
    value: float


def read_rows(path: Path, *, sensors: set[str] | None = None) -> Iterator[Row]:
    """Rows of a `ts,sensor_id,quantity,value` CSV (gzip if it ends in .gz), in file order."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"ts", "sensor_id", "quantity", "value"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {', '.join(sorted(missing))}")
        for record in reader:
            if sensors is None or record["sensor_id"] in sensors:
                yield Row(round(float(record["ts"]) * 1000), record["sensor_id"],
                          record["quantity"], float(record["value"]))


def mqtt_publish_size(topic: str, payload_len: int, *, mqtt5: bool = True) -> int:
    """Bytes of one QoS 1 PUBLISH packet: fixed header, topic, packet id, properties, payload."""
    remaining = 2 + len(topic.encode()) + 2 + (1 if mqtt5 else 0) + payload_len
    length_bytes = 1
    while remaining >= 128 ** length_bytes:
        length_bytes += 1
    return 1 + length_bytes + remaining


@dataclass(slots=True)
class WireStats:
    wire_format: int = wire.VERSION
    readings: int = 0
    messages: int = 0
    payload_bytes: int = 0
    bytes: int = 0  # PUBLISH packets as sent, MQTT framing included
    zlib_payload_bytes: int = 0
    zlib_bytes: int = 0
    birth_bytes: int = 0  # v2: retained status messages carrying the series table

    def as_dict(self, flush_seconds: float) -> dict[str, float | int]:
        per = max(self.readings, 1)
        return {
            "wire_format": self.wire_format, "flush_seconds": flush_seconds,
            "readings": self.readings, "messages": self.messages,
            "payload_bytes": self.payload_bytes, "bytes": self.bytes,
            "bytes_per_reading": round(self.bytes / per, 3),
            "zlib_bytes": self.zlib_bytes,
            "zlib_bytes_per_reading": round(self.zlib_bytes / per, 3),
            "birth_bytes": self.birth_bytes,
        }


def replay(
    rows: Iterable[Row], *, flush_seconds: float, gateway_id: str = "gw-0001",
    topic_prefix: str = "citygw/v1", batch_max_readings: int = 1000, wire_format: int = 1,
) -> WireStats:
    """Batch rows as the uplink would (a flush every `flush_seconds` of the rows' own time, or a
    full batch), encode each batch with the real encoder, and count the bytes."""
    topic = wire.topic(topic_prefix, gateway_id, wire.TOPIC_DATA)
    status_topic = wire.topic(topic_prefix, gateway_id, wire.TOPIC_STATUS)
    announced: set[int] = set()
    series_ids: dict[Series, int] = {}
    by_id: dict[int, Series] = {}
    stats = WireStats(wire_format=wire_format)
    pending: list[StoredReading] = []
    flush_ms = round(flush_seconds * 1000)
    window_end: int | None = None

    def send() -> None:
        for start in range(0, len(pending), batch_max_readings):
            batch = pending[start:start + batch_max_readings]
            if wire_format in (2, 3):
                new = {row[2] for row in batch} - announced
                if new:  # the uplink re-publishes its birth before data uses a new alias
                    announced.update(new)
                    birth = wire.encode_status(gateway_id, state="online", version="0",
                                               started_ms=0, series=by_id)
                    size = mqtt_publish_size(status_topic, len(birth))
                    stats.birth_bytes += size
                    stats.bytes += size
                    stats.zlib_bytes += size
                payload = (wire2.encode_data(1, batch) if wire_format == 2
                           else wire3.encode_data(1, batch, by_id.__getitem__))
            else:
                payload = wire.encode_data(gateway_id, 1, batch, by_id.__getitem__)
            compressed = zlib.compress(payload, 9)
            stats.messages += 1
            stats.readings += len(batch)
            stats.payload_bytes += len(payload)
            stats.bytes += mqtt_publish_size(topic, len(payload))
            stats.zlib_payload_bytes += len(compressed)
            stats.zlib_bytes += mqtt_publish_size(topic, len(compressed))
        pending.clear()

    for seq, row in enumerate(rows, start=1):
        if window_end is None:
            window_end = row.ts_ms + flush_ms
        while row.ts_ms >= window_end:
            send()
            window_end += flush_ms
        series = Series(row.sensor, row.quantity, unit_of(row.quantity))
        sid = series_ids.get(series)
        if sid is None:
            sid = series_ids[series] = len(series_ids) + 1
            by_id[sid] = series
        pending.append((seq, row.ts_ms, sid, row.value, 0))
    send()
    return stats


def format_report(stats: WireStats, flush_seconds: float) -> str:
    d = stats.as_dict(flush_seconds)
    out = io.StringIO()
    out.write(f"wire format v{d['wire_format']}, flush every {flush_seconds:g} s: "
              f"{d['readings']:,} readings in {d['messages']:,} messages\n")
    out.write(f"  as sent:          {d['bytes']:>12,} B  {d['bytes_per_reading']:.2f} B/reading "
              "(MQTT 5 PUBLISH, QoS 1, framing included)\n")
    out.write(f"  zlib (what-if):   {d['zlib_bytes']:>12,} B  "
              f"{d['zlib_bytes_per_reading']:.2f} B/reading\n")
    return out.getvalue()
