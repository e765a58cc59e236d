"""SQL both backends share: gateway upserts, register rows, the quarantine bound, the gap
keeper's pass and the fleet query. Statements are written with `?` placeholders; a backend's
`Dialect` turns them into its own and its own times."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.hub import gaps
from gateway.hub.db.model import TIME_COLUMNS, Batch, GatewayUpdate

QUARANTINE_MAX_ROWS = 10_000
"""The quarantine keeps this many rows; older ones are deleted as new ones come."""


class Cursor(Protocol):
    """What both drivers' cursors offer (DB-API)."""

    def execute(self, sql: Any, params: Any = ..., /) -> Any:  # noqa: ANN401 (two drivers)
        """Run one statement."""
        ...

    def executemany(self, sql: Any, params: Any, /) -> Any:  # noqa: ANN401
        """Run one statement per parameter row."""
        ...

    def fetchall(self) -> list[Any]:
        """The rows of the last query."""
        ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """A backend's placeholder, its time values (from UTC ms), and its time reading (to ms)."""

    placeholder: str
    time: Callable[[int], object]
    ms_of: str
    """SQL that turns a time column `{}` into UTC milliseconds."""
    silent_of: str
    """SQL that reads the `silent` map of a metrics column `{}` (JSON)."""

    def q(self, sql: str) -> str:
        """`sql` with this backend's placeholders."""
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)


def gateway_upsert(dialect: Dialect, update: GatewayUpdate) -> tuple[str, list[object]]:
    """The statement that sets `update`'s columns on its gateway's row (made if missing)."""
    names = list(update.columns)
    values: list[object] = [update.gateway_id]
    for name in names:
        value = update.columns[name]
        values.append(dialect.time(value) if name in TIME_COLUMNS and value is not None else value)
    sets = []
    for name in names:
        if name == "last_seen" and update.keep_last_seen:
            sets.append("last_seen = coalesce(gateways.last_seen, excluded.last_seen)")
        else:
            sets.append(f"{name} = excluded.{name}")
    marks = ", ".join("?" for _ in values)
    sql = (
        f"INSERT INTO gateways (gateway_id, {', '.join(names)}) VALUES ({marks}) "
        f"ON CONFLICT (gateway_id) DO UPDATE SET {', '.join(sets)}"
    )
    return dialect.q(sql), values


def write_rest(dialect: Dialect, cur: Cursor, batch: Batch) -> None:
    """Everything of `batch` but the observations, inside the caller's transaction."""
    if batch.runs:
        cur.executemany(
            dialect.q(
                "INSERT INTO seq_runs (gateway_id, epoch, first_seq, last_seq, received_ms) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            batch.runs,
        )
    for update in batch.gateways:
        cur.execute(*gateway_upsert(dialect, update))
    if batch.register:
        cur.executemany(
            dialect.q(
                "INSERT INTO register (gateway_id, source, owner, record, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (gateway_id, source) DO UPDATE SET "
                "owner = excluded.owner, record = excluded.record, updated_at = excluded.updated_at"
            ),
            [(g, s, o, r, dialect.time(ms)) for g, s, o, r, ms in batch.register],
        )
    if batch.quarantine:
        cur.executemany(
            dialect.q(
                "INSERT INTO quarantine (received_at, topic, gateway_id, reason, payload) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            [(dialect.time(ms), t, g, r, p) for ms, t, g, r, p in batch.quarantine],
        )
        cur.execute(
            dialect.q("DELETE FROM quarantine WHERE id <= (SELECT max(id) FROM quarantine) - ?"),
            (QUARANTINE_MAX_ROWS,),
        )


def keep_gaps(dialect: Dialect, cur: Cursor, *, now_ms: int, grace_ms: int) -> None:
    """One keeper pass inside the caller's transaction (the caller makes it the only one)."""
    cur.execute("SELECT id, gateway_id, epoch, first_seq, last_seq, received_ms FROM seq_runs")
    runs = cur.fetchall()
    cur.execute(
        "SELECT gateway_id, epoch, first_seq, last_seq, "
        f"{dialect.ms_of.format('opened_at')} FROM gaps WHERE closed_at IS NULL"
    )
    change = gaps.plan(runs, cur.fetchall(), now_ms=now_ms, grace_ms=grace_ms)
    if change.delete_run_ids:
        cur.executemany(
            dialect.q("DELETE FROM seq_runs WHERE id = ?"), [(i,) for i in change.delete_run_ids]
        )
        cur.executemany(
            dialect.q(
                "INSERT INTO seq_runs (gateway_id, epoch, first_seq, last_seq, received_ms) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            change.insert_runs,
        )
    now = dialect.time(now_ms)
    if change.close:
        cur.executemany(
            dialect.q(
                "UPDATE gaps SET closed_at = ? WHERE gateway_id = ? AND epoch = ? "
                "AND first_seq = ? AND last_seq = ? AND closed_at IS NULL"
            ),
            [(now, *span) for span in change.close],
        )
    if change.open:
        cur.executemany(
            dialect.q(
                "INSERT INTO gaps (gateway_id, epoch, first_seq, last_seq, opened_at) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            [(g, e, f, la, dialect.time(ms)) for g, e, f, la, ms in change.open],
        )


FLEET_COLUMNS = (
    "gateway_id",
    "online",
    "last_seen",
    "version",
    "config_version",
    "buffer_depth",
    "oldest_unsent",
    "dropped",
    "open_gaps",
    "missing",
    "silent_sources",
)
MAX_SILENT_SOURCES = 256
"""Silent sources kept per gateway from its metrics (a gateway's metrics are its own say)."""


def fleet_query(dialect: Dialect) -> str:
    """Every gateway with its open gaps and the readings they miss (times as UTC ms)."""
    return (
        "SELECT g.gateway_id, g.online, "
        f"{dialect.ms_of.format('g.last_seen')}, g.version, g.config_version, g.buffer_depth, "
        f"{dialect.ms_of.format('g.oldest_unsent')}, g.dropped, "
        "count(x.first_seq), coalesce(sum(x.last_seq - x.first_seq + 1), 0), "
        f"{dialect.silent_of.format('g.metrics')} "
        "FROM gateways g LEFT JOIN gaps x "
        "ON x.gateway_id = g.gateway_id AND x.closed_at IS NULL "
        "GROUP BY g.gateway_id, g.online, g.last_seen, g.version, g.config_version, "
        "g.buffer_depth, g.oldest_unsent, g.dropped, g.metrics"
    )


def fleet_rows(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows of `fleet_query` as dicts (online as a bool or None)."""
    out = []
    for row in rows:
        item = dict(zip(FLEET_COLUMNS, row, strict=True))
        item["online"] = None if item["online"] is None else bool(item["online"])
        for name in ("last_seen", "oldest_unsent", "open_gaps", "missing"):
            item[name] = None if item[name] is None else int(item[name])
        item["silent_sources"] = silent_sources(item["silent_sources"])
        out.append(item)
    return out


def silent_sources(value: object) -> dict[str, float]:
    """The `silent` map of a gateway's last metrics (JSON text, or parsed by the driver):
    source name -> seconds silent when it was sent; anything else in it is left out."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    silent: dict[str, float] = {}
    for name, seconds in value.items():
        if len(silent) >= MAX_SILENT_SOURCES:
            break
        if (
            isinstance(name, str)
            and isinstance(seconds, int | float)
            and not isinstance(seconds, bool)
            and 0 <= seconds < 1e12
        ):
            silent[name] = float(seconds)
    return silent
