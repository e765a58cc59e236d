"""The connection to the hub's broker: the one agent-side module that imports aiomqtt and paho.

`connect` builds the client (TLS, credentials, the retained "offline" will), notes what the
broker's CONNACK allows and yields a `HubSession`: QoS 1 publishes, the config subscription,
and the data topic named by an MQTT 5 topic alias where the broker allows one. Batching and
acknowledgements are `gateway.uplinks.mqtt`'s business. A PUBACK whose MQTT 5 reason code is
0x80 or above is a refusal, not an acknowledgement: `HubSession.publish` raises `PublishRefused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from gateway.config import HubSection, read_password
from gateway.uplinks.lazy_import import defer_paho_proxy_lookup

defer_paho_proxy_lookup()  # the one call, before paho is first imported (the lines below)
import aiomqtt  # noqa: E402
from aiomqtt import MqttError  # noqa: E402
from paho.mqtt.client import CallbackOnConnect_v2, ConnectFlags, MQTTMessageInfo  # noqa: E402
from paho.mqtt.client import Client as PahoClient  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.reasoncodes import ReasonCode  # noqa: E402

__all__ = [
    "DATA_TOPIC_ALIAS",
    "HubSession",
    "MqttError",
    "PublishRefused",
    "connect",
    "tls_context",
    "watch_publish_results",
]

DATA_TOPIC_ALIAS = 1
"""MQTT 5 topic alias of the data topic: named once per connection, then sent as an empty topic
(saves the topic's bytes on every data message; only when the broker's CONNACK allows aliases)."""


class PublishRefused(Exception):
    """The broker answered a publish with a failure reason code (MQTT 5, 0x80 and above)."""

    def __init__(self, *, topic: str, code: int, name: str) -> None:
        super().__init__(f"{name} (0x{code:02X}) on {topic}")
        self.topic = topic
        self.code = code
        self.name = name


NO_MATCHING_SUBSCRIBERS = 0x10
"""MQTT 5 PUBACK "No matching subscribers": accepted, and heard by no one. For data that is not
delivery: a hub that is restarting, or a broker that came back without its shared subscriptions
(Mosquitto 2.0.11, docs/hub.md), would lose the readings. `publish(..., heard=True)` raises it."""


class NoSubscribers(PublishRefused):
    """The broker accepted a message that must be heard, and no one subscribes to it (0x10)."""


_SENT_MIDS: contextvars.ContextVar[list[int]] = contextvars.ContextVar("citygw_sent_mids")
"""The packet ids paho gave the publishes of the current task (set by `HubSession._send`)."""


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


def _code(granted: int | ReasonCode) -> int:
    return granted.value if isinstance(granted, ReasonCode) else int(granted)


def _no_refusals(mid: int) -> ReasonCode | None:
    return None


class HubSession:
    """One connection: every publish is QoS 1, and the data topic travels by alias once allowed."""

    def __init__(
        self,
        client: aiomqtt.Client,
        *,
        data_topic: str,
        timeout_s: float,
        refusal_of: Callable[[int], ReasonCode | None] = _no_refusals,
    ) -> None:
        self._client = client
        self._data_topic = data_topic
        self._timeout_s = timeout_s
        self._refusal_of = refusal_of  # the PUBACK's failure reason code by packet id
        self._alias_allowed = False  # the broker's CONNACK allows topic aliases (MQTT 5)
        self._alias_set = False  # the data topic's alias is established on this connection

    def note_connack(self, properties: Properties | None) -> None:
        """Take the broker's TopicAliasMaximum from its CONNACK properties (None: MQTT 3.1.1)."""
        self._alias_allowed = getattr(properties, "TopicAliasMaximum", 0) >= DATA_TOPIC_ALIAS

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool,
        timeout_s: float | None = None,
        heard: bool = False,
    ) -> None:
        """QoS 1; returns on PUBACK, raises `PublishRefused` on a refusing PUBACK (and, when it
        must be `heard`, `NoSubscribers` on 0x10) and `MqttError` (or TimeoutError) when there
        is none."""
        await self._send(
            topic,
            payload,
            retain=retain,
            properties=None,
            timeout_s=self._timeout_s if timeout_s is None else timeout_s,
            shown_topic=topic,
            heard=heard,
        )

    async def publish_data(self, payload: bytes, *, heard: bool = False) -> None:
        """A data message, QoS 1, as `publish`; the topic is chosen before the first await, so
        data messages leave in the order their publishes started."""
        topic, properties = self._data_topic_now()
        await self._send(
            topic,
            payload,
            retain=False,
            properties=properties,
            timeout_s=self._timeout_s,
            shown_topic=self._data_topic,
            heard=heard,
        )

    async def _send(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool,
        properties: Properties | None,
        timeout_s: float,
        shown_topic: str,
        heard: bool = False,
    ) -> None:
        mids: list[int] = []  # the packet id paho gives this publish (watch_publish_results)
        token = _SENT_MIDS.set(mids)
        try:
            await self._client.publish(
                topic, payload, qos=1, retain=retain, properties=properties, timeout=timeout_s
            )
        finally:
            _SENT_MIDS.reset(token)
        for mid in mids:
            refusal = self._refusal_of(mid)
            if refusal is None:
                continue
            if refusal.value == NO_MATCHING_SUBSCRIBERS:
                if heard:
                    raise NoSubscribers(
                        topic=shown_topic, code=refusal.value, name=refusal.getName()
                    )
                continue
            raise PublishRefused(topic=shown_topic, code=refusal.value, name=refusal.getName())

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

    async def subscribe_granted(self, topic: str) -> bool:
        """Subscribe to one topic at QoS 0; whether the broker granted it (a SUBACK code below
        0x80: an MQTT 3.1.1 broker says 0x80 when its ACL does not let us read the topic)."""
        granted = await self._client.subscribe(topic, qos=0, timeout=self._timeout_s)
        codes = granted if isinstance(granted, list | tuple) else []
        return bool(codes) and all(_code(c) < 0x80 for c in codes)

    async def unsubscribe(self, topic: str) -> None:
        """Best effort: stop a subscription."""
        with contextlib.suppress(MqttError, TimeoutError):
            await self._client.unsubscribe(topic, timeout=self._timeout_s)

    async def messages(self) -> AsyncIterator[tuple[str, bytes, bool]]:
        """What arrives on the subscriptions, as (topic, payload, retained), until the
        connection ends."""
        async for message in self._client.messages:
            payload = message.payload
            if isinstance(payload, bytes | bytearray):
                yield message.topic.value, bytes(payload), bool(message.retain)


@asynccontextmanager
async def connect(
    hub: HubSection,
    *,
    gateway_id: str,
    data_topic: str,
    will_topic: str,
    will_payload: bytes,
) -> AsyncIterator[HubSession]:
    """Connect to the hub's broker for the block; the will is published retained at QoS 1.

    Connecting and disconnecting each take at most `hub.timeout_s` (aiomqtt 2.5.1 waits for the
    end of the connection without a bound), and a cancellation that arrives while the block
    ends is never replaced by a disconnect error (aiomqtt's `__aexit__` raises `MqttError` when
    the broker goes at that moment, which would swallow the cancellation)."""
    client = _make_client(hub, gateway_id=gateway_id, will_topic=will_topic, will=will_payload)
    session = HubSession(
        client,
        data_topic=data_topic,
        timeout_s=hub.timeout_s,
        refusal_of=watch_publish_results(client),
    )
    if hub.protocol == "5":
        watch_connack(client, session.note_connack)
    try:
        async with asyncio.timeout(hub.timeout_s + 1.0):
            await client.__aenter__()
    except TimeoutError:
        raise MqttError(f"no CONNACK within {hub.timeout_s + 1.0:g} s") from None
    try:
        yield session
    finally:
        await _disconnect(client, timeout_s=hub.timeout_s)


async def _disconnect(client: aiomqtt.Client, *, timeout_s: float) -> None:
    """DISCONNECT, waiting at most `timeout_s`; errors of a connection already gone are moot."""
    with contextlib.suppress(MqttError, TimeoutError, OSError):
        async with asyncio.timeout(timeout_s):
            await client.__aexit__(None, None, None)


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

    The first of two private accesses in the uplinks. aiomqtt 2.5.1 drops CONNACK properties
    (a return value for them is an open request, empicano/aiomqtt#362) and has no public handle
    on its paho client, so this wraps the paho-mqtt 2.2.0 `on_connect` callback (VERSION2
    signature) that aiomqtt installed on `Client._client`. tests/unit/test_mqtt_internals.py
    fails when either library changes that shape; aiomqtt is pinned <3.
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


def watch_publish_results(client: aiomqtt.Client) -> Callable[[int], ReasonCode | None]:
    """Keep the failure reason codes of PUBACKs (and 0x10, no subscribers); the returned
    function looks one up (once) by the packet id that `HubSession` noted for its publish.

    The second private access in the uplinks. aiomqtt 2.5.1's `publish` returns on any PUBACK,
    whatever its reason code (0x87 "Not authorized" included), and hides the packet id. So this
    wraps two things of the paho-mqtt 2.2.0 client aiomqtt keeps in `Client._client`: its
    `publish` method (to note the packet id in the calling task's context, `_SENT_MIDS`), and the
    `on_publish` callback aiomqtt installed (VERSION2 signature: client, userdata, mid,
    reason_code, properties). tests/unit/test_mqtt_internals.py fails when either library
    changes that shape. paho 2.2 ignores a PUBREC's reason code (QoS 2): citygw uses QoS 1 only.
    """
    paho: PahoClient = client._client
    send = paho.publish
    inner = paho.on_publish
    refused: dict[int, ReasonCode] = {}

    def publish(*args: Any, **kwargs: Any) -> MQTTMessageInfo:  # noqa: ANN401 (paho's own)
        info = send(*args, **kwargs)
        refused.pop(info.mid, None)  # packet ids come round again after 65,535 publishes
        mids = _SENT_MIDS.get(None)
        if mids is not None:
            mids.append(info.mid)
        return info

    def on_publish(
        paho_client: PahoClient,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        if reason_code.is_failure or reason_code.value == NO_MATCHING_SUBSCRIBERS:
            refused[mid] = reason_code
        if inner is not None:
            inner(paho_client, userdata, mid, reason_code, properties)  # type: ignore[call-arg]

    paho.publish = publish  # type: ignore[method-assign]
    paho.on_publish = on_publish
    return lambda mid: refused.pop(mid, None)
