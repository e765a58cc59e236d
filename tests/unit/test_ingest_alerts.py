"""The ingest with alert rules: a raise or a clear becomes a reading committed at once (not at
the commit interval), durable and keyed, handed with its key to `on_alert`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from drivers.base import Measurement
from gateway.agent.alerts import AlertEngine, AlertNotice
from gateway.agent.ingest import Ingest
from gateway.config import AlertRule
from gateway.readings import CLOCK_UNSYNCED, Series
from gateway.store.buffer import SqliteBuffer
from gateway.store.worker import AsyncBuffer

RULE = AlertRule(name="pm-high", source="pm", quantity="pm2_5_ugm3", above=50.0, min_interval_s=0)


def pm(value: float) -> list[Measurement]:
    return [Measurement("pm2_5_ugm3", value, "ug/m3"), Measurement("pm10_ugm3", 1.0, "ug/m3")]


async def test_an_alert_is_committed_at_once_after_the_readings_that_raised_it(
    tmp_path: Path,
) -> None:
    buffer = AsyncBuffer(lambda: SqliteBuffer(tmp_path / "b.db", max_readings=100_000))
    sync = await buffer.open()
    notices: list[AlertNotice] = []
    got_one = asyncio.Event()
    now = [0.0]

    def on_alert(notice: AlertNotice) -> None:
        notices.append(notice)
        got_one.set()

    ingest = Ingest(
        buffer,
        commit_interval_s=3600,  # an hour: only the alert can make it commit
        commit_max=10_000,
        staging_max=10_000,
        alerts=AlertEngine([RULE]),
        on_alert=on_alert,
        monotonic_s=lambda: now[0],
    )
    loop = asyncio.create_task(ingest.run())
    try:
        await asyncio.sleep(0.05)
        ingest.emit("pm", pm(10.0), 1000, 0)
        ingest.emit("pm", pm(57.3), 2000, CLOCK_UNSYNCED)
        async with asyncio.timeout(5):
            await got_one.wait()
        (notice,) = notices
        assert (notice.epoch, notice.event.raised, notice.event.value) == (sync.epoch, True, 57.3)
        assert notice.clock_synced is False
        assert await ingest.commit()  # waits for the commit in progress (the other readings)
        stored = {r[0]: r for r in await buffer.peek(0, 100)}
        _seq, ts_ms, sid, value, flags = stored[notice.seq]
        assert (ts_ms, value, flags) == (2000, 1.0, CLOCK_UNSYNCED)
        assert sync.series(sid) == Series("pm", "alert/pm-high", "1")
        assert len(stored) == 5, "the readings staged with it were committed too"
        assert max(stored) == notice.seq, "the readings first: no alert is durable without them"
        now[0] = 1.0
        got_one.clear()
        ingest.emit("pm", pm(20.0), 3000, 0)
        async with asyncio.timeout(5):
            await got_one.wait()
        assert [n.event.raised for n in notices] == [True, False]
        assert (await buffer.peek(notices[1].seq - 1, 1))[0][3] == 0.0, "a clear is a 0"
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await buffer.close()


async def test_alerts_wait_in_memory_while_the_buffer_cannot_write(tmp_path: Path) -> None:
    buffer = AsyncBuffer(lambda: SqliteBuffer(tmp_path / "b.db", max_readings=100_000))
    sync = await buffer.open()
    notices: list[AlertNotice] = []
    ingest = Ingest(
        buffer,
        commit_interval_s=3600,
        commit_max=10_000,
        staging_max=10_000,
        alerts=AlertEngine([RULE]),
        on_alert=notices.append,
    )
    sync._db.execute("PRAGMA query_only = ON")  # every write fails, as on a failing disk
    ingest.emit("pm", pm(57.3), 2000, 0)
    assert not await ingest.commit()
    assert not await ingest.commit()
    assert notices == [] and ingest.write_errors == 4
    sync._db.execute("PRAGMA query_only = OFF")
    assert await ingest.commit()
    (notice,) = notices
    assert sync.series(sync.peek(notice.seq - 1, 1)[0][2]).quantity == "alert/pm-high"
    await buffer.close()


async def test_without_rules_the_ingest_feeds_no_engine(tmp_path: Path) -> None:
    buffer = AsyncBuffer(lambda: SqliteBuffer(tmp_path / "b.db", max_readings=1000))
    await buffer.open()
    ingest = Ingest(buffer, commit_interval_s=1, commit_max=10, staging_max=100, alerts=None)
    assert ingest.alerts is None
    assert Ingest(buffer, commit_interval_s=1, commit_max=10, staging_max=100).alerts is None
    empty = Ingest(
        buffer, commit_interval_s=1, commit_max=10, staging_max=100, alerts=AlertEngine([])
    )
    assert empty.alerts is None
    await buffer.close()


async def test_a_pushed_config_with_other_rules_replaces_the_engine(tmp_path: Path) -> None:
    from gateway.agent.root import Agent
    from gateway.config import parse_config
    from gateway.remote.policy import Changes

    document = {
        "gateway": {"id": "gw-1", "data_dir": str(tmp_path)},
        "hub": {"url": "mqtt://127.0.0.1:1"},
        "sources": [{"type": "serial", "name": "pm", "port": "/dev/ttyUSB0", "driver": "sds011"}],
        "alerts": [{"name": "pm-high", "source": "pm", "quantity": "pm2_5_ugm3", "above": 50}],
    }
    agent = Agent(parse_config(document))
    assert agent.ingest.alerts is not None
    assert [r.above for r in agent.ingest.alerts.rules] == [50.0]
    before = agent.ingest.alerts
    await agent.apply(parse_config(document), Changes())
    assert agent.ingest.alerts is before, "the same rules keep their state"
    document["alerts"][0]["above"] = 80
    await agent.apply(parse_config(document), Changes())
    assert [r.above for r in agent.ingest.alerts.rules] == [80.0]
    await agent.apply(parse_config({**document, "alerts": []}), Changes())
    assert agent.ingest.alerts is None


async def run_until(ingest: Ingest, done: asyncio.Event) -> None:
    loop = asyncio.create_task(ingest.run())
    try:
        async with asyncio.timeout(5):
            await done.wait()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_alerts_an_earlier_run_left_unacknowledged_are_offered_again_at_the_start(
    tmp_path: Path,
) -> None:
    def make() -> AsyncBuffer:
        return AsyncBuffer(lambda: SqliteBuffer(tmp_path / "b.db", max_readings=100_000))

    buffer = make()
    await buffer.open()
    first: list[AlertNotice] = []
    ingest = Ingest(
        buffer,
        commit_interval_s=3600,
        commit_max=10_000,
        staging_max=10_000,
        alerts=AlertEngine([RULE]),
        on_alert=first.append,
    )
    ingest.emit("pm", pm(57.3), 2000, 0)
    assert await ingest.commit()  # (a chunk each: a partly acknowledged chunk goes again whole)
    ingest.emit("pm", pm(20.0), 3000, CLOCK_UNSYNCED)
    ingest.emit("other", pm(99.0), 3000, 0)
    assert await ingest.commit()
    await buffer.ack(first[0].seq, first[0].seq)  # the raise was acknowledged, the clear not
    await buffer.close()  # (the acknowledged chunk is deleted at close)

    buffer = make()
    await buffer.open()
    again: list[AlertNotice] = []
    offered = asyncio.Event()

    def on_alert(notice: AlertNotice) -> None:
        again.append(notice)
        offered.set()

    ingest = Ingest(
        buffer,
        commit_interval_s=3600,
        commit_max=10_000,
        staging_max=10_000,
        alerts=AlertEngine([RULE]),
        on_alert=on_alert,
    )
    await run_until(ingest, offered)
    (notice,) = again
    assert (notice.seq, notice.epoch, notice.clock_synced) == (first[1].seq, first[1].epoch, False)
    event = notice.event
    assert (event.rule, event.source, event.quantity, event.unit) == (
        "pm-high",
        "pm",
        "pm2_5_ugm3",
        "ug/m3",
    )
    assert (event.raised, event.value, event.threshold, event.ts_ms) == (False, None, 50.0, 3000)
    await buffer.close()


async def test_alerts_of_several_owners_in_one_commit_carry_their_owner_and_their_own_key(
    tmp_path: Path,
) -> None:
    """The buffer stores a commit owner after owner (docs/uplinks.md): each notice's key is
    still its own alert reading's when the owners of a commit interleave."""
    from gateway.store.lanes import LaneSpec

    lanes = [LaneSpec("hub", frozenset({"city"})), LaneSpec("b", frozenset({"citizens"}))]
    buffer = AsyncBuffer(
        lambda: SqliteBuffer(tmp_path / "b.db", max_readings=1000, owner="city", lanes=lanes)
    )
    sync = await buffer.open()
    notices: list[AlertNotice] = []
    rules = [
        AlertRule(name="a", source="pm-b", quantity="pm2_5_ugm3", above=50.0, min_interval_s=0),
        AlertRule(name="c", source="pm-c", quantity="pm2_5_ugm3", above=50.0, min_interval_s=0),
        AlertRule(name="d", source="pm-d", quantity="pm2_5_ugm3", above=50.0, min_interval_s=0),
    ]
    ingest = Ingest(
        buffer,
        commit_interval_s=3600,
        commit_max=10_000,
        staging_max=10_000,
        alerts=AlertEngine(rules),
        on_alert=notices.append,
    )
    ingest.set_owners({"pm-b": "citizens", "pm-c": "city", "pm-d": "city"}, "city")
    ingest.emit("pm-c", pm(70.0), 1000, 0)  # the owners interleave: city, citizens, city
    ingest.emit("pm-b", pm(60.0), 1000, 0)
    ingest.emit("pm-d", pm(80.0), 1000, 0)
    assert await ingest.commit()
    owners = [ingest.owner(n.event.source) for n in notices]
    assert sorted(owners) == ["citizens", "city", "city"]
    for notice, owner in zip(notices, owners, strict=True):
        lane = "b" if owner == "citizens" else "hub"
        stored = {r[0]: r for r in sync.peek(0, 100, lane=lane)}
        series = sync.series(stored[notice.seq][2])
        assert series == Series(notice.event.source, f"alert/{notice.event.rule}", "1")
        assert sync.series_owner(stored[notice.seq][2]) == owner
    await buffer.close()
