"""A hub-side subscriber: what a city data hub does with citygw messages (`citygw hub tail`).

QoS 1 with a persistent session (MQTT 5 session expiry, or clean_session=False on 3.1.1), so a
broker restart or a hub reconnect loses nothing; duplicates are dropped by reading key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway import wire, wire2, wire3
from gateway.backoff import Backoff
from gateway.readings import Series

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
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


@dataclass(frozen=True, slots=True)
class HubOptions:
    url: str
    topic_prefix: str = "citygw/v1"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    protocol: str = "5"
    persistent: bool = True
    """A session the broker keeps (the hub must not miss data); False for one-shot tools."""

    def default_client_id(self) -> str:
        return f"citygw-hub-{socket.gethostname()}"[:64]


def hub_client(options: HubOptions) -> aiomqtt.Client:
    parts = urlsplit(options.url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"expected mqtt://host[:port] or mqtts://host[:port], got {options.url!r}")
    tls = parts.scheme == "mqtts"
    v5 = options.protocol == "5"
    properties = None
    persistent = options.persistent
    if v5 and persistent:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
    return aiomqtt.Client(
        parts.hostname, parts.port or (8883 if tls else 1883),
        identifier=options.client_id or options.default_client_id(),
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        clean_start=(not persistent) if v5 else MQTT_CLEAN_START_FIRST_ONLY,
        clean_session=None if v5 else not persistent,
        properties=properties,
        username=options.username, password=options.password,
        tls_context=ssl.create_default_context(cafile=options.ca_file) if tls else None,
        max_queued_incoming_messages=10_000,
    )


class HubDecoder:
    """Decodes what gateways publish, v1, v2 and v3: keeps each gateway's series table from its
    birth (v2 aliases) and drops readings whose key was seen."""

    def __init__(self) -> None:
        self.dedup = wire.Deduplicator()
        self._series: dict[str, dict[int | None, dict[int, Series]]] = {}
        """gateway -> buffer epoch (None: a birth that does not say) -> alias table. Kept for
        the last few epochs, so a late message from before a buffer was recreated still gets
        the names its own birth gave (aliases start again in a new buffer)."""

    def decode(self, topic: str, payload: bytes) -> HubEvent:
        if topic.endswith("/" + wire.TOPIC_CONFIG_STATE):
            return _config_state(topic, payload)
        parts = topic.split("/")
        leaf = parts[-1]
        gateway = parts[-2] if len(parts) >= 2 else ""
        try:
            if leaf == wire.TOPIC_DATA:
                if wire3.is_v3(payload):
                    table = self._table(gateway, wire3.epoch_of(payload))
                    readings = wire3.decode_data(payload, gateway, table.get)
                elif wire2.is_v2(payload):
                    table = self._table(gateway, wire2.epoch_of(payload))
                    readings = wire2.decode_data(payload, gateway, table.get)
                else:
                    readings = wire.decode_data(payload)
                fresh = tuple(r for r in readings if self.dedup.is_new(r))
                return HubEvent(topic, gateway, "data", readings=fresh)
            if leaf in (wire.TOPIC_STATUS, wire.TOPIC_METRICS):
                fields = wire.decode_map(payload)
                if leaf == wire.TOPIC_STATUS and "series" in fields:
                    epoch = fields.get("ep")
                    tables = self._series.setdefault(gateway, {})
                    tables.pop(epoch if isinstance(epoch, int) else None, None)
                    tables[epoch if isinstance(epoch, int) else None] = \
                        wire2.series_table(fields)
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
            raise wire.WireError(f"data of buffer epoch {epoch}, whose birth this hub has not "
                                 "seen (series names unknown); not decoded")
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


async def events(options: HubOptions) -> AsyncIterator[HubEvent]:
    """Decoded events forever, reconnecting with backoff; the session keeps what we missed."""
    decoder = HubDecoder()
    backoff = Backoff(base_s=0.5, cap_s=15.0)
    prefix = options.topic_prefix
    while True:
        try:
            async with hub_client(options) as client:
                backoff.reset()
                for leaf in (wire.TOPIC_DATA, wire.TOPIC_STATUS, wire.TOPIC_METRICS,
                             wire.TOPIC_CONFIG_STATE):
                    await client.subscribe(f"{prefix}/+/{leaf}", qos=1)
                async for message in client.messages:
                    payload = message.payload
                    if not isinstance(payload, bytes | bytearray):
                        continue
                    yield decoder.decode(str(message.topic), bytes(payload))
        except aiomqtt.MqttError as error:
            log.warning("hub connection lost: %s; reconnecting", error)
        await asyncio.sleep(backoff.next_delay())
