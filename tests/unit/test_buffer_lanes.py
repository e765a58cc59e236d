"""Several uplinks (lanes) in the one buffer: isolation by owner, per-lane acks, marks that
survive a restart, per-lane bounds and drops, lanes added and removed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import Measurement
from gateway.readings import Columns, SeriesIndex
from gateway.store.buffer import SqliteBuffer
from gateway.store.lanes import MARK_SAVE_KEYS, LaneSpec

Factory = Callable[..., SqliteBuffer]

HUB = LaneSpec("hub", frozenset({"city"}))
CITIZENS = LaneSpec("citizens", frozenset({"citizens"}))
BOTH = LaneSpec("both", frozenset({"city", "citizens"}))


@pytest.fixture
def make_buffer(tmp_path: Path) -> Factory:
    def make(
        *lanes: LaneSpec, max_readings: int = 10_000, clock: list[float] | None = None
    ) -> SqliteBuffer:
        return SqliteBuffer(
            tmp_path / "buffer.db",
            max_readings=max_readings,
            owner="city",
            lanes=list(lanes) or None,
            monotonic_s=(lambda: clock[0]) if clock is not None else (lambda: 0.0),
        )

    return make


def readings(*owned: tuple[str, int], first: int = 0) -> Columns:
    """Readings of several owners, interleaved in one commit; the value says whose: 1000*k + n
    for the k-th owner given."""
    out = Columns(SeriesIndex())
    for n in range(max(count for _, count in owned)):
        for k, (owner, count) in enumerate(owned):
            if n < count:
                value = float(1000 * k + first + n)
                out.add(f"pm-{owner}", [Measurement("pm2_5", value, "ug/m3")], 1_000 + n, 0, owner)
    return out


def owners_seen(buffer: SqliteBuffer, lane: str) -> set[str]:
    return {buffer.series_owner(r[2]) for r in buffer.peek(0, 1_000_000, lane=lane)}


def drain(buffer: SqliteBuffer, lane: str, batch: int = 7) -> list[int]:
    """Peek and ack everything of `lane`, in batches, as an uplink does; the keys acked."""
    keys: list[int] = []
    cursor = 0
    while got := buffer.peek(cursor, batch, lane=lane):
        buffer.ack(got[0][0], got[-1][0], lane=lane)
        keys += [r[0] for r in got]
        cursor = got[-1][0]
    return keys


def crash(buffer: SqliteBuffer) -> None:
    buffer._db.close()


def test_each_lane_sees_only_the_owners_it_lists(make_buffer: Factory) -> None:
    buffer = make_buffer(HUB, CITIZENS, BOTH)
    buffer.append(readings(("city", 5), ("citizens", 3)))
    assert owners_seen(buffer, "hub") == {"city"}
    assert owners_seen(buffer, "citizens") == {"citizens"}
    assert owners_seen(buffer, "both") == {"city", "citizens"}
    assert len(buffer.peek(0, 100, lane="hub")) == 5
    assert {s.source for s in buffer.series_table("citizens").values()} == {"pm-citizens"}
    stats = buffer.stats().lanes
    assert (stats["hub"].backlog, stats["citizens"].backlog, stats["both"].backlog) == (5, 3, 8)


def test_readings_without_an_owner_are_the_gateways(make_buffer: Factory) -> None:
    buffer = make_buffer(HUB, CITIZENS)
    plain = Columns(SeriesIndex())
    plain.add("pm", [Measurement("pm2_5", 1.0, "ug/m3")], 1_000)
    buffer.append(plain)
    assert owners_seen(buffer, "hub") == {"city"} and owners_seen(buffer, "citizens") == set()


def test_a_chunk_goes_only_once_every_lane_that_carries_it_acked_it(make_buffer: Factory) -> None:
    buffer = make_buffer(HUB, BOTH)
    buffer.append(readings(("city", 4)))  # keys 1..4, both lanes carry them
    assert buffer.ack(1, 4, lane="hub") == 4
    assert buffer.depth == 4, "the lane `both` still needs them"
    assert [r[0] for r in buffer.peek(0, 10, lane="both")] == [1, 2, 3, 4]
    assert buffer.peek(0, 10, lane="hub") == []
    assert buffer.ack(1, 4, lane="both") == 4
    assert buffer.depth == 0
    buffer.append(readings(("city", 1)))
    assert [r[0] for r in buffer._db.execute("SELECT first_seq FROM chunks")] == [5]


def test_a_lane_that_kept_up_is_not_sent_another_lanes_backlog_after_a_restart(
    make_buffer: Factory,
) -> None:
    """B is down for hours; A acknowledged everything. A restart re-sends A only what it
    acknowledged since its mark was last written (at most MARK_SAVE_S), not B's backlog."""
    clock = [0.0]
    a, b = LaneSpec("a", frozenset({"city"})), LaneSpec("b", frozenset({"city"}))
    buffer = make_buffer(a, b, clock=clock)
    for hour in range(5):
        buffer.append(readings(("city", 100), first=100 * hour))
        drain(buffer, "a")
        clock[0] += 3600
    buffer.append(readings(("city", 1), first=999))  # a commit carries A's mark
    drain(buffer, "a")  # key 501: acknowledged after the mark was written
    crash(buffer)
    reopened = make_buffer(a, b, clock=clock)
    assert [r[0] for r in reopened.peek(0, 1000, lane="a")] == [501]
    assert len(reopened.peek(0, 1000, lane="b")) == 501
    lanes = reopened.stats().lanes
    assert (lanes["a"].backlog, lanes["b"].backlog) == (1, 501)


def test_a_full_lane_drops_its_own_oldest_counted_and_no_other_lane_loses(
    make_buffer: Factory,
) -> None:
    small = LaneSpec("small", frozenset({"city"}), max_backlog=10)
    buffer = make_buffer(HUB, small)
    buffer.append(readings(("city", 8)))  # keys 1..8
    buffer.append(readings(("city", 5), first=8))  # keys 9..13: small gives up 1..3
    assert [r[0] for r in buffer.peek(0, 100, lane="small")] == list(range(4, 14))
    assert len(buffer.peek(0, 100, lane="hub")) == 13, "the hub keeps everything"
    lanes = buffer.stats().lanes
    assert (lanes["small"].dropped, lanes["hub"].dropped) == (3, 0)
    assert (lanes["small"].backlog, lanes["hub"].backlog) == (10, 13)
    buffer.ack(1, 3, lane="hub")  # no lane needs 1..3 any more
    assert buffer.depth == 10
    crash(buffer)
    reopened = make_buffer(HUB, small)
    assert reopened.stats().lanes["small"].dropped == 3, "the count is durable"


def test_a_full_lane_with_drop_newest_keeps_its_oldest(make_buffer: Factory) -> None:
    small = LaneSpec("small", frozenset({"city"}), max_backlog=10, when_full="drop_newest")
    buffer = make_buffer(HUB, small)
    buffer.append(readings(("city", 8)))
    buffer.append(readings(("city", 5), first=8))  # small gives up 11..13
    assert [r[0] for r in buffer.peek(0, 100, lane="small")] == list(range(1, 11))
    assert buffer.stats().lanes["small"].dropped == 3


def test_the_buffers_own_bound_counts_per_lane(make_buffer: Factory) -> None:
    buffer = make_buffer(HUB, CITIZENS, max_readings=10)
    buffer.append(readings(("city", 4), ("citizens", 4)))  # keys 1..4 city, 5..8 citizens
    buffer.append(readings(("city", 4)))  # 2 too many: keys 1, 2 (city) go
    lanes = buffer.stats().lanes
    assert (lanes["hub"].dropped, lanes["citizens"].dropped) == (2, 0)
    assert buffer.depth == 10 and buffer.dropped_total == 2


def test_removing_a_lane_releases_what_only_it_held(make_buffer: Factory) -> None:
    buffer = make_buffer(HUB, CITIZENS)
    buffer.append(readings(("city", 3), ("citizens", 5)))
    drain(buffer, "hub")
    assert buffer.depth == 5
    buffer.set_lanes([HUB])
    assert buffer.depth == 0 and buffer.routing.released == 5
    buffer.append(readings(("city", 1)))  # the commit deletes them
    assert [r[1] for r in buffer._db.execute("SELECT first_seq, count FROM chunks")] == [1]
    crash(buffer)
    reopened = make_buffer(HUB)
    assert "citizens" not in reopened.stats().lanes
    assert reopened.depth == 1


def test_removing_a_lane_at_a_restart_releases_it_too(make_buffer: Factory) -> None:
    buffer = make_buffer(HUB, CITIZENS)
    buffer.append(readings(("city", 3), ("citizens", 5)))
    buffer.close()
    reopened = make_buffer(HUB)
    assert reopened.depth == 3 and len(reopened.peek(0, 100)) == 3


def test_a_lane_added_later_carries_what_is_stored_from_then_on(make_buffer: Factory) -> None:
    buffer = make_buffer(HUB)
    buffer.append(readings(("city", 3)))
    buffer.set_lanes([HUB, BOTH])
    assert buffer.peek(0, 100, lane="both") == []
    buffer.append(readings(("city", 2), first=3))
    assert [r[0] for r in buffer.peek(0, 100, lane="both")] == [4, 5]


def test_a_buffer_from_before_owners_is_the_gateway_owners(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "buffer.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE series (id INTEGER PRIMARY KEY, source TEXT NOT NULL,
            quantity TEXT NOT NULL, unit TEXT NOT NULL, UNIQUE (source, quantity, unit));
        CREATE TABLE chunks (first_seq INTEGER PRIMARY KEY, count INTEGER NOT NULL,
            data BLOB NOT NULL);
        INSERT INTO meta VALUES ('epoch', 77), ('next_seq', 1);
        INSERT INTO series VALUES (1, 'pm', 'pm2_5', 'ug/m3');
    """)
    from gateway.store import chunks

    db.execute(
        "INSERT INTO chunks VALUES (1, 2, ?)", (chunks.pack([5, 5], [1, 1], [1.0, 2.0], [0, 0]),)
    )
    db.commit()
    db.close()
    buffer = SqliteBuffer(path, max_readings=100, owner="city", lanes=[HUB, CITIZENS])
    assert [(r[0], r[3]) for r in buffer.peek(0, 10, lane="hub")] == [(1, 1.0), (2, 2.0)]
    assert buffer.peek(0, 10, lane="citizens") == []
    assert buffer.series_owner(1) == "city"


OWNERS = ["city", "citizens", "shop"]
LANES = [
    LaneSpec("hub", frozenset({"city"})),
    LaneSpec("citizens", frozenset({"citizens"})),
    LaneSpec("mixed", frozenset({"citizens", "shop"}), max_backlog=100),
    LaneSpec("all", frozenset(OWNERS), max_backlog=150, when_full="drop_newest"),
]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.sampled_from(OWNERS), min_size=1, max_size=60)),
        st.tuples(
            st.just("send"), st.sampled_from([lane.name for lane in LANES]), st.integers(1, 40)
        ),
        st.tuples(st.just("restart"), st.booleans()),
        st.tuples(st.just("lanes"), st.sets(st.sampled_from(range(len(LANES))), min_size=1)),
    ),
    max_size=40,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps)
def test_no_reading_ever_reaches_a_lane_that_does_not_list_its_owner(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[object, ...]]
) -> None:
    """Whatever happens (appends of mixed owners, batches sent and acknowledged, crashes,
    lanes added and removed, bounds hit): every reading a lane is handed is of an owner it
    lists, and each lane is handed each key it still needs in increasing order."""
    path = tmp_path_factory.mktemp("lanes") / "buffer.db"
    lanes = list(LANES)
    owner_of: dict[int, str] = {}  # key -> owner, from what was stored

    def open_buffer() -> SqliteBuffer:
        return SqliteBuffer(path, max_readings=400, owner="city", lanes=lanes)

    buffer = open_buffer()
    for step in steps:
        if step[0] == "append":
            owners = list(step[1])  # type: ignore[call-overload]
            batch = Columns(SeriesIndex())
            for n, owner in enumerate(owners):
                batch.add(f"s-{owner}", [Measurement("q", float(n), "u")], n, 0, owner)
            first = buffer._next_seq
            buffer.append(batch)
            for c0, count, owner in buffer._db.execute(
                "SELECT first_seq, count, owner FROM chunks WHERE first_seq >= ?", (first,)
            ):
                owner_of.update(dict.fromkeys(range(c0, c0 + count), owner))
        elif step[0] == "send":
            name, size = step[1], step[2]
            if name not in {lane.name for lane in lanes}:
                continue
            spec = next(lane for lane in lanes if lane.name == name)
            got = buffer.peek(0, size, lane=name)  # type: ignore[arg-type]
            keys = [r[0] for r in got]
            assert keys == sorted(set(keys))
            for seq, _, sid, _, _ in got:
                assert spec.owners is not None and buffer.series_owner(sid) in spec.owners
                assert owner_of[seq] in spec.owners
            if got:
                buffer.ack(keys[0], keys[-1], lane=name)  # type: ignore[arg-type]
        elif step[0] == "restart":
            if step[1]:
                buffer.close()
            else:
                crash(buffer)
            buffer = open_buffer()
        else:
            lanes = [LANES[i] for i in sorted(step[1])]  # type: ignore[call-overload]
            buffer.set_lanes(lanes)
        needed: set[int] = set()
        for lane in lanes:
            waiting = {r[0] for r in buffer.peek(0, 10**6, lane=lane.name)}
            stats = buffer.stats().lanes[lane.name]
            assert stats.backlog == len(waiting) <= (lane.max_backlog or 10**9)
            needed |= waiting
        assert buffer.depth == len(needed)
    buffer.close()


def test_a_lane_draining_after_the_last_commit_still_writes_its_mark(
    make_buffer: Factory,
) -> None:
    """Every reading is stored before the first acknowledgement (a fast sensor, a slow
    broker) and no commit comes after: A's mark is written at the acknowledgements themselves
    while B lags, so a crash re-sends A at most MARK_SAVE_KEYS of what it acknowledged."""
    a, b = LaneSpec("a", frozenset({"city"})), LaneSpec("b", frozenset({"city"}))
    buffer = make_buffer(a, b, max_readings=20_000)
    for part in range(3):
        buffer.append(readings(("city", 4000), first=4000 * part))
    assert len(drain(buffer, "a", batch=500)) == 12_000
    crash(buffer)
    reopened = make_buffer(a, b, max_readings=20_000)
    assert len(reopened.peek(0, 20_000, lane="a")) <= MARK_SAVE_KEYS
    assert len(reopened.peek(0, 20_000, lane="b")) == 12_000
