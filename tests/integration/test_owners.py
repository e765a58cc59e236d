"""Two owners, two brokers with password files and ACLs: each owner's readings reach only its
own broker; one broker down for a while delays nothing of the other, and its readings catch up
with nothing lost; a kill -9 of the agent re-sends the uplink that kept up only a bounded part;
a full uplink drops only its own oldest, counted; a removed uplink's backlog is released."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from owners_setup import GATEWAY, Reader, acl_broker, two_owner_config
from spine_setup import frame, sources_open

from gateway.agent.health import read_status, status_socket_address
from gateway.store.lanes import MARK_SAVE_KEYS

pytestmark = pytest.mark.integration

BURGERS = 5000  # the citizens' sensor numbers its frames from here


async def setup(
    tmp_path: Path, make_broker: Any, prefix: str, make_pty: Any, **uplink: Any
) -> tuple[Any, Any, Any, Any, Reader, Reader, dict[str, Any]]:
    hub = acl_broker(make_broker, tmp_path / "acl-hub", prefix, GATEWAY)
    other = acl_broker(make_broker, tmp_path / "acl-burgers", prefix, f"{GATEWAY}-b")
    city, burgers = make_pty("ttyCITY"), make_pty("ttyBURG")
    at_hub, at_other = Reader(hub, prefix, "hub"), Reader(other, prefix, "burgers")
    for reader in (at_hub, at_other):
        reader.start()
        async with asyncio.timeout(10):
            await reader.ready.wait()
    ports = {"pm-city": city.link, "pm-burgers": burgers.link}
    cfg = two_owner_config(tmp_path, hub, other, prefix, ports, **uplink)
    return hub, other, city, burgers, at_hub, at_other, cfg


async def started(agent: Any, *brokers: Any) -> None:
    agent.start()
    for broker in brokers:
        await agent.wait_for_log(f"connected to hub {broker.url}", timeout_s=15)
    await sources_open(agent)


def once_by_key(reader: Reader) -> Counter[int]:
    """Frame numbers of the readings after dropping duplicates by key, counted."""
    unique = {(r.epoch, r.seq): r for r in reader.readings()}
    return Counter(round(r.value * 10) for r in unique.values() if r.quantity == "pm2_5_ugm3")


async def uplink_status(tmp_path: Path) -> dict[str, Any]:
    status = await read_status(status_socket_address(tmp_path / "data"))
    assert status is not None
    uplinks: dict[str, Any] = status["uplinks"]
    return uplinks


async def status_until(tmp_path: Path, predicate: Any, timeout_s: float = 10.0) -> None:
    """Polls the agent's status socket (it has no event to wait on) until `predicate`."""
    for _ in range(int(timeout_s / 0.1)):
        if predicate(await uplink_status(tmp_path)):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"uplink status not reached: {await uplink_status(tmp_path)}")


async def test_each_owner_reaches_only_its_broker_and_one_down_delays_nothing_of_the_other(
    tmp_path: Path,
    make_broker: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
) -> None:
    hub, other, city, burgers, at_hub, at_other, cfg = await setup(
        tmp_path, make_broker, topic_prefix, make_pty
    )
    agent = agent_process(write_config(cfg))
    await started(agent, hub, other)
    for n in range(1, 6):
        await city.write_async(frame(n))
        await burgers.write_async(frame(BURGERS + n))
    await at_hub.wait_for(lambda: set(range(1, 6)) <= set(at_hub.frames()))
    await at_other.wait_for(lambda: set(range(BURGERS + 1, BURGERS + 6)) <= set(at_other.frames()))

    await asyncio.to_thread(other.stop)  # the citizens' broker goes away for a while
    for n in range(6, 26):
        await city.write_async(frame(n))
        await burgers.write_async(frame(BURGERS + n))
        await asyncio.sleep(0.05)
    await at_hub.wait_for(lambda: set(range(6, 26)) <= set(at_hub.frames()))
    assert not other.running, "the hub got every city reading while the other broker was down"
    waiting = (await uplink_status(tmp_path))["burgers"]
    assert waiting["connected"] is False and waiting["backlog"] > 0
    assert waiting["oldest_unsent_age_s"] is not None

    await asyncio.to_thread(other.start)
    expected = set(range(BURGERS + 1, BURGERS + 26))
    await at_other.wait_for(lambda: expected <= set(at_other.frames()), timeout_s=30)
    assert once_by_key(at_other) == Counter(expected), "nothing lost, each reading once by key"
    assert once_by_key(at_hub) == Counter(range(1, 26))
    assert {r.source for r in at_hub.readings()} == {"pm-city"}
    assert {r.source for r in at_other.readings()} == {"pm-burgers"}
    other_frames = at_other.frames()
    assert other_frames == sorted(other_frames), "the catch-up came in order"
    statuses = [p for t, p in at_other.messages if t.endswith("/status") and b"pm-city" in p]
    assert statuses == [], "the other broker's birth never names the city's series"
    await status_until(  # the last PUBACKs may still be on their way
        tmp_path, lambda up: up["burgers"]["backlog"] == 0 and up["hub"]["backlog"] == 0
    )
    uplinks = await uplink_status(tmp_path)
    assert uplinks["burgers"]["dropped"] == 0 and uplinks["hub"]["dropped"] == 0
    assert uplinks["hub"]["sent"] >= 50 and uplinks["burgers"]["sent"] >= 50
    await at_hub.close()
    await at_other.close()


async def test_a_kill_9_while_one_uplink_is_down_loses_nothing_and_re_sends_the_other_little(
    tmp_path: Path,
    make_broker: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
) -> None:
    """The archive uplink carries both owners; its broker is down while thousands of city
    readings go to the hub. After kill -9 and a restart the hub is sent again only what it
    acknowledged since the mark was last written, not the archive's whole backlog."""
    hub, other, city, burgers, at_hub, at_other, cfg = await setup(
        tmp_path, make_broker, topic_prefix, make_pty, name="archive"
    )
    cfg["uplinks"][0]["owners"] = ["gemeente", "burgermeetnet"]
    agent = agent_process(write_config(cfg))
    await started(agent, hub, other)
    await asyncio.to_thread(other.stop)
    frames = 6000  # 12,000 readings: the hub's mark is written at least twice
    for n in range(1, frames + 1):
        await city.write_async(frame(n))
        if n % 60 == 0:
            await burgers.write_async(frame(BURGERS + n // 60))
    await at_hub.wait_for(lambda: len(set(at_hub.frames())) >= frames, timeout_s=60)
    assert agent.kill9() == -9
    city.replug()  # the pseudo-terminal, as a replugged adapter: not the point here
    before = len(at_hub.readings())
    await started(agent, hub)
    for n in range(frames + 1, frames + 4):
        await city.write_async(frame(n))
    await at_hub.wait_for(lambda: frames + 3 in at_hub.frames(), timeout_s=30)
    re_sent = len(at_hub.readings()) - before - 6
    print(f"re-sent to the hub after kill -9: {re_sent} readings of a {2 * frames} backlog")
    assert re_sent <= MARK_SAVE_KEYS + 2000, "the hub is not sent the archive's backlog again"

    await asyncio.to_thread(other.start)
    everything = set(range(1, frames + 4)) | {BURGERS + n for n in range(1, frames // 60 + 1)}
    await at_other.wait_for(lambda: everything <= set(at_other.frames()), timeout_s=60)
    assert set(once_by_key(at_other)) == everything, "nothing lost across the kill -9"
    assert set(once_by_key(at_hub)) == set(range(1, frames + 4))
    await at_hub.close()
    await at_other.close()


async def test_a_full_uplink_drops_its_own_oldest_and_a_removed_one_releases_its_backlog(
    tmp_path: Path,
    make_broker: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
) -> None:
    hub, other, city, burgers, at_hub, at_other, cfg = await setup(
        tmp_path, make_broker, topic_prefix, make_pty, max_backlog_readings=100
    )
    agent = agent_process(write_config(cfg))
    await started(agent, hub, other)
    await asyncio.to_thread(other.stop)
    for n in range(1, 151):  # 300 readings for an uplink that keeps 100
        await burgers.write_async(frame(BURGERS + n))
        await city.write_async(frame(n))
    await at_hub.wait_for(lambda: set(range(1, 151)) <= set(at_hub.frames()))

    await status_until(tmp_path, lambda uplinks: uplinks["burgers"]["dropped"] == 200)
    uplinks = await uplink_status(tmp_path)
    assert uplinks["burgers"]["backlog"] == 100
    assert uplinks["hub"]["dropped"] == 0, "only the full uplink gives anything up"
    await asyncio.to_thread(other.start)
    newest = set(range(BURGERS + 101, BURGERS + 151))
    await at_other.wait_for(lambda: newest <= set(at_other.frames()), timeout_s=30)
    assert set(once_by_key(at_other)) == newest, "it kept its newest 100 readings"

    await asyncio.to_thread(other.stop)
    for n in range(151, 161):
        await burgers.write_async(frame(BURGERS + n))
    await status_until(tmp_path, lambda uplinks: uplinks["burgers"]["backlog"] == 20)
    agent.terminate()
    agent.wait()
    del cfg["uplinks"]  # the citizens' uplink and sensor go
    cfg["sources"] = [s for s in cfg["sources"] if s["name"] != "pm-burgers"]
    agent = agent_process(write_config(cfg, name="without-burgers.toml"))
    await started(agent, hub)
    await city.write_async(frame(161))
    await at_hub.wait_for(lambda: 161 in at_hub.frames())
    assert set(await uplink_status(tmp_path)) == {"hub"}
    await status_until(tmp_path, lambda uplinks: uplinks["hub"]["backlog"] == 0)  # the PUBACK
    status = await read_status(status_socket_address(tmp_path / "data"))
    assert status is not None and status["buffer"]["committed"] == 0, "nothing else waits"
    agent.terminate()
    agent.wait()
    db = sqlite3.connect(tmp_path / "data" / "buffer.db")
    try:
        left = db.execute("SELECT count(*) FROM chunks WHERE owner = 'burgermeetnet'").fetchone()
    finally:
        db.close()
    assert left == (0,), "the removed uplink's backlog was released and deleted"
    await at_hub.close()
    await at_other.close()
