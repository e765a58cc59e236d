"""gateway.store.chunks: the buffer's on-disk blob round-trips every reading exactly."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.store import chunks

rows_strategy = st.lists(
    st.tuples(
        st.integers(0, 2**53),
        st.integers(1, 2**31),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=50,
)


decimal_rows_strategy = st.lists(
    st.tuples(
        st.integers(0, 2**53),
        st.integers(1, 2**31),
        st.one_of(
            st.integers(-(10**6), 10**6).map(lambda n: n / 10),
            st.integers(-(10**5), 10**5).map(lambda n: n / 1000),
            st.sampled_from([0.0, -0.0, 1e300, 0.1 + 0.2, 2.0**70]),
        ),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=50,
)


@given(first=st.integers(1, 2**62), rows=st.one_of(rows_strategy, decimal_rows_strategy))
def test_round_trip(first: int, rows: list[chunks.Row]) -> None:
    back = list(chunks.unpack(first, chunks.pack_rows(rows)))
    assert [r[0] for r in back] == list(range(first, first + len(rows)))
    for (ts, series, value, flags), (_, ts2, series2, value2, flags2) in zip(
        rows, back, strict=True
    ):
        assert (ts2, series2, flags2) == (ts, series, flags)
        assert math.copysign(1.0, value2) == math.copysign(1.0, value), "-0.0 stays -0.0"
        assert value2 == value or (math.isnan(value) and math.isnan(value2))


@given(first=st.integers(1, 2**62), rows=rows_strategy, data=st.data())
def test_ts_at_is_the_timestamp_unpack_gives(
    first: int, rows: list[chunks.Row], data: st.DataObject
) -> None:
    blob = chunks.pack_rows(rows)
    seq = data.draw(st.integers(first, first + len(rows) - 1))
    assert chunks.ts_at(first, blob, seq) == list(chunks.unpack(first, blob))[seq - first][1]
    with pytest.raises(chunks.ChunkError):
        chunks.ts_at(first, blob, first + len(rows))


def test_a_commit_of_one_sensor_packs_to_about_eleven_bytes_a_reading() -> None:
    rows = [(1_700_000_000_000 + (n // 2) * 1000, 1 + n % 2, 10.0 + n / 7, 0) for n in range(1000)]
    assert len(chunks.pack_rows(rows)) < 12 * len(rows)


def test_an_sds011_commit_of_tenths_packs_to_about_five_bytes_a_reading() -> None:
    """10 minutes of one SDS011: every value is its raw integer / 10, stored as that integer."""
    rows = [
        (1_700_000_000_000 + (n // 2) * 1000, 1 + n % 2, (123 + n % 300) / 10, 0)
        for n in range(1200)
    ]
    blob = chunks.pack_rows(rows)
    assert len(blob) < 6 * len(rows)
    assert [r[3] for r in chunks.unpack(1, blob)] == [r[2] for r in rows]


def test_garbage_is_a_chunk_error() -> None:
    for blob in (b"", b"\xc1", b"\x94\x90\x90\xc4\x01x\x00", b"\x94\x91\x01\x90\xc4\x00\x00"):
        with pytest.raises(chunks.ChunkError):
            chunks.unpack(1, blob)


def test_runs_split_at_gaps_and_at_the_chunk_size() -> None:
    stored = [(seq, 0, 1, 0.0, 0) for seq in [*range(1, 4), *range(10, 10 + chunks.MAX_READINGS)]]
    assert [(first, len(rows)) for first, rows in chunks.runs(stored)] == [
        (1, 3),
        (10, chunks.MAX_READINGS),
    ]
