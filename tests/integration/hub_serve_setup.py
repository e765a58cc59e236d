"""A hub database for the serving tests, built here without the ingest service: the contract's
tables (made by the hub's own migrations, gateway/hub/db/schema.py)
and rows a gateway fleet would have produced, including hostile register records and sources
that are not open data. Also a throwaway PostgreSQL cluster and `citygw hub serve` as a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # the readings cross into December
MINUTES = 150


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- what the fleet published -------------------------------------------------------------

HOSTILE = "<img src=x onerror=alert('x')>"
"""An open source's name (no "/": a name with one can own no readings, so it is never open)."""


def _register(
    purpose: str, *, open_data: bool, personal: bool = False, **more: Any
) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "theme": "Air",
        "personal_data": personal,
        "legal_ground": "",
        "location": [52.0907, 5.1214],
        "active_until": "2028-12-31",
        "open_data": open_data,
        "privacy_statement": "https://example.org/privacy",
        **more,
    }


def _source(
    name: str, owner: str, quantities: list[tuple[str, str]], register: Any
) -> dict[str, Any]:
    return {
        "source": name,
        "owner": owner,
        "type": "serial",
        "driver": "sds011",
        "quantities": [{"quantity": q, "unit": u} for q, u in quantities],
        "register": register,
    }


PM = [("pm2_5", "ug/m3"), ("pm10", "ug/m3")]
REGISTER: list[tuple[str, dict[str, Any]]] = [
    (
        "gw-0001",
        _source(
            "pm-school",
            "burgermeetnet",
            PM,
            _register("Air quality near the school", open_data=True),
        ),
    ),
    (
        "gw-0001",
        _source(
            "pm-school-private", "burgermeetnet", PM, _register("Not published", open_data=False)
        ),
    ),
    (
        "gw-0001",
        _source(
            "counter",
            "gemeente",
            [("count", "1")],
            _register(
                "Counting passers-by",
                open_data=False,
                personal=True,
                legal_ground="public task (GDPR 6.1.e)",
            ),
        ),
    ),
    (
        "gw-0001",
        _source(
            "ble-park",
            "gemeente",
            [("temperature", "C")],
            _register("Park climate", open_data=True),
        ),
    ),
    (
        "gw-0002",
        _source(
            HOSTILE,
            '"><img src=x onerror=alert(1)>',
            [("<b>q</b>", "</td><script>alert(2)</script>")],
            _register(
                "<img src=x onerror=alert(3)>",
                open_data=True,
                privacy_statement="javascript:alert(4)",
                theme="</dd><script>alert(5)</script>",
                location=["<x>", 1],
            ),
        ),
    ),
    ("gw-0002", _source("raw", "gemeente", [("pm2_5", "ug/m3")], None)),
    (
        "gw-0002",
        _source("<script>alert(6)</script>", "x", PM, _register("slash", open_data=True)),
    ),
    (
        "gw-0003",
        _source("pm-lie", "gemeente", PM, _register("open_data is a string", open_data="true")),
    ),
]


@dataclass(frozen=True)
class Reading:
    gateway: str
    epoch: int
    seq: int
    source: str
    quantity: str
    unit: str
    owner: str
    ts: datetime
    value: float
    flags: int = 0


def readings() -> list[Reading]:
    """pm-school: pm2_5 = minute, pm10 = 1000 + minute, one a minute for MINUTES minutes; the
    rest: readings of sources that are not open (same gateway, same quantities) and of the
    open ones under quantities they did not register, which no URL may serve."""
    out: list[Reading] = []
    seq = 0

    def add(
        gw: str, source: str, quantity: str, unit: str, owner: str, ts: datetime, value: float
    ) -> None:
        nonlocal seq
        seq += 1
        out.append(Reading(gw, 1, seq, source, quantity, unit, owner, ts, value))

    for minute in range(MINUTES):
        ts = START + timedelta(minutes=minute)
        add("gw-0001", "pm-school", "pm2_5", "ug/m3", "burgermeetnet", ts, float(minute))
        add("gw-0001", "pm-school", "pm10", "ug/m3", "burgermeetnet", ts, 1000.0 + minute)
    last = START + timedelta(minutes=MINUTES)
    add("gw-0001", "pm-school-private", "pm2_5", "ug/m3", "burgermeetnet", last, -1.0)
    add("gw-0001", "pm-school", "secret", "x", "burgermeetnet", last, -2.0)
    add("gw-0001", "counter", "count", "1", "gemeente", last, -3.0)
    add("gw-0001", "ble-park/ruuvi-1", "temperature", "C", "gemeente", last, 7.5)
    add("gw-0001", "ble-parkx/ruuvi-1", "temperature", "C", "gemeente", last, -4.0)
    add("gw-0002", HOSTILE, "<b>q</b>", "</td><script>alert(2)</script>", "x", last, 42.0)
    add("gw-0002", "raw", "pm2_5", "ug/m3", "gemeente", last, -5.0)
    add("gw-0002", "<script>alert(6)</script>", "pm2_5", "ug/m3", "x", last, -8.0)
    add("gw-0003", "pm-lie", "pm2_5", "ug/m3", "gemeente", last, -6.0)
    add("gw-0009", "pm-school", "pm2_5", "ug/m3", "burgermeetnet", last, -7.0)
    return out


SECRET_VALUES = {-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0}
"""Values only non-open readings carry: none may appear in anything served."""


# --- the contract's tables, made by the hub's own migrations (gateway/hub/db/schema.py) ------

OBSERVATION_COLUMNS = "gateway_id, epoch, seq, source, quantity, unit, owner, ts, value, flags"
REGISTER_COLUMNS = "gateway_id, source, owner, record, updated_at"
MONTHS = [
    "CREATE TABLE observations_p202611 PARTITION OF observations"
    " FOR VALUES FROM ('2026-11-01 00:00Z') TO ('2026-12-01 00:00Z')",
    "CREATE TABLE observations_p202612 PARTITION OF observations"
    " FOR VALUES FROM ('2026-12-01 00:00Z') TO ('2027-01-01 00:00Z')",
]


def _statements(dialect: str) -> list[str]:
    from gateway.hub.db.schema import MIGRATIONS

    return [statement for migration in MIGRATIONS[dialect] for statement in migration]


def _rows(ts_of: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    register = [(gw, s["source"], s["owner"], json.dumps(s), ts_of(START)) for gw, s in REGISTER]
    observations = [
        (r.gateway, r.epoch, r.seq, r.source, r.quantity, r.unit, r.owner, ts_of(r.ts), r.value,
         r.flags)
        for r in readings()
    ]  # fmt: skip
    return register, observations


def fill_sqlite(path: Path) -> None:
    """The tables, with ts as the ingest stores it in SQLite: ISO 8601 text, UTC, ms, Z."""
    register, observations = _rows(
        lambda t: t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        for statement in _statements("sqlite"):
            db.execute(statement)
        db.executemany(
            f"INSERT INTO register ({REGISTER_COLUMNS}) VALUES (?, ?, ?, ?, ?)", register
        )
        db.executemany(
            f"INSERT INTO observations ({OBSERVATION_COLUMNS}) VALUES ({', '.join('?' * 10)})",
            observations,
        )


def fill_postgresql(dsn: str) -> None:
    """The tables and two monthly partitions of observations (the readings cross into December)."""
    import psycopg

    register, observations = _rows(lambda t: t)
    with psycopg.connect(dsn) as db:
        for statement in [*_statements("postgresql"), *MONTHS]:
            db.execute(statement)
        with db.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO register ({REGISTER_COLUMNS}) VALUES (%s, %s, %s, %s, %s)", register
            )
            cursor.executemany(
                f"INSERT INTO observations ({OBSERVATION_COLUMNS})"
                f" VALUES ({', '.join(['%s'] * 10)})",
                observations,
            )


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Any]:
    """A started PgCluster (pg_cluster.py) in its own directory under /tmp: not under pytest's
    /tmp/pytest-of-root, which another pytest run may make 0700 again, locking postgres out."""
    from pg_cluster import PgCluster

    top = Path(tempfile.mkdtemp(prefix="citygw-pg-", dir="/tmp"))
    cluster = PgCluster(top / "pg")
    try:
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError):
            cluster.stop()
        shutil.rmtree(top, ignore_errors=True)


@contextlib.contextmanager
def postgresql_cluster() -> Iterator[str]:
    """A throwaway cluster's superuser DSN."""
    with throwaway_cluster() as cluster:
        yield cluster.dsn


# --- citygw hub serve as a subprocess --------------------------------------------------------


@contextlib.contextmanager
def hub_serve(dsn: str) -> Iterator[str]:
    """`citygw hub serve --db DSN` on a free port; yields its base URL once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "hub",
            "serve",
            "--db",
            dsn,
            "--listen",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"hub serve exited with {process.returncode}")
            try:
                urllib.request.urlopen(url + "/v1.1", timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
