"""The buffer's SQLite file: pragmas chosen for SD-card wear, the schema, a corrupt file moved
aside, and the older row-per-reading format converted to chunks."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from gateway.store import chunks

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, quantity TEXT NOT NULL, unit TEXT NOT NULL,
    UNIQUE (source, quantity, unit));
CREATE TABLE IF NOT EXISTS chunks (
    first_seq INTEGER PRIMARY KEY, count INTEGER NOT NULL, data BLOB NOT NULL);
"""
OLD_ROWS = "readings"
"""The table of the row-per-reading format (before chunks); converted when a buffer opens."""


def open_database(path: Path, synchronous: str) -> sqlite3.Connection:
    """The buffer file, opened with the pragmas below; a file that is not a database is moved
    aside (named `.corrupt-<time>`) and a new one is made. A locked file raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _connect(path, synchronous)
    except sqlite3.DatabaseError as error:
        if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
            raise
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        log.error("buffer %s is unreadable (%s); moved aside to %s", path, error, aside)
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return _connect(path, synchronous)


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.isolation_level = "DEFERRED"  # explicit transactions via `with db:`
    # Small pages: a commit of a few readings writes one page to the WAL, so 1 KiB pages
    # wear an SD card 4x less than the default 4 KiB at a sensor's pace (BENCHMARKS.md).
    # Takes effect only when the file is created.
    db.execute("PRAGMA page_size=1024")
    # One process uses the buffer (`citygw status` reads it only while no agent runs), so
    # the WAL index lives in the heap instead of a memory-mapped -shm file, whose pages
    # every commit dirtied: half of the writes at a sensor's pace (docs/operations.md,
    # SD-card wear). Must come before the first access in WAL mode. A second agent on the
    # same file now fails at open ("database is locked") instead of sharing it.
    db.execute("PRAGMA locking_mode=EXCLUSIVE")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    # 128 KiB page cache: inserts touch the b-tree's right edge, peek and ack its left
    # edge; a larger cache only adds RSS (BENCHMARKS.md, memory). Flat at any depth.
    db.execute("PRAGMA cache_size=-128")
    db.execute("PRAGMA wal_autocheckpoint=1000")
    db.executescript(_SCHEMA)
    db.execute("SELECT count(*) FROM chunks").fetchone()  # fails here if not a database
    return db


def convert_rows(db: sqlite3.Connection, path: Path) -> None:
    """A buffer written by the row-per-reading format: its readings become chunks, keys
    unchanged, in one transaction."""
    if (
        db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (OLD_ROWS,)
        ).fetchone()
        is None
    ):
        return
    with db:
        rows = db.execute(f"SELECT seq, ts_ms, series, value, flags FROM {OLD_ROWS} ORDER BY seq")
        converted = 0
        for first, run in chunks.runs(rows):
            db.execute(
                "INSERT INTO chunks (first_seq, count, data) VALUES (?, ?, ?)",
                (first, len(run), chunks.pack_rows(run)),
            )
            converted += len(run)
        db.execute(f"DROP TABLE {OLD_ROWS}")
    log.info("buffer %s: %d readings converted to the chunked format", path, converted)
