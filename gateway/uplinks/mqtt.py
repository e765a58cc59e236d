"""An MQTT uplink: batches of its lane of the buffer to a broker (QoS 1), acked on PUBACK.

Readings leave in buffer order, with a window of batches awaiting PUBACK; after a reconnect
everything not yet acknowledged is sent again from the oldest, with the same keys. A refused
publish (`PublishRefused`) acknowledges nothing: the connection ends and the readings go again
after a backoff that a refusal does not reset. "No matching subscribers" (0x10) acknowledges
nothing either, but keeps the connection (`window`; docs/uplinks.md says why). The broker
connection itself (aiomqtt, TLS, the will, topic aliases, reason codes) is
`gateway.uplinks.client`; what the operator sees, `report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway import wire
from gateway.agent.supervise import first_leaf, raise_if_cancelling
from gateway.backoff import Backoff, RateLimitedLog
from gateway.config import HubSection
from gateway.readings import Series, StoredReading
from gateway.store.lanes import DEFAULT_LANE
from gateway.store.worker import AsyncBuffer
from gateway.uplinks.alerts import AlertLane
from gateway.uplinks.channel import ConfigChannel
from gateway.uplinks.client import HubSession, MqttError, NoSubscribers, PublishRefused, connect
from gateway.uplinks.rebirth import REBIRTH_LEAF, RebirthGate
from gateway.uplinks.report import HubReport, UplinkStats
from gateway.uplinks.window import BatchWindow

log = logging.getLogger(__name__)


class Uplink:
    """Its lane's readings to a broker in order, acked on PUBACK. The operator's (lane `hub`)
    also carries status, metrics and the config channel; another is data, birth and will."""

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
        lane: str = DEFAULT_LANE,
    ) -> None:
        self.name = self._lane = lane
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
        self._session: HubSession | None = None
        self._config_channel = config_channel
        self.register: bytes | None = None  # the retained, public register: sent at each connect
        self._window: BatchWindow | None = None  # of the connection
        self._quiescing = False
        self.reached = asyncio.Event()
        """Set once this uplink has connected to the hub (remote config's health check)."""
        self._log = RateLimitedLog(log, interval_s=300)
        self.stats = UplinkStats()
        self._report = HubReport(self.stats, url=hub.url, lane=lane)
        self._backoff = Backoff(base_s=hub.reconnect_min_s, cap_s=hub.reconnect_max_s)
        self.alerts = AlertLane(hub, gateway_id=gateway_id, buffer=buffer, lane=lane)  # at once
        self.rebirth = RebirthGate(self.stats, monotonic_s=monotonic_s)

    def topic(self, leaf: str) -> str:
        """The full topic of `leaf` (e.g. `wire.TOPIC_DATA`) for this gateway."""
        return wire.topic(self._hub.topic_prefix, self._gateway_id, leaf)

    def notify(self, committed: int) -> None:
        """The ingest committed readings; the pump decides whether a batch is due."""
        self._unsent += committed
        if self._unsent >= self._hub.batch_max_readings:
            self._new_data.set()

    def _offline(self) -> bytes:
        """The retained "offline" status: the will, and what an orderly stop says itself."""
        return wire.encode_status(
            self._gateway_id, state="offline", version=self._version, started_ms=self._started_ms
        )

    def _connect(self) -> contextlib.AbstractAsyncContextManager[HubSession]:
        return connect(
            self._hub,
            gateway_id=self._gateway_id,
            data_topic=self.topic(wire.TOPIC_DATA),
            will_topic=self.topic(wire.TOPIC_STATUS),
            will_payload=self._offline(),
        )

    async def run(self) -> None:
        """Connect, announce, pump, reconnect (capped jittered backoff); never swallows a cancel."""
        backoff = self._backoff
        while True:
            try:
                async with self._connect() as session:
                    await self._serve(session)
            except PublishRefused as error:
                self._report.refused(error.topic, error.code, error.name)
            except MqttError as error:
                self._report.outage(error)
            except (OSError, ssl.SSLError) as error:  # TLS material unreadable, DNS, ...
                self.stats.last_error = str(error)
                self._log.log(
                    logging.ERROR, "os", "cannot connect to hub %s: %s", self._hub.url, error
                )
            finally:
                self._session = None
                self._window = None
                self.stats.connected = False
                self._report.disconnected()
            raise_if_cancelling()
            await asyncio.sleep(backoff.next_delay())

    async def _serve(self, session: HubSession) -> None:
        """One connection: birth, config channel, the echo check, then batches until it ends."""
        self._session = session
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
        self._report.connected()
        if not self.stats.refusing:  # a refusal keeps backing off across reconnects
            self._backoff.reset()
        await self._publish_birth(session)
        await self.publish_register()
        await self._open_config_channel(session)
        await session.subscribe([self.topic(REBIRTH_LEAF)])
        if self._hub.protocol == "3.1.1" and self.stats.echo in ("unchecked", "pending"):
            granted = await session.subscribe_granted(self.topic(wire.TOPIC_DATA))
            self._report.echo("pending" if granted else "not-allowed")
        self._unsent = await self._buffer.backlog(self._lane)
        await self._pump(session)

    async def _publish_birth(self, session: HubSession) -> None:
        """Retained "online"; for wire v2 and v3 with the series table the data messages use."""
        series = None
        if self._wire_format >= 2:
            series = self._announced = await self._buffer.series_table(self._lane)
        await self._publish_reported(
            session,
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
            retain=True,
            required=self._wire_format >= 2,
        )

    async def publish_register(self, payload: bytes | None = None) -> bool:
        """The retained, public `register` (docs/register.md): now, and again at each connect."""
        self.register = payload or self.register
        if self.register is None:
            return False
        return await self._publish_if_connected(wire.TOPIC_REGISTER, self.register, retain=True)

    async def _publish_reported(
        self, session: HubSession, topic: str, payload: bytes, *, retain: bool, required: bool
    ) -> bool:
        """Publish; a refusal is reported, raised only if `required` (a v2/v3 birth: the series)."""
        try:
            await session.publish(topic, payload, retain=retain)
        except PublishRefused as error:
            if required:
                raise
            self._report.refused(error.topic, error.code, error.name)
            return False
        self._report.accepted(topic)
        return True

    async def _open_config_channel(self, session: HubSession) -> None:
        channel = self._config_channel
        if channel is None:
            return
        await self._publish_reported(
            session,
            self.topic(wire.TOPIC_CONFIG_STATE),
            channel.state_payload(),
            retain=True,
            required=False,
        )
        await session.subscribe(channel.topics(self._hub.topic_prefix, self._gateway_id))

    async def _read_incoming(self, session: HubSession) -> None:
        """Pushes to the config channel; the echo check; re-birth requests (rebirth.py)."""
        data_topic, rebirth_topic = self.topic(wire.TOPIC_DATA), self.topic(REBIRTH_LEAF)
        async for topic, payload, retained in session.messages():
            if topic == rebirth_topic:
                await self.rebirth.offer(retained, lambda: self._publish_birth(session))
            elif topic == data_topic:
                if self.stats.echo == "pending":
                    self._report.echo("ok")
                    await session.unsubscribe(data_topic)
            elif self._config_channel is not None:
                self._config_channel.offer(payload, retained=retained)

    async def publish_config_state(self, payload: bytes) -> bool:
        """The retained `config/state` report; False if not connected (sent at the next connect)."""
        return await self._publish_if_connected(wire.TOPIC_CONFIG_STATE, payload, retain=True)

    async def _publish_if_connected(self, leaf: str, payload: bytes, *, retain: bool) -> bool:
        """Best effort, not buffered: False when not connected or the publish failed."""
        session = self._session
        if session is None:
            return False
        try:
            return await self._publish_reported(
                session, self.topic(leaf), payload, retain=retain, required=False
            )
        except MqttError:
            return False

    async def quiesce(self, *, timeout_s: float) -> None:
        """Start no batch, await the PUBACKs in flight (new hub settings send nothing twice)."""
        self._quiescing = True
        self._new_data.set()
        if self._window is not None:
            await self._window.close(timeout_s=timeout_s)

    def _encode(self, batch: list[StoredReading]) -> bytes:
        return wire.encode_data(
            self._wire_format,
            gateway_id=self._gateway_id,
            epoch=self._buffer.sync.epoch or 0,
            batch=batch,
            series_of=self._buffer.sync.series,
        )

    async def _pump(self, session: HubSession) -> None:
        """Publish batches in buffer order, with a window of batches awaiting PUBACK."""
        try:
            async with asyncio.TaskGroup() as inflight:
                inflight.create_task(self._read_incoming(session), name="uplink-reader")
                inflight.create_task(self.alerts.run(session, self._report), name="uplink-alerts")
                await self._batches(session, inflight)
        except BaseExceptionGroup as group:
            raise first_leaf(group) from None

    async def _batches(self, session: HubSession, inflight: asyncio.TaskGroup) -> None:
        hub = self._hub
        window = self._window = BatchWindow(hub.max_inflight_batches)
        cursor = 0  # highest seq handed to a publish on this connection
        flush_due = True  # drain the backlog at once after (re)connecting
        next_flush = self._monotonic_s() + hub.flush_interval_s
        while True:
            raise_if_cancelling()  # asyncio.wait_for (3.11) may have swallowed a cancellation
            if self._quiescing:
                await asyncio.Future()  # until cancelled: the in-flight batches finish
            if window.unheard:
                await self._back_off_unheard(window)
                cursor, flush_due = 0, True  # from the lane's first unacknowledged reading
                continue
            if self._flush_now:
                flush_due, self._flush_now = True, False
            if flush_due or self._unsent >= hub.batch_max_readings:
                await window.take()
                if window.unheard:  # refused while this waited for room: send nothing after it
                    window.give_back()
                    continue
                sent_up_to = await self._send_batch(session, inflight, window, cursor, flush_due)
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

    async def _back_off_unheard(self, window: BatchWindow) -> None:
        """After a 0x10: the batches in flight end (what they got acknowledged stays so: lanes
        take ranges in any order), then one backoff (capped, jittered, cancellable) before the
        lane goes again on this connection: no reconnect, no new birth (fleet churn)."""
        await window.settle()
        await asyncio.sleep(self._backoff.next_delay())
        window.unheard = False
        self._unsent = await self._buffer.backlog(self._lane)

    async def _send_batch(
        self,
        session: HubSession,
        inflight: asyncio.TaskGroup,
        window: BatchWindow,
        cursor: int,
        flush_due: bool,
    ) -> int | None:
        """Peek the readings after `cursor` and hand them to a publish task: the last key sent,
        or None (window released) if no batch is due. Only the payload outlives this call, not
        a tuple per reading (a batch of 5,000 is ~1 MB of them while a PUBACK is awaited)."""
        hub = self._hub
        batch = await self._buffer.peek(cursor, hub.batch_max_readings, lane=self._lane)
        if not batch or not (flush_due or len(batch) >= hub.batch_max_readings):
            window.give_back()
            self._unsent = len(batch)
            return None
        first, last = batch[0][0], batch[-1][0]
        self._unsent = max(0, self._unsent - len(batch))
        if self._wire_format >= 2 and not {r[2] for r in batch} <= self._announced.keys():
            await self._publish_birth(session)  # new series: name them first
        payload = self._encode(batch)
        inflight.create_task(self._publish(session, payload, first, last, len(batch), window))
        return last

    async def _publish(
        self,
        session: HubSession,
        payload: bytes,
        first: int,
        last: int,
        count: int,
        window: BatchWindow,
    ) -> None:
        try:
            await session.publish_data(payload, heard=self._hub.require_subscribers)  # in order
            await self._buffer.ack(first, last, lane=self._lane)  # a PUBACK: the hub has them
            if self._report.accepted(self.topic(wire.TOPIC_DATA)):
                self._backoff.reset()
            self._report.echo_sent(max(5.0, self._hub.timeout_s))
            self.stats.messages_out += 1
            self.stats.readings_out += count
            self.stats.bytes_out += len(payload)
        except NoSubscribers as error:  # accepted and heard by no one: nothing acknowledged
            self._report.refused(error.topic, error.code, error.name)
            window.unheard = True  # before the slot is given back: the loop starts no batch
            self._new_data.set()
        finally:
            window.give_back()

    async def drain(self, timeout_s: float) -> int:
        """Publish what is waiting now (orderly shutdown); returns how many remain buffered."""
        deadline = self._monotonic_s() + timeout_s
        while True:
            depth = await self._buffer.backlog(self._lane)
            window = self._window
            unheard = window is not None and window.unheard  # 0x10: waiting delivers nothing
            if depth == 0 or self._session is None or unheard or self._monotonic_s() >= deadline:
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
        session = self._session
        if session is None:
            return
        with contextlib.suppress(MqttError):
            await session.publish(
                self.topic(wire.TOPIC_STATUS), self._offline(), retain=True, timeout_s=2.0
            )
