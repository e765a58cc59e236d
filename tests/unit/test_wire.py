"""Wire format v1: every message decodes on its own, values exact, keys stable, dedup by key."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import wire
from gateway.hub.dedupe import Deduplicator
from gateway.readings import CLOCK_UNSYNCED, Series, StoredReading
from gateway.wire import v1

SERIES = {1: Series("pm-north", "pm2_5_ugm3", "ug/m3"), 7: Series("pm-north", "pm10_ugm3", "ug/m3")}


def batch(*rows: tuple[int, int, int, float, int]) -> list[StoredReading]:
    return list(rows)


def test_a_data_message_decodes_on_its_own_to_exact_values_and_keys() -> None:
    payload = v1.encode_data(
        "gw-1",
        42,
        batch(
            (100, 1_700_000_000_000, 1, 123.6, 0),
            (101, 1_700_000_000_000, 7, 261.8, 0),
            (103, 1_700_000_001_000, 1, 12.0, CLOCK_UNSYNCED),
        ),
        SERIES.__getitem__,
    )
    got = list(wire.decode_data(payload))
    assert [
        (r.key, r.ts_ms, r.source, r.quantity, r.value, r.unit, r.clock_synced) for r in got
    ] == [
        (("gw-1", 42, 100), 1_700_000_000_000, "pm-north", "pm2_5_ugm3", 123.6, "ug/m3", True),
        (("gw-1", 42, 101), 1_700_000_000_000, "pm-north", "pm10_ugm3", 261.8, "ug/m3", True),
        (("gw-1", 42, 103), 1_700_000_001_000, "pm-north", "pm2_5_ugm3", 12.0, "ug/m3", False),
    ]


def test_a_data_message_is_the_documented_msgpack_map_byte_for_byte() -> None:
    """The encoder streams its rows into the packer; the bytes are those of the map in
    docs/protocol.md packed whole."""
    payload = v1.encode_data(
        "gw-1",
        42,
        batch(
            (100, 1_700_000_000_000, 7, 261.8, 0),
            (101, 1_700_000_000_500, 1, 12.0, CLOCK_UNSYNCED),
            (102, 1_699_999_999_000, 7, -3.5, 0),
        ),
        SERIES.__getitem__,
    )
    assert payload == msgpack.packb(
        {
            "v": 1,
            "gw": "gw-1",
            "ep": 42,
            "s0": 100,
            "t0": 1_700_000_000_000,
            "series": [["pm-north", "pm10_ugm3", "ug/m3"], ["pm-north", "pm2_5_ugm3", "ug/m3"]],
            "r": [[0, 0, 0, 261.8], [1, 500, 1, 12, CLOCK_UNSYNCED], [2, -1000, 0, -3.5]],
        },
        use_bin_type=True,
    )


@given(
    st.lists(
        st.tuples(
            st.integers(1, 2**40),
            st.integers(0, 2**45),
            st.sampled_from([1, 7]),
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(0, 1),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_any_batch_round_trips_exactly(rows: list[tuple[int, int, int, float, int]]) -> None:
    decoded = list(wire.decode_data(v1.encode_data("gw", 1, batch(*rows), SERIES.__getitem__)))
    assert [(r.seq, r.ts_ms, r.value, r.quantity) for r in decoded] == [
        (seq, ts, value, SERIES[sid].quantity) for seq, ts, sid, value, _ in rows
    ]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",
        msgpack.packb([1, 2]),
        msgpack.packb({"v": 99}),
        msgpack.packb({"v": 1, "gw": "x"}),
        msgpack.packb(
            {"v": 1, "gw": "x", "ep": 1, "s0": 1, "t0": 1, "series": [], "r": [[0, 0, 3, 1]]}
        ),
    ],
)
def test_malformed_payloads_raise_wire_error_only(payload: bytes) -> None:
    with pytest.raises(wire.WireError):
        list(wire.decode_data(payload))


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_wire_error(payload: bytes) -> None:
    with contextlib.suppress(wire.WireError):
        list(wire.decode_data(payload))


def test_deduplicator_drops_resent_readings_even_in_a_differently_cut_batch() -> None:
    rows = [(n, 1000 + n, 1, float(n), 0) for n in range(1, 11)]
    first = v1.encode_data("gw", 5, batch(*rows[:6]), SERIES.__getitem__)
    resent = v1.encode_data("gw", 5, batch(*rows[3:]), SERIES.__getitem__)  # after a crash
    dedup = Deduplicator()
    kept = [r.value for p in (first, resent) for r in wire.decode_data(p) if dedup.is_new(r)]
    assert kept == [float(n) for n in range(1, 11)]
    assert dedup.duplicates == 3


def test_deduplicator_tells_epochs_and_gateways_apart_and_stays_bounded() -> None:
    dedup = Deduplicator(max_pending=10)
    make = lambda gw, ep, seq: wire.HubReading(gw, ep, seq, 0, "s", "q", "u", 0.0, True)  # noqa: E731
    assert dedup.is_new(make("a", 1, 5)) and dedup.is_new(make("a", 2, 5))
    assert dedup.is_new(make("b", 1, 5)) and not dedup.is_new(make("a", 1, 5))
    for seq in range(100, 1000, 2):  # gaps (dropped readings) never grow memory past the bound
        dedup.is_new(make("a", 1, seq))
    stream = dedup._streams[("a", 1)]
    assert len(stream.above) <= 10
    assert not dedup.is_new(make("a", 1, 998))


def test_deduplicator_keeps_a_resent_batch_older_than_the_first_message_it_saw() -> None:
    """The hub starts while batch 2 is in flight; batch 1 (its PUBACK lost) comes again later:
    its readings were never seen, so they are new, once."""
    dedup = Deduplicator(max_pending=150)
    make = lambda seq: wire.HubReading("gw", 1, seq, 0, "s", "q", "u", 0.0, True)  # noqa: E731
    assert all(dedup.is_new(make(seq)) for seq in range(101, 201))
    assert all(dedup.is_new(make(seq)) for seq in range(1, 101))
    assert not any(dedup.is_new(make(seq)) for seq in [*range(1, 101), *range(101, 201)])
    assert dedup.duplicates == 200
    for seq in range(-1000, 0):  # what is kept below the first seq stays bounded too
        dedup.is_new(make(seq))
    assert len(dedup._streams[("gw", 1)].below) <= 150
