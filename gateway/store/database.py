"""The buffer's SQLite file: pragmas chosen for SD-card wear, the schema, a corrupt file moved
aside, the older row-per-reading format converted to chunks, and a buffer from before owners
given its owner (every reading in it is the gateway's own)."""

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
    owner TEXT NOT NULL, UNIQUE (source, quantity, unit, owner));
CREATE TABLE IF NOT EXISTS chunks (
    first_seq INTEGER PRIMARY KEY, count INTEGER NOT NULL, owner TEXT NOT NULL,
    data BLOB NOT NULL);
"""
# `owner` before `data` in a chunk row: a peek that skips another owner's chunks reads the
# owner without following the blob's overflow pages.
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


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def add_owners(db: sqlite3.Connection, path: Path, owner: str) -> None:
    """A buffer from before owners: its series and chunks become `owner`'s, in one transaction
    (the tables are rebuilt: a column cannot join a UNIQUE constraint, nor go before `data`)."""
    if "owner" in _columns(db, "series") and "owner" in _columns(db, "chunks"):
        return
    with db:
        if "owner" not in _columns(db, "series"):
            db.execute("ALTER TABLE series RENAME TO series_old")
            db.execute(_SCHEMA.split(";")[1])
            db.execute(
                "INSERT INTO series (id, source, quantity, unit, owner) "
                "SELECT id, source, quantity, unit, ? FROM series_old",
                (owner,),
            )
            db.execute("DROP TABLE series_old")
        if "owner" not in _columns(db, "chunks"):
            db.execute("ALTER TABLE chunks RENAME TO chunks_old")
            db.execute(_SCHEMA.split(";")[2])
            db.execute(
                "INSERT INTO chunks (first_seq, count, owner, data) "
                "SELECT first_seq, count, ?, data FROM chunks_old",
                (owner,),
            )
            db.execute("DROP TABLE chunks_old")
    log.info("buffer %s: readings stored before owners are now owner %r's", path, owner)


def convert_rows(db: sqlite3.Connection, path: Path, owner: str) -> None:
    """A buffer written by the row-per-reading format: its readings become chunks (of `owner`),
    keys unchanged, in one transaction."""
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
                "INSERT INTO chunks (first_seq, count, owner, data) VALUES (?, ?, ?, ?)",
                (first, len(run), owner, chunks.pack_rows(run)),
            )
            converted += len(run)
        db.execute(f"DROP TABLE {OLD_ROWS}")
    log.info("buffer %s: %d readings converted to the chunked format", path, converted)
