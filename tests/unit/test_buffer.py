"""Contract of the durable buffer: order, keys, acks, the when-full policy, surviving a reopen."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.buffer import BufferWriteError, SqliteBuffer, WhenFull
from gateway.readings import Reading

Factory = Callable[..., SqliteBuffer]


@pytest.fixture
def make_buffer(tmp_path: Path) -> Factory:
    def make(max_readings: int = 1000, when_full: WhenFull = "drop_oldest") -> SqliteBuffer:
        return SqliteBuffer(tmp_path / "buffer.db", max_readings=max_readings,
                            when_full=when_full)
    return make


def readings(first: int, count: int, source: str = "pm") -> list[Reading]:
    return [Reading(source, "pm2_5_ugm3", "ug/m3", float(n), 1_700_000_000_000 + n)
            for n in range(first, first + count)]


def values(buffer: SqliteBuffer) -> list[float]:
    return [r[3] for r in buffer.peek(0, 1_000_000)]


def test_peek_hands_out_readings_in_order_with_increasing_keys(make_buffer: Factory) -> None:
    buffer = make_buffer()
    buffer.append(readings(0, 5))
    buffer.append(readings(5, 5, source="other"))
    got = buffer.peek(0, 100)
    assert [r[3] for r in got] == [float(n) for n in range(10)]
    assert [r[0] for r in got] == list(range(1, 11))
    assert buffer.series(got[7][2]).source == "other"
    assert [r[0] for r in buffer.peek(got[3][0], 2)] == [5, 6]


def test_ack_removes_only_the_acknowledged_range(make_buffer: Factory) -> None:
    buffer = make_buffer()
    buffer.append(readings(0, 10))
    assert buffer.ack(1, 4) == 4
    assert buffer.depth == 6
    assert values(buffer) == [float(n) for n in range(4, 10)]
    assert buffer.ack(1, 4) == 0, "acking again is harmless"


def test_unacknowledged_readings_and_keys_survive_reopening(make_buffer: Factory) -> None:
    buffer = make_buffer()
    buffer.append(readings(0, 10))
    buffer.ack(1, 10)
    buffer.append(readings(10, 3))
    epoch = buffer.epoch
    del buffer  # no close(): as after kill -9
    reopened = make_buffer()
    assert reopened.epoch == epoch
    assert [(r[0], r[3]) for r in reopened.peek(0, 10)] == [(11, 10.0), (12, 11.0), (13, 12.0)]
    reopened.ack(11, 13)
    reopened.append(readings(20, 1))
    assert reopened.peek(0, 10)[0][0] == 14, "keys never repeat, even once the buffer is empty"


def test_drop_oldest_keeps_the_newest_and_counts_every_drop(make_buffer: Factory) -> None:
    buffer = make_buffer(max_readings=100)
    buffer.append(readings(0, 80))
    result = buffer.append(readings(80, 50))
    assert (result.accepted, result.dropped) == (50, 30)
    assert values(buffer) == [float(n) for n in range(30, 130)]
    result = buffer.append(readings(130, 250))
    assert result.dropped == 250
    assert values(buffer) == [float(n) for n in range(280, 380)]
    assert buffer.dropped_total == 280
    assert make_buffer(max_readings=100).dropped_total == 280, "the count is durable"


def test_drop_newest_keeps_the_oldest_and_counts_every_drop(make_buffer: Factory) -> None:
    buffer = make_buffer(max_readings=100, when_full="drop_newest")
    buffer.append(readings(0, 80))
    result = buffer.append(readings(80, 50))
    assert (result.accepted, result.dropped) == (20, 30)
    assert values(buffer) == [float(n) for n in range(100)]
    buffer.ack(1, 10)
    assert buffer.append(readings(200, 20)).accepted == 10


def test_a_corrupt_buffer_file_is_moved_aside_not_fatal(
    tmp_path: Path, make_buffer: Factory
) -> None:
    (tmp_path / "buffer.db").write_bytes(b"this is not a database" * 100)
    buffer = make_buffer()
    buffer.append(readings(0, 1))
    assert buffer.depth == 1
    assert list(tmp_path.glob("buffer.db.corrupt-*"))


def test_a_failing_disk_raises_buffer_write_error_and_accepts_nothing(
    make_buffer: Factory,
) -> None:
    buffer = make_buffer()
    buffer.append(readings(0, 2))
    buffer._db.execute("PRAGMA max_page_count = 1")  # every further page allocation fails: full
    with pytest.raises(BufferWriteError, match="full"):
        buffer.append(readings(2, 5000, source="new-series"))
    assert buffer.depth == 2
    assert values(buffer) == [0.0, 1.0]
    assert isinstance(buffer._db, sqlite3.Connection)
