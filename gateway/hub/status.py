"""`citygw hub status`: the fleet at a glance from the hub database, worst first."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any


def worst_first(rows: list[dict[str, Any]], *, now_ms: int | None = None) -> list[dict[str, Any]]:
    """Offline first, then the most readings missing in open gaps, the most dropped, the
    deepest buffer, the longest silent; each row gains `silent_s`."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    for row in rows:
        seen = row["last_seen"]
        row["silent_s"] = None if seen is None else round((now_ms - seen) / 1000, 1)

    def badness(row: dict[str, Any]) -> tuple[Any, ...]:
        return (
            row["online"] is not False,
            -(row["missing"] or 0),
            -(row["dropped"] or 0),
            -(row["buffer_depth"] or 0),
            -(row["silent_s"] or 0),
            row["gateway_id"],
        )

    return sorted(rows, key=badness)


def as_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with times as ISO 8601 UTC text."""
    return [
        {**row, "last_seen": _iso(row["last_seen"]), "oldest_unsent": _iso(row["oldest_unsent"])}
        for row in rows
    ]


HEADER = ("gateway", "state", "last seen", "buffer", "oldest unsent", "dropped", "gaps", "config")


def table(rows: list[dict[str, Any]]) -> list[str]:
    """Aligned text lines, a header first."""
    lines = [HEADER]
    for row in rows:
        state = {True: "online", False: "OFFLINE", None: "?"}[row["online"]]
        gaps = f"{row['open_gaps']} ({row['missing']} missing)" if row["open_gaps"] else "0"
        lines.append(
            (
                _printable(row["gateway_id"]),
                state,
                "-" if row["silent_s"] is None else f"{_age(row['silent_s'])} ago",
                "-" if row["buffer_depth"] is None else str(row["buffer_depth"]),
                _iso(row["oldest_unsent"]) or "-",
                "-" if row["dropped"] is None else str(row["dropped"]),
                gaps,
                _printable(row["config_version"] or "-"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")[:-6] + "Z"


def _printable(text: str) -> str:
    return text if text.isprintable() else repr(text)[1:-1]
