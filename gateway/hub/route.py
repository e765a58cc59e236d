"""What each message on a gateway's topic adds to the next transaction (`Batch`): readings with
their owners and arrived runs, the gateway's row, register entries, or a quarantine row. Never
raises for what a message holds: anything that does not decode is quarantined with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from gateway import wire
from gateway.hub.db.model import Batch, GatewayUpdate, ObservationRow
from gateway.hub.decode import SeriesTables, _config_state
from gateway.hub.gaps import runs_of
from gateway.hub.owners import Owners, clean_text, decode_register, json_text
from gateway.hub.pending import Incoming
from gateway.readings import CLOCK_UNSYNCED, Series
from gateway.wire.codec import MAX_NAME_CHARS

log = logging.getLogger(__name__)
TOPIC_REGISTER = "register"
MAX_REASON_CHARS = 500
PARKED = False
HANDLED = True
_RETAINED_LEAVES = (wire.TOPIC_STATUS, TOPIC_REGISTER, wire.TOPIC_CONFIG_STATE)


class Router:
    """Decodes messages under `prefix` into a Batch; keeps births (series tables) and owners."""

    def __init__(self, prefix: str, *, tables: SeriesTables | None = None) -> None:
        self.prefix = prefix
        self.tables = SeriesTables() if tables is None else tables
        self.owners = Owners()
        self.births: set[str] = set()
        """Gateways whose series table arrived since the caller last cleared this."""

    def route(self, message: Incoming, batch: Batch) -> bool:
        """Add what `message` holds to `batch` (HANDLED), or PARKED: data whose series table
        this hub lacks, to be decoded when the gateway's birth arrives."""
        gateway, leaf = self._split(message.topic)
        try:
            if not gateway:
                raise wire.WireError("not a gateway topic under the prefix")
            clean_text(gateway, "the topic's gateway id")
            if not message.payload and leaf in _RETAINED_LEAVES:
                return HANDLED  # a retained message deleted (a gateway taken out of service)
            if leaf == wire.TOPIC_DATA:
                return self._data(gateway, message, batch)
            if leaf == wire.TOPIC_STATUS:
                self._status(gateway, message, batch)
            elif leaf == wire.TOPIC_METRICS:
                self._metrics(gateway, message, batch)
            elif leaf == wire.TOPIC_CONFIG_STATE:
                report = _config_state(message.payload)
                version = _text(report.get("version"))
                if version is not None:
                    batch.gateways.append(GatewayUpdate(gateway, {"config_version": version}))
            elif leaf == TOPIC_REGISTER:
                self._register(gateway, message, batch)
            else:
                raise wire.WireError("unknown topic")
        except wire.WireError as error:
            quarantine(batch, message, gateway, f"{leaf or 'topic'}: {error}")
        return HANDLED

    def gateway_of(self, topic: str) -> str:
        """The gateway a topic under the prefix names ('' for another topic)."""
        return self._split(topic)[0]

    def _split(self, topic: str) -> tuple[str, str]:
        """(gateway, leaf) of `<prefix>/<gateway>/<leaf>`; ('', '') for another topic."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return "", ""
        gateway, _, leaf = topic[len(head) :].partition("/")
        return (gateway, leaf) if 0 < len(gateway) <= MAX_NAME_CHARS else ("", leaf)

    def _data(self, gateway: str, message: Incoming, batch: Batch) -> bool:
        lookup = _Lookup(self.tables, gateway)
        try:
            readings = list(
                wire.decode_data(message.payload, gateway=gateway, series_tables=lookup)
            )
        except wire.WireError:
            if lookup.missing:
                return PARKED
            raise
        owners: dict[str, str] = {}
        names: set[Series] = set()
        rows: list[ObservationRow] = batch.observations
        seqs: dict[int, list[int]] = {}
        for r in readings:
            owner = owners.get(r.source)
            if owner is None:
                owner = owners[r.source] = self.owners.owner(gateway, r.source)
            names.add(Series(r.source, r.quantity, r.unit))
            seqs.setdefault(r.epoch, []).append(r.seq)
            flags = 0 if r.clock_synced else CLOCK_UNSYNCED
            rows.append(
                (
                    gateway,
                    r.epoch,
                    r.seq,
                    r.source,
                    r.quantity,
                    r.unit,
                    owner,
                    r.ts_ms,
                    r.value,
                    flags,
                )
            )
        try:
            _check_names(names)
        except wire.WireError:
            del rows[len(rows) - len(readings) :]
            raise
        for epoch, numbers in seqs.items():
            batch.runs.extend(
                (gateway, epoch, first, last, message.received_ms) for first, last in _runs(numbers)
            )
        return HANDLED

    def _status(self, gateway: str, message: Incoming, batch: Batch) -> None:
        fields = wire.decode_map(message.payload)
        if "series" in fields:
            epoch, table = wire.birth_epoch(fields), wire.series_table(fields)
            _check_names(set(table.values()))
            self.tables.put(gateway, epoch, table)
            self.births.add(gateway)
            fields = {k: v for k, v in fields.items() if k != "series"}
        state = fields.get("state")
        columns: dict[str, Any] = {
            "online": state == "online" if state in ("online", "offline") else None,
            "status": json_text(fields),
            "last_seen": message.received_ms,
        }
        version = _text(fields.get("version"))
        if version is not None:
            columns["version"] = version
        batch.gateways.append(GatewayUpdate(gateway, columns, keep_last_seen=message.retained))

    def _metrics(self, gateway: str, message: Incoming, batch: Batch) -> None:
        fields = wire.decode_map(message.payload)
        buffer = fields.get("buffer")
        buffer = buffer if isinstance(buffer, dict) else {}
        age_s = buffer.get("oldest_unsent_age_s")
        oldest = None
        if isinstance(age_s, int | float) and not isinstance(age_s, bool) and 0 <= age_s <= 1e9:
            oldest = message.received_ms - round(age_s * 1000)
        columns: dict[str, Any] = {
            "buffer_depth": _int(buffer.get("depth")),
            "oldest_unsent": oldest,
            "dropped": _int(buffer.get("dropped")),
            "metrics": json_text(fields),
            "last_seen": message.received_ms,
            "online": True,
        }
        for name in ("version", "config_version"):
            value = _text(fields.get(name))
            if value is not None:
                columns[name] = value
        batch.gateways.append(GatewayUpdate(gateway, columns, keep_last_seen=message.retained))

    def _register(self, gateway: str, message: Incoming, batch: Batch) -> None:
        register = decode_register(message.payload)
        self.owners.put(gateway, register)
        for source, (owner, record) in register.sources.items():
            batch.register.append((gateway, source, owner, record, message.received_ms))
        batch.gateways.append(GatewayUpdate(gateway, {"owner": register.owner}))


def quarantine(batch: Batch, message: Incoming, gateway: str, reason: str) -> None:
    """A quarantine row for `message` (the reason cut to MAX_REASON_CHARS, storable text)."""
    text = reason.replace("\x00", "").encode(errors="replace").decode()[:MAX_REASON_CHARS]
    topic = message.topic.replace("\x00", "")
    batch.quarantine.append((message.received_ms, topic, gateway, text, message.payload))


class _Lookup:
    """The series tables as the decoders ask for them, noting when a birth was missing."""

    def __init__(self, tables: SeriesTables, gateway: str) -> None:
        self.tables, self.gateway, self.missing = tables, gateway, False

    def __call__(self, epoch: int) -> Mapping[int, Series]:
        try:
            table = self.tables.get(self.gateway, epoch)
        except wire.WireError:
            table = {}
        if not table:
            self.missing = True
        return _Aliases(table, self)


class _Aliases(Mapping[int, Series]):
    """A series table whose `get` notes an alias it lacks (a birth newer than ours)."""

    __slots__ = ("lookup", "table")

    def __init__(self, table: Mapping[int, Series], lookup: _Lookup) -> None:
        self.table, self.lookup = table, lookup

    def __getitem__(self, alias: int) -> Series:
        return self.table[alias]

    def __iter__(self) -> Iterator[int]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def get(self, alias: int, default: Any = None) -> Any:  # noqa: ANN401 (Mapping's own)
        found = self.table.get(alias)
        if found is None:
            self.lookup.missing = True
            return default
        return found


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Runs of consecutive seqs; one run at once when the message holds a contiguous range."""
    first, last = numbers[0], numbers[-1]
    if last - first + 1 == len(numbers) and numbers == sorted(numbers):
        return [(first, last)]
    return runs_of(numbers)


def _check_names(names: set[Series]) -> None:
    for series in names:
        for part in series:
            clean_text(part, "series name")


def _text(value: object) -> str | None:
    """A version as text: a short string or an integer; None for anything else."""
    if type(value) is int:
        return str(value)
    if type(value) is str and len(value) <= MAX_NAME_CHARS and "\x00" not in value:
        try:
            value.encode()
        except UnicodeEncodeError:
            return None
        return value
    return None


def _int(value: object) -> int | None:
    """A count within int64, or None."""
    return value if type(value) is int and -(2**63) <= value < 2**63 else None
