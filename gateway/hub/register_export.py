"""`citygw register export`: the public sensor register of a fleet, from its gateway configs,
as GeoJSON, CSV or a SensRNet-shaped JSON document (docs/register.md).

Built on the same whitelisted entries as the retained `register` message
(`gateway.wire.register`), so an export holds nothing the gateways do not publish anyway.
Pure: configs in, text and notes (for stderr) out.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config import Config
from gateway.wire.register import register_body

FORMATS = ("geojson", "csv", "sensrnet-json")
SENSRNET_THEMES = (
    "Energy",
    "Agriculture, Fishing or Food Quality",
    "Transport",
    "Waste",
    "Soil",
    "Sound",
    "Climate Change",
    "Air",
    "Nature and Landscape Management",
    "Water",
    "Safety",
    "Spatial Planning",
    "Water management",
    "Aviation",
    "Public Transport",
    "Rail or Road Traffic",
    "Shipping",
    "Building or Remodelling",
    "Housing Market",
    "Health Risks",
)
"""The `theme` values of SensRNet's registry API (kadaster-labs/sensrnet-registry-backend,
src/command/controller/model/theme.body.ts)."""
_DESCRIPTIONS = {"sds011": "Fine Dust Sensor", "ruuvi": "Weather Station"}
_DESCRIPTIONS |= dict.fromkeys(("pms5003", "pms7003", "pms5003t"), "Fine Dust Sensor")
"""Driver -> SensRNet's sensor `description` (its Description list); others have none."""
_MANUFACTURERS = {"sds011": "Nova Fitness", "ruuvi": "Ruuvi Innovations"}
_MANUFACTURERS |= dict.fromkeys(("pms5003", "pms7003", "pms5003t"), "Plantower")
CSV_COLUMNS = (
    "gateway",
    "source",
    "owner",
    "type",
    "driver",
    "quantities",
    "devices",
    "purpose",
    "theme",
    "personal_data",
    "legal_ground",
    "latitude",
    "longitude",
    "active_until",
    "open_data",
    "privacy_statement",
)
_RECORD_KEYS = (
    "purpose",
    "theme",
    "personal_data",
    "legal_ground",
    "active_until",
    "open_data",
    "privacy_statement",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportError(ValueError):
    """Configs that cannot be exported together (e.g. two with one gateway id)."""


@dataclass(frozen=True, slots=True)
class Export:
    """An export: the text to write, and notes for stderr (what was left out, and why)."""

    text: str
    notes: list[str]


def entries(configs: Sequence[Config]) -> list[dict[str, Any]]:
    """Every source of every gateway, as the register message lists it, with its gateway."""
    seen: set[str] = set()
    found = []
    for config in configs:
        body = register_body(config)
        if body["gateway"] in seen:
            raise ExportError(f"gateway {body['gateway']!r} is in two of the configs")
        seen.add(body["gateway"])
        found += [{"gateway": body["gateway"], **source} for source in body["sources"]]
    return found


def _record(entry: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = entry["register"] or {}
    return record


def _location(entry: dict[str, Any]) -> list[float] | None:
    location: list[float] | None = _record(entry).get("location")
    return location


def _unregistered(entry: dict[str, Any]) -> str | None:
    if entry["register"] is None:
        return f"{entry['gateway']}/{entry['source']}: no [sources.register] record"
    return None


def geojson(configs: Sequence[Config]) -> Export:
    """A FeatureCollection: one Point per source with a location ([lon, lat], RFC 7946)."""
    features, notes = [], []
    for entry in entries(configs):
        location = _location(entry)
        name = f"{entry['gateway']}/{entry['source']}"
        if location is None:
            notes.append(f"{name}: no location, not a GeoJSON point (left out)")
            continue
        record = _record(entry)
        properties = {
            key: entry[key] for key in ("gateway", "source", "owner", "type", "driver")
        } | {"quantities": entry["quantities"]}
        properties |= {key: record.get(key) for key in _RECORD_KEYS}
        if "devices" in entry:
            properties["devices"] = entry["devices"]
        features.append(
            {
                "type": "Feature",
                "id": name,
                "geometry": {"type": "Point", "coordinates": [location[1], location[0]]},
                "properties": properties,
            }
        )
    document = {"type": "FeatureCollection", "features": features}
    return Export(json.dumps(document, ensure_ascii=False, indent=2) + "\n", notes)


def _cell(value: object) -> str:
    """A CSV cell: text that a spreadsheet would run as a formula gets a leading `'`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return f"'{text}" if isinstance(value, str) and text.startswith(_FORMULA_START) else text


def table(configs: Sequence[Config]) -> Export:
    """One row per source, a header row first, RFC 4180 (CRLF, quotes where needed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_COLUMNS)
    notes = []
    for entry in entries(configs):
        record, location = _record(entry), _location(entry)
        row: dict[str, object] = {key: entry[key] for key in CSV_COLUMNS[:5]}
        row["quantities"] = "; ".join(f"{q['quantity']} [{q['unit']}]" for q in entry["quantities"])
        row["devices"] = "; ".join(f"{d['device']} ({d['kind']})" for d in entry.get("devices", []))
        row |= {key: record.get(key) for key in _RECORD_KEYS}
        row["latitude"], row["longitude"] = location if location is not None else (None, None)
        writer.writerow([_cell(row[column]) for column in CSV_COLUMNS])
        notes += [note] if (note := _unregistered(entry)) else []
    return Export(out.getvalue(), notes)


def _datastream(entry: dict[str, Any], quantity: dict[str, str], today: str) -> dict[str, Any]:
    record = _record(entry)
    until = record.get("active_until") or ""
    theme = record.get("theme") or ""
    return {
        "name": quantity["quantity"],
        "description": f"{quantity['quantity']} in {quantity['unit']}",
        "unitOfMeasurement": {"name": quantity["unit"], "symbol": quantity["unit"]},
        "observation": {
            "observedProperty": quantity["quantity"],
            "legalGround": record.get("legal_ground") or "",
        },
        "theme": [theme] if theme in SENSRNET_THEMES else [],
        "dataQuality": "",
        "isActive": not until or until >= today,
        "isPublic": True,
        "isOpenData": bool(record.get("open_data")),
        "containsPersonalInfoData": bool(record.get("personal_data")),
        "isReusable": bool(record.get("open_data")),
        "documentation": "",
        "dataLink": "",
        "observationGoals": [
            {
                "name": f"{entry['source']}: purpose",
                "description": record.get("purpose") or "",
                "legalGround": record.get("legal_ground") or "",
                "legalGroundLink": "",
            }
        ]
        if record
        else [],
    }


def _device(entry: dict[str, Any], today: str) -> dict[str, Any]:
    location = _location(entry)
    streams = [_datastream(entry, q, today) for q in entry["quantities"]]
    driver = entry["driver"]
    return {
        "name": f"{entry['gateway']}/{entry['source']}",
        "category": "Sensor",
        "connectivity": f"citygw gateway {entry['gateway']} ({entry['type']})",
        "location": None
        if location is None
        else {"name": entry["gateway"], "location": [location[1], location[0]]},
        "sensors": [
            {
                "name": entry["source"],
                "description": _DESCRIPTIONS.get(driver),
                "manufacturer": _MANUFACTURERS.get(driver, ""),
                "supplier": "",
                "documentation": "",
                "dataStreams": streams,
            }
        ],
        "citygw": {key: entry.get(key) for key in ("gateway", "source", "owner", "type", "driver")}
        | {key: _record(entry).get(key) for key in ("active_until", "privacy_statement")},
    }


def sensrnet(configs: Sequence[Config], *, now_s: float | None = None) -> Export:
    """Per owner (a SensRNet legal entity) its devices: one per source, each with its Sensor
    and a Datastream per quantity, as the registry's API bodies name the fields."""
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() if now_s is None else now_s))
    owners: dict[str, list[dict[str, Any]]] = {}
    notes = []
    for entry in entries(configs):
        owners.setdefault(entry["owner"], []).append(_device(entry, today))
        name = f"{entry['gateway']}/{entry['source']}"
        notes += [note] if (note := _unregistered(entry)) else []
        if entry["register"] is not None and _location(entry) is None:
            notes.append(f"{name}: no location (SensRNet requires one to register the device)")
        theme = _record(entry).get("theme") or ""
        if theme and theme not in SENSRNET_THEMES:
            notes.append(f"{name}: theme {theme!r} is not one of SensRNet's; left out")
        if not entry["quantities"]:
            notes.append(f"{name}: its quantities depend on the device; no datastreams listed")
    document = {
        "format": "citygw.sensrnet/1",
        "legalEntities": [{"name": owner, "devices": owners[owner]} for owner in sorted(owners)],
    }
    return Export(json.dumps(document, ensure_ascii=False, indent=2) + "\n", notes)


def export(configs: Sequence[Config], form: str) -> Export:
    """The register in `form` (one of FORMATS)."""
    if form == "geojson":
        return geojson(configs)
    if form == "csv":
        return table(configs)
    if form == "sensrnet-json":
        return sensrnet(configs)
    raise ExportError(f"unknown format {form!r}; expected one of {', '.join(FORMATS)}")
