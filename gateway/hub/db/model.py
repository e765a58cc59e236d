"""What one ingest transaction writes (`Batch`), and what every backend offers (`Database`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

ObservationRow = tuple[str, int, int, str, str, str, str, int, float, int]
"""(gateway_id, epoch, seq, source, quantity, unit, owner, ts_ms, value, flags)."""
RunRow = tuple[str, int, int, int, int]
"""(gateway_id, epoch, first_seq, last_seq, received_ms): consecutive seqs that arrived."""
RegisterRow = tuple[str, str, str, str, int]
"""(gateway_id, source, owner, record as JSON text, updated_ms)."""
QuarantineRow = tuple[int, str, str, str, bytes]
"""(received_ms, topic, gateway_id, reason, payload)."""

GATEWAY_COLUMNS = (
    "online",
    "last_seen",
    "version",
    "config_version",
    "buffer_depth",
    "oldest_unsent",
    "dropped",
    "status",
    "metrics",
    "owner",
)
"""Columns of `gateways` a message may set (timestamps as UTC milliseconds in a `Batch`)."""
TIME_COLUMNS = frozenset({"last_seen", "oldest_unsent"})


class Unavailable(Exception):
    """The database cannot be reached or is busy: retry the same batch later."""


class Refused(Exception):
    """The database refused what a batch holds (a value it cannot store): the batch is split
    and the message that holds the value is quarantined."""


@dataclass(slots=True)
class GatewayUpdate:
    """Columns of one gateway's row to set. With `keep_last_seen` (a retained message, of
    unknown age) `last_seen` is set only where none is known."""

    gateway_id: str
    columns: dict[str, Any]
    keep_last_seen: bool = False


@dataclass(slots=True)
class Batch:
    """Everything one transaction stores; the messages it came from are acknowledged after."""

    observations: list[ObservationRow] = field(default_factory=list)
    runs: list[RunRow] = field(default_factory=list)
    gateways: list[GatewayUpdate] = field(default_factory=list)
    register: list[RegisterRow] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.observations or self.runs or self.gateways or self.register or self.quarantine
        )


class Database(Protocol):
    """A hub database: PostgreSQL (`postgres.py`) or SQLite (`sqlite.py`)."""

    def write(self, batch: Batch) -> None:
        """Store `batch` in one transaction (observations once per key); Unavailable or
        Refused if it did not commit."""
        ...

    def keep_gaps(self, *, now_ms: int, grace_ms: int) -> None:
        """Merge the arrived runs, open and close gaps (gaps.py); one keeper at a time."""
        ...

    def fleet(self) -> list[dict[str, Any]]:
        """Every gateway's row with its open gaps (`open_gaps`, `missing`), for `hub status`."""
        ...

    def observation_count(self) -> int:
        """Rows in `observations` (tests, the benchmark)."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...
