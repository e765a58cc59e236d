"""OGC SensorThings API 1.1 over HTTP: requests, entity ids, and what a status code means.

Thin and typed: JSON in and out through `gateway.uplinks.http_client`, ids read from the
`Location` header of a create (the only place some servers give them), `$filter` strings
quoted as OData wants. `StaError` says whether to retry, whether the server refused, and
whether it lost an entity we had cached (`lost`: 404 on an entity path).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TypeAlias
from urllib.parse import quote, urlencode

from gateway.uplinks.destination import DeliveryError
from gateway.uplinks.http_client import HttpClient, HttpError, Response

EntityId: TypeAlias = str | int
"""An `@iot.id` as the server gives it: a string (UUID, quoted in paths) or an integer."""

JsonObject: TypeAlias = dict[str, object]

_LOCATION_ID = re.compile(r"\(([^()]*)\)\s*$")
_JSON = ("Content-Type", "application/json")


class StaError(Exception):
    """A request the server did not answer as asked; `delivery_error()` for the loop."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        lost: bool = False,
        sent: bool = True,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.lost = lost
        self.sent = sent
        self.retry_after_s = retry_after_s

    @property
    def refused(self) -> bool:
        """4xx (but 408 and 429): the server understood and said no; retrying soon won't help."""
        return (
            self.status is not None
            and 400 <= self.status < 500
            and self.status
            not in (
                408,
                429,
            )
        )

    def delivery_error(self) -> DeliveryError:
        """The same failure as the delivery loop understands it."""
        return DeliveryError(str(self), retry_after_s=self.retry_after_s, refused=self.refused)


def literal(value: str) -> str:
    """An OData string literal: 'it''s'."""
    return "'" + value.replace("'", "''") + "'"


def segment(entity_id: EntityId) -> str:
    """The key segment of an entity path: ('uuid') or (42)."""
    if isinstance(entity_id, int):
        return f"({entity_id})"
    return f"({literal(entity_id)})"


def id_from_location(location: str) -> EntityId:
    """The id at the end of a Location header such as .../Things('0193-...') or .../Things(7)."""
    found = _LOCATION_ID.search(location)
    if not found:
        raise ValueError(f"no entity id in Location {location!r}")
    raw = found.group(1)
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    return int(raw) if raw.isdigit() else raw


class StaApi:
    """The service root (the uplink's url, e.g. https://host/sensorthings/v1.1) over HTTP."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    async def get(self, path: str, params: Mapping[str, str]) -> JsonObject:
        """GET `path` (under the root) with query `params`; the JSON object it answers."""
        query = urlencode(dict(params), quote_via=quote, safe="$',()/")
        response = await self._request("GET", f"{path}?{query}")
        if response.status != 200:
            raise _error("GET", path, response)
        body = _json(response, "GET", path)
        if not isinstance(body, dict):
            raise StaError(f"GET {path}: expected a JSON object", status=response.status)
        return body

    async def post(self, path: str, body: object) -> Response:
        """POST JSON; the raw response (callers judge the status)."""
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        return await self._request("POST", path, data)

    async def create(self, collection: str, body: JsonObject) -> EntityId:
        """POST a new entity; its id from the Location header (or the body's @iot.id)."""
        response = await self.post(collection, body)
        if response.status not in (200, 201):
            raise _error("POST", collection, response)
        location = response.headers.get("location", "")
        if location:
            return id_from_location(location)
        answer = _json(response, "POST", collection)
        if isinstance(answer, dict) and isinstance(answer.get("@iot.id"), str | int):
            found: EntityId = answer["@iot.id"]
            return found
        raise StaError(f"POST {collection}: no Location header and no @iot.id in the answer")

    async def _request(self, method: str, target: str, body: bytes | None = None) -> Response:
        try:
            return await self.client.request(
                method, target, body=body, headers=[_JSON] if body is not None else ()
            )
        except HttpError as e:
            raise StaError(str(e), sent=e.sent) from e


def values(answer: JsonObject) -> list[JsonObject]:
    """The entities of a collection answer (`value`), objects only."""
    found = answer.get("value")
    return [v for v in found if isinstance(v, dict)] if isinstance(found, list) else []


def _json(response: Response, method: str, path: str) -> object:
    try:
        return response.json()
    except ValueError:
        raise StaError(f"{method} {path}: the answer is not JSON", status=response.status) from None


def _error(method: str, path: str, response: Response) -> StaError:
    detail = response.body[:200].decode("utf-8", "replace")
    return StaError(
        f"{method} {path}: HTTP {response.status} {detail}",
        status=response.status,
        lost=response.status == 404,
        retry_after_s=response.retry_after_s(),
    )
