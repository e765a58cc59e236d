"""The uplink stops when asked, whatever error races the cancellation; its backoff is capped.

aiomqtt 2.5.1's `Client.__aexit__` raises `MqttError` when the broker goes while the client is
being left, which replaces a `CancelledError` on its way out; a loop that catches `MqttError` and
goes round again then never stops (issue 16: a SIGTERM while the hub went away hung the agent).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.agent.supervise import supervise
from gateway.backoff import Backoff
from gateway.config import HubSection
from gateway.uplinks.client import MqttError
from gateway.uplinks.mqtt import Uplink


class _Buffer:
    """Empty: nothing to send, the pump waits for data."""

    sync = SimpleNamespace(epoch=1, series={})

    async def backlog(self, lane: str = "hub") -> int:
        return 0

    async def peek(self, cursor: int, limit: int, *, lane: str = "hub") -> list[Any]:
        return []


class _Session:
    async def publish(self, topic: str, payload: bytes, **options: Any) -> None:
        return None

    async def subscribe(self, topics: list[str]) -> None:  # the re-birth command topic
        return None

    async def messages(self) -> AsyncIterator[tuple[str, bytes, bool]]:
        await asyncio.Future()  # nothing arrives
        yield ("", b"", False)


def _uplink(connected: asyncio.Event) -> Uplink:
    hub = HubSection(url="mqtt://127.0.0.1:1883", reconnect_min_s=0.01, reconnect_max_s=0.02)
    uplink = Uplink(hub, gateway_id="gw-1", buffer=_Buffer(), version="t", started_ms=0)  # type: ignore[arg-type]

    @contextlib.asynccontextmanager
    async def hub_goes_as_we_stop() -> AsyncIterator[_Session]:
        connected.set()
        try:
            yield _Session()
        except asyncio.CancelledError:  # what aiomqtt's __aexit__ does when the broker goes
            raise MqttError("Disconnected during message iteration") from None

    uplink._connect = hub_goes_as_we_stop  # type: ignore[method-assign]
    return uplink


@pytest.mark.parametrize("supervised", [False, True])
async def test_a_cancellation_replaced_by_a_disconnect_error_still_stops_the_uplink(
    supervised: bool,
) -> None:
    connected = asyncio.Event()
    uplink = _uplink(connected)
    run = supervise("uplink", uplink.run) if supervised else uplink.run()
    task = asyncio.create_task(run)
    await asyncio.wait_for(connected.wait(), 2)

    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)

    assert done == {task}, "the uplink swallowed its cancellation"
    assert task.cancelled()


def test_the_reconnect_backoff_never_waits_longer_than_reconnect_max_s() -> None:
    hub = HubSection(url="mqtt://127.0.0.1:1883")
    for rng in (lambda low, high: high, lambda low, high: low):  # the extremes of full jitter
        backoff = Backoff(base_s=hub.reconnect_min_s, cap_s=hub.reconnect_max_s, rng=rng)
        delays = [backoff.next_delay() for _ in range(100)]
        assert max(delays) <= hub.reconnect_max_s
    assert hub.reconnect_max_s <= 12.0, "recovery after an outage stays under ~15 s by default"


async def test_the_uplink_backs_off_within_its_configured_cap() -> None:
    hub = HubSection(url="mqtt://127.0.0.1:1883")
    uplink = Uplink(hub, gateway_id="gw-1", buffer=_Buffer(), version="t", started_ms=0)  # type: ignore[arg-type]
    delays = [uplink._backoff.next_delay() for _ in range(100)]
    assert 0 < max(delays) <= hub.reconnect_max_s
