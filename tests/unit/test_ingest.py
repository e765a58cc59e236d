"""Ingest: readings staged in memory reach the buffer; a failing disk loses nothing staged."""

from __future__ import annotations

from pathlib import Path

from drivers.base import Measurement
from gateway.agent.ingest import Ingest
from gateway.store.buffer import SqliteBuffer
from gateway.store.worker import AsyncBuffer


def emit(ingest: Ingest, first: int, count: int) -> None:
    """Readings first..first+count-1 of source "pm", each with its own timestamp."""
    for n in range(first, first + count):
        ingest.emit("pm", [Measurement("pm2_5_ugm3", float(n), "ug/m3")], n)


async def test_a_full_disk_keeps_readings_staged_until_it_recovers(tmp_path: Path) -> None:
    buffer = AsyncBuffer(lambda: SqliteBuffer(tmp_path / "b.db", max_readings=100_000))
    sync = await buffer.open()
    committed: list[int] = []
    ingest = Ingest(
        buffer,
        commit_interval_s=0.01,
        commit_max=1000,
        staging_max=10_000,
        on_committed=committed.append,
    )
    emit(ingest, 0, 10)
    assert await ingest.commit()
    page_count = sync._db.execute("PRAGMA page_count").fetchone()[0]
    sync._db.execute(f"PRAGMA max_page_count = {page_count}")  # the disk is full now
    emit(ingest, 10, 5000)
    assert not await ingest.commit()
    assert ingest.staged == 5000 and ingest.write_errors == 1
    sync._db.execute("PRAGMA max_page_count = 1073741823")  # space freed
    assert await ingest.commit()
    assert ingest.staged == 0 and sum(committed) == 5010
    assert [r[3] for r in sync.peek(0, 10_000)] == [float(n) for n in range(5010)]
    await buffer.close()


async def test_staging_is_bounded_and_counts_what_it_had_to_drop(tmp_path: Path) -> None:
    buffer = AsyncBuffer(lambda: SqliteBuffer(tmp_path / "b.db", max_readings=100_000))
    await buffer.open()
    ingest = Ingest(buffer, commit_interval_s=0.01, commit_max=100_000, staging_max=1000)
    emit(ingest, 0, 1500)
    assert (ingest.staged, ingest.dropped_staging) == (1000, 500)
    await ingest.commit()
    assert [r[3] for r in buffer.sync.peek(0, 10)][:1] == [500.0], "the oldest went first"
    await buffer.close()


async def test_room_pauses_a_source_until_a_commit_makes_space(tmp_path: Path) -> None:
    import asyncio

    buffer = AsyncBuffer(lambda: SqliteBuffer(tmp_path / "b.db", max_readings=100_000))
    await buffer.open()
    ingest = Ingest(buffer, commit_interval_s=60, commit_max=10_000, staging_max=1000)
    emit(ingest, 0, 600)  # above the high-water mark (half of staging_max here)
    waiting = asyncio.create_task(ingest.room())
    await asyncio.sleep(0.05)
    assert not waiting.done(), "a source must wait while staging is over its high-water mark"
    committer = asyncio.create_task(ingest.run())  # room() asked for a commit at once
    await asyncio.wait_for(waiting, 5)
    assert ingest.staged == 0 and ingest.dropped_staging == 0
    committer.cancel()
    await asyncio.gather(committer, return_exceptions=True)
    await buffer.close()


async def test_sources_pause_at_half_a_commit_when_that_is_smaller(tmp_path: Path) -> None:
    """Readings waiting in memory stay around one commit's worth (peak RSS), however large
    the staging area that rides out a failing disk."""
    import asyncio

    buffer = AsyncBuffer(lambda: SqliteBuffer(tmp_path / "b.db", max_readings=100_000))
    await buffer.open()
    ingest = Ingest(buffer, commit_interval_s=60, commit_max=100, staging_max=10_000)
    emit(ingest, 0, 49)
    await asyncio.wait_for(ingest.room(), 1)  # below half a commit: no pause
    emit(ingest, 49, 1)
    waiting = asyncio.create_task(ingest.room())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    waiting.cancel()
    await buffer.close()


async def test_a_readings_owner_is_fixed_when_it_is_staged(tmp_path: Path) -> None:
    """A BLE device's readings are its source's; an owner changed later (a push) applies to
    readings taken from then on, not to those already staged or stored."""
    from gateway.store.lanes import LaneSpec

    lanes = [LaneSpec("hub", frozenset({"city"})), LaneSpec("b", frozenset({"citizens"}))]
    buffer = AsyncBuffer(
        lambda: SqliteBuffer(tmp_path / "b.db", max_readings=1000, owner="city", lanes=lanes)
    )
    sync = await buffer.open()
    ingest = Ingest(buffer, commit_interval_s=1, commit_max=1000, staging_max=10_000)
    ingest.set_owners({"ble": "citizens", "pm": "city"}, "city")
    one = [Measurement("temperature_c", 1.0, "Cel")]
    ingest.emit("ble/kerbside", one, 1)
    ingest.emit("pm", one, 2)
    ingest.emit("unknown", one, 3)  # not in the config: the gateway's
    ingest.set_owners({"ble": "city", "pm": "city"}, "city")
    ingest.emit("ble/kerbside", one, 4)
    assert await ingest.commit()
    assert [r[1] for r in sync.peek(0, 10, lane="b")] == [1]
    assert [r[1] for r in sync.peek(0, 10, lane="hub")] == [2, 3, 4]


async def test_a_stop_during_a_commit_still_stores_what_it_took_from_staging(
    tmp_path: Path,
) -> None:
    """The ordered stop cancels the ingest, and a lost connection an uplink's flush, maybe while
    a commit's append waits for the buffer's worker thread (busy with a metrics snapshot):
    cancelling that wait must not cancel the append, or readings taken from staging are lost
    (CI's 3.1.1 alert test lost the frame that raised the alert so)."""
    import asyncio
    import threading

    from gateway.store.stats import BufferStats

    worker_free = threading.Event()

    class BusyBuffer(SqliteBuffer):
        def stats(self) -> BufferStats:
            worker_free.wait(timeout=5)  # a snapshot holds the worker thread
            return super().stats()

    buffer = AsyncBuffer(lambda: BusyBuffer(tmp_path / "b.db", max_readings=1000))
    await buffer.open()
    committed: list[int] = []
    ingest = Ingest(
        buffer,
        commit_interval_s=3600,
        commit_max=10,
        staging_max=1000,
        on_committed=committed.append,
    )
    runner = asyncio.create_task(ingest.run())
    snapshot = asyncio.create_task(buffer.stats())
    await asyncio.sleep(0)  # the snapshot holds the worker; the loop waits for readings
    emit(ingest, 0, 10)  # a commit's worth: the loop commits at once
    for _ in range(100):  # a few turns: the loop wakes and takes them
        await asyncio.sleep(0)
    assert ingest.staged == 0, "taken from staging; their append waits for the worker"
    runner.cancel()  # the ordered stop
    worker_free.set()
    async with asyncio.timeout(5):
        await asyncio.gather(runner, snapshot, return_exceptions=True)
    assert [r[3] for r in await buffer.peek(0, 100)] == [float(n) for n in range(10)]
    assert sum(committed) == 10, "the uplinks were told"
    await buffer.close()
