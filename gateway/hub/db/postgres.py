"""The hub database on PostgreSQL (psycopg 3): observations by binary COPY into a temporary
table, then one INSERT ... ON CONFLICT DO NOTHING into the monthly partitions, which are made
on demand (the only module that imports psycopg)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from gateway.hub.db import common, schema
from gateway.hub.db.model import Batch, ObservationRow, Refused, Unavailable

log = logging.getLogger(__name__)

_MIGRATE_LOCK, _KEEPER_LOCK, _PARTITION_LOCK = 0x63677731, 0x63677732, 0x63677733
_DAY_MS = 86_400_000
_OLDEST_MONTH = datetime(2000, 1, 1, tzinfo=UTC)
"""Months from here to a month ahead get their own partition; other times (an unsynced clock
in 1970, a clock far ahead) go to the default partition, so a bad clock cannot make hundreds."""
_COLUMNS = "gateway_id, epoch, seq, source, quantity, unit, owner, ts_ms, value, flags"
_TYPES = ["text", "int8", "int8", "text", "text", "text", "text", "int8", "float8", "int4"]
_TEMP_COLUMNS = ", ".join(f"{c} {t}" for c, t in zip(_COLUMNS.split(", "), _TYPES, strict=True))


def _time(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


DIALECT = common.Dialect(
    placeholder="%s",
    time=_time,
    ms_of="(extract(epoch from {}) * 1000)::bigint",
    silent_of="({} -> 'silent')",
)


class PostgresDatabase:
    """A connection to the hub database; reconnects after the server went away."""

    def __init__(self, dsn: str, *, migrate: bool = True, connect_timeout_s: float = 10.0) -> None:
        self._dsn, self._writer = dsn, migrate
        self._timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        self._months: set[datetime] = set()
        self._connection()  # fails early on a wrong DSN; migrates

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(self._dsn, connect_timeout=max(1, round(self._timeout_s)))
        except psycopg.OperationalError as error:
            raise Unavailable(str(error)) from None
        try:
            if self._writer:
                _migrate(conn)
                conn.execute(f"CREATE TEMP TABLE obs_in ({_TEMP_COLUMNS}) ON COMMIT DELETE ROWS")
                conn.commit()
        except psycopg.OperationalError as error:
            conn.close()
            raise Unavailable(str(error)) from None
        except BaseException:  # a database newer than this code (ValueError), a refusal
            conn.close()
            raise
        self._conn = conn
        return conn

    def _guarded(self, error: psycopg.Error) -> Exception:
        """Unavailable for a lost or busy server (the connection is dropped), else Refused."""
        if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
            self._drop()
            return Unavailable(str(error))
        if self._conn is not None and not self._conn.closed:
            self._conn.rollback()
        return Refused(str(error))

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def write(self, batch: Batch) -> None:
        """Store `batch` in one transaction."""
        conn = self._connection()
        try:
            self._partitions(conn, batch.observations)
            with conn.transaction(), conn.cursor() as cur:
                if batch.observations:
                    with cur.copy(f"COPY obs_in ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(_TYPES)
                        for row in batch.observations:
                            copy.write_row(row)
                    cur.execute(
                        "INSERT INTO observations SELECT gateway_id, epoch, seq, source, quantity,"
                        " unit, owner, timestamptz 'epoch' + ts_ms * interval '1 millisecond',"
                        " value, flags FROM obs_in ON CONFLICT DO NOTHING"
                    )
                common.write_rest(DIALECT, cur, batch)
        except psycopg.Error as error:
            raise self._guarded(error) from None

    def _partitions(self, conn: psycopg.Connection[Any], rows: Iterable[ObservationRow]) -> None:
        """Make the monthly partitions `rows` need that are not known to exist."""
        days = {row[7] // _DAY_MS for row in rows}
        ahead = datetime.now(UTC) + timedelta(days=31)
        months = {_month_of(day) for day in days} - self._months
        for month in sorted(m for m in months if _OLDEST_MONTH <= m <= ahead):
            _make_partition(conn, month)
            self._months.add(month)

    def keep_gaps(self, *, now_ms: int, grace_ms: int) -> None:
        """One keeper pass, unless another worker holds the keeper's lock."""
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (_KEEPER_LOCK,))
                row = cur.fetchone()
                if row and row[0]:
                    common.keep_gaps(DIALECT, cur, now_ms=now_ms, grace_ms=grace_ms)
        except psycopg.Error as error:
            raise self._guarded(error) from None

    def fleet(self) -> list[dict[str, Any]]:
        """Every gateway's row with its open gaps."""
        conn = self._connection()
        try:
            with conn.transaction():
                return common.fleet_rows(conn.execute(common.fleet_query(DIALECT)).fetchall())
        except psycopg.Error as error:
            raise self._guarded(error) from None

    def observation_count(self) -> int:
        """Rows in `observations`."""
        conn = self._connection()
        with conn.transaction():
            row = conn.execute("SELECT count(*) FROM observations").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the connection."""
        self._drop()


def _month_of(day: int) -> datetime:
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _make_partition(conn: psycopg.Connection[Any], month: datetime) -> None:
    """The partition of `month`, made once by whichever worker comes first; readings of that
    month that waited in the default partition move into it."""
    end = (month + timedelta(days=32)).replace(day=1)
    name = f"observations_p{month:%Y%m}"
    start_text, end_text = month.isoformat(), end.isoformat()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
        cur.execute("SELECT to_regclass(%s)", (name,))
        found = cur.fetchone()
        if found and found[0] is not None:
            return
        cur.execute(
            "CREATE TEMP TABLE moving ON COMMIT DROP AS WITH d AS (DELETE FROM observations_other"
            " WHERE ts >= %s AND ts < %s RETURNING *) SELECT * FROM d",
            (month, end),
        )
        cur.execute(
            f"CREATE TABLE {name} PARTITION OF observations "
            f"FOR VALUES FROM ('{start_text}') TO ('{end_text}')"
        )
        cur.execute("INSERT INTO observations SELECT * FROM moving")
    log.info("made partition %s", name)


def _migrate(conn: psycopg.Connection[Any]) -> None:
    """Bring the schema to the latest level, one worker at a time."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        cur.execute("SELECT max(version) FROM schema_version")
        row = cur.fetchone()
        level = int(row[0]) if row and row[0] is not None else 0
        for number, statements in schema.pending("postgresql", level):
            for statement in statements:
                cur.execute(statement)  # our own constants
            cur.execute("DELETE FROM schema_version")
            cur.execute("INSERT INTO schema_version VALUES (%s)", (number,))
            log.info("hub database schema at version %d", number)
