"""The messages besides data, in every wire version: topics, status (birth, will), metrics.

They are msgpack maps with `"v": 1` whatever the data format (docs/protocol.md).
"""

from __future__ import annotations

from typing import Any

import msgpack

from gateway.readings import Series
from gateway.wire.codec import WireError

VERSION = 1
TOPIC_DATA = "data"
TOPIC_STATUS = "status"
TOPIC_METRICS = "metrics"
TOPIC_CONFIG_STATE = "config/state"


def topic(prefix: str, gateway_id: str, leaf: str) -> str:
    """`<prefix>/<gateway_id>/<leaf>`, e.g. `citygw/v1/gw-0001/data`."""
    return f"{prefix}/{gateway_id}/{leaf}"


def encode_status(
    gateway_id: str,
    *,
    state: str,
    version: str,
    started_ms: int,
    series: dict[int, Series] | None = None,
    wire_format: int = 2,
    epoch: int | None = None,
) -> bytes:
    """Birth/will. With `series` (wire v2, v3) it carries the alias table their data messages
    use, `wire` says which of the two the data messages are, and `ep` names the buffer epoch
    the aliases belong to (a new buffer numbers its series again)."""
    message: dict[str, Any] = {
        "v": VERSION,
        "gw": gateway_id,
        "state": state,
        "version": version,
        "started_ms": started_ms,
    }
    if series is not None:
        message["wire"] = wire_format
        if epoch is not None:
            message["ep"] = epoch
        message["series"] = [[alias, *s] for alias, s in sorted(series.items())]
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def encode_metrics(gateway_id: str, metrics: dict[str, Any]) -> bytes:
    """A health snapshot as the `metrics` message."""
    return msgpack.packb(  # type: ignore[no-any-return]
        {"v": VERSION, "gw": gateway_id, **metrics}, use_bin_type=True
    )


def unpack_map(payload: bytes) -> dict[str, Any]:
    """A msgpack map of wire version 1 (every status, metrics and v1 data message)."""
    try:
        message = msgpack.unpackb(payload, raw=False, strict_map_key=True, max_bin_len=0)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as error:
        raise WireError(f"not msgpack: {error}") from None
    if not isinstance(message, dict):
        raise WireError("expected a msgpack map")
    if message.get("v") != VERSION:
        raise WireError(f"unknown wire version {message.get('v')!r}")
    return message


def decode_map(payload: bytes) -> dict[str, Any]:
    """A status or metrics message as a plain dict."""
    return unpack_map(payload)


def series_table(birth: dict[str, Any]) -> dict[int, Series]:
    """Alias table from a decoded birth message (empty for a v1 birth)."""
    table: dict[int, Series] = {}
    for entry in birth.get("series", ()):
        try:
            alias, source, quantity, unit = entry
            table[int(alias)] = Series(str(source), str(quantity), str(unit))
        except (TypeError, ValueError):
            raise WireError(f"malformed series entry in birth: {entry!r}") from None
    return table
