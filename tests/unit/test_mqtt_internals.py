"""gateway.uplinks.client: the one private access of the uplinks, and the data topic's alias.

The first test fails when aiomqtt or paho-mqtt change the shape `watch_connack` relies on
(aiomqtt 2.5.1, paho-mqtt 2.2.0): then find the public way or adapt that one function.
"""

from __future__ import annotations

import inspect
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.uplinks.client import DATA_TOPIC_ALIAS, HubSession, watch_connack


def _connack_properties(topic_alias_maximum: int) -> Properties:
    properties = Properties(PacketTypes.CONNACK)
    properties.TopicAliasMaximum = topic_alias_maximum
    return properties


async def test_aiomqtt_keeps_a_paho_client_whose_on_connect_receives_the_connack_properties() -> (
    None
):
    client = aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5)

    inner = client._client
    assert isinstance(inner, paho.Client)
    assert getattr(inner.on_connect, "__self__", None) is client, "aiomqtt's own callback"
    parameters = list(inspect.signature(inner.on_connect).parameters)
    assert parameters == ["client", "userdata", "flags", "reason_code", "properties"]


async def test_watch_connack_hands_over_the_properties_and_passes_the_connack_on() -> None:
    client = aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5)
    passed_on: list[tuple[Any, ...]] = []
    client._client.on_connect = lambda *args: passed_on.append(args)  # stands in for aiomqtt's
    seen: list[Properties | None] = []

    watch_connack(client, seen.append)
    properties = _connack_properties(10)
    args = (
        client._client,
        None,
        paho.ConnectFlags(session_present=False),
        ReasonCode(PacketTypes.CONNACK, "Success"),
        properties,
    )
    client._client.on_connect(*args)

    assert seen == [properties]
    assert passed_on == [args]


class _RecordingClient:
    """What HubSession.publish_data hands to aiomqtt: topic and topic alias per publish."""

    def __init__(self) -> None:
        self.published: list[tuple[str, int | None]] = []

    async def publish(self, topic: str, payload: bytes, **options: Any) -> None:
        properties = options.get("properties")
        self.published.append((topic, getattr(properties, "TopicAlias", None)))


def _session() -> tuple[HubSession, _RecordingClient]:
    client = _RecordingClient()
    session = HubSession(client, data_topic="citygw/v1/gw-1/data", timeout_s=1.0)  # type: ignore[arg-type]
    return session, client


async def test_the_data_topic_travels_once_per_connection_then_by_its_alias() -> None:
    session, client = _session()
    session.note_connack(_connack_properties(10))

    for _ in range(3):
        await session.publish_data(b"batch")

    assert client.published == [
        ("citygw/v1/gw-1/data", DATA_TOPIC_ALIAS),
        ("", DATA_TOPIC_ALIAS),
        ("", DATA_TOPIC_ALIAS),
    ]


async def test_without_the_brokers_allowance_the_data_topic_travels_in_full() -> None:
    for connack in (None, _connack_properties(0)):  # MQTT 3.1.1; a broker without aliases
        session, client = _session()
        session.note_connack(connack)

        for _ in range(2):
            await session.publish_data(b"batch")

        assert client.published == [("citygw/v1/gw-1/data", None)] * 2
