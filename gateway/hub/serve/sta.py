"""The read API in the OGC SensorThings API 1.1 shape, under `/v1.1`: resource paths to JSON.

Catalog entities (Things, Locations, Datastreams, Sensors, ObservedProperties) come from the
register in memory; Observations from `Store`, open streams only. Ids are numbers, except an
Observation's, a quoted string (`Observations('123-1-42')`). Collections page with `$top` and
`$skip` and carry `@iot.nextLink` while there is more; `$count=true` adds `@iot.count`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from gateway.hub.serve import entities
from gateway.hub.serve.catalog import Catalog, Sensor, Stream
from gateway.hub.serve.entities import Json
from gateway.hub.serve.options import OptionError, Options, parse
from gateway.hub.serve.store import Store

PREFIX = "/v1.1"
SETS = ("Things", "Locations", "Datastreams", "Sensors", "ObservedProperties", "Observations")
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
]
_SEGMENT = re.compile(r"([A-Za-z]+)(?:\((?:([0-9]{1,20})|'((?:[^']|'')*)')\))?")


class ApiError(Exception):
    """An answer other than 200: its status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Request:
    """What one API call needs: the absolute API root, the path under it, the query string."""

    base: str
    path: str
    query: str


Entity = Callable[[], Json]


def answer(store: Store, catalog: Catalog, request: Request) -> Json:
    """The JSON for `request`, or ApiError (404 unknown, 400 bad options)."""
    segments = [s for s in request.path.split("/") if s]
    if not segments:
        return _index(request.base)
    if len(segments) > 2:
        raise ApiError(404, "paths go at most one relation deep, e.g. Datastreams(1)/Observations")
    parsed = [_segment(s) for s in segments]
    name, key = parsed[0]
    if name not in SETS:
        raise ApiError(404, f"no entity set {name!r}; this API has {', '.join(SETS)}")
    try:
        if key is None:
            if len(parsed) > 1:
                raise ApiError(404, "a relation needs an entity id, e.g. Things(1)/Datastreams")
            return _collection(store, catalog, request, name, None)
        if len(parsed) == 1:
            return _entity(store, catalog, request.base, name, key)()
        return _collection(store, catalog, request, name, (key, parsed[1][0]))
    except OptionError as exc:
        raise ApiError(400, str(exc)) from exc


def _index(base: str) -> Json:
    return {
        "value": [{"name": name, "url": f"{base}/{name}"} for name in SETS],
        "serverSettings": {"conformance": CONFORMANCE},
    }


def _segment(text: str) -> tuple[str, int | str | None]:
    match = _SEGMENT.fullmatch(text)
    if match is None:
        raise ApiError(404, f"cannot read path segment {text[:60]!r}")
    name, number, quoted = match.groups()
    if number is not None:
        return name, int(number)
    return name, None if quoted is None else quoted.replace("''", "'")


def _entity(store: Store, catalog: Catalog, base: str, name: str, key: int | str) -> Entity:
    """A function giving the entity's JSON; 404 when no open entity has that id."""
    if name == "Observations":
        found = store.one(catalog, key) if isinstance(key, str) else None
        if found is None:
            raise ApiError(404, f"no open Observation with id {key!r}")
        return lambda: entities.observation(base, found)
    item = _catalog_items(catalog, base, name).get(key) if isinstance(key, int) else None
    if item is None:
        raise ApiError(404, f"no {name} with id {key!r}")
    return item


def _catalog_items(catalog: Catalog, base: str, name: str) -> dict[int | str, Entity]:
    """Every open entity of a catalog set, by id, in a stable order."""
    things = list(catalog.things.values())
    items: dict[int | str, Entity] = {}
    if name == "Things":
        items = {s.thing_id: _bind(entities.thing, base, s) for s in things}
    elif name == "Locations":
        items = {s.thing_id: _bind(entities.location, base, s) for s in things if s.location}
    elif name == "Datastreams":
        items = {d.id: _bind(entities.datastream, base, d) for d in catalog.streams}
    elif name == "Sensors":
        items = {s.sensor_id: _bind(entities.sensor_entity, base, s) for s in things}
    elif name == "ObservedProperties":
        quantities = [d.quantity for d in catalog.streams]
        items = {q.property_id: _bind(entities.observed_property, base, q) for q in quantities}
    return items


def _bind(shape: Callable[[str, Any], Json], base: str, value: object) -> Entity:
    return lambda: shape(base, value)


Parent = tuple[int | str, str]
"""A parent entity's id and the relation asked of it."""


def _collection(
    store: Store, catalog: Catalog, request: Request, name: str, parent: Parent | None
) -> Json:
    """A set, or a parent's related set or entity (`parent` = (id, relation))."""
    if parent is None:
        return _list(store, catalog, request, name, None)
    if name == "Observations":
        if parent[1] != "Datastream":
            raise ApiError(404, "an Observation relates to its Datastream only")
        found = store.one(catalog, parent[0]) if isinstance(parent[0], str) else None
        if found is None:
            raise ApiError(404, f"no open Observation with id {parent[0]!r}")
        return entities.datastream(request.base, found.stream)
    related = _related(catalog, request.base, name, parent)
    if callable(related):
        return related()
    return _list(store, catalog, request, *related)


def _list(
    store: Store, catalog: Catalog, request: Request, name: str, keys: list[Any] | None
) -> Json:
    """A page of the set `name`, or of its members `keys` (streams, for Observations)."""
    if name == "Observations":
        return _observations(store, catalog, request, keys)
    options = parse(request.query, time_options=False)
    items = _catalog_items(catalog, request.base, name)
    chosen = list(items.values()) if keys is None else [items[k] for k in keys if k in items]
    page = chosen[options.skip : options.skip + options.top]
    more = len(chosen) > options.skip + options.top
    return _envelope(request, options, [e() for e in page], more, len(chosen))


def _related(
    catalog: Catalog, base: str, name: str, parent: tuple[int | str, str]
) -> Entity | tuple[str, list[int | str] | list[Stream]]:
    """A related single entity, or (set name, ids of the related items)."""
    key, relation = parent
    if _catalog_items(catalog, base, name).get(key) is None:
        raise ApiError(404, f"no {name} with id {key!r}")
    streams = catalog.streams
    related: dict[tuple[str, str], Callable[[], Entity | tuple[str, Any]]] = {
        ("Things", "Datastreams"): lambda: ("Datastreams", _ids(streams, thing=key)),
        ("Things", "Locations"): lambda: ("Locations", [key]),
        ("Locations", "Things"): lambda: ("Things", [key]),
        ("Sensors", "Datastreams"): lambda: ("Datastreams", _ids(streams, sensor=key)),
        ("ObservedProperties", "Datastreams"): lambda: ("Datastreams", _ids(streams, prop=key)),
        ("Datastreams", "Observations"): lambda: ("Observations", [_stream(catalog, key)]),
        ("Datastreams", "Thing"): lambda: _one(catalog, base, "Things", _stream(catalog, key)),
        ("Datastreams", "Sensor"): lambda: _one(catalog, base, "Sensors", _stream(catalog, key)),
        ("Datastreams", "ObservedProperty"): lambda: _one(
            catalog, base, "ObservedProperties", _stream(catalog, key)
        ),
    }
    make = related.get((name, relation))
    if make is None:
        raise ApiError(404, f"{name} has no relation {relation!r}")
    return make()


def _stream(catalog: Catalog, key: int | str) -> Stream:
    return catalog.by_stream_id[int(key)]


def _one(catalog: Catalog, base: str, name: str, stream: Stream) -> Entity:
    key = {
        "Things": stream.sensor.thing_id,
        "Sensors": stream.sensor.sensor_id,
        "ObservedProperties": stream.quantity.property_id,
    }[name]
    return _catalog_items(catalog, base, name)[key]


def _ids(streams: Sequence[Stream], *, thing: object = None, sensor: object = None,
         prop: object = None) -> list[int | str]:  # fmt: skip
    def keep(s: Sensor, d: Stream) -> bool:
        return s.thing_id == thing or s.sensor_id == sensor or d.quantity.property_id == prop

    return [d.id for d in streams if keep(d.sensor, d)]


def _observations(
    store: Store, catalog: Catalog, request: Request, streams: list[Stream] | None
) -> Json:
    options = parse(request.query, time_options=True)
    chosen = streams if streams is not None else store.streams_for_union(catalog)
    found, more, total = store.page(catalog, chosen, options)
    values = [entities.observation(request.base, o) for o in found]
    return _envelope(request, options, values, more, total)


def _envelope(
    request: Request, options: Options, values: list[Json], more: bool, total: int | None
) -> Json:
    body: Json = {}
    if options.count and total is not None:
        body["@iot.count"] = total
    if more and options.top > 0:  # $top=0 (with $count) asks for the count alone
        query = dict(options.raw)
        query["$top"] = str(options.top)
        query["$skip"] = str(options.skip + options.top)
        body["@iot.nextLink"] = f"{request.base}/{request.path.strip('/')}?{urlencode(query)}"
    body["value"] = values
    return body
