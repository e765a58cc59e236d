"""The ingest's MQTT session: paho-mqtt 2.2 with manual acknowledgements (`manual_ack=True`,
`client.ack(mid, qos)`: a PUBACK only after the transaction that stored the message committed;
aiomqtt 2.5 does not expose it). MQTT 5, a stable client id, `clean_start=False` on every
connect (even the first) and a long session expiry, so a worker that dies and comes back with
the same id gets its unacknowledged messages again (Mosquitto gives a shared subscription's
unacknowledged messages back only to that member).

paho runs its network loop in its own thread; `on_message` only queues (bounded: a full queue
holds the network thread, and the broker holds the rest). Data and metrics are shared among the
workers with `--share GROUP`; status, register and config/state (retained, few) reach every
worker, because every worker needs every birth and register (and a shared subscription gets
no retained messages).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway import wire
from gateway.hub.client import MAX_PACKET_BYTES, HubOptions
from gateway.hub.inbox import Inbox
from gateway.hub.pending import Incoming

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 30 * 24 * 3600
"""How long the broker keeps a worker's session (and its unacknowledged messages) while it is
away: a worker restarted within this time loses nothing."""
RECEIVE_MAXIMUM = 10_000
"""Messages the broker may send before our PUBACKs: room for a batch and parked messages."""
SHARED_LEAVES = (wire.TOPIC_DATA, wire.TOPIC_METRICS)
EVERY_WORKER_LEAVES = (wire.TOPIC_STATUS, "register", wire.TOPIC_CONFIG_STATE)


def topic_filters(prefix: str, share: str | None) -> list[str]:
    """What a worker subscribes to: `+/data` and `+/metrics` (shared with `share`), and
    `+/status`, `+/register`, `+/config/state` for itself."""
    shared = [f"{prefix}/+/{leaf}" for leaf in SHARED_LEAVES]
    if share:
        shared = [f"$share/{share}/{topic}" for topic in shared]
    return shared + [f"{prefix}/+/{leaf}" for leaf in EVERY_WORKER_LEAVES]


class AckingSession:
    """A persistent MQTT 5 session that queues what arrives into `inbox` and acknowledges only
    when told to. `start()` connects in the background (and reconnects); `stop()` ends it."""

    def __init__(
        self,
        options: HubOptions,
        *,
        share: str | None,
        inbox: Inbox,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        parts = urlsplit(options.url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(
                f"expected mqtt://host[:port] or mqtts://host[:port], got {options.url!r}"
            )
        self._host, self._tls = parts.hostname, parts.scheme == "mqtts"
        self._port = parts.port or (8883 if self._tls else 1883)
        self._filters = topic_filters(options.topic_prefix, share)
        self._inbox, self._clock_ms = inbox, clock_ms
        self._stopping = threading.Event()
        self.generation = 0
        """Counts connections: an acknowledgement is sent only on the one the message came on."""
        self.connected = threading.Event()
        self.client_id = options.client_id or options.default_client_id()
        self._client = self._make_client(options)

    def _make_client(self, options: HubOptions) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        if options.username:
            client.username_pw_set(options.username, options.password)
        if self._tls:
            client.tls_set_context(ssl.create_default_context(cafile=options.ca_file))
        client.reconnect_delay_set(min_delay=1, max_delay=15)
        client.max_queued_messages_set(10_000)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself after a loss."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        properties.MaximumPacketSize = MAX_PACKET_BYTES
        self._client.connect_async(
            self._host, self._port, keepalive=30, clean_start=False, properties=properties
        )
        self._client.loop_start()

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        self.generation += 1
        # Retained messages again on each subscribe: births and registers refresh.
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in self._filters])
        self.connected.set()
        log.info(
            "connected to %s:%s as %s (session %s)",
            self._host,
            self._port,
            self.client_id,
            "resumed" if flags.session_present else "new",
        )

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: paho.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("broker connection lost (%s); reconnecting", reason)

    def _on_message(
        self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage
    ) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = ""
        incoming = Incoming(
            mid=message.mid,
            qos=message.qos,
            topic=topic,
            payload=bytes(message.payload),
            retained=bool(message.retain),
            received_ms=self._clock_ms(),
            generation=self.generation,
        )
        while not self._stopping.is_set():
            if self._inbox.put(incoming, timeout_s=0.5):
                return

    def ack(self, message: Incoming) -> None:
        """PUBACK `message` if it came on this connection (after a reconnect the broker sends
        it again: that copy is stored, once, and acknowledged)."""
        if message.qos and message.generation == self.generation:
            self._client.ack(message.mid, message.qos)

    def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1, not retained, best effort (a birth request)."""
        self._client.publish(topic, payload, qos=1)

    def stop(self) -> None:
        """Disconnect (the session stays on the broker, holding what was not acknowledged)."""
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()
