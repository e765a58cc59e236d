"""What a hub makes of a message on a gateway's topic: readings (new ones only), an alert (with
its reading, if new), a status or metrics map, a config report, or an invalid payload with the
reason. Never raises.

Anyone allowed on the broker can publish on any gateway's topics, so the gateway is the one
the topic names (a v1 message naming another is refused), every message is refused above
`wire.MAX_MESSAGE_BYTES` before it is decoded, and the state kept from births and readings is
bounded: least recently heard gateways are forgotten first.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from gateway import wire
from gateway.hub.dedupe import Deduplicator
from gateway.readings import Series
from gateway.wire.codec import MAX_NAME_CHARS
from gateway.wire.messages import MAX_DEPTH, plain
from gateway.wire.register import decode_register

_EPOCHS_KEPT = 4
MAX_CONFIG_STATE_BYTES = 64 * 1024
"""A config report is a few hundred bytes (docs/remote-config.md); more is refused."""


@dataclass(frozen=True, slots=True)
class HubEvent:
    """A decoded message: readings (new ones only), or a status/metrics map, or a bad payload."""

    topic: str
    gateway: str
    kind: str  # "data", "alert", "status", "metrics", "config", "register", "invalid"
    readings: tuple[wire.HubReading, ...] = ()
    fields: dict[str, Any] | None = None
    error: str = ""


class SeriesTables:
    """Each gateway's alias tables from its births, per buffer epoch (None: a birth that does
    not say), the last few epochs of a gateway, so a late message from before a buffer was
    recreated still gets the names its own birth gave. Bounded: at most `max_gateways`
    gateways and about `max_bytes` of tables in all; the least recently heard gateway goes
    first (its data is then reported undecodable until its next birth)."""

    def __init__(self, *, max_gateways: int = 10_000, max_bytes: int = 64 << 20) -> None:
        self._tables: OrderedDict[str, OrderedDict[int | None, _Table]] = OrderedDict()
        self._max_gateways, self._max_bytes = max_gateways, max_bytes
        self.bytes = 0
        """The tables' estimated size over all gateways and epochs."""
        self.evicted = 0
        """Gateways forgotten to stay within the bounds."""

    def __len__(self) -> int:
        """How many gateways have a table."""
        return len(self._tables)

    def put(self, gateway: str, epoch: int | None, series: dict[int, Series]) -> None:
        """Keep `series` as `gateway`'s for `epoch` (replacing it; dropping its oldest epoch)."""
        tables = self._tables.pop(gateway, None) or OrderedDict()
        self._tables[gateway] = tables
        old = tables.pop(epoch, None)
        self.bytes -= old.bytes if old else 0
        tables[epoch] = table = _Table(series)
        self.bytes += table.bytes
        while len(tables) > _EPOCHS_KEPT:
            self.bytes -= tables.popitem(last=False)[1].bytes
        while len(self._tables) > 1 and (
            len(self._tables) > self._max_gateways or self.bytes > self._max_bytes
        ):
            _, oldest = self._tables.popitem(last=False)
            self.bytes -= sum(t.bytes for t in oldest.values())
            self.evicted += 1

    def get(self, gateway: str, epoch: int) -> dict[int, Series]:
        """The table for data of `epoch`; WireError if the gateway's birth for it is unknown."""
        tables = self._tables.get(gateway)
        if not tables:
            return {}  # no birth seen yet: the decoder says which alias it lacks
        self._tables.move_to_end(gateway)
        table = tables.get(epoch, tables.get(None))
        if table is None:
            raise wire.WireError(
                f"data of buffer epoch {epoch}, whose birth this hub has not "
                "seen (series names unknown); not decoded"
            )
        return table.series


class _Table:
    """One birth's alias table and an estimate of its memory (names plus ~250 B an entry)."""

    __slots__ = ("bytes", "series")

    def __init__(self, series: dict[int, Series]) -> None:
        self.series = series
        self.bytes = sum(250 + len(s) + len(q) + len(u) for s, q, u in series.values())


class HubDecoder:
    """Decodes what gateways publish, v1 to v4: keeps each gateway's series table from its
    birth (v2-v4 aliases) and drops readings whose key was seen."""

    def __init__(
        self, *, dedup: Deduplicator | None = None, tables: SeriesTables | None = None
    ) -> None:
        self.dedup = Deduplicator() if dedup is None else dedup
        self.tables = SeriesTables() if tables is None else tables

    def decode(self, topic: str, payload: bytes) -> HubEvent:
        """The event a message on `topic` carries; `invalid` if the payload does not decode."""
        is_config = topic.endswith("/" + wire.TOPIC_CONFIG_STATE)
        parts = topic.split("/")
        leaf = wire.TOPIC_CONFIG_STATE if is_config else parts[-1]
        place = -3 if is_config else -2
        gateway = parts[place] if len(parts) >= -place else ""
        try:
            if not 0 < len(gateway) <= MAX_NAME_CHARS:
                raise wire.WireError("the topic's gateway id is empty or too long")
            if is_config:
                return HubEvent(topic, gateway, "config", fields=_config_state(payload))
            if leaf == wire.TOPIC_DATA:
                readings = wire.decode_data(
                    payload,
                    gateway=gateway,
                    series_tables=lambda epoch: self.tables.get(gateway, epoch),
                )
                fresh = tuple(r for r in readings if self.dedup.is_new(r))
                return HubEvent(topic, gateway, "data", readings=fresh)
            if leaf == wire.TOPIC_ALERT:  # its reading, unless a data message brought it first
                fields, reading = wire.decode_alert(payload, gateway=gateway)
                fresh = (reading,) if self.dedup.is_new(reading) else ()
                return HubEvent(topic, gateway, "alert", readings=fresh, fields=fields)
            if leaf == wire.TOPIC_REGISTER:  # the public sensor register (docs/register.md)
                return HubEvent(topic, gateway, "register", fields=decode_register(payload))
            if leaf in (wire.TOPIC_STATUS, wire.TOPIC_METRICS):
                fields = wire.decode_map(payload)
                if leaf == wire.TOPIC_STATUS and "series" in fields:
                    epoch, table = wire.birth_epoch(fields), wire.series_table(fields)
                    self.tables.put(gateway, epoch, table)
                    fields = {k: v for k, v in fields.items() if k != "series"}
                return HubEvent(topic, gateway, leaf, fields=fields)
        except wire.WireError as error:
            return HubEvent(topic, gateway, "invalid", error=f"{leaf}: {error}")
        return HubEvent(topic, gateway, "invalid", error="unknown topic")


def _config_state(payload: bytes) -> dict[str, Any]:
    """A gateway's remote-config report (JSON, docs/remote-config.md); WireError if it is not
    a JSON object of plain values within MAX_CONFIG_STATE_BYTES and MAX_DEPTH."""
    if len(payload) > MAX_CONFIG_STATE_BYTES:
        raise wire.WireError(f"config state of {len(payload)} bytes is over the limit")
    try:
        report = json.loads(payload)
    except (ValueError, RecursionError):
        report = None
    if not isinstance(report, dict):
        raise wire.WireError("config state: expected a JSON object")
    plain(report, MAX_DEPTH)
    return report
