"""The `config/state` report: the outcome of each push, the recent ones, and junk counted.

The report is retained, so a late subscriber sees only the latest one: `last` is the newest
outcome of a push signed by a trusted key, and `recent` lists the newest `RECENT` such
outcomes, so each push of a burst can still be found by its digest. What fails before that
(oversized, not an envelope, unsigned, an untrusted key, a bad signature, stale, addressed
elsewhere) is junk: anyone on the broker can send it, so it is counted by kind and only the
newest is kept as a sample (`junk`), never one entry (or one disk write) per message.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

RECENT = 32
"""Outcomes of signed pushes the report lists (newest last)."""
MAX_REASON_CHARS = 500
MAX_CHANGES = 20


def _now_ms() -> int:
    return int(time.time() * 1000)


def _bounded(entry: dict[str, Any]) -> dict[str, Any]:
    out = dict(entry)
    if isinstance(out.get("reason"), str):
        out["reason"] = out["reason"][:MAX_REASON_CHARS]
    if isinstance(out.get("changes"), list) and len(out["changes"]) > MAX_CHANGES:
        more = len(out["changes"]) - MAX_CHANGES
        out["changes"] = [*out["changes"][:MAX_CHANGES], f"... and {more} more"]
    return out


class Report:
    """The report's parts that outlive one push; `as_json(head)` is what gets published."""

    def __init__(self, stored: dict[str, Any] | None = None) -> None:
        stored = stored or {}
        last = stored.get("last")
        self.last: dict[str, Any] | None = last if isinstance(last, dict) else None
        recent = stored.get("recent")
        self.recent: deque[dict[str, Any]] = deque(
            (e for e in recent if isinstance(e, dict)) if isinstance(recent, list) else (),
            maxlen=RECENT,
        )
        self.junk_count = 0
        self.junk_by_kind: dict[str, int] = {}
        self.junk_last: dict[str, Any] | None = None

    def outcome(self, result: str, *, push: str, version: int, **details: object) -> None:
        """A signed push's outcome: `applied`, `rejected` or `rolled_back`, with details
        (`reason`, `changes`, `rolled_back_version`)."""
        entry = _bounded(
            {
                "result": result,
                "push": push,
                "version": version,
                "at_ms": _now_ms(),
                **{k: v for k, v in details.items() if v not in (None, "")},
            }
        )
        self.last = entry
        self.recent.append(entry)

    def junk(self, kind: str, *, push: str, reason: str) -> None:
        """A message that failed before its signature was found good (or was stale)."""
        self.junk_count += 1
        self.junk_by_kind[kind] = self.junk_by_kind.get(kind, 0) + 1
        self.junk_last = _bounded(
            {"result": "rejected", "push": push, "kind": kind, "reason": reason, "at_ms": _now_ms()}
        )

    def is_last_junk(self, push: str) -> bool:
        """Whether `push` is the junk sample already reported (a retained one seen again)."""
        return self.junk_last is not None and self.junk_last.get("push") == push

    def reported(self, push: str) -> bool:
        """Whether a signed push with this digest has an outcome in the report."""
        return any(entry.get("push") == push for entry in self.recent)

    def as_json(self, head: dict[str, Any]) -> dict[str, Any]:
        """The report as published: the gateway's head, then the outcomes."""
        report = dict(head)
        if self.last is not None:
            report["last"] = self.last
        report["recent"] = list(self.recent)
        if self.junk_count:
            report["junk"] = {
                "count": self.junk_count,
                "by_kind": dict(sorted(self.junk_by_kind.items())),
                "last": self.junk_last,
            }
        return report


def find_outcome(report: dict[str, Any], push: str) -> dict[str, Any] | None:
    """The newest outcome a report gives for the push with this digest (in `last`, `recent`
    or the junk sample: a replayed push has an old outcome and a new one); None if none."""
    candidates: list[object] = [report.get("last")]
    recent = report.get("recent")
    if isinstance(recent, list):
        candidates += recent
    junk = report.get("junk")
    if isinstance(junk, dict):
        candidates.append(junk.get("last"))
    found = [e for e in candidates if isinstance(e, dict) and e.get("push") == push]
    return max(found, key=_at_ms, default=None)


def _at_ms(entry: dict[str, Any]) -> int:
    at_ms = entry.get("at_ms")
    return at_ms if isinstance(at_ms, int) else 0
