"""The same readings in other encodings: ThingsBoard's gateway JSON and Sparkplug B.

Bytes per reading on the wire (MQTT 5 PUBLISH framing, QoS 1, as `publish_packet_bytes` counts
it; TCP/IP not included) for the bench's SDS011 workload, beside citygw's own formats:

- citygw wire v1 and v2: `gateway.wire.encode_data(1, ...)` and `(2, ...)`.
- ThingsBoard IoT Gateway JSON: what its MQTT connector publishes to `v1/gateway/telemetry`,
  `{"<device>": [{"ts": <ms>, "values": {"<key>": <value>, ...}}, ...]}` (readings of one
  device with one timestamp share a `values` object), one message per flush.
- Sparkplug B: a DDATA message per device per flush (`spBv1.0/<group>/DDATA/<edge>/<device>`),
  protobuf `Payload {timestamp, seq, metrics}`, each metric `{alias, timestamp, datatype =
  Double, double_value}`: aliases as announced in DBIRTH (the compact case), values as
  doubles (lossless like citygw). Encoded here by hand (the few fields used; the schema is
  eclipse-tahu's sparkplug_b.proto), so no protobuf package is needed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby

from gateway import wire
from gateway.readings import Series, StoredReading
from gateway.wire import v1
from gateway.wire import v2 as wire2

SPARKPLUG_DOUBLE = 10  # DataType.Double in sparkplug_b.proto


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def _field_double(number: int, value: float) -> bytes:
    return varint(number << 3 | 1) + struct.pack("<d", value)


def sparkplug_payload(
    timestamp_ms: int, seq: int, metrics: Sequence[tuple[int, int, float]]
) -> bytes:
    """Payload{timestamp=1, metrics=2, seq=3}; Metric{alias=2, timestamp=3, datatype=4,
    double_value=13} for (alias, ts_ms, value)."""
    out = bytearray(_field_varint(1, timestamp_ms))
    for alias, ts_ms, value in metrics:
        metric = (
            _field_varint(2, alias)
            + _field_varint(3, ts_ms)
            + _field_varint(4, SPARKPLUG_DOUBLE)
            + _field_double(13, value)
        )
        out += _field_bytes(2, metric)
    out += _field_varint(3, seq % 256)
    return bytes(out)


def thingsboard_json(batch: Sequence[StoredReading], series: dict[int, Series]) -> bytes:
    """ThingsBoard gateway telemetry: {device: [{"ts": ms, "values": {key: value}}]}."""
    devices: dict[str, list[dict[str, object]]] = {}
    for (source, ts_ms), rows in groupby(batch, key=lambda r: (series[r[2]].source, r[1])):
        devices.setdefault(source, []).append(
            {"ts": ts_ms, "values": {series[r[2]].quantity: r[3] for r in rows}}
        )
    return json.dumps(devices, separators=(",", ":")).encode()


def publish_packet_bytes(topic: str, payload_len: int) -> int:
    """An MQTT 5 QoS 1 PUBLISH: fixed header (1 + remaining-length varint), topic (2 + len),
    packet id (2), properties length (1, no properties), payload."""
    remaining = 2 + len(topic.encode()) + 2 + 1 + payload_len
    return 1 + len(varint(remaining)) + remaining


@dataclass(frozen=True)
class Encoded:
    name: str
    messages: int
    bytes: int
    readings: int

    @property
    def bytes_per_reading(self) -> float:
        return self.bytes / self.readings


def encode_all(
    batches: Sequence[Sequence[StoredReading]],
    series: dict[int, Series],
    *,
    gateway_id: str = "gw-0001",
    prefix: str = "citygw/v1",
) -> list[Encoded]:
    """Every encoding of the same batches (one batch = what one flush sends)."""
    readings = sum(len(b) for b in batches)
    data_topic = wire.topic(prefix, gateway_id, wire.TOPIC_DATA)
    epoch = 1_234_567_890
    totals = {
        "citygw wire v1": 0,
        "citygw wire v2": 0,
        "ThingsBoard gateway JSON": 0,
        "Sparkplug B (aliases)": 0,
    }
    messages = dict.fromkeys(totals, 0)
    for n, batch in enumerate(batches):
        for name, payload in (
            ("citygw wire v1", v1.encode_data(gateway_id, epoch, batch, series.__getitem__)),
            ("citygw wire v2", wire2.encode_data(epoch, batch)),
        ):
            totals[name] += publish_packet_bytes(data_topic, len(payload))
            messages[name] += 1
        payload = thingsboard_json(batch, series)
        totals["ThingsBoard gateway JSON"] += publish_packet_bytes(
            "v1/gateway/telemetry", len(payload)
        )
        messages["ThingsBoard gateway JSON"] += 1
        for source, rows in _by_device(batch, series):
            payload = sparkplug_payload(rows[-1][1], n, [(r[2], r[1], r[3]) for r in rows])
            topic = f"spBv1.0/citygw/DDATA/{gateway_id}/{source}"
            totals["Sparkplug B (aliases)"] += publish_packet_bytes(topic, len(payload))
            messages["Sparkplug B (aliases)"] += 1
    return [Encoded(name, messages[name], totals[name], readings) for name in totals]


def _by_device(
    batch: Sequence[StoredReading], series: dict[int, Series]
) -> Iterator[tuple[str, list[StoredReading]]]:
    devices: dict[str, list[StoredReading]] = {}
    for r in batch:
        devices.setdefault(series[r[2]].source, []).append(r)
    yield from devices.items()
