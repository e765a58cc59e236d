"""`citygw hub status`: the fleet at a glance from the hub database, worst first."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from gateway.cli.base import age_text


def worst_first(rows: list[dict[str, Any]], *, now_ms: int | None = None) -> list[dict[str, Any]]:
    """Offline first, then the most silent sources (sensors that stopped measuring need
    someone at the pole; a gap may still fill from the gateway's buffer), the most readings
    missing in open gaps, the most dropped, the deepest buffer, the longest unseen; each row
    gains `silent_s` (since the gateway was last seen)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    for row in rows:
        seen = row["last_seen"]
        row["silent_s"] = None if seen is None else round((now_ms - seen) / 1000, 1)

    def badness(row: dict[str, Any]) -> tuple[Any, ...]:
        return (
            row["online"] is not False,
            -len(row["silent_sources"]),
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


HEADER = (
    "gateway",
    "state",
    "last seen",
    "buffer",
    "oldest unsent",
    "dropped",
    "gaps",
    "config",
    "silent sources",
)
SILENT_SHOWN = 3
"""Silent sources named per gateway in the table (the rest counted; --json has them all)."""


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
                "-" if row["silent_s"] is None else f"{age_text(row['silent_s'])} ago",
                "-" if row["buffer_depth"] is None else str(row["buffer_depth"]),
                _iso(row["oldest_unsent"]) or "-",
                "-" if row["dropped"] is None else str(row["dropped"]),
                gaps,
                _printable(row["config_version"] or "-"),
                _silent_text(row["silent_sources"]),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]


def _silent_text(silent: dict[str, float]) -> str:
    """ "pm-north 12 min, ble/kerb 3.5 h, +2 more": the longest silent first."""
    if not silent:
        return "-"
    longest = sorted(silent.items(), key=lambda item: (-item[1], item[0]))
    shown = [f"{_printable(name)} {age_text(seconds)}" for name, seconds in longest[:SILENT_SHOWN]]
    if len(longest) > SILENT_SHOWN:
        shown.append(f"+{len(longest) - SILENT_SHOWN} more")
    return ", ".join(shown)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")[:-6] + "Z"


def _printable(text: str) -> str:
    return text if text.isprintable() else repr(text)[1:-1]
