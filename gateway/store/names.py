"""The buffer's series table: (source, quantity, unit, owner) <-> the small id a chunk stores."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from gateway.readings import Series


class SeriesNames:
    """Every series the buffer has named, with its owner; new ones are inserted inside the
    caller's transaction (`forget_uncommitted` after a rollback)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._ids: dict[tuple[str, str, str, str], int] = {}
        self.series: dict[int, Series] = {}
        self.owner: dict[int, str] = {}
        for sid, source, quantity, unit, owner in db.execute(
            "SELECT id, source, quantity, unit, owner FROM series"
        ):
            self._remember(sid, Series(source, quantity, unit), owner)

    def _remember(self, sid: int, series: Series, owner: str) -> None:
        self._ids[(*series, owner)] = sid
        self.series[sid] = series
        self.owner[sid] = owner

    def id(self, series: Series, owner: str) -> int:
        """The id of `series` of `owner`, inserted if new."""
        sid = self._ids.get((*series, owner))
        if sid is None:
            cursor = self._db.execute(
                "INSERT INTO series (source, quantity, unit, owner) VALUES (?, ?, ?, ?)",
                (*series, owner),
            )
            sid = int(cursor.lastrowid or 0)
            self._remember(sid, series, owner)
        return sid

    def table(self, carries: Callable[[str], bool] | None = None) -> dict[int, Series]:
        """Every series by id; with `carries`, only those of the owners it accepts."""
        if carries is None:
            return dict(self.series)
        return {sid: s for sid, s in self.series.items() if carries(self.owner[sid])}

    def forget_uncommitted(self) -> None:
        """After a rolled-back transaction: forget the series it had inserted."""
        stored = {row[0] for row in self._db.execute("SELECT id FROM series")}
        for sid in [sid for sid in self.series if sid not in stored]:
            del self._ids[(*self.series.pop(sid), self.owner.pop(sid))]
