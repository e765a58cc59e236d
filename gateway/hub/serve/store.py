"""The queries behind the page and the API: the register, and observations of open streams only.

Every observation query names the streams it may read (`_streams_sql`), so a reading of a
source that is not open data cannot come back from any of them, whatever the URL asked; rows
are mapped back through the catalog and dropped if they do not belong to an open stream (a
second lock on the same door). Parameterised SQL only; page sizes bounded by `options`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.hub.serve.catalog import Catalog, Sensor, Stream, sensor_from_row
from gateway.hub.serve.db import Reader, Row
from gateway.hub.serve.options import OptionError, Options

MAX_REGISTER_ROWS = 100_000
MAX_UNION_SENSORS = 500
"""`/Observations` across every open stream names each in SQL; past this, ask per Datastream."""
COLUMNS = "gateway_id, epoch, seq, source, quantity, unit, ts, value, flags"


@dataclass(frozen=True, slots=True)
class Observation:
    """A stored reading of an open stream."""

    stream: Stream
    epoch: int
    seq: int
    source: str  # as stored: the register's source, or `source/device`
    unit: str
    ts: datetime
    value: float
    flags: int

    @property
    def id(self) -> str:
        """`<datastream id>-<epoch>-<seq>`: the reading key, under its open stream."""
        return f"{self.stream.id}-{self.epoch}-{self.seq}"


class Store:
    """Reads the contract's `register` and `observations` tables through a `Reader`."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def catalog(self) -> Catalog:
        """Every register row, parsed (bounded)."""
        rows = self.reader.rows(
            "SELECT gateway_id, source, owner, record, updated_at FROM register"
            " ORDER BY gateway_id, source LIMIT ?",
            (MAX_REGISTER_ROWS,),
        )
        return Catalog.build(sensor_from_row(*row) for row in rows)

    def page(
        self, catalog: Catalog, streams: Sequence[Stream], options: Options
    ) -> tuple[list[Observation], bool, int | None]:
        """One page of the streams' observations, whether there is more, and the total if asked."""
        if not streams:
            return [], False, 0 if options.count else None
        where, params = self._where(streams, options)
        direction = "DESC" if options.descending else "ASC"
        rows = self.reader.rows(
            f"SELECT {COLUMNS} FROM observations WHERE {where}"  # only constants and ? marks
            f" ORDER BY ts {direction}, epoch {direction}, seq {direction} LIMIT ? OFFSET ?",
            (*params, options.top + 1, options.skip),
        )
        found = self._observations(catalog, rows[: options.top])
        total = None
        if options.count:
            counted = self.reader.rows(f"SELECT count(*) FROM observations WHERE {where}", params)
            total = int(counted[0][0])
        return found, len(rows) > options.top, total

    def latest(self, catalog: Catalog, stream: Stream) -> Observation | None:
        """The stream's newest observation."""
        page, _, _ = self.page(catalog, [stream], Options(top=1, descending=True))
        return page[0] if page else None

    def one(self, catalog: Catalog, observation_id: str) -> Observation | None:
        """The observation with this id, if it belongs to an open stream."""
        match = re.fullmatch(r"([0-9]{1,15})-(-?[0-9]{1,19})-(-?[0-9]{1,19})", observation_id)
        stream = catalog.by_stream_id.get(int(match.group(1))) if match else None
        if match is None or stream is None:
            return None
        where, params = self._where([stream], Options())
        rows = self.reader.rows(
            f"SELECT {COLUMNS} FROM observations WHERE {where}"
            " AND gateway_id = ? AND epoch = ? AND seq = ?",
            (*params, stream.sensor.gateway, int(match.group(2)), int(match.group(3))),
        )
        found = self._observations(catalog, rows)
        return found[0] if found else None

    def streams_for_union(self, catalog: Catalog) -> list[Stream]:
        """Every open stream, for `/Observations`; OptionError past MAX_UNION_SENSORS."""
        if len(catalog.things) > MAX_UNION_SENSORS:
            raise OptionError(
                f"more than {MAX_UNION_SENSORS} open sensors: read Datastreams(id)/Observations"
            )
        return catalog.streams

    def _where(self, streams: Sequence[Stream], options: Options) -> tuple[str, list[object]]:
        clause, params = _streams_sql(streams)
        codec = self._codec()
        for bound in options.bounds:
            clause += f" AND ts {bound.sql_op} ?"
            params.append(codec.to_db(bound.when))
        return clause, params

    def _observations(self, catalog: Catalog, rows: list[Row]) -> list[Observation]:
        codec = self._codec()
        found = []
        for gateway, epoch, seq, source, quantity, unit, ts, value, flags in rows:
            stream = catalog.stream_of(str(gateway), str(source), str(quantity))
            if stream is None:
                continue  # not an open stream: never served
            found.append(
                Observation(
                    stream=stream,
                    epoch=int(epoch),
                    seq=int(seq),
                    source=str(source),
                    unit=str(unit or ""),
                    ts=codec.from_db(ts),
                    value=float(value),
                    flags=int(flags or 0),
                )
            )
        return found

    def _codec(self) -> _TsCodec:
        return _TsCodec(text=self.reader.target.dialect == "sqlite")


def _streams_sql(streams: Sequence[Stream]) -> tuple[str, list[object]]:
    """`(... OR ...)` naming each open sensor and its quantities; a BLE reading's stored
    source is `<source>/<device>`, so the source matches whole or as a prefix up to `/`."""
    by_sensor: dict[tuple[str, str], tuple[Sensor, list[str]]] = {}
    for stream in streams:
        key = (stream.sensor.gateway, stream.sensor.source)
        by_sensor.setdefault(key, (stream.sensor, []))[1].append(stream.quantity.name)
    terms, params = [], []
    for sensor, quantities in by_sensor.values():
        marks = ", ".join("?" * len(quantities))
        terms.append(
            "(gateway_id = ? AND (source = ? OR substr(source, 1, CAST(? AS integer)) = ?)"
            f" AND quantity IN ({marks}))"
        )
        params += [sensor.gateway, sensor.source, len(sensor.source) + 1, sensor.source + "/"]
        params += quantities
    return "(" + " OR ".join(terms) + ")", params


@dataclass(frozen=True, slots=True)
class _TsCodec:
    """How `ts` is stored: PostgreSQL timestamptz; SQLite ISO 8601 UTC text with milliseconds
    and a Z, as hub ingest writes it (gateway/hub/db/schema.py). Bounds in the same form compare
    as text, so the ts index serves them (at millisecond precision)."""

    text: bool

    def to_db(self, when: datetime) -> object:
        if self.text:
            return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return when

    def from_db(self, value: object) -> datetime:
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        when = datetime.fromisoformat(str(value))
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
