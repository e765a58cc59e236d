"""The alert message (`<prefix>/<gateway_id>/alert`): one raise or clear, JSON, sent at once.

An alert is also a reading in the buffer, series (source, "alert/<rule>", "1"), value 1 on a
raise and 0 on a clear; the message carries that reading's key (`epoch`, `seq`), so a hub that
also gets it in a data message stores it once. Self-describing, so a warning service can read
it without the gateway's birth (docs/protocol.md, "Alerts"):

    {"v": 1, "gateway": "gw-0001", "rule": "pm-high", "state": "raised",
     "source": "pm-north", "quantity": "pm2_5_ugm3", "unit": "ug/m3",
     "value": 57.3, "threshold": 50.0, "rate_per_min": null,
     "ts_ms": 1765085400123, "epoch": 12345, "seq": 678, "clock_synced": true}
"""

from __future__ import annotations

import json
import math
from typing import Any

from gateway.wire.codec import (
    TS_MS_MAX,
    TS_MS_MIN,
    HubReading,
    WireError,
    wire_int,
    wire_name,
)

VERSION = 1
MAX_ALERT_BYTES = 4096
"""An alert message is ~300 bytes; a hub refuses one above this before parsing it."""
STATES = ("raised", "cleared")
_NAMES = ("gateway", "rule", "source", "quantity", "unit")


def encode_alert(
    *,
    gateway_id: str,
    rule: str,
    raised: bool,
    source: str,
    quantity: str,
    unit: str,
    value: float | None,
    threshold: float | None,
    rate_per_min: float | None,
    ts_ms: int,
    epoch: int,
    seq: int,
    clock_synced: bool,
) -> bytes:
    """The alert message as compact JSON (non-finite numbers go as null)."""
    message = {
        "v": VERSION,
        "gateway": gateway_id,
        "rule": rule,
        "state": STATES[0] if raised else STATES[1],
        "source": source,
        "quantity": quantity,
        "unit": unit,
        "value": _finite(value),
        "threshold": _finite(threshold),
        "rate_per_min": _finite(rate_per_min),
        "ts_ms": ts_ms,
        "epoch": epoch,
        "seq": seq,
        "clock_synced": clock_synced,
    }
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


def decode_alert(payload: bytes, *, gateway: str) -> tuple[dict[str, Any], HubReading]:
    """The alert's fields (the known keys only) and its reading, from `gateway` (the topic's:
    a message naming another is refused). Raises only WireError."""
    if len(payload) > MAX_ALERT_BYTES:
        raise WireError(f"alert of {len(payload)} bytes is over the {MAX_ALERT_BYTES} limit")
    try:
        message = json.loads(payload, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        message = None
    if not isinstance(message, dict):
        raise WireError("alert: expected a JSON object")
    if message.get("v") != VERSION or type(message.get("v")) is not int:
        raise WireError("alert: unknown version (expected v = 1)")
    fields: dict[str, Any] = {"v": VERSION}
    for key in _NAMES:
        fields[key] = wire_name(message.get(key), f"alert: {key}")
    if fields["gateway"] != gateway:
        raise WireError("alert: names another gateway than its topic")
    if message.get("state") not in STATES:
        raise WireError("alert: state: expected 'raised' or 'cleared'")
    fields["state"] = message["state"]
    for key in ("value", "threshold", "rate_per_min"):
        fields[key] = _number(message.get(key), key)
    fields["ts_ms"] = wire_int(message.get("ts_ms"), "alert: ts_ms", TS_MS_MIN, TS_MS_MAX)
    fields["epoch"] = wire_int(message.get("epoch"), "alert: epoch")
    fields["seq"] = wire_int(message.get("seq"), "alert: seq")
    synced = message.get("clock_synced", True)
    if type(synced) is not bool:
        raise WireError("alert: clock_synced: expected true or false")
    fields["clock_synced"] = synced
    reading = HubReading(
        gateway=gateway,
        epoch=fields["epoch"],
        seq=fields["seq"],
        ts_ms=fields["ts_ms"],
        source=fields["source"],
        quantity="alert/" + fields["rule"],
        unit="1",
        value=1.0 if fields["state"] == "raised" else 0.0,
        clock_synced=synced,
    )
    return fields, reading


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _number(value: object, key: str) -> float | None:
    if value is None:
        return None
    if type(value) is int and abs(value) <= 2**63:
        return float(value)
    if type(value) is not float or not math.isfinite(value):
        raise WireError(f"alert: {key}: expected a finite number or null")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
