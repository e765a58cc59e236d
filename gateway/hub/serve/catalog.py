"""The register as served: each register row becomes a `Sensor` (an STA Thing with its Location),
and each quantity of an open-data sensor a `Stream` (an STA Datastream).

The register comes from gateways, so a record is parsed defensively: a field of the wrong type
is treated as absent, text is bounded, a privacy statement that is not an http(s) URL is
dropped, and only a literal `"open_data": true` opens a sensor's readings (of a source whose
name has no "/": readings map to register entries by the name before the first "/"). Ids are stable
48-bit numbers derived from the names, so a URL keeps pointing at the same entity.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

MAX_TEXT = 500
MAX_QUANTITIES = 64


def entity_id(*parts: str) -> int:
    """A stable id for the entity named by `parts` (48 bits: exact in JSON and JavaScript)."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:6], "big")


@dataclass(frozen=True, slots=True)
class Quantity:
    """One thing a sensor measures, as its register entry names it."""

    name: str
    unit: str

    @property
    def property_id(self) -> int:
        """The id of its STA ObservedProperty (one per quantity name, shared by sensors)."""
        return entity_id("quantity", self.name)


@dataclass(frozen=True, slots=True)
class Sensor:
    """One register row: a gateway's source with what its owner published about it."""

    gateway: str
    source: str
    owner: str
    kind: str = ""
    driver: str = ""
    quantities: tuple[Quantity, ...] = ()
    described: bool = False  # the source published a register record
    purpose: str = ""
    theme: str = ""
    personal_data: bool | None = None
    legal_ground: str = ""
    location: tuple[float, float] | None = None  # (lat, lon)
    active_until: str = ""
    open_data: bool = False
    privacy_statement: str = ""  # an http(s) URL, or ""
    updated_at: str = ""

    @property
    def thing_id(self) -> int:
        """The id of its STA Thing (and of the Thing's one Location)."""
        return entity_id("thing", self.gateway, self.source)

    @property
    def sensor_id(self) -> int:
        """The id of the STA Sensor: one per driver (the instrument type)."""
        return entity_id("sensor", self.driver or self.kind)


@dataclass(frozen=True, slots=True)
class Stream:
    """A quantity of an open-data sensor: what an STA Datastream serves."""

    sensor: Sensor
    quantity: Quantity

    @property
    def id(self) -> int:
        """The Datastream's id."""
        return entity_id("datastream", self.sensor.gateway, self.sensor.source, self.quantity.name)


@dataclass(slots=True)
class Catalog:
    """Every registered sensor, and the open ones' streams, with lookups by id."""

    sensors: list[Sensor]
    streams: list[Stream] = field(default_factory=list)
    things: dict[int, Sensor] = field(default_factory=dict)
    by_stream_id: dict[int, Stream] = field(default_factory=dict)
    by_key: dict[tuple[str, str, str], Stream] = field(default_factory=dict)

    @classmethod
    def build(cls, sensors: Iterable[Sensor]) -> Catalog:
        """Sorted by gateway and source; streams only for open-data sensors."""
        ordered = sorted(sensors, key=lambda s: (s.gateway, s.source))
        catalog = cls(ordered)
        for sensor in ordered:
            if not sensor.open_data:
                continue
            catalog.things[sensor.thing_id] = sensor
            for quantity in sensor.quantities:
                stream = Stream(sensor, quantity)
                catalog.streams.append(stream)
                catalog.by_stream_id[stream.id] = stream
                catalog.by_key[(sensor.gateway, sensor.source, quantity.name)] = stream
        return catalog

    def stream_of(self, gateway: str, source: str, quantity: str) -> Stream | None:
        """The open stream a stored reading belongs to (`source` may be `name/device`)."""
        return self.by_key.get((gateway, source.split("/", 1)[0], quantity))


def sensor_from_row(gateway: object, source: object, owner: object, record: object,
                    updated_at: object = None) -> Sensor:  # fmt: skip
    """A register row as a Sensor; never raises, whatever the row holds."""
    body = _as_mapping(record)
    register = _as_mapping(body.get("register"))
    return Sensor(
        gateway=_text(gateway),
        source=_text(source),
        owner=_text(owner) or _text(body.get("owner")),
        kind=_text(body.get("type")),
        driver=_text(body.get("driver")),
        quantities=_quantities(body.get("quantities")),
        described=bool(register),
        purpose=_text(register.get("purpose")),
        theme=_text(register.get("theme")),
        personal_data=_bool(register.get("personal_data")),
        legal_ground=_text(register.get("legal_ground")),
        location=_location(register.get("location")),
        active_until=_text(register.get("active_until")),
        # a reading belongs to the register entry named by its source up to the first "/"
        # (contracts): a name with a "/" can own no readings, so it opens none
        open_data=register.get("open_data") is True and "/" not in _text(source),
        privacy_statement=_http_url(register.get("privacy_statement")),
        updated_at=_when(updated_at),
    )


def _as_mapping(value: object) -> Mapping[str, Any]:
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _quantities(value: object) -> tuple[Quantity, ...]:
    if not isinstance(value, list):
        return ()
    found: dict[str, Quantity] = {}
    for item in value[:MAX_QUANTITIES]:
        entry = _as_mapping(item) if isinstance(item, Mapping) else {}
        name = _text(entry.get("quantity"))
        if name and name not in found:
            found[name] = Quantity(name, _text(entry.get("unit")))
    return tuple(found.values())


def _location(value: object) -> tuple[float, float] | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    lat, lon = value
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return float(lat), float(lon)


def _http_url(value: object) -> str:
    """Only an http(s) URL may become a link: a `javascript:` one would run script."""
    text = _text(value).strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    if any(c.isspace() or not c.isprintable() for c in text):
        return ""
    return text


def _when(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return _text(value)
