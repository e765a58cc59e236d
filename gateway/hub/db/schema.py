"""The hub's tables (docs/hub.md), as numbered migrations per dialect; `schema_version` holds
the level reached. The service applies what is missing when it starts (`pending`).

Same names in PostgreSQL and SQLite. PostgreSQL keeps `observations` partitioned by month on
`ts` (partitions made on demand, `postgres.py`; readings before 2000 or more than a month
ahead go to the default partition `observations_other`), so its unique key includes `ts` (a
re-send carries the same `ts`). SQLite stores times as ISO 8601 text in UTC
(`2026-12-07T05:30:00.000Z`), booleans as 0/1, JSON as text.
"""

from __future__ import annotations

_POSTGRES_1 = [
    """CREATE TABLE observations (
        gateway_id text NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL,
        source text NOT NULL, quantity text NOT NULL, unit text NOT NULL,
        owner text NOT NULL DEFAULT '', ts timestamptz NOT NULL,
        value double precision, flags integer NOT NULL DEFAULT 0,
        UNIQUE (gateway_id, epoch, seq, ts)
    ) PARTITION BY RANGE (ts)""",
    "CREATE TABLE observations_other PARTITION OF observations DEFAULT",
    "CREATE INDEX observations_other_ts ON observations_other (ts)",
    """CREATE TABLE gateways (
        gateway_id text PRIMARY KEY, online boolean, last_seen timestamptz, version text,
        config_version text, buffer_depth bigint, oldest_unsent timestamptz, dropped bigint,
        status jsonb, metrics jsonb, owner text
    )""",
    """CREATE TABLE register (
        gateway_id text NOT NULL, source text NOT NULL, owner text NOT NULL DEFAULT '',
        record jsonb, updated_at timestamptz NOT NULL, PRIMARY KEY (gateway_id, source)
    )""",
    """CREATE TABLE gaps (
        gateway_id text NOT NULL, epoch bigint NOT NULL, first_seq bigint NOT NULL,
        last_seq bigint NOT NULL, opened_at timestamptz NOT NULL, closed_at timestamptz
    )""",
    "CREATE INDEX gaps_open ON gaps (gateway_id, epoch) WHERE closed_at IS NULL",
    """CREATE TABLE seq_runs (
        id bigserial PRIMARY KEY, gateway_id text NOT NULL, epoch bigint NOT NULL,
        first_seq bigint NOT NULL, last_seq bigint NOT NULL, received_ms bigint NOT NULL
    )""",
    """CREATE TABLE quarantine (
        id bigserial PRIMARY KEY, received_at timestamptz NOT NULL, topic text NOT NULL,
        gateway_id text NOT NULL, reason text NOT NULL, payload bytea NOT NULL
    )""",
]

_SQLITE_1 = [
    """CREATE TABLE observations (
        gateway_id TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
        source TEXT NOT NULL, quantity TEXT NOT NULL, unit TEXT NOT NULL,
        owner TEXT NOT NULL DEFAULT '', ts TEXT NOT NULL, value REAL,
        flags INTEGER NOT NULL DEFAULT 0, UNIQUE (gateway_id, epoch, seq)
    )""",
    "CREATE INDEX observations_ts ON observations (ts)",
    """CREATE TABLE gateways (
        gateway_id TEXT PRIMARY KEY, online INTEGER, last_seen TEXT, version TEXT,
        config_version TEXT, buffer_depth INTEGER, oldest_unsent TEXT, dropped INTEGER,
        status TEXT, metrics TEXT, owner TEXT
    )""",
    """CREATE TABLE register (
        gateway_id TEXT NOT NULL, source TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '',
        record TEXT, updated_at TEXT NOT NULL, PRIMARY KEY (gateway_id, source)
    )""",
    """CREATE TABLE gaps (
        gateway_id TEXT NOT NULL, epoch INTEGER NOT NULL, first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL, opened_at TEXT NOT NULL, closed_at TEXT
    )""",
    "CREATE INDEX gaps_open ON gaps (gateway_id, epoch) WHERE closed_at IS NULL",
    """CREATE TABLE seq_runs (
        id INTEGER PRIMARY KEY, gateway_id TEXT NOT NULL, epoch INTEGER NOT NULL,
        first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, received_ms INTEGER NOT NULL
    )""",
    """CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY, received_at TEXT NOT NULL, topic TEXT NOT NULL,
        gateway_id TEXT NOT NULL, reason TEXT NOT NULL, payload BLOB NOT NULL
    )""",
]

# What hub serve reads: one stream's readings in time order (its page, its newest reading),
# and every open stream's in time order (`/v1.1/Observations`). Measured in BENCHMARKS.md
# ("Hub serve"): 66 ms -> 3 ms for a stream with a long history, 1.3 s -> 35 ms for the union.
# On PostgreSQL an index on the partitioned table is made on every partition, those to come
# too, and takes over `observations_other_ts` as its part for the default partition.
_POSTGRES_2 = [
    "CREATE INDEX observations_stream ON observations (gateway_id, quantity, ts)",
    "CREATE INDEX observations_ts ON observations (ts)",
]
_SQLITE_2 = ["CREATE INDEX observations_stream ON observations (gateway_id, quantity, ts)"]

MIGRATIONS: dict[str, list[list[str]]] = {
    "postgresql": [_POSTGRES_1, _POSTGRES_2],
    "sqlite": [_SQLITE_1, _SQLITE_2],
}
"""Per dialect, migration N (1-based) is the list at index N-1. Append; never edit one that
shipped."""


def pending(dialect: str, level: int) -> list[tuple[int, list[str]]]:
    """The migrations after `level`, as (their level, statements), in order; ValueError for a
    database newer than this code."""
    steps = MIGRATIONS[dialect]
    if level > len(steps):
        raise ValueError(
            f"the hub database is at schema version {level}; this citygw knows up to "
            f"{len(steps)}: upgrade citygw"
        )
    return [(number, steps[number - 1]) for number in range(level + 1, len(steps) + 1)]
