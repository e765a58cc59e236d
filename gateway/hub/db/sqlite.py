"""The hub database in one SQLite file (`sqlite:///PATH`): one machine, one ingest worker.
Observations by executemany INSERT OR IGNORE; times as ISO 8601 text in UTC."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.hub.db import common, schema
from gateway.hub.db.model import Batch, Refused, Unavailable

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(ms: int) -> str:
    """UTC milliseconds as `2026-12-07T05:30:00.000Z` (sorts as time does, years 1-9999)."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[:-6] + "Z"


DIALECT = common.Dialect(
    placeholder="?",
    time=iso,
    ms_of="CAST(round((julianday({}) - 2440587.5) * 86400000) AS INTEGER)",
    silent_of="CASE WHEN json_valid({0}) THEN json_extract({0}, '$.silent') END",
)


class SqliteDatabase:
    """The hub database in a file (WAL, so `hub status` reads while ingest writes)."""

    def __init__(self, path: str, *, migrate: bool = True, busy_timeout_s: float = 10.0) -> None:
        if not migrate and not Path(path).exists():
            raise Unavailable(f"no hub database at {path}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
        if migrate:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
                self._migrate()
            except BaseException:  # a database newer than this code (ValueError), a bad file
                self._conn.close()
                raise

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            level = int(row[0]) if row and row[0] is not None else 0
            for number, statements in schema.pending("sqlite", level):
                for statement in statements:
                    conn.execute(statement)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version VALUES (?)", (number,))
                log.info("hub database schema at version %d", number)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _transaction(self, work: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:  # locked or unreadable
            raise Unavailable(str(error)) from None
        try:
            result = work(conn.cursor(), *args, **kwargs)
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.OperationalError):
                raise Unavailable(str(error)) from None
            raise Refused(str(error)) from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def write(self, batch: Batch) -> None:
        """Store `batch` in one transaction."""
        self._transaction(_write, batch)

    def keep_gaps(self, *, now_ms: int, grace_ms: int) -> None:
        """One keeper pass."""
        self._transaction(
            lambda cur: common.keep_gaps(DIALECT, cur, now_ms=now_ms, grace_ms=grace_ms)
        )

    def fleet(self) -> list[dict[str, Any]]:
        """Every gateway's row with its open gaps."""
        try:
            rows = self._conn.execute(common.fleet_query(DIALECT)).fetchall()
        except sqlite3.Error as error:
            raise Refused(str(error)) from None
        return common.fleet_rows(rows)

    def observation_count(self) -> int:
        """Rows in `observations`."""
        return int(self._conn.execute("SELECT count(*) FROM observations").fetchone()[0])

    def close(self) -> None:
        """Close the file."""
        self._conn.close()


def _write(cur: sqlite3.Cursor, batch: Batch) -> None:
    if batch.observations:
        times: dict[int, str] = {}
        rows = []
        for (
            gw,
            epoch,
            seq,
            source,
            quantity,
            unit,
            owner,
            ts_ms,
            value,
            flags,
        ) in batch.observations:
            ts = times.get(ts_ms)
            if ts is None:
                ts = times[ts_ms] = iso(ts_ms)
            rows.append((gw, epoch, seq, source, quantity, unit, owner, ts, value, flags))
        cur.executemany(
            "INSERT OR IGNORE INTO observations (gateway_id, epoch, seq, source, quantity, unit,"
            " owner, ts, value, flags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    common.write_rest(DIALECT, cur, batch)
