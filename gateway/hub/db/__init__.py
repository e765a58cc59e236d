"""The hub's database: the tables of docs/hub.md in PostgreSQL or SQLite, created and migrated
by the service; `open_database(dsn)` picks the backend from the DSN."""

from __future__ import annotations

from gateway.hub.db.model import Batch, Database, GatewayUpdate, Refused, Unavailable

__all__ = ["Batch", "Database", "GatewayUpdate", "Refused", "Unavailable", "open_database"]


def open_database(dsn: str, *, migrate: bool = True) -> Database:
    """`postgresql://...` (psycopg 3) or `sqlite:///PATH` (relative; `sqlite:////abs/path`
    absolute, as SQLAlchemy reads them); ValueError for anything else,
    Unavailable when the server cannot be reached. `migrate=False` for a reader (`hub status`,
    a role that may not create tables): the schema is used as it is."""
    if dsn.startswith(("postgresql://", "postgres://")):
        from gateway.hub.db.postgres import PostgresDatabase

        return PostgresDatabase(dsn, migrate=migrate)
    if dsn.startswith("sqlite:///"):
        from gateway.hub.db.sqlite import SqliteDatabase

        path = dsn.removeprefix("sqlite:///")
        if not path:
            raise ValueError("sqlite:///PATH needs a file path")
        return SqliteDatabase(path, migrate=migrate)
    raise ValueError(f"expected postgresql://... or sqlite:///PATH, got {dsn.split(':')[0]}:...")
