"""The wire formats (docs/protocol.md), behind one dispatch for encoding and decoding.

v1 is a self-contained msgpack map per data message; v2 (msgpack columns), v3 (bit-packed)
and v4 (v3 with a shorter header, cheaper rows and decimals) name their series by the alias
table of the gateway's retained birth. Status, metrics and the birth are the same maps in every
version (`messages`). The v2, v3 and v4 codecs are imported on first use, so a gateway that
sends v1 never loads them (RSS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from gateway.readings import Series, StoredReading
from gateway.wire import v1
from gateway.wire.alert import decode_alert, encode_alert
from gateway.wire.codec import MAX_MESSAGE_BYTES, HubReading, WireError, check_size
from gateway.wire.messages import (
    TOPIC_ALERT,
    TOPIC_CONFIG_STATE,
    TOPIC_DATA,
    TOPIC_METRICS,
    TOPIC_REGISTER,
    TOPIC_STATUS,
    VERSION,
    birth_epoch,
    decode_map,
    encode_metrics,
    encode_status,
    series_table,
    topic,
)

__all__ = [
    "FORMATS",
    "MAX_MESSAGE_BYTES",
    "TOPIC_ALERT",
    "TOPIC_CONFIG_STATE",
    "TOPIC_DATA",
    "TOPIC_METRICS",
    "TOPIC_REGISTER",
    "TOPIC_STATUS",
    "VERSION",
    "HubReading",
    "SeriesTables",
    "WireError",
    "birth_epoch",
    "decode_alert",
    "decode_data",
    "decode_map",
    "encode_alert",
    "encode_data",
    "encode_metrics",
    "encode_status",
    "series_table",
    "topic",
    "version_of",
]

FORMATS = (1, 2, 3, 4)
"""The data formats this package encodes and decodes (`[hub] wire_format`)."""

SeriesTables = Callable[[int], Mapping[int, Series]]
"""A hub's alias tables: buffer epoch -> the alias table of that epoch's birth."""


def version_of(payload: bytes) -> int:
    """The format of a data message, from its first byte: 0x03 is v3, 0x40-0x5F v4, a msgpack
    array v2, anything else is taken for a v1 map (its decoder says if it is not)."""
    first = payload[0] if payload else -1
    if first == 3:
        return 3
    if first & 0xE0 == 0x40:
        return 4
    if 0x90 <= first <= 0x9F or first in (0xDC, 0xDD):
        return 2
    return 1


def encode_data(
    version: int,
    *,
    gateway_id: str,
    epoch: int,
    batch: Sequence[StoredReading],
    series_of: Callable[[int], Series],
) -> bytes:
    """One data message of format `version` for a batch in buffer order."""
    if version == 1:
        return v1.encode_data(gateway_id, epoch, batch, series_of)
    if version == 2:
        from gateway.wire import v2

        return v2.encode_data(epoch, batch)
    if version == 3:
        from gateway.wire import v3

        return v3.encode_data(epoch, batch, series_of)
    if version == 4:
        from gateway.wire import v4

        return v4.encode_data(epoch, batch, series_of)
    raise ValueError(f"unknown wire format {version}; expected one of {FORMATS}")


def decode_data(
    payload: bytes,
    *,
    gateway: str = "",
    series_tables: SeriesTables | None = None,
) -> Iterator[HubReading]:
    """Every reading of one data message from `gateway` (the topic's: a v1 message naming
    another is refused; without it, v1 readings carry the gateway the message names).
    `series_tables` gives the birth's aliases for v2 and v3. Raises only WireError."""
    check_size(payload)
    version = version_of(payload)
    if version == 1:
        return v1.decode_data(payload, gateway or None)
    tables = series_tables or (lambda epoch: {})
    if version == 2:
        from gateway.wire import v2

        return v2.decode_data(payload, gateway, tables(v2.epoch_of(payload)).get)
    if version == 3:
        from gateway.wire import v3

        return v3.decode_data(payload, gateway, tables(v3.epoch_of(payload)).get)
    from gateway.wire import v4

    return v4.decode_data(payload, gateway, tables(v4.epoch_of(payload)).get)
