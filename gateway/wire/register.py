"""The retained, public `register` message: what each source of a gateway measures, whose it
is and why (docs/register.md, docs/protocol.md).

Built from the config by whitelisting: a source's name, owner, type, driver, quantities and
its `[sources.register]` record, never the rest of its config (no ports, MAC addresses, bind
keys, credentials or URLs other than the record's privacy statement). JSON, not msgpack:
citizens' tools read it as it is.
"""

from __future__ import annotations

import json
import time
from typing import Any

from drivers.quantities import quantities
from gateway.config import (
    BleSourceConfig,
    Config,
    ModbusSourceConfig,
    RegisterRecord,
    SourceConfig,
)
from gateway.wire.codec import WireError, check_size
from gateway.wire.messages import MAX_DEPTH, TOPIC_REGISTER, plain

__all__ = ["TOPIC_REGISTER", "decode_register", "encode_register", "register_body"]

VERSION = 1
MAX_SOURCES = 1000
"""Most sources a decoded register may list (a gateway has a handful)."""


def _quantities(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"quantity": q, "unit": u} for q, u in pairs]


def source_entry(source: SourceConfig, gateway_owner: str) -> dict[str, Any]:
    """One source as the register lists it. A source of several devices (BLE sensors, meters
    on a bus) names each device and its kind (never addresses or keys) and lists every
    quantity its kinds measure."""
    entry: dict[str, Any] = {
        "source": source.name,
        "owner": source.owner or gateway_owner,
        "type": type(source).TYPE,
    }
    devices: list[tuple[str, str]] | None = None  # (device name, kind)
    if isinstance(source, BleSourceConfig):
        devices = [(device.name, device.kind) for device in source.devices]
    elif isinstance(source, ModbusSourceConfig):
        devices = [(meter.name, meter.model) for meter in source.meters]
    if devices is None:
        driver = str(getattr(source, "driver", ""))
        aggregated = getattr(source, "aggregate_s", None) is not None
        entry["driver"] = driver
        entry["quantities"] = _quantities(quantities(driver, aggregated=aggregated))
    else:
        kinds = sorted({kind for _, kind in devices})
        measured = dict.fromkeys(pair for kind in kinds for pair in quantities(kind))
        entry["driver"] = "+".join(kinds)
        entry["quantities"] = _quantities(tuple(measured))
        entry["devices"] = [{"device": name, "kind": kind} for name, kind in devices]
    entry["register"] = None if source.register is None else record_fields(source.register)
    return entry


def record_fields(record: RegisterRecord) -> dict[str, Any]:
    """A register record as the message carries it (the contract's keys, in its order)."""
    return {
        "purpose": record.purpose,
        "theme": record.theme,
        "personal_data": record.personal_data,
        "legal_ground": record.legal_ground,
        "location": None if record.location is None else list(record.location),
        "active_until": record.active_until,
        "open_data": record.open_data,
        "privacy_statement": record.privacy_statement,
    }


def register_body(config: Config) -> dict[str, Any]:
    """The register message without its time stamp: compare two to see if it changed."""
    owner = config.gateway.owner
    return {
        "v": VERSION,
        "gateway": config.gateway.id,
        "owner": owner,
        "sources": [source_entry(source, owner) for source in config.sources],
    }


def encode_register(body: dict[str, Any], *, now_s: float | None = None) -> bytes:
    """The message as published: `body` stamped with `ts` (UTC, ISO 8601, seconds)."""
    stamp = time.gmtime(time.time() if now_s is None else now_s)
    message = {**body, "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp)}
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def decode_register(payload: bytes) -> dict[str, Any]:
    """A register message checked for its shape (for the hub); WireError if it is not one."""
    check_size(payload)
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        raise WireError("register: not JSON") from None
    if not isinstance(message, dict) or message.get("v") != VERSION:
        raise WireError(f"register: expected an object with v = {VERSION}")
    plain(message, MAX_DEPTH)
    for key in ("gateway", "owner", "ts"):
        if not isinstance(message.get(key), str):
            raise WireError(f"register.{key}: expected a string")
    sources = message.get("sources")
    if not isinstance(sources, list) or len(sources) > MAX_SOURCES:
        raise WireError(f"register.sources: expected an array of at most {MAX_SOURCES}")
    for index, source in enumerate(sources):
        if not isinstance(source, dict) or not all(
            isinstance(source.get(key), str) for key in ("source", "owner", "type")
        ):
            raise WireError(f"register.sources[{index}]: expected source, owner and type")
        if not isinstance(source.get("quantities", []), list):
            raise WireError(f"register.sources[{index}].quantities: expected an array")
        if not isinstance(source.get("register"), dict | None):
            raise WireError(f"register.sources[{index}].register: expected an object or null")
    return message
