"""A refusing PUBACK is not an acknowledgement: gateway.uplinks.client's second private access.

The first test fails when aiomqtt or paho-mqtt change the shape `watch_publish_results` relies on
(aiomqtt 2.5.1, paho-mqtt 2.2.0): then find the public way or adapt that one function.
"""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.uplinks.client import HubSession, PublishRefused, watch_publish_results
from gateway.uplinks.report import HubReport, UplinkStats

NOT_AUTHORIZED = 0x87


def _puback(code: int) -> ReasonCode:
    return ReasonCode(PacketTypes.PUBACK, identifier=code)


async def test_aiomqtt_publishes_through_its_paho_client_and_hears_pubacks_with_reason_codes() -> (
    None
):
    client = aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5)

    inner = client._client
    assert isinstance(inner, paho.Client)
    assert "self._client.publish(" in inspect.getsource(aiomqtt.Client.publish)
    assert getattr(inner.on_publish, "__self__", None) is client, "aiomqtt's own callback"
    parameters = list(inspect.signature(inner.on_publish).parameters)
    assert parameters == ["client", "userdata", "mid", "reason_code", "properties"]
    assert _puback(NOT_AUTHORIZED).is_failure and not _puback(0).is_failure


async def test_watch_publish_results_keeps_a_refusal_by_packet_id_and_passes_the_puback_on() -> (
    None
):
    client = aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5)
    passed_on: list[int] = []
    client._client.on_publish = lambda _c, _u, mid, _rc, _p: passed_on.append(mid)
    refusal_of = watch_publish_results(client)
    info = client._client.publish("t", b"x", qos=1)  # not connected: paho queues it

    client._client.on_publish(
        client._client, None, info.mid, _puback(NOT_AUTHORIZED), Properties(PacketTypes.PUBACK)
    )

    assert passed_on == [info.mid]
    refusal = refusal_of(info.mid)
    assert refusal is not None and refusal.value == NOT_AUTHORIZED
    assert refusal_of(info.mid) is None, "looked up once"


class _FakePaho:
    """paho as aiomqtt uses it: publish returns a packet id, on_publish hears the PUBACK."""

    def __init__(self) -> None:
        self.mid = 0
        self.on_publish: Any = None

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        self.mid += 1
        return SimpleNamespace(mid=self.mid)


class _FakeClient:
    """aiomqtt's publish: paho's publish, then wait for the PUBACK (whatever its code)."""

    def __init__(self, codes: dict[bytes, int]) -> None:
        self._client = _FakePaho()
        self.codes = codes

    async def publish(self, topic: str, payload: bytes, **options: Any) -> None:
        info = self._client.publish(topic, payload)
        await asyncio.sleep(0)  # other publishes go out meanwhile
        puback = _puback(self.codes.get(payload, 0))
        self._client.on_publish(self._client, None, info.mid, puback, None)


async def test_a_refused_publish_raises_and_concurrent_accepted_ones_do_not() -> None:
    client = _FakeClient({b"refused": NOT_AUTHORIZED})
    session = HubSession(
        client,  # type: ignore[arg-type]
        data_topic="citygw/v1/gw-1/data",
        timeout_s=1.0,
        refusal_of=watch_publish_results(client),  # type: ignore[arg-type]
    )

    results = await asyncio.gather(
        session.publish_data(b"ok-1"),
        session.publish_data(b"refused"),
        session.publish("citygw/v1/gw-1/status", b"ok-2", retain=True),
        return_exceptions=True,
    )

    assert results[0] is None and results[2] is None
    refused = results[1]
    assert isinstance(refused, PublishRefused)
    assert (refused.code, refused.name, refused.topic) == (
        NOT_AUTHORIZED,
        "Not authorized",
        "citygw/v1/gw-1/data",
    )
    with pytest.raises(PublishRefused, match="Not authorized"):
        await session.publish_data(b"refused")


def test_a_no_subscribers_refusal_names_the_uplinks_setting_and_not_the_brokers_acl(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = UplinkStats()
    report = HubReport(stats, url="mqtt://broker.example", lane="citizens")

    report.refused("citygw/v1/gw-1/data", 0x10, "No matching subscribers")

    assert "no one subscribes to it (require_subscribers of uplink citizens)" in caplog.text
    (warning,) = stats.warnings()
    assert "No matching subscribers (0x10)" in warning and "the hub (ingest) subscribes" in warning
    report.refused("citygw/v1/gw-1/data", NOT_AUTHORIZED, "Not authorized")
    assert "the broker's ACL" in stats.warnings()[0]
