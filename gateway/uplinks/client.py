"""The connection to the hub's broker: the one agent-side module that imports aiomqtt and paho.

`connect` builds the client (TLS, credentials, the retained "offline" will), notes what the
broker's CONNACK allows and yields a `HubSession`: QoS 1 publishes, the config subscription,
and the data topic named by an MQTT 5 topic alias where the broker allows one. Batching and
acknowledgements are `gateway.uplinks.mqtt`'s business.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from gateway.config import HubSection, read_password
from gateway.uplinks.lazy_import import defer_paho_proxy_lookup

defer_paho_proxy_lookup()  # the one call, before paho is first imported (the lines below)
import aiomqtt  # noqa: E402
from aiomqtt import MqttError  # noqa: E402
from paho.mqtt.client import CallbackOnConnect_v2, ConnectFlags  # noqa: E402
from paho.mqtt.client import Client as PahoClient  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.reasoncodes import ReasonCode  # noqa: E402

__all__ = ["DATA_TOPIC_ALIAS", "HubSession", "MqttError", "connect", "tls_context"]

DATA_TOPIC_ALIAS = 1
"""MQTT 5 topic alias of the data topic: named once per connection, then sent as an empty topic
(saves the topic's bytes on every data message; only when the broker's CONNACK allows aliases)."""


def tls_context(hub: HubSection) -> ssl.SSLContext | None:
    """Verification is on unless the local config says `tls_verify = false`."""
    if not hub.tls:
        return None
    context = ssl.create_default_context(cafile=hub.ca_file or None)
    if hub.cert_file:
        context.load_cert_chain(hub.cert_file, hub.key_file)
    if not hub.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class HubSession:
    """One connection: every publish is QoS 1, and the data topic travels by alias once allowed."""

    def __init__(self, client: aiomqtt.Client, *, data_topic: str, timeout_s: float) -> None:
        self._client = client
        self._data_topic = data_topic
        self._timeout_s = timeout_s
        self._alias_allowed = False  # the broker's CONNACK allows topic aliases (MQTT 5)
        self._alias_set = False  # the data topic's alias is established on this connection

    def note_connack(self, properties: Properties | None) -> None:
        """Take the broker's TopicAliasMaximum from its CONNACK properties (None: MQTT 3.1.1)."""
        self._alias_allowed = getattr(properties, "TopicAliasMaximum", 0) >= DATA_TOPIC_ALIAS

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool, timeout_s: float | None = None
    ) -> None:
        """QoS 1; returns on PUBACK, raises `MqttError` (or TimeoutError) otherwise."""
        await self._client.publish(
            topic,
            payload,
            qos=1,
            retain=retain,
            timeout=self._timeout_s if timeout_s is None else timeout_s,
        )

    async def publish_data(self, payload: bytes) -> None:
        """A data message, QoS 1; the topic is chosen before the first await, so data messages
        leave in the order their publishes started."""
        topic, properties = self._data_topic_now()
        await self._client.publish(
            topic, payload, qos=1, properties=properties, timeout=self._timeout_s
        )

    def _data_topic_now(self) -> tuple[str, Properties | None]:
        """The data topic as this publish names it: in full the first time on a connection
        (with the alias when the broker allows aliases), then empty with the alias."""
        if not self._alias_allowed:
            return self._data_topic, None
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.TopicAlias = DATA_TOPIC_ALIAS
        if self._alias_set:
            return "", properties
        self._alias_set = True
        return self._data_topic, properties

    async def subscribe(self, topics: list[str]) -> None:
        """Subscribe at QoS 1; returns on SUBACK."""
        await self._client.subscribe([(t, 1) for t in topics], timeout=self._timeout_s)

    async def messages(self) -> AsyncIterator[tuple[bytes, bool]]:
        """What arrives on the subscriptions, as (payload, retained), until the connection ends."""
        async for message in self._client.messages:
            payload = message.payload
            if isinstance(payload, bytes | bytearray):
                yield bytes(payload), bool(message.retain)


@asynccontextmanager
async def connect(
    hub: HubSection,
    *,
    gateway_id: str,
    data_topic: str,
    will_topic: str,
    will_payload: bytes,
) -> AsyncIterator[HubSession]:
    """Connect to the hub's broker for the block; the will is published retained at QoS 1."""
    client = _make_client(hub, gateway_id=gateway_id, will_topic=will_topic, will=will_payload)
    session = HubSession(client, data_topic=data_topic, timeout_s=hub.timeout_s)
    if hub.protocol == "5":
        watch_connack(client, session.note_connack)
    async with client:
        yield session


def _make_client(
    hub: HubSection, *, gateway_id: str, will_topic: str, will: bytes
) -> aiomqtt.Client:
    return aiomqtt.Client(
        hub.host,
        hub.port,
        identifier=hub.client_id or f"citygw-{gateway_id}",
        protocol=aiomqtt.ProtocolVersion.V5
        if hub.protocol == "5"
        else aiomqtt.ProtocolVersion.V311,
        username=hub.username or None,
        password=read_password(hub),
        will=aiomqtt.Will(will_topic, will, qos=1, retain=True),
        keepalive=hub.keepalive_s,
        timeout=hub.timeout_s,
        tls_context=tls_context(hub),
        tls_insecure=None if hub.tls_verify or not hub.tls else True,
        max_inflight_messages=max(20, hub.max_inflight_batches * 2),
        logger=logging.getLogger("citygw.mqtt"),
    )


def watch_connack(client: aiomqtt.Client, on_connack: Callable[[Properties | None], None]) -> None:
    """Hand the CONNACK's properties to `on_connack`, then pass the CONNACK on to aiomqtt.

    The one private access in the uplinks. aiomqtt 2.5.1 drops CONNACK properties (a return value
    for them is an open request, empicano/aiomqtt#362) and has no public handle on its paho
    client, so this wraps the paho-mqtt 2.2.0 `on_connect` callback (VERSION2 signature) that
    aiomqtt installed on `Client._client`. tests/unit/test_mqtt_internals.py fails when either
    library changes that shape; aiomqtt is pinned <3.
    """
    paho: PahoClient = client._client
    inner: CallbackOnConnect_v2 | None = paho.on_connect  # type: ignore[assignment]

    def on_connect(
        paho_client: PahoClient,
        userdata: object,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        on_connack(properties)
        if inner is not None:
            inner(paho_client, userdata, flags, reason_code, properties)

    paho.on_connect = on_connect
