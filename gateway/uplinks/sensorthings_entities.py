"""The SensorThings entities a gateway's readings hang off, found or created once, then cached.

Per source (a reading's `source`): a Thing (properties gateway, source, owner; with its
Location when the register gives one), a Sensor and a FeatureOfInterest, all named
`<gateway>/<source>`. Per quantity: an ObservedProperty, shared by every gateway (name and
definition). Per (source, quantity, unit): a Datastream named `<gateway>/<source>/<quantity>`,
its unitOfMeasurement from the unit (UCUM name, symbol, definition).

Each is looked up with `$filter` before it is created, so a restart or a second gateway
never makes a second one; ids are cached. `forget()` drops the cache: the caller does that when
the server shows it lost an entity (404 on a Datastream, "error" rows in a CreateObservations
answer), and the next use finds or re-creates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from gateway.uplinks.sensorthings_api import (
    EntityId,
    JsonObject,
    StaApi,
    StaError,
    literal,
    segment,
    values,
)

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
UCUM = "http://www.opengis.net/def/uom/UCUM/0/"
EEA_POLLUTANT = "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/"

# citygw unit (UCUM-ish, as the drivers write it) -> (name, symbol, UCUM code or "" if none)
UNITS: dict[str, tuple[str, str, str]] = {
    "ug/m3": ("microgram per cubic metre", "µg/m³", "ug/m3"),
    "Cel": ("degree Celsius", "°C", "Cel"),
    "%": ("percent", "%", "%"),
    "hPa": ("hectopascal", "hPa", "hPa"),
    "Pa": ("pascal", "Pa", "Pa"),
    "ppm": ("parts per million", "ppm", "[ppm]"),
    "[g]": ("standard gravity", "g", "[g]"),
    "V": ("volt", "V", "V"),
    "A": ("ampere", "A", "A"),
    "W": ("watt", "W", "W"),
    "kW.h": ("kilowatt hour", "kWh", "kW.h"),
    "lx": ("lux", "lx", "lx"),
    "m": ("metre", "m", "m"),
    "mm": ("millimetre", "mm", "mm"),
    "m/s": ("metre per second", "m/s", "m/s"),
    "km/h": ("kilometre per hour", "km/h", "km/h"),
    "s": ("second", "s", "s"),
    "deg": ("degree", "°", "deg"),
    "dB": ("decibel", "dB", "dB"),
    "dBm": ("decibel-milliwatt", "dBm", ""),
    "1": ("count", "1", "1"),
    "1/0.1L": ("particles per 0.1 litre", "#/0.1 L", "/dL"),
}

# quantity (with or without the drivers' unit suffix) -> (name, definition)
PROPERTIES: dict[str, tuple[str, str]] = {
    "pm1_0": ("PM1", EEA_POLLUTANT + "6002"),
    "pm2_5": ("PM2.5", EEA_POLLUTANT + "6001"),
    "pm10": ("PM10", EEA_POLLUTANT + "5"),
    "no2": ("NO2", EEA_POLLUTANT + "8"),
    "o3": ("O3", EEA_POLLUTANT + "7"),
}
_SUFFIXES = ("_ugm3", "_c", "_pct", "_hpa", "_ppm")


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One Datastream: a source's quantity in one unit."""

    source: str
    quantity: str
    unit: str


@dataclass(frozen=True, slots=True)
class Stream:
    """What an Observation of a series needs: its Datastream and FeatureOfInterest."""

    datastream: EntityId
    feature: EntityId


def unit_of_measurement(unit: str) -> JsonObject:
    """STA unitOfMeasurement for a citygw unit; an unknown unit names itself."""
    name, symbol, code = UNITS.get(unit, (unit, unit, ""))
    definition = UCUM + quote(code, safe="") if code else f"urn:citygw:unit:{quote(unit)}"
    return {"name": name, "symbol": symbol, "definition": definition}


def observed_property(quantity: str) -> tuple[str, str]:
    """(name, definition) of a quantity: a known vocabulary where there is one."""
    base = quantity
    for suffix in _SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return PROPERTIES.get(base, (quantity, f"urn:citygw:quantity:{quote(quantity)}"))


class Entities:
    """Finds or creates, and caches, the entities of one gateway on one server."""

    def __init__(
        self,
        api: StaApi,
        *,
        gateway_id: str,
        locations: Mapping[str, tuple[float, float]] | None = None,
        drivers: Mapping[str, str] | None = None,
    ) -> None:
        self._api = api
        self._gateway_id = gateway_id
        self._locations = dict(locations or {})
        self._drivers = dict(drivers or {})
        self._things: dict[str, tuple[EntityId, EntityId, EntityId]] = {}
        self._properties: dict[str, EntityId] = {}
        self._streams: dict[SeriesKey, Stream] = {}
        self.created = 0
        """Entities this object created (not found) on the server."""

    def forget(self) -> None:
        """Drop every cached id: the server lost some; find or create them again."""
        self._things.clear()
        self._properties.clear()
        self._streams.clear()

    async def stream(self, key: SeriesKey, *, owner: str) -> Stream:
        """The Datastream (and FeatureOfInterest) of `key`, found or created once."""
        cached = self._streams.get(key)
        if cached is not None:
            return cached
        thing, sensor, feature = await self._source(key.source, owner)
        prop = await self._property(key.quantity)
        name = f"{self._gateway_id}/{key.source}/{key.quantity}"
        datastream = await self._find_or_create(
            f"/Things{segment(thing)}/Datastreams",
            "/Datastreams",
            name,
            {
                "name": name,
                "description": f"{key.quantity} of {key.source} on citygw gateway "
                f"{self._gateway_id}",
                "observationType": OM_MEASUREMENT,
                "unitOfMeasurement": unit_of_measurement(key.unit),
                "properties": self._properties_of(key.source, owner)
                | {"quantity": key.quantity, "unit": key.unit},
                "Thing": {"@iot.id": thing},
                "Sensor": {"@iot.id": sensor},
                "ObservedProperty": {"@iot.id": prop},
            },
            unit=key.unit,
        )
        stream = Stream(datastream, feature)
        self._streams[key] = stream
        return stream

    async def _source(self, source: str, owner: str) -> tuple[EntityId, EntityId, EntityId]:
        cached = self._things.get(source)
        if cached is not None:
            return cached
        name = f"{self._gateway_id}/{source}"
        props = self._properties_of(source, owner)
        driver = self._drivers.get(source.partition("/")[0], "sensor")
        where = self._locations.get(source.partition("/")[0])
        point = {"type": "Point", "coordinates": [where[1], where[0]]} if where else None
        thing_body: JsonObject = {
            "name": name,
            "description": f"source {source} of citygw gateway {self._gateway_id}",
            "properties": props,
        }
        if point is not None:
            thing_body["Locations"] = [
                {
                    "name": name,
                    "description": f"where {source} measures",
                    "encodingType": "application/geo+json",
                    "location": point,
                }
            ]
        thing = await self._find_or_create("/Things", "/Things", name, thing_body)
        sensor_body: JsonObject = {
            "name": name,
            "description": f"{driver} of source {source} on citygw gateway {self._gateway_id}",
            "encodingType": "text/html",
            "metadata": f"citygw source {source}, driver {driver}",
            "properties": props,
        }
        sensor = await self._find_or_create("/Sensors", "/Sensors", name, sensor_body)
        feature_body: JsonObject = {
            "name": name,
            "description": f"where {source} measures" if point else "location not registered",
            "encodingType": "application/geo+json",
            "feature": point or {"type": "Feature", "geometry": None, "properties": props},
            "properties": props,
        }
        feature = await self._find_or_create(
            "/FeaturesOfInterest", "/FeaturesOfInterest", name, feature_body
        )
        self._things[source] = (thing, sensor, feature)
        return thing, sensor, feature

    async def _property(self, quantity: str) -> EntityId:
        cached = self._properties.get(quantity)
        if cached is not None:
            return cached
        name, definition = observed_property(quantity)
        answer = await self._api.get(
            "/ObservedProperties",
            {
                "$filter": f"name eq {literal(name)} and definition eq {literal(definition)}",
                "$select": "id",
                "$top": "1",
            },
        )
        found = [v["@iot.id"] for v in values(answer) if isinstance(v.get("@iot.id"), str | int)]
        if found:
            entity_id: EntityId = found[0]  # type: ignore[assignment]
        else:
            entity_id = await self._api.create(
                "/ObservedProperties",
                {"name": name, "definition": definition, "description": f"citygw: {quantity}"},
            )
            self.created += 1
        self._properties[quantity] = entity_id
        return entity_id

    def _properties_of(self, source: str, owner: str) -> JsonObject:
        return {"gateway": self._gateway_id, "source": source, "owner": owner}

    async def _find_or_create(
        self, search: str, collection: str, name: str, body: JsonObject, *, unit: str = ""
    ) -> EntityId:
        """The first entity under `search` named `name` of this gateway (and unit), else a new
        one in `collection`."""
        answer = await self._api.get(
            search,
            {"$filter": f"name eq {literal(name)}", "$select": "id,name,properties", "$top": "100"},
        )
        for entity in values(answer):
            props = entity.get("properties")
            if not isinstance(props, dict) or props.get("gateway") != self._gateway_id:
                continue
            if unit and props.get("unit") != unit:
                continue
            entity_id = entity.get("@iot.id")
            if isinstance(entity_id, str | int):
                return entity_id
        try:
            created = await self._api.create(collection, body)
        except StaError as e:
            e.lost = e.lost or e.status == 400  # a link to an entity the server lost
            raise
        self.created += 1
        return created
