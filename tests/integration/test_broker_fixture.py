"""The Mosquitto fixture keeps what a real broker keeps across a restart on the same port."""

from __future__ import annotations

from typing import Any

import aiomqtt
import pytest

pytestmark = pytest.mark.integration


async def _publish(broker: Any, topic: str, payload: bytes, *, retain: bool = False) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


async def test_retained_message_survives_broker_restart(
    mosquitto: Any, hub_subscriber: Any, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}/status"
    port = mosquitto.port
    await _publish(mosquitto, topic, b"online", retain=True)

    mosquitto.stop()
    assert not mosquitto.running
    mosquitto.start()

    assert mosquitto.port == port
    assert mosquitto.url == f"mqtt://127.0.0.1:{port}"
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    msgs = await sub.wait_for(lambda m: len(m) >= 1, timeout=10)
    assert (msgs[0].topic, msgs[0].payload, msgs[0].retain) == (topic, b"online", True)


async def test_persistent_session_gets_messages_queued_across_restart(
    mosquitto: Any, hub_subscriber: Any, topic_prefix: str
) -> None:
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/data", persistent=True)
    await sub.close()
    await _publish(mosquitto, f"{topic_prefix}/data", b"while-away")

    mosquitto.stop()
    mosquitto.start()

    sub = await hub_subscriber(
        mosquitto, f"{topic_prefix}/data", identifier=sub.identifier, persistent=True
    )
    await _publish(mosquitto, f"{topic_prefix}/data", b"after-restart")
    msgs = await sub.wait_for(lambda m: len(m) >= 2, timeout=10)
    assert [m.payload for m in msgs] == [b"while-away", b"after-restart"]
    assert all(m.qos == 1 for m in msgs)
