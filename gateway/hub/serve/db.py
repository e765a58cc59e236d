"""Read-only connections to the hub database: PostgreSQL through psycopg 3, or SQLite.

One connection per worker thread (`Reader.connection()`), opened lazily and dropped when it
fails, so a database restart costs one failed request, not the service. Every statement is
parameterised with `?` placeholders (translated for psycopg) and bounded in time.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

STATEMENT_TIMEOUT_S = 10.0
"""No query a visitor can cause runs longer than this."""


class DatabaseUnavailable(Exception):
    """The database could not answer (down, restarting, a statement over its time bound)."""


class _ConnectionLost(DatabaseUnavailable):
    """The connection broke (e.g. the database restarted since it was opened)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the hub database is: `dialect` is "postgresql" or "sqlite"."""

    dialect: str
    location: str  # the psycopg conninfo, or the SQLite file path

    @classmethod
    def parse(cls, dsn: str) -> Target:
        """`postgresql://...` (or `postgres://...`) or `sqlite:///PATH` (relative;
        `sqlite:////abs/path` absolute, as `hub ingest` and SQLAlchemy read them)."""
        if dsn.startswith(("postgresql://", "postgres://")):
            return cls("postgresql", dsn)
        if dsn.startswith("sqlite:///") and len(dsn) > len("sqlite:///"):
            return cls("sqlite", dsn.removeprefix("sqlite:///"))
        raise ValueError(f"--db must be postgresql://... or sqlite:///PATH, not {dsn[:40]!r}")


Row = tuple[Any, ...]


class Reader:
    """Runs read-only queries for the thread that calls it, on that thread's own connection."""

    def __init__(self, target: Target, *, timeout_s: float = STATEMENT_TIMEOUT_S) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._local = threading.local()

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """All rows of `sql` (placeholders `?`), or DatabaseUnavailable. A connection lost
        since its last use (the database restarted) is replaced and the query run once more,
        so only requests while the database is really down get a 503."""
        try:
            return self._attempt(sql, params)
        except _ConnectionLost:
            return self._attempt(sql, params)

    def _attempt(self, sql: str, params: Sequence[object]) -> list[Row]:
        try:
            return self._run(sql, params)
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # any driver error: drop the connection, answer 503
            lost = bool(getattr(getattr(self._local, "connection", None), "broken", False))
            self.close()
            error = _ConnectionLost if lost else DatabaseUnavailable
            raise error(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Closes this thread's connection (the next query opens a fresh one)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def _run(self, sql: str, params: Sequence[object]) -> list[Row]:
        connection = getattr(self._local, "connection", None)
        if self.target.dialect == "sqlite":
            if connection is None:
                connection = self._local.connection = _open_sqlite(self.target.location)
            deadline = time.monotonic() + self.timeout_s
            connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            return list(connection.execute(sql, tuple(params)).fetchall())
        if connection is None:
            connection = self._local.connection = _open_postgresql(
                self.target.location, self.timeout_s
            )
        with connection.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), tuple(params))
            return list(cursor.fetchall())


def _open_sqlite(path: str) -> sqlite3.Connection:
    """The file opened read-only (mode=ro): serving can never change the hub's data."""
    if not Path(path).exists():
        raise DatabaseUnavailable(f"no SQLite database at {path}")
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5.0)


def _open_postgresql(conninfo: str, timeout_s: float) -> psycopg.Connection[Row]:
    """An autocommit, read-only session whose statements stop after `timeout_s`."""
    import psycopg  # the hub extra; only PostgreSQL deployments need it

    timeout_ms = int(timeout_s * 1000)
    return psycopg.connect(
        conninfo,
        autocommit=True,
        connect_timeout=5,
        options=f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}",
    )
