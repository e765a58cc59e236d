"""SensorThings API 1.1 entities as JSON: a Thing per registered open-data source (with its one
Location from the register), a Datastream per quantity, a Sensor per driver, an
ObservedProperty per quantity name, and Observations. `base` is the API's absolute root URL."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from gateway.hub.serve.catalog import Quantity, Sensor, Stream
from gateway.hub.serve.store import Observation

Json = dict[str, Any]
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def iso(when: datetime) -> str:
    """UTC with milliseconds and a Z."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _links(base: str, path: str, *relations: str) -> Json:
    return {f"{r}@iot.navigationLink": f"{base}/{path}/{r}" for r in relations}


def thing(base: str, sensor: Sensor) -> Json:
    """The source as a Thing; its register record in `properties`."""
    path = f"Things({sensor.thing_id})"
    return {
        "@iot.id": sensor.thing_id,
        "@iot.selfLink": f"{base}/{path}",
        "name": f"{sensor.gateway}/{sensor.source}",
        "description": sensor.purpose or f"{sensor.driver or sensor.kind} sensor",
        "properties": {
            "gateway": sensor.gateway,
            "source": sensor.source,
            "owner": sensor.owner,
            "theme": sensor.theme,
            "personal_data": sensor.personal_data,
            "legal_ground": sensor.legal_ground,
            "active_until": sensor.active_until,
            "privacy_statement": sensor.privacy_statement,
            "open_data": sensor.open_data,
        },
        **_links(base, path, "Locations", "Datastreams"),
    }


def location(base: str, sensor: Sensor) -> Json:
    """Where the source is (GeoJSON: longitude first)."""
    lat, lon = sensor.location or (0.0, 0.0)
    path = f"Locations({sensor.thing_id})"
    return {
        "@iot.id": sensor.thing_id,
        "@iot.selfLink": f"{base}/{path}",
        "name": f"{sensor.gateway}/{sensor.source}",
        "description": f"location of {sensor.gateway}/{sensor.source}",
        "encodingType": "application/geo+json",
        "location": {"type": "Point", "coordinates": [lon, lat]},
        **_links(base, path, "Things"),
    }


def datastream(base: str, stream: Stream) -> Json:
    """A quantity of an open source."""
    sensor, quantity = stream.sensor, stream.quantity
    path = f"Datastreams({stream.id})"
    return {
        "@iot.id": stream.id,
        "@iot.selfLink": f"{base}/{path}",
        "name": f"{sensor.gateway}/{sensor.source} {quantity.name}",
        "description": f"{quantity.name} measured by {sensor.gateway}/{sensor.source}",
        "observationType": OM_MEASUREMENT,
        "unitOfMeasurement": {"name": quantity.unit, "symbol": quantity.unit, "definition": ""},
        "properties": {"gateway": sensor.gateway, "source": sensor.source, "owner": sensor.owner},
        **_links(base, path, "Thing", "Sensor", "ObservedProperty", "Observations"),
    }


def sensor_entity(base: str, sensor: Sensor) -> Json:
    """The instrument type (the gateway's driver) as an STA Sensor."""
    name = sensor.driver or sensor.kind or "unknown"
    path = f"Sensors({sensor.sensor_id})"
    return {
        "@iot.id": sensor.sensor_id,
        "@iot.selfLink": f"{base}/{path}",
        "name": name,
        "description": f"citygw driver {name}",
        "encodingType": "text/plain",
        "metadata": name,
        **_links(base, path, "Datastreams"),
    }


def observed_property(base: str, quantity: Quantity) -> Json:
    """A quantity name (pm2_5, temperature, ...) as an ObservedProperty."""
    path = f"ObservedProperties({quantity.property_id})"
    return {
        "@iot.id": quantity.property_id,
        "@iot.selfLink": f"{base}/{path}",
        "name": quantity.name,
        "definition": f"urn:citygw:quantity:{quantity.name}",
        "description": quantity.name,
        **_links(base, path, "Datastreams"),
    }


def observation(base: str, found: Observation) -> Json:
    """A reading; `parameters` keep the stored source (with a BLE device) and the flags."""
    path = f"Observations('{found.id}')"
    when = iso(found.ts)
    return {
        "@iot.id": found.id,
        "@iot.selfLink": f"{base}/{path}",
        "phenomenonTime": when,
        "resultTime": when,
        "result": found.value if math.isfinite(found.value) else None,
        "parameters": {"source": found.source, "unit": found.unit, "flags": found.flags},
        **_links(base, path, "Datastream"),
    }
