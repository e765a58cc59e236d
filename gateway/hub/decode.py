"""What a hub makes of a message on a gateway's topic: readings (new ones only), a status or
metrics map, a config report, or an invalid payload with the reason. Never raises."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway import wire
from gateway.hub.dedupe import Deduplicator
from gateway.readings import Series

_EPOCHS_KEPT = 4


@dataclass(frozen=True, slots=True)
class HubEvent:
    """A decoded message: readings (new ones only), or a status/metrics map, or a bad payload."""

    topic: str
    gateway: str
    kind: str  # "data", "status", "metrics", "config", "invalid"
    readings: tuple[wire.HubReading, ...] = ()
    fields: dict[str, Any] | None = None
    error: str = ""


class HubDecoder:
    """Decodes what gateways publish, v1, v2 and v3: keeps each gateway's series table from its
    birth (v2 aliases) and drops readings whose key was seen."""

    def __init__(self) -> None:
        self.dedup = Deduplicator()
        self._series: dict[str, dict[int | None, dict[int, Series]]] = {}
        """gateway -> buffer epoch (None: a birth that does not say) -> alias table. Kept for
        the last few epochs, so a late message from before a buffer was recreated still gets
        the names its own birth gave (aliases start again in a new buffer)."""

    def decode(self, topic: str, payload: bytes) -> HubEvent:
        """The event a message on `topic` carries; `invalid` if the payload does not decode."""
        if topic.endswith("/" + wire.TOPIC_CONFIG_STATE):
            return _config_state(topic, payload)
        parts = topic.split("/")
        leaf = parts[-1]
        gateway = parts[-2] if len(parts) >= 2 else ""
        try:
            if leaf == wire.TOPIC_DATA:
                readings = wire.decode_data(
                    payload,
                    gateway=gateway,
                    series_tables=lambda epoch: self._table(gateway, epoch),
                )
                fresh = tuple(r for r in readings if self.dedup.is_new(r))
                return HubEvent(topic, gateway, "data", readings=fresh)
            if leaf in (wire.TOPIC_STATUS, wire.TOPIC_METRICS):
                fields = wire.decode_map(payload)
                if leaf == wire.TOPIC_STATUS and "series" in fields:
                    epoch = fields.get("ep")
                    tables = self._series.setdefault(gateway, {})
                    tables.pop(epoch if isinstance(epoch, int) else None, None)
                    tables[epoch if isinstance(epoch, int) else None] = wire.series_table(fields)
                    while len(tables) > _EPOCHS_KEPT:
                        del tables[next(iter(tables))]
                    fields = {k: v for k, v in fields.items() if k != "series"}
                return HubEvent(topic, gateway, leaf, fields=fields)
        except wire.WireError as error:
            return HubEvent(topic, gateway, "invalid", error=str(error))
        return HubEvent(topic, gateway, "invalid", error="unknown topic")

    def _table(self, gateway: str, epoch: int) -> dict[int, Series]:
        tables = self._series.get(gateway)
        if not tables:
            return {}  # no birth seen yet: the decoder says which alias it lacks
        table = tables.get(epoch, tables.get(None))
        if table is None:
            raise wire.WireError(
                f"data of buffer epoch {epoch}, whose birth this hub has not "
                "seen (series names unknown); not decoded"
            )
        return table


def _config_state(topic: str, payload: bytes) -> HubEvent:
    """A gateway's remote-config report (JSON, docs/remote-config.md)."""
    parts = topic.split("/")
    gateway = parts[-3] if len(parts) >= 3 else ""
    try:
        report = json.loads(payload)
    except ValueError:
        report = None
    if not isinstance(report, dict):
        return HubEvent(topic, gateway, "invalid", error="config state: expected a JSON object")
    return HubEvent(topic, gateway, "config", fields=report)
