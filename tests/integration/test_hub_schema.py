"""The hub's schema is the service's to migrate (gateway/hub/db/schema.py): a database an
earlier citygw made gets the later migrations when ingest opens it, its rows kept; the serving
indexes cover every partition, those made later too; a database newer than this code is
refused with what to do, and nothing in it changes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hub_setup import query

from gateway.hub.db import open_database
from gateway.hub.db.schema import MIGRATIONS

pytestmark = pytest.mark.integration

ROW = (
    "INSERT INTO observations (gateway_id, epoch, seq, source, quantity, unit, ts, value)"
    " VALUES ('gw-1', 7, 1, 'pm', 'pm2_5', 'ug/m3', ?, 12.5)"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return str(request.getfixturevalue("postgres").dsn)


def dialect(dsn: str) -> str:
    return "sqlite" if dsn.startswith("sqlite") else "postgresql"


def execute(dsn: str, statements: list[str], params: tuple[Any, ...] = ()) -> None:
    """Statements in one transaction, as an earlier citygw or an operator ran them."""
    if dsn.startswith("sqlite:///"):
        conn = sqlite3.connect(dsn.removeprefix("sqlite:///"), isolation_level=None)
        try:
            conn.execute("BEGIN")
            for statement in statements:
                conn.execute(statement, params if "?" in statement else ())
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(dsn) as conn:
        for statement in statements:
            sql = statement.replace("?", "%s")
            conn.execute(sql, params if "?" in statement else ())  # type: ignore[arg-type]


def at_version(dsn: str, level: int) -> None:
    """A hub database as the citygw that knew migrations 1..level left it."""
    steps = [s for migration in MIGRATIONS[dialect(dsn)][:level] for s in migration]
    steps += [
        "CREATE TABLE schema_version (version integer NOT NULL)",
        f"INSERT INTO schema_version VALUES ({level})",
    ]
    execute(dsn, steps)


def indexes(dsn: str, table: str) -> set[str]:
    """The column lists of `table`'s indexes, as `(a, b, c)`."""
    if dialect(dsn) == "sqlite":
        names = [r[1] for r in query(dsn, f"PRAGMA index_list({table})")]
        return {
            "(" + ", ".join(r[2] for r in query(dsn, f"PRAGMA index_info({name})")) + ")"
            for name in names
        }
    rows = query(dsn, "SELECT indexdef FROM pg_indexes WHERE tablename = ?", (table,))
    return {"(" + str(r[0]).rsplit("(", 1)[1] for r in rows}


def test_a_database_of_the_first_schema_is_migrated_and_keeps_its_rows(dsn: str) -> None:
    at_version(dsn, 1)
    ts = "2026-12-07T05:30:00.000Z" if dialect(dsn) == "sqlite" else "2026-12-07 05:30Z"
    execute(dsn, [ROW], (ts,))
    table = "observations" if dialect(dsn) == "sqlite" else "observations_other"
    assert "(gateway_id, quantity, ts)" not in indexes(dsn, table)

    open_database(dsn).close()  # what `hub ingest` does first

    assert query(dsn, "SELECT version FROM schema_version") == [(len(MIGRATIONS[dialect(dsn)]),)]
    assert query(dsn, "SELECT gateway_id, seq, value FROM observations") == [("gw-1", 1, 12.5)]
    assert {"(gateway_id, quantity, ts)", "(ts)"} <= indexes(dsn, table)
    open_database(dsn).close()  # a second start finds nothing to do
    assert query(dsn, "SELECT count(*) FROM schema_version") == [(1,)]


def test_every_partition_has_the_serving_indexes_those_made_later_too(postgres: Any) -> None:
    open_database(postgres.dsn).close()
    execute(
        postgres.dsn,
        [
            "CREATE TABLE observations_p202701 PARTITION OF observations"
            " FOR VALUES FROM ('2027-01-01 00:00Z') TO ('2027-02-01 00:00Z')"
        ],
    )
    for table in ("observations_other", "observations_p202701"):
        assert {"(gateway_id, quantity, ts)", "(ts)"} <= indexes(postgres.dsn, table), table
    plan = query(
        postgres.dsn,
        "EXPLAIN SELECT * FROM observations WHERE gateway_id = 'gw-1' AND quantity = 'pm2_5'"
        " ORDER BY ts DESC LIMIT 1",
    )
    assert "observations_p202701_gateway_id_quantity_ts_idx" in str(plan), plan


def test_a_database_newer_than_this_citygw_is_refused_and_left_as_it_is(
    dsn: str, tmp_path: Path
) -> None:
    newer = len(MIGRATIONS[dialect(dsn)]) + 1
    at_version(dsn, newer - 1)
    execute(dsn, [f"UPDATE schema_version SET version = {newer}"])
    argv = ["hub", "ingest", "--url", "mqtt://127.0.0.1:9", "--db", dsn]
    ingest = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ingest.returncode == 2, ingest.stderr
    assert f"schema version {newer}" in ingest.stderr and "upgrade citygw" in ingest.stderr
    assert query(dsn, "SELECT version FROM schema_version") == [(newer,)]
