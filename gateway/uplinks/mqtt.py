"""The uplink: batches from the buffer to the hub over MQTT (QoS 1); ack in the buffer on PUBACK.

The only module that knows aiomqtt. Readings leave in buffer order; after a reconnect everything
not yet acknowledged is sent again from the oldest, with the same keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway import wire
from gateway.backoff import Backoff, RateLimitedLog
from gateway.config import HubSection, read_password
from gateway.readings import Series, StoredReading
from gateway.store.worker import AsyncBuffer
from gateway.uplinks import lazy_import

lazy_import.defer("urllib.request")  # paho's proxy lookup, unused without PySocks (RSS)
import aiomqtt  # noqa: E402  (after the deferral)
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

log = logging.getLogger(__name__)

DATA_TOPIC_ALIAS = 1
"""MQTT 5 topic alias of the data topic: named once per connection, then sent as an empty topic
(saves the topic's bytes on every data message; only when the broker's CONNACK allows aliases)."""


@dataclass(slots=True)
class UplinkStats:
    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    messages_out: int = 0
    readings_out: int = 0
    bytes_out: int = 0
    last_error: str = ""
    connected_since_ms: int | None = None


class ConfigChannel(Protocol):
    """The remote config as the uplink sees it: topics to subscribe, a non-blocking hand-off
    for what arrives there, and the retained report to (re)publish on every connect."""

    def topics(self, topic_prefix: str, gateway_id: str) -> list[str]: ...

    def offer(self, payload: bytes, *, retained: bool) -> None: ...

    def state_payload(self) -> bytes: ...


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


class Uplink:
    def __init__(
        self,
        hub: HubSection,
        *,
        gateway_id: str,
        buffer: AsyncBuffer,
        version: str,
        started_ms: int,
        wire_format: int = 1,
        config_channel: ConfigChannel | None = None,
        monotonic_s: Callable[[], float] = time.monotonic,
        before_flush: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._hub = hub
        self._gateway_id = gateway_id
        self._buffer = buffer
        self._version = version
        self._started_ms = started_ms
        self._monotonic_s = monotonic_s
        self._before_flush = before_flush  # the ingest's commit: what arrived goes out now
        self._new_data = asyncio.Event()
        self._unsent = 0  # readings committed but not yet handed to a publish (an estimate)
        self._flush_now = False
        self._wire_format = wire_format
        self._announced: dict[int, Series] = {}  # v2/v3: the series table of the last birth
        self._alias_allowed = False  # the broker's CONNACK allows topic aliases (MQTT 5)
        self._alias_set = False  # the data topic's alias is established on this connection
        self._client: aiomqtt.Client | None = None
        self._config_channel = config_channel
        self._window: asyncio.Semaphore | None = None
        self._quiescing = False
        self.reached = asyncio.Event()
        """Set once this uplink has connected to the hub (remote config's health check)."""
        self._log = RateLimitedLog(log, interval_s=300)
        self.stats = UplinkStats()

    def topic(self, leaf: str) -> str:
        return wire.topic(self._hub.topic_prefix, self._gateway_id, leaf)

    def notify(self, committed: int) -> None:
        """The ingest committed readings; the pump decides whether a batch is due."""
        self._unsent += committed
        if self._unsent >= self._hub.batch_max_readings:
            self._new_data.set()

    def _make_client(self) -> aiomqtt.Client:
        hub = self._hub
        v5 = hub.protocol == "5"
        will = aiomqtt.Will(
            self.topic(wire.TOPIC_STATUS),
            wire.encode_status(
                self._gateway_id,
                state="offline",
                version=self._version,
                started_ms=self._started_ms,
            ),
            qos=1,
            retain=True,
        )
        return aiomqtt.Client(
            hub.host,
            hub.port,
            identifier=hub.client_id or f"citygw-{self._gateway_id}",
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            username=hub.username or None,
            password=read_password(hub),
            will=will,
            keepalive=hub.keepalive_s,
            timeout=hub.timeout_s,
            tls_context=tls_context(hub),
            tls_insecure=None if hub.tls_verify or not hub.tls else True,
            max_inflight_messages=max(20, hub.max_inflight_batches * 2),
            logger=logging.getLogger("citygw.mqtt"),
        )

    def _watch_connack(self, client: aiomqtt.Client) -> None:
        """Note the broker's TopicAliasMaximum (aiomqtt drops CONNACK properties: wrap paho's
        callback, which aiomqtt installed; aiomqtt is pinned <3)."""
        paho = client._client
        inner = paho.on_connect

        def on_connect(*args: Any) -> None:
            properties = args[4] if len(args) > 4 else None
            self._alias_allowed = getattr(properties, "TopicAliasMaximum", 0) >= DATA_TOPIC_ALIAS
            if inner is not None:
                inner(*args)

        paho.on_connect = on_connect

    async def run(self) -> None:
        """Connect, announce, pump; reconnect with capped jittered backoff. Runs until cancelled."""
        backoff = Backoff(base_s=self._hub.reconnect_min_s, cap_s=self._hub.reconnect_max_s)
        outage_logged = False
        while True:
            try:
                client = self._make_client()
                self._alias_allowed = self._alias_set = False
                if self._hub.protocol == "5":
                    self._watch_connack(client)
                async with client:
                    self._client = client
                    self.stats.connected = True
                    self.stats.connects += 1
                    self.stats.connected_since_ms = int(time.time() * 1000)
                    if self.stats.connects > 1:
                        self.stats.reconnects += 1
                    self.reached.set()
                    log.info(
                        "connected to hub %s as %s",
                        self._hub.url,
                        self._gateway_id,
                        extra={"event": "hub_connected"},
                    )
                    outage_logged = False
                    backoff.reset()
                    await self._publish_birth(client)
                    await self._open_config_channel(client)
                    self._unsent = (await self._buffer.stats()).depth
                    await self._pump(client)
            except aiomqtt.MqttError as error:
                self.stats.last_error = str(error)
                if not outage_logged:
                    text = str(error).lower()
                    what = (
                        "refused us (check username and password)"
                        if "authori" in text or "bad user" in text
                        else "unreachable"
                    )
                    log.warning(
                        "hub %s %s: %s; readings stay buffered, retrying",
                        self._hub.url,
                        what,
                        error,
                        extra={"event": "hub_down"},
                    )
                    outage_logged = True
            except (OSError, ssl.SSLError) as error:  # TLS material unreadable, DNS, ...
                self.stats.last_error = str(error)
                self._log.log(
                    logging.ERROR, "os", "cannot connect to hub %s: %s", self._hub.url, error
                )
            finally:
                self._client = None
                self._window = None
                self.stats.connected = False
            await asyncio.sleep(backoff.next_delay())

    async def _publish_birth(self, client: aiomqtt.Client) -> None:
        """Retained "online"; for wire v2 and v3 with the series table the data messages use."""
        series = None
        if self._wire_format >= 2:
            series = self._announced = await self._buffer.series_table()
        await client.publish(
            self.topic(wire.TOPIC_STATUS),
            wire.encode_status(
                self._gateway_id,
                state="online",
                version=self._version,
                started_ms=self._started_ms,
                series=series,
                wire_format=self._wire_format,
                epoch=self._buffer.sync.epoch if series is not None else None,
            ),
            qos=1,
            retain=True,
            timeout=self._hub.timeout_s,
        )

    async def _open_config_channel(self, client: aiomqtt.Client) -> None:
        channel = self._config_channel
        if channel is None:
            return
        await client.publish(
            self.topic(wire.TOPIC_CONFIG_STATE),
            channel.state_payload(),
            qos=1,
            retain=True,
            timeout=self._hub.timeout_s,
        )
        topics = channel.topics(self._hub.topic_prefix, self._gateway_id)
        await client.subscribe([(t, 1) for t in topics], timeout=self._hub.timeout_s)

    async def _read_config(self, client: aiomqtt.Client, channel: ConfigChannel) -> None:
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, bytes | bytearray):
                channel.offer(bytes(payload), retained=bool(message.retain))

    async def publish_config_state(self, payload: bytes) -> bool:
        """The retained `config/state` report; False if the hub is not connected now (the
        report goes out on the next connect)."""
        return await self._publish_if_connected(wire.TOPIC_CONFIG_STATE, payload, retain=True)

    async def _publish_if_connected(self, leaf: str, payload: bytes, *, retain: bool) -> bool:
        """Best effort, not buffered: False when not connected or the publish failed."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(
                self.topic(leaf), payload, qos=1, retain=retain, timeout=self._hub.timeout_s
            )
        except aiomqtt.MqttError:
            return False
        return True

    async def quiesce(self, *, timeout_s: float) -> None:
        """Start no new batch and wait for the PUBACKs of those in flight, so that switching to
        new hub settings sends nothing twice. The uplink is cancelled afterwards."""
        self._quiescing = True
        self._new_data.set()
        window = self._window
        if window is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                for _ in range(self._hub.max_inflight_batches):
                    await window.acquire()

    def _encode(self, batch: list[StoredReading]) -> bytes:
        return wire.encode_data(
            self._wire_format,
            gateway_id=self._gateway_id,
            epoch=self._buffer.sync.epoch or 0,
            batch=batch,
            series_of=self._buffer.sync.series,
        )

    def _data_topic(self) -> tuple[str, Properties | None]:
        """The data topic as this publish names it: in full the first time on a connection
        (with the alias when the broker allows aliases), then empty with the alias."""
        if not self._alias_allowed:
            return self.topic(wire.TOPIC_DATA), None
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.TopicAlias = DATA_TOPIC_ALIAS
        if self._alias_set:
            return "", properties
        self._alias_set = True
        return self.topic(wire.TOPIC_DATA), properties

    async def _pump(self, client: aiomqtt.Client) -> None:
        """Publish batches in buffer order, with a window of batches awaiting PUBACK."""
        try:
            async with asyncio.TaskGroup() as inflight:
                if self._config_channel is not None:
                    inflight.create_task(
                        self._read_config(client, self._config_channel), name="config-reader"
                    )
                await self._batches(client, inflight)
        except BaseExceptionGroup as group:
            raise _first_leaf(group) from None

    async def _batches(self, client: aiomqtt.Client, inflight: asyncio.TaskGroup) -> None:
        hub = self._hub
        window = self._window = asyncio.Semaphore(hub.max_inflight_batches)
        cursor = 0  # highest seq handed to a publish on this connection
        flush_due = True  # drain the backlog at once after (re)connecting
        next_flush = self._monotonic_s() + hub.flush_interval_s
        while True:
            if self._quiescing:
                await asyncio.Future()  # until cancelled: the in-flight batches finish
            if self._flush_now:
                flush_due, self._flush_now = True, False
            if flush_due or self._unsent >= hub.batch_max_readings:
                await window.acquire()
                sent_up_to = await self._send_batch(client, inflight, window, cursor, flush_due)
                if sent_up_to is not None:
                    cursor = sent_up_to
                    continue
                flush_due = False
            timeout = next_flush - self._monotonic_s()
            if timeout > 0:
                self._new_data.clear()
                if self._unsent >= hub.batch_max_readings or self._flush_now:
                    continue  # notified between the peek and the clear
                try:
                    async with asyncio.timeout(timeout):
                        await self._new_data.wait()
                    continue  # a full batch is waiting
                except TimeoutError:
                    pass
            flush_due = True
            next_flush = self._monotonic_s() + hub.flush_interval_s
            if self._before_flush is not None:
                await self._before_flush()

    async def _send_batch(
        self,
        client: aiomqtt.Client,
        inflight: asyncio.TaskGroup,
        window: asyncio.Semaphore,
        cursor: int,
        flush_due: bool,
    ) -> int | None:
        """Peek the readings after `cursor` and hand them to a publish task: the last key sent,
        or None (window released) if no batch is due. Only the payload outlives this call, not
        a tuple per reading (a batch of 5,000 is ~1 MB of them while a PUBACK is awaited)."""
        hub = self._hub
        batch = await self._buffer.peek(cursor, hub.batch_max_readings)
        if not batch or not (flush_due or len(batch) >= hub.batch_max_readings):
            window.release()
            self._unsent = len(batch)
            return None
        first, last = batch[0][0], batch[-1][0]
        self._unsent = max(0, self._unsent - len(batch))
        if self._wire_format >= 2 and not {r[2] for r in batch} <= self._announced.keys():
            await self._publish_birth(client)  # new series: name them first
        payload = self._encode(batch)
        inflight.create_task(self._publish(client, payload, first, last, len(batch), window))
        return last

    async def _publish(
        self,
        client: aiomqtt.Client,
        payload: bytes,
        first: int,
        last: int,
        count: int,
        window: asyncio.Semaphore,
    ) -> None:
        topic, properties = self._data_topic()  # before any await: publishes keep their order
        try:
            await client.publish(
                topic, payload, qos=1, properties=properties, timeout=self._hub.timeout_s
            )
            await self._buffer.ack(first, last)  # PUBACK received: the hub has them
            self.stats.messages_out += 1
            self.stats.readings_out += count
            self.stats.bytes_out += len(payload)
        finally:
            window.release()

    async def drain(self, timeout_s: float) -> int:
        """Publish what is waiting now (orderly shutdown); returns how many remain buffered."""
        deadline = self._monotonic_s() + timeout_s
        while True:
            depth = (await self._buffer.stats()).depth
            if depth == 0 or self._client is None or self._monotonic_s() >= deadline:
                return depth
            self._flush_now = True
            self._new_data.set()
            await asyncio.sleep(0.05)

    async def publish_metrics(self, metrics: dict[str, Any]) -> bool:
        """Best effort: metrics are a snapshot, not buffered."""
        return await self._publish_if_connected(
            wire.TOPIC_METRICS, wire.encode_metrics(self._gateway_id, metrics), retain=False
        )

    async def announce_offline(self) -> None:
        """On an orderly shutdown the will is not sent: say "offline" ourselves."""
        client = self._client
        if client is None:
            return
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(
                self.topic(wire.TOPIC_STATUS),
                wire.encode_status(
                    self._gateway_id,
                    state="offline",
                    version=self._version,
                    started_ms=self._started_ms,
                ),
                qos=1,
                retain=True,
                timeout=2.0,
            )


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error in a (nested) exception group from the in-flight TaskGroup."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
