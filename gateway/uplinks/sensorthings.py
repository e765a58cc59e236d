"""The `sensorthings` uplink: readings to an OGC SensorThings API 1.1 server, exactly once.

Observations go in batches through the dataArray extension (`POST /CreateObservations`, at
most 10,000 rows a request), one group per Datastream; the answer's BODY is checked row by
row, since a server answers 201 with "error" rows for a Datastream it does not know.

Exactly once, against a server that ignores client `@iot.id`s (docs/uplinks-sensorthings.md):
every Observation carries its reading's key in `parameters` (`{"citygw_key": [gateway, epoch,
seq]}`). A series is *unsure* when an earlier POST of its readings got no clear answer
(timeout, dropped connection, 5xx, a crash: every series is unsure after a start). Before
readings of an unsure series are sent, the Datastream's Observations from the batch's earliest
resultTime on are read back, and the readings already there are skipped (matched on the key,
or on phenomenonTime + result where a server drops `parameters`). A series whose POST was
answered row by row is sure again, so the steady state costs one POST per flush.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gateway.uplinks.destination import OutgoingReading
from gateway.uplinks.http_client import HttpClient, HttpSection, http_client, iso_ms
from gateway.uplinks.recent import RecentKeys
from gateway.uplinks.sensorthings_api import JsonObject, StaApi, StaError, segment, values
from gateway.uplinks.sensorthings_entities import Entities, SeriesKey, Stream

log = logging.getLogger(__name__)

MAX_ROWS_PER_REQUEST = 10_000
"""django-ogc-sensorthings' MAX_POST_DATA_ARRAY_OBSERVATIONS (and FROST's default)."""
_READ_BACK_PAGE = 1_000  # rows per read-back request: each is bounded by timeout_s
_READ_BACK_MAX_PAGES = 200  # a safety stop: the window of one batch is far less
_COMPONENTS = ["phenomenonTime", "resultTime", "result", "parameters", "FeatureOfInterest/id"]
_KEY = "citygw_key"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def destination(
    section: HttpSection,
    *,
    gateway_id: str,
    version: str = "",
    locations: Mapping[str, tuple[float, float]] | None = None,
    drivers: Mapping[str, str] | None = None,
) -> SensorThings:
    """The `sensorthings` destination of an `[[uplinks]]` record. `locations`: source name ->
    (lat, lon) from its register record; `drivers`: source name -> driver, for the Sensor."""
    client = http_client(section, user_agent=f"citygw/{version or 'dev'}")
    return SensorThings(
        section.name, client, gateway_id=gateway_id, locations=locations, drivers=drivers
    )


@dataclass(slots=True)
class _SeriesState:
    unsure: bool = True  # after a start, and after a POST without a clear answer
    stored_keys: set[tuple[int, int]] = field(default_factory=set)
    stored_pairs: set[tuple[int, float]] = field(default_factory=set)

    def has(self, reading: OutgoingReading) -> bool:
        return (reading.epoch, reading.seq) in self.stored_keys or (
            (reading.ts_ms, reading.value) in self.stored_pairs
        )

    def forget_up_to(self, delivered: Sequence[OutgoingReading]) -> None:
        """`delivered` is acknowledged: keys up to its last will not come again; later ones
        (stored by a lost attempt that reached further than this batch) still may."""
        last_key = max((r.epoch, r.seq) for r in delivered)
        last_ms = max(r.ts_ms for r in delivered)
        self.stored_keys = {k for k in self.stored_keys if k > last_key}
        self.stored_pairs = {p for p in self.stored_pairs if p[0] > last_ms}


@dataclass(slots=True)
class SensorThingsStats:
    """What this destination did, for status and metrics."""

    posted: int = 0  # Observations the server confirmed
    skipped_present: int = 0  # readings found already stored (a re-send after a crash/timeout)
    skipped_not_finite: int = 0  # NaN/inf: JSON cannot carry them
    read_backs: int = 0
    requests: int = 0
    entity_losses: int = 0


class SensorThings:
    """Delivers batches to one SensorThings server (protocol `Destination`)."""

    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        gateway_id: str,
        locations: Mapping[str, tuple[float, float]] | None = None,
        drivers: Mapping[str, str] | None = None,
        max_rows: int = MAX_ROWS_PER_REQUEST,
    ) -> None:
        self.name = name
        self._client = client
        self._api = StaApi(client)
        self._gateway_id = gateway_id
        self._entities = Entities(
            self._api, gateway_id=gateway_id, locations=locations, drivers=drivers
        )
        self._series: dict[SeriesKey, _SeriesState] = {}
        self._max_rows = max_rows
        self._recent = RecentKeys()
        self.stats = SensorThingsStats()

    async def close(self) -> None:
        """Closes the connection."""
        await self._client.close()

    async def deliver(self, batch: Sequence[OutgoingReading]) -> None:
        """Every reading of `batch` stored once on the server, or DeliveryError."""
        fresh = [r for r in batch if r not in self._recent]
        self.stats.skipped_present += len(batch) - len(fresh)
        groups: dict[SeriesKey, list[OutgoingReading]] = {}
        for reading in fresh:
            if not math.isfinite(reading.value):
                self.stats.skipped_not_finite += 1
                continue
            key = SeriesKey(reading.source, reading.quantity, reading.unit)
            groups.setdefault(key, []).append(reading)
        for attempt in (1, 2):
            try:
                await self._deliver_groups(groups)
                break
            except StaError as e:
                if e.lost and attempt == 1:
                    self._forget(e)
                    continue
                raise e.delivery_error() from e
        self._recent.add(fresh)
        for key, readings in groups.items():  # delivered: what the read-back found up to here
            self._series[key].forget_up_to(readings)  # is done with; what lies beyond is kept

    def _forget(self, error: StaError) -> None:
        """The server lost entities (and maybe their Observations): trust no cache."""
        log.warning("%s: the server lost entities (%s); finding them again", self.name, error)
        self.stats.entity_losses += 1
        self._entities.forget()
        for state in self._series.values():
            state.unsure = True
            state.stored_keys.clear()
            state.stored_pairs.clear()

    async def _deliver_groups(self, groups: Mapping[SeriesKey, list[OutgoingReading]]) -> None:
        todo: list[tuple[SeriesKey, Stream, list[OutgoingReading]]] = []
        for key, readings in groups.items():
            stream = await self._entities.stream(key, owner=readings[0].owner)
            state = self._series.setdefault(key, _SeriesState())
            if state.unsure:
                times = [r.ts_ms for r in readings]
                await self._read_back(stream, state, window=range(min(times), max(times)))
                state.unsure = False
            left = [r for r in readings if not state.has(r)]
            self.stats.skipped_present += len(readings) - len(left)
            if left:
                todo.append((key, stream, left))
        for request in _split(todo, self._max_rows):
            await self._post(request)

    async def _post(self, request: list[tuple[SeriesKey, Stream, list[OutgoingReading]]]) -> None:
        for key, _, _ in request:
            self._series[key].unsure = True  # until the answer says row by row what happened
        body = [
            {
                "Datastream": {"@iot.id": stream.datastream},
                "components": _COMPONENTS,
                "dataArray": [self._row(r, stream) for r in readings],
            }
            for _, stream, readings in request
        ]
        self.stats.requests += 1
        response = await self._api.post("/CreateObservations", body)
        if response.status not in (200, 201):
            raise StaError(
                f"POST CreateObservations: HTTP {response.status} "
                f"{response.body[:200].decode('utf-8', 'replace')}",
                status=response.status,
                retry_after_s=response.retry_after_s(),
            )
        try:
            rows = response.json()
        except ValueError:
            rows = None
        if not isinstance(rows, list) or len(rows) != sum(len(g[2]) for g in request):
            raise StaError("POST CreateObservations: the answer does not list every row")
        self._settle(request, rows)

    def _settle(
        self, request: list[tuple[SeriesKey, Stream, list[OutgoingReading]]], rows: list[object]
    ) -> None:
        """Apply a row-by-row answer: stored groups are sure again; "error" groups are lost."""
        at = 0
        lost = []
        for key, _, readings in request:
            answer = rows[at : at + len(readings)]
            at += len(readings)
            state = self._series[key]
            if all(isinstance(row, str) and row != "error" for row in answer):
                state.unsure = False
                state.stored_keys.update((r.epoch, r.seq) for r in readings)
                self.stats.posted += len(readings)
            else:
                lost.append(key)
        if lost:
            raise StaError(
                f"CreateObservations: {len(lost)} Datastream(s) refused their rows "
                f"(first: {lost[0].source} {lost[0].quantity})",
                lost=True,
            )

    def _row(self, reading: OutgoingReading, stream: Stream) -> list[object]:
        when = iso_ms(reading.ts_ms)
        parameters: JsonObject = {_KEY: [reading.gateway_id, reading.epoch, reading.seq]}
        if reading.flags:
            parameters["flags"] = reading.flags
        return [when, when, reading.value, parameters, stream.feature]

    async def _read_back(self, stream: Stream, state: _SeriesState, *, window: range) -> None:
        """What the server holds of this Datastream from `window.start` (ms) on, into `state`.

        Past the window's end it reads on for at most one request's worth of rows: what a lost
        attempt stored beyond this batch (a batch cut shorter after a restart) is found too,
        while a long history after the window (not ours to re-send) is not read to its end."""
        self.stats.read_backs += 1
        path = f"/Datastreams{segment(stream.datastream)}/Observations"
        beyond = 0
        for page in range(_READ_BACK_MAX_PAGES):
            answer = await self._api.get(
                path,
                {  # no $select: django-ogc-sensorthings 1.2.0 then runs a query per row
                    "$filter": f"resultTime ge {iso_ms(window.start)}",
                    "$resultFormat": "dataArray",
                    "$orderby": "resultTime,id",  # a total order: pages neither repeat nor skip
                    "$top": str(_READ_BACK_PAGE),
                    "$skip": str(page * _READ_BACK_PAGE),
                },
            )
            count = 0
            for group in values(answer):
                rows, late = self._note_stored(group, state, after_ms=window.stop)
                count += rows
                beyond += late
            if count < _READ_BACK_PAGE or beyond >= MAX_ROWS_PER_REQUEST:
                return
        log.warning("%s: read-back of %s stopped after %d pages", self.name, path, page + 1)

    def _note_stored(
        self, group: JsonObject, state: _SeriesState, *, after_ms: int
    ) -> tuple[int, int]:
        """Note the rows of a dataArray group; (rows, rows later than `after_ms`)."""
        components = group.get("components")
        rows = group.get("dataArray")
        if not isinstance(components, list) or not isinstance(rows, list):
            return 0, 0
        index = {name: i for i, name in enumerate(components) if isinstance(name, str)}
        late = 0
        for row in rows:
            if not isinstance(row, list) or len(row) != len(components):
                continue
            when = row[index["phenomenonTime"]] if "phenomenonTime" in index else None
            when_ms = parse_ms(when) if isinstance(when, str) else None
            late += when_ms is not None and when_ms > after_ms
            key = row[index["parameters"]] if "parameters" in index else None
            mine = key.get(_KEY) if isinstance(key, dict) else None
            if isinstance(mine, list) and len(mine) == 3 and mine[0] == self._gateway_id:
                state.stored_keys.add((int(mine[1]), int(mine[2])))
                continue
            result = row[index["result"]] if "result" in index else None
            if when_ms is not None and isinstance(result, int | float):
                state.stored_pairs.add((when_ms, float(result)))
        return len(rows), late


def _split(
    todo: list[tuple[SeriesKey, Stream, list[OutgoingReading]]], max_rows: int
) -> list[list[tuple[SeriesKey, Stream, list[OutgoingReading]]]]:
    """Requests of at most `max_rows` rows; a long series is cut across requests."""
    requests: list[list[tuple[SeriesKey, Stream, list[OutgoingReading]]]] = [[]]
    room = max_rows
    for key, stream, readings in todo:
        start = 0
        while start < len(readings):
            if room == 0:
                requests.append([])
                room = max_rows
            part = readings[start : start + room]
            requests[-1].append((key, stream, part))
            start += len(part)
            room -= len(part)
    return [r for r in requests if r]


def parse_ms(text: str) -> int:
    """Milliseconds of an ISO 8601 time as servers write it (Z or +00:00, any fraction)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


if TYPE_CHECKING:  # mypy checks that the config's record has every field this format reads
    from gateway.config import UplinkSection

    def _uplink_section_fits(section: UplinkSection) -> HttpSection:
        return section
