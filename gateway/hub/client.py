"""The hub side's MQTT client: a persistent session, so a broker restart loses nothing."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.wire import MAX_MESSAGE_BYTES

SESSION_EXPIRY_S = 7 * 24 * 3600
MAX_PACKET_BYTES = MAX_MESSAGE_BYTES + 70_000
"""The largest PUBLISH a hub takes (MQTT 5): a message the decoders accept, its topic (at most
65,535 bytes) and properties. Larger ones the broker never sends; the decoders refuse the rest."""


@dataclass(frozen=True, slots=True)
class HubOptions:
    """How a hub-side tool reaches the broker: URL, prefix, credentials, MQTT version, session."""

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
        """The client id when none is given: one per host, so its session persists across runs."""
        return f"citygw-hub-{socket.gethostname()}"[:64]


def hub_client(options: HubOptions) -> aiomqtt.Client:
    """An unconnected aiomqtt client for `options`; ValueError unless the URL is mqtt(s)://."""
    parts = urlsplit(options.url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"expected mqtt://host[:port] or mqtts://host[:port], got {options.url!r}")
    tls = parts.scheme == "mqtts"
    v5 = options.protocol == "5"
    properties = None
    persistent = options.persistent
    if v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # The broker drops what would exceed this for us: no 50 MB message reaches the hub.
        properties.MaximumPacketSize = MAX_PACKET_BYTES
        if persistent:
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
    return aiomqtt.Client(
        parts.hostname,
        parts.port or (8883 if tls else 1883),
        identifier=options.client_id or options.default_client_id(),
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        clean_start=(not persistent) if v5 else MQTT_CLEAN_START_FIRST_ONLY,
        clean_session=None if v5 else not persistent,
        properties=properties,
        username=options.username,
        password=options.password,
        tls_context=ssl.create_default_context(cafile=options.ca_file) if tls else None,
        max_queued_incoming_messages=10_000,
    )
