"""Each lane's durable part in the buffer's `meta` table: its mark and its drop count."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from gateway.store.lanes import Lane, meta_names


def load(db: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Lane name -> (mark, dropped) as last written."""
    rows = dict(db.execute("SELECT key, value FROM meta WHERE key LIKE 'lane%'"))
    marks: dict[str, tuple[int, int]] = {}
    for key, mark in rows.items():
        if key.startswith("lane:"):
            name = key.removeprefix("lane:")
            marks[name] = (int(mark), int(rows.get(meta_names(name)[1], 0)))
    return marks


def save(db: sqlite3.Connection, lanes: Iterable[Lane]) -> None:
    """Write what changed since the last save (inside the caller's transaction)."""
    for lane in lanes:
        if lane.mark != lane.saved_mark or lane.drops.dirty:
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", lane.as_meta())


def saved(lanes: Iterable[Lane]) -> None:
    """After the transaction of `save` committed."""
    for lane in lanes:
        lane.saved_mark = lane.mark
        lane.drops.dirty = False


def delete(db: sqlite3.Connection, names: Iterable[str]) -> None:
    """Forget lanes that are gone (inside the caller's transaction)."""
    for name in names:
        db.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in meta_names(name)])
