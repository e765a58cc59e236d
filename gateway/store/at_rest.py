"""A buffer file read while no agent runs (`citygw status` with the agent stopped)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store import chunks
from gateway.store.database import OLD_ROWS


class BufferUnreadable(Exception):
    """The file cannot be read now: an agent holds it, or a crash left a WAL whose reading
    needs write access to the directory (the citygw user or root). The message is SQLite's."""


def at_rest(path: Path) -> tuple[int, int | None, int]:
    """(depth, oldest ts_ms, dropped) read from a buffer file while no agent runs (read-only;
    either storage format). After a crash the depth includes the readings the hub had
    acknowledged but the next commit had not yet deleted: they are sent again.
    BufferUnreadable if SQLite cannot read it."""
    try:
        return _read(path)
    except sqlite3.Error as error:
        raise BufferUnreadable(str(error)) from error


def _read(path: Path) -> tuple[int, int | None, int]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        depth, oldest = 0, None
        if OLD_ROWS in tables:
            depth, oldest = db.execute(f"SELECT count(*), min(ts_ms) FROM {OLD_ROWS}").fetchone()
        if "chunks" in tables:
            depth += db.execute("SELECT coalesce(sum(count), 0) FROM chunks").fetchone()[0]
            first = db.execute(
                "SELECT first_seq, data FROM chunks ORDER BY first_seq LIMIT 1"
            ).fetchone()
            if first is not None and oldest is None:
                oldest = chunks.ts_at(first[0], first[1], first[0])
        dropped = db.execute("SELECT value FROM meta WHERE key = 'dropped_total'").fetchone()
    finally:
        db.close()
    return depth, oldest, dropped[0] if dropped else 0
