"""Contract of the durable buffer: order, keys, acks, the when-full policy, surviving a reopen."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from drivers.base import Measurement
from gateway.readings import Columns, SeriesIndex
from gateway.store.at_rest import at_rest
from gateway.store.buffer import DELETE_PENDING_MAX, BufferWriteError, SqliteBuffer, WhenFull

Factory = Callable[..., SqliteBuffer]


@pytest.fixture
def make_buffer(tmp_path: Path) -> Factory:
    def make(max_readings: int = 1000, when_full: WhenFull = "drop_oldest") -> SqliteBuffer:
        return SqliteBuffer(tmp_path / "buffer.db", max_readings=max_readings, when_full=when_full)

    return make


def readings(first: int, count: int, source: str = "pm") -> Columns:
    out = Columns(SeriesIndex())
    for n in range(first, first + count):
        out.add(source, [Measurement("pm2_5_ugm3", float(n), "ug/m3")], 1_700_000_000_000 + n)
    return out


def crash(buffer: SqliteBuffer) -> None:
    """As after kill -9: the file is let go without close() (which deletes what the hub
    acknowledged and checkpoints). The buffer holds its file exclusively while open."""
    buffer._db.close()


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
    crash(buffer)
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
    crash(buffer)
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


def test_acks_across_and_within_chunks_in_any_order(make_buffer: Factory) -> None:
    """The uplink's batches do not line up with the commits, and PUBACKs arrive out of order."""
    buffer = make_buffer()
    buffer.append(readings(0, 6))  # keys 1..6
    buffer.append(readings(6, 6))  # keys 7..12
    assert buffer.ack(5, 8) == 4
    assert buffer.ack(1, 2) == 2
    assert buffer.ack(2, 3) == 1, "only what was not acknowledged before counts"
    assert buffer.depth == 5
    assert [r[0] for r in buffer.peek(0, 100)] == [4, 9, 10, 11, 12]
    assert [r[0] for r in buffer.peek(4, 2)] == [9, 10]
    assert buffer.ack(4, 4) == 1
    assert buffer.stats().oldest_ts_ms == readings(8, 1).ts_ms[0]


def test_a_partly_acknowledged_chunk_is_sent_again_after_a_restart(
    make_buffer: Factory,
) -> None:
    """What the hub has of a partly acknowledged chunk is kept in memory only: after a crash
    those readings come again with the same keys (the hub drops them as duplicates)."""
    buffer = make_buffer()
    buffer.append(readings(0, 4))
    buffer.ack(1, 2)
    crash(buffer)
    reopened = make_buffer()
    assert [(r[0], r[3]) for r in reopened.peek(0, 10)] == [(1, 0.0), (2, 1.0), (3, 2.0), (4, 3.0)]


def test_drop_oldest_skips_what_is_acknowledged_and_keeps_the_rest_of_a_chunk(
    make_buffer: Factory,
) -> None:
    buffer = make_buffer(max_readings=10)
    buffer.append(readings(0, 10))
    buffer.ack(2, 3)  # depth 8
    result = buffer.append(readings(10, 5))  # 3 too many: keys 1, 4, 5 go
    assert (result.accepted, result.dropped) == (5, 3)
    assert [r[0] for r in buffer.peek(0, 100)] == [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert buffer.depth == 10
    crash(buffer)
    reopened = make_buffer(max_readings=10)
    assert reopened.depth == 10 and reopened.dropped_total == 3


def test_a_buffer_of_the_row_format_is_converted_with_its_keys(tmp_path: Path) -> None:
    """Gateways upgraded with unsent readings in the older row-per-reading table."""
    path = tmp_path / "buffer.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE series (id INTEGER PRIMARY KEY, source TEXT NOT NULL,
            quantity TEXT NOT NULL, unit TEXT NOT NULL, UNIQUE (source, quantity, unit));
        CREATE TABLE readings (seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL,
            series INTEGER NOT NULL, value REAL NOT NULL, flags INTEGER NOT NULL);
        INSERT INTO meta VALUES ('epoch', 77), ('next_seq', 41);
        INSERT INTO series VALUES (1, 'pm', 'pm2_5_ugm3', 'ug/m3');
        INSERT INTO readings VALUES (40, 1000, 1, 1.5, 0), (41, 1000, 1, 2.5, 1),
            (43, 2000, 1, -3.25, 0);
    """)
    db.commit()
    db.close()
    buffer = SqliteBuffer(path, max_readings=100)
    assert buffer.epoch == 77
    assert buffer.peek(0, 10) == [
        (40, 1000, 1, 1.5, 0),
        (41, 1000, 1, 2.5, 1),
        (43, 2000, 1, -3.25, 0),
    ]
    assert buffer.depth == 3
    buffer.append(readings(0, 1))
    assert buffer.peek(43, 10)[0][0] == 44


def test_a_chunk_that_no_longer_decodes_is_dropped_and_counted(make_buffer: Factory) -> None:
    buffer = make_buffer()
    buffer.append(readings(0, 3))
    buffer.append(readings(3, 2))
    with buffer._db:
        buffer._db.execute("UPDATE chunks SET data = x'c1' WHERE first_seq = 1")
    assert [r[0] for r in buffer.peek(0, 10)] == [4, 5]
    assert (buffer.depth, buffer.dropped_total) == (2, 3)


def test_stats_name_the_oldest_unacknowledged_reading_past_a_damaged_chunk(
    make_buffer: Factory,
) -> None:
    buffer = make_buffer()
    buffer.append(readings(0, 3))  # keys 1..3
    buffer.append(readings(3, 4))  # keys 4..7
    buffer.ack(4, 5)
    with buffer._db:
        buffer._db.execute("UPDATE chunks SET data = x'c1' WHERE first_seq = 1")
    stats = buffer.stats()
    assert stats.oldest_ts_ms == readings(5, 1).ts_ms[0], "key 6: 4 and 5 are acknowledged"
    assert (stats.depth, stats.dropped_total) == (2, 3)


def test_at_rest_reads_depth_oldest_and_drops_without_an_agent(
    tmp_path: Path,
    make_buffer: Factory,
) -> None:
    """What `citygw status` shows when no agent runs (read-only, from the file)."""
    buffer = make_buffer(max_readings=5)
    buffer.append(readings(0, 7))  # 2 dropped
    buffer.close()
    assert at_rest(tmp_path / "buffer.db") == (5, readings(2, 1).ts_ms[0], 2)


def stored_chunks(buffer: SqliteBuffer) -> list[int]:
    return [row[0] for row in buffer._db.execute("SELECT first_seq FROM chunks ORDER BY 1")]


def test_an_ack_writes_nothing_and_the_next_commit_deletes_the_acknowledged_chunks(
    make_buffer: Factory,
) -> None:
    """One durable transaction per flush instead of two: at a sensor's pace each costs a page
    of SD-card writes (docs/operations.md, SD-card wear)."""
    buffer = make_buffer()
    buffer.append(readings(0, 4))  # keys 1..4
    buffer.append(readings(4, 2))  # keys 5..6
    changes = buffer._db.total_changes
    assert buffer.ack(1, 5) == 5
    assert buffer._db.total_changes == changes, "the PUBACK alone writes nothing"
    assert (buffer.depth, [r[0] for r in buffer.peek(0, 10)]) == (1, [6])
    assert buffer.stats().oldest_ts_ms == readings(5, 1).ts_ms[0]
    buffer.append(readings(6, 1))  # key 7
    assert stored_chunks(buffer) == [5, 7], "keys 1..4 went with the commit"
    assert [r[0] for r in buffer.peek(0, 10)] == [6, 7]


def test_acknowledged_chunks_not_yet_deleted_come_again_after_a_crash_with_their_keys(
    make_buffer: Factory,
) -> None:
    buffer = make_buffer()
    buffer.append(readings(0, 3))
    buffer.ack(1, 3)
    assert buffer.depth == 0
    crash(buffer)  # before the next commit
    reopened = make_buffer()
    assert reopened.depth == 3
    assert [(r[0], r[3]) for r in reopened.peek(0, 10)] == [(1, 0.0), (2, 1.0), (3, 2.0)]
    reopened.ack(1, 3)
    reopened.append(readings(3, 1))
    assert [r[0] for r in reopened.peek(0, 10)] == [4]


def test_close_deletes_acknowledged_chunks_so_the_file_at_rest_is_empty(
    tmp_path: Path,
    make_buffer: Factory,
) -> None:
    buffer = make_buffer()
    buffer.append(readings(0, 5))
    buffer.ack(1, 5)
    buffer.close()
    assert at_rest(tmp_path / "buffer.db") == (0, None, 0)
    reopened = make_buffer()
    reopened.append(readings(5, 1))
    assert [r[0] for r in reopened.peek(0, 10)] == [6], "keys never repeat"


def test_many_acknowledged_chunks_are_deleted_without_waiting_and_keys_never_repeat(
    make_buffer: Factory,
) -> None:
    """A backlog draining while no new readings come: the deletes cannot wait for a commit."""
    buffer = make_buffer()
    chunk_count = DELETE_PENDING_MAX + 1
    for n in range(chunk_count):
        buffer.append(readings(n, 1))
    for seq in range(1, chunk_count + 1):
        buffer.ack(seq, seq)
    assert stored_chunks(buffer) == [] and buffer.depth == 0
    crash(buffer)  # nothing stored says where the keys stand but `meta`
    reopened = make_buffer()
    reopened.append(readings(0, 1))
    assert [r[0] for r in reopened.peek(0, 10)] == [chunk_count + 1]


def test_readings_dropped_as_oldest_while_in_flight_and_then_acknowledged_are_not_lost(
    make_buffer: Factory,
) -> None:
    """A hung broker: a batch is published, its PUBACK late, and drop_oldest deletes it from a
    full buffer. The PUBACK then says the hub has it: not a loss (issue 16: 320 counted)."""
    buffer = make_buffer(max_readings=100)
    buffer.append(readings(0, 100))  # keys 1..100
    in_flight = buffer.peek(0, 50)  # the uplink published keys 1..50, PUBACK pending
    result = buffer.append(readings(100, 30))  # keys 1..30 dropped as the oldest
    assert (result.dropped, buffer.dropped_total) == (30, 30)
    assert buffer.ack(in_flight[0][0], in_flight[-1][0]) == 20, "31..50 were still stored"
    assert buffer.dropped_total == 0
    assert buffer.stats().dropped_by_cause == {"when_full": 0, "damaged": 0, "acked_after_drop": 30}
    assert buffer.ack(1, 50) == 0 and buffer.dropped_total == 0, "a repeated PUBACK counts once"
    buffer.append(readings(130, 40))  # keys 51..70 go now, and no PUBACK comes for them
    assert buffer.dropped_total == 20
    buffer.ack(1, 40)
    assert buffer.dropped_total == 20, "only keys dropped and then acknowledged leave the count"
    crash(buffer)
    assert make_buffer(max_readings=100).dropped_total == 20, "the corrected count is durable"


def test_a_correction_after_the_last_commit_is_written_at_close(make_buffer: Factory) -> None:
    buffer = make_buffer(max_readings=10)
    buffer.append(readings(0, 10))
    buffer.append(readings(10, 4))  # keys 1..4 dropped while the uplink had them in flight
    buffer.ack(1, 10)
    buffer.close()
    reopened = make_buffer(max_readings=10)
    assert reopened.dropped_total == 0
    assert reopened.stats().dropped_by_cause["when_full"] == 0


def test_drops_are_counted_per_cause_and_the_causes_survive_reopening(
    make_buffer: Factory,
) -> None:
    buffer = make_buffer(max_readings=10)
    buffer.append(readings(0, 3))  # keys 1..3
    buffer.append(readings(3, 9))  # keys 4..12: keys 1 and 2 dropped as the oldest
    with buffer._db:  # what is left of the first chunk (key 3) no longer decodes
        buffer._db.execute("UPDATE chunks SET data = x'c1' WHERE first_seq = 3")
    assert [r[0] for r in buffer.peek(0, 100)][:1] == [4]
    causes = {"when_full": 2, "damaged": 1, "acked_after_drop": 0}
    assert (buffer.dropped_total, buffer.stats().dropped_by_cause) == (3, causes)
    crash(buffer)
    reopened = make_buffer(max_readings=10)
    assert (reopened.dropped_total, reopened.stats().dropped_by_cause) == (3, causes)


def test_only_keys_the_policy_dropped_leave_the_count_when_acknowledged(
    make_buffer: Factory,
) -> None:
    buffer = make_buffer(max_readings=10)
    buffer.append(readings(0, 3))  # keys 1..3
    buffer.append(readings(3, 7))  # keys 4..10
    buffer.ack(2, 2)
    buffer.append(readings(10, 3))  # drops keys 1 and 3 (2 was acknowledged)
    assert buffer.dropped_total == 2
    buffer.ack(1, 5)  # the PUBACK of a batch 1..5: key 2 was never counted as dropped
    assert buffer.stats().dropped_by_cause == {"when_full": 0, "damaged": 0, "acked_after_drop": 2}
    assert [r[0] for r in buffer.peek(0, 100)] == list(range(6, 14))
