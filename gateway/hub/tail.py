"""A hub-side subscriber: what a city data hub does with citygw messages (`citygw hub tail`).

QoS 1 with a persistent session (MQTT 5 session expiry, or clean_session=False on 3.1.1), so a
broker restart or a hub reconnect loses nothing; duplicates are dropped by reading key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiomqtt

from gateway import wire
from gateway.backoff import Backoff
from gateway.hub.client import HubOptions, hub_client
from gateway.hub.decode import HubDecoder, HubEvent

__all__ = ["HubDecoder", "HubEvent", "HubOptions", "events", "hub_client"]

log = logging.getLogger(__name__)


async def events(options: HubOptions) -> AsyncIterator[HubEvent]:
    """Decoded events forever, reconnecting with backoff; the session keeps what we missed."""
    decoder = HubDecoder()
    backoff = Backoff(base_s=0.5, cap_s=15.0)
    prefix = options.topic_prefix
    while True:
        try:
            async with hub_client(options) as client:
                backoff.reset()
                for leaf in (
                    wire.TOPIC_DATA,
                    wire.TOPIC_STATUS,
                    wire.TOPIC_METRICS,
                    wire.TOPIC_CONFIG_STATE,
                    wire.TOPIC_ALERT,
                ):
                    await client.subscribe(f"{prefix}/+/{leaf}", qos=1)
                async for message in client.messages:
                    payload = message.payload
                    if not isinstance(payload, bytes | bytearray):
                        continue
                    try:
                        event = decoder.decode(str(message.topic), bytes(payload))
                    except Exception:  # never expected (make fuzz): one message, not the hub
                        log.exception("decoding a message on %s failed; skipped", message.topic)
                        continue
                    yield event
        except aiomqtt.MqttError as error:
            log.warning("hub connection lost: %s; reconnecting", error)
        await asyncio.sleep(backoff.next_delay())
