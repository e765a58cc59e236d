"""`citygw bench wire`: replay recorded readings through the real encoder and count MQTT bytes.

Simulated time, no waiting: readings are batched per flush window of the gateway (and by
`batch_max_readings`), encoded exactly as the uplink does, and framed as the MQTT 5 PUBLISH
packets the gateway sends to the broker (QoS 1, so with a packet id): the retained birth at each
(re)connect, and the data topic in full once per connection, then by topic alias.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway import wire
from gateway.readings import Series, StoredReading

_UNITS = (
    ("_ugm3", "ug/m3"),
    ("_c", "Cel"),
    ("_pct", "%"),
    ("_hpa", "hPa"),
    ("_ppm", "ppm"),
    ("_mm", "mm"),
)


def unit_of(quantity: str) -> str:
    """The unit a quantity name carries in its suffix (`pm10_ugm3` -> `ug/m3`)."""
    return next((unit for suffix, unit in _UNITS if quantity.endswith(suffix)), "")


@dataclass(frozen=True, slots=True)
class Row:
    """One reading of the replayed CSV."""

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
                yield Row(
                    round(float(record["ts"]) * 1000),
                    record["sensor_id"],
                    record["quantity"],
                    float(record["value"]),
                )


def mqtt_publish_size(
    topic: str, payload_len: int, *, mqtt5: bool = True, properties_len: int = 0
) -> int:
    """Bytes of one QoS 1 PUBLISH packet: fixed header, topic, packet id, properties, payload."""
    remaining = 2 + len(topic.encode()) + 2 + (1 + properties_len if mqtt5 else 0) + payload_len
    length_bytes = 1
    while remaining >= 128**length_bytes:
        length_bytes += 1
    return 1 + length_bytes + remaining


TOPIC_ALIAS_PROPERTY = 3  # MQTT 5 property 0x23 (Topic Alias) and its two-byte value
PINGREQ = 2


@dataclass(slots=True)
class WireStats:
    """What a replay sent (readings, messages, bytes by kind) under one wire format and setup."""

    wire_format: int = wire.VERSION
    topic_alias: bool = True
    connection_hours: float = 24.0
    keepalive_s: int = 60
    readings: int = 0
    messages: int = 0
    connections: int = 0
    payload_bytes: int = 0
    bytes: int = 0  # PUBLISH packets as sent (data and births), MQTT framing included
    zlib_payload_bytes: int = 0
    zlib_bytes: int = 0
    birth_bytes: int = 0  # retained status (birth) messages; v2/v3 carry the series table
    ping_bytes: int = 0  # PINGREQs the client sends while idle for keepalive_s

    def as_dict(self, flush_seconds: float) -> dict[str, float | int | bool]:
        """The figures as a flat dict, with bytes per reading (the JSON that --json prints)."""
        per = max(self.readings, 1)
        return {
            "wire_format": self.wire_format,
            "flush_seconds": flush_seconds,
            "topic_alias": self.topic_alias,
            "connection_hours": self.connection_hours,
            "readings": self.readings,
            "messages": self.messages,
            "connections": self.connections,
            "payload_bytes": self.payload_bytes,
            "bytes": self.bytes,
            "bytes_per_reading": round(self.bytes / per, 3),
            "zlib_bytes": self.zlib_bytes,
            "zlib_bytes_per_reading": round(self.zlib_bytes / per, 3),
            "birth_bytes": self.birth_bytes,
            "keepalive_s": self.keepalive_s,
            "ping_bytes": self.ping_bytes,
            "bytes_per_reading_with_pings": round((self.bytes + self.ping_bytes) / per, 3),
        }


class _Connection:
    """What one gateway's MQTT connections send, in simulated time: a birth when a connection
    starts (and when new series need naming), data with the topic alias after the first."""

    def __init__(
        self,
        stats: WireStats,
        *,
        topic: str,
        status_topic: str,
        gateway_id: str,
        connection_ms: int,
    ) -> None:
        self.stats, self.topic, self.status_topic = stats, topic, status_topic
        self.gateway_id, self.connection_ms = gateway_id, connection_ms
        self.ends_ms: int | None = None
        self.alias_set = False
        self.last_sent_ms: int | None = None
        self.announced: set[int] = set()

    def _packet(self, now_ms: int, size: int) -> int:
        stats = self.stats
        if self.last_sent_ms is not None:
            stats.ping_bytes += PINGREQ * (
                (now_ms - self.last_sent_ms) // (stats.keepalive_s * 1000)
            )
        self.last_sent_ms = now_ms
        return size

    def birth(self, now_ms: int, by_id: dict[int, Series]) -> None:
        fmt = self.stats.wire_format
        self.announced = set(by_id) if fmt >= 2 else set()
        payload = wire.encode_status(
            self.gateway_id,
            state="online",
            version="0",
            started_ms=0,
            series=dict(by_id) if fmt >= 2 else None,
            wire_format=fmt,
        )
        size = self._packet(now_ms, mqtt_publish_size(self.status_topic, len(payload)))
        self.stats.birth_bytes += size
        self.stats.bytes += size
        self.stats.zlib_bytes += size

    def data(self, now_ms: int, batch: list[StoredReading], by_id: dict[int, Series]) -> None:
        stats = self.stats
        if self.ends_ms is None or now_ms >= self.ends_ms:  # (re)connect: birth, alias anew
            stats.connections += 1
            self.ends_ms = now_ms + self.connection_ms
            self.alias_set = False
            self.birth(now_ms, by_id)
        elif stats.wire_format >= 2 and not {row[2] for row in batch} <= self.announced:
            self.birth(now_ms, by_id)  # the uplink re-publishes its birth for new series
        topic, properties = self.topic, 0
        if stats.topic_alias:
            properties = TOPIC_ALIAS_PROPERTY
            topic = self.topic if not self.alias_set else ""
            self.alias_set = True
        payload = encode(stats.wire_format, batch, by_id, gateway_id=self.gateway_id)
        compressed = zlib.compress(payload, 9)
        stats.messages += 1
        stats.readings += len(batch)
        stats.payload_bytes += len(payload)
        stats.bytes += self._packet(
            now_ms, mqtt_publish_size(topic, len(payload), properties_len=properties)
        )
        stats.zlib_payload_bytes += len(compressed)
        stats.zlib_bytes += mqtt_publish_size(topic, len(compressed), properties_len=properties)


def encode(
    wire_format: int,
    batch: list[StoredReading],
    by_id: dict[int, Series],
    *,
    gateway_id: str,
    epoch: int = 1,
) -> bytes:
    """A batch through the uplink's encoder for `wire_format`."""
    return wire.encode_data(
        wire_format, gateway_id=gateway_id, epoch=epoch, batch=batch, series_of=by_id.__getitem__
    )


def replay(
    rows: Iterable[Row],
    *,
    flush_seconds: float,
    gateway_id: str = "gw-0001",
    topic_prefix: str = "citygw/v1",
    batch_max_readings: int = 1000,
    wire_format: int = 1,
    topic_alias: bool = True,
    connection_hours: float = 24.0,
    keepalive_s: int = 60,
) -> WireStats:
    """Batch rows as the uplink would (a flush every `flush_seconds` of the rows' own time, or a
    full batch), encode each batch with the real encoder, and count the bytes. The gateway
    reconnects every `connection_hours` (a birth, and the data topic in full once, each time)."""
    stats = WireStats(
        wire_format=wire_format,
        topic_alias=topic_alias,
        connection_hours=connection_hours,
        keepalive_s=keepalive_s,
    )
    link = _Connection(
        stats,
        topic=wire.topic(topic_prefix, gateway_id, wire.TOPIC_DATA),
        status_topic=wire.topic(topic_prefix, gateway_id, wire.TOPIC_STATUS),
        gateway_id=gateway_id,
        connection_ms=round(connection_hours * 3_600_000),
    )
    series_ids: dict[Series, int] = {}
    by_id: dict[int, Series] = {}
    pending: list[StoredReading] = []
    flush_ms = round(flush_seconds * 1000)
    window_end: int | None = None

    def send(now_ms: int) -> None:
        for start in range(0, len(pending), batch_max_readings):
            link.data(now_ms, pending[start : start + batch_max_readings], by_id)
        pending.clear()

    for seq, row in enumerate(rows, start=1):
        if window_end is None:
            window_end = row.ts_ms + flush_ms
        while row.ts_ms >= window_end:
            if pending:
                send(window_end)
            window_end += flush_ms
        series = Series(row.sensor, row.quantity, unit_of(row.quantity))
        sid = series_ids.get(series)
        if sid is None:
            sid = series_ids[series] = len(series_ids) + 1
            by_id[sid] = series
        pending.append((seq, row.ts_ms, sid, row.value, 0))
    if pending and window_end is not None:
        send(window_end)
    return stats


def format_report(stats: WireStats, flush_seconds: float) -> str:
    """The figures as the text report `citygw bench wire` prints."""
    d = stats.as_dict(flush_seconds)
    out = io.StringIO()
    out.write(
        f"wire format v{d['wire_format']}, flush every {flush_seconds:g} s: "
        f"{d['readings']:,} readings in {d['messages']:,} messages\n"
    )
    out.write(
        f"  as sent:          {d['bytes']:>12,} B  {d['bytes_per_reading']:.2f} B/reading "
        "(MQTT 5 PUBLISH, QoS 1, framing included)\n"
    )
    out.write(
        f"  zlib (what-if):   {d['zlib_bytes']:>12,} B  "
        f"{d['zlib_bytes_per_reading']:.2f} B/reading\n"
    )
    alias = (
        "data topic by MQTT 5 topic alias after the first"
        if d["topic_alias"]
        else ("full data topic in every message")
    )
    out.write(
        f"  connections:      {d['connections']:,} ({d['connection_hours']:g} h each; "
        f"a birth and the full topic once per connection; {alias})\n"
    )
    out.write(
        f"  + PINGREQs:       {d['ping_bytes']:>12,} B  "
        f"{d['bytes_per_reading_with_pings']:.2f} B/reading with them "
        f"(keepalive {d['keepalive_s']} s)\n"
    )
    return out.getvalue()
