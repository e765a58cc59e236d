"""Wire format v2: exact values, stable keys, small messages, only WireError on bad input."""

from __future__ import annotations

import contextlib
import math

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.readings import Series
from gateway.wire import WireError
from gateway.wire import v2 as wire2

SERIES = {
    1: Series("pm-north", "pm2_5_ugm3", "ug/m3"),
    2: Series("pm-north", "pm10_ugm3", "ug/m3"),
    300: Series("climate", "temperature_c", "Cel"),
}


def same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def test_a_batch_decodes_exactly_with_the_birth_table() -> None:
    batch = [
        (10, 1_700_000_000_000, 1, 12.3, 0),
        (11, 1_700_000_000_000, 2, 20.07, 0),
        (13, 1_700_000_001_000, 300, -4.25, 1),
        (14, 1_700_000_000_500, 1, 999.9, 0),
    ]
    payload = wire2.encode_data(7, batch)
    got = list(wire2.decode_data(payload, "gw-1", SERIES.get))
    assert [(r.key, r.ts_ms, r.source, r.quantity, r.value, r.clock_synced) for r in got] == [
        (("gw-1", 7, 10), 1_700_000_000_000, "pm-north", "pm2_5_ugm3", 12.3, True),
        (("gw-1", 7, 11), 1_700_000_000_000, "pm-north", "pm10_ugm3", 20.07, True),
        (("gw-1", 7, 13), 1_700_000_001_000, "climate", "temperature_c", -4.25, False),
        (("gw-1", 7, 14), 1_700_000_000_500, "pm-north", "pm2_5_ugm3", 999.9, True),
    ]


values = st.one_of(
    st.floats(),
    st.integers(-(2**40), 2**40).map(float),
    st.decimals(min_value=-10_000, max_value=10_000, places=2, allow_nan=False).map(float),
)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(-(10**6), 10**6),
            st.sampled_from(sorted(SERIES)),
            values,
            st.integers(0, 1),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 2**40),
    st.integers(0, 2**42),
)
def test_any_batch_round_trips_exactly(
    rows: list[tuple[int, int, int, float, int]], s0: int, t0: int
) -> None:
    batch, seq, ts = [], s0, t0
    for gap, step, alias, value, flag in rows:
        batch.append((seq, ts, alias, value, flag))
        seq, ts = seq + 1 + gap, max(0, ts + step)
    decoded = list(wire2.decode_data(wire2.encode_data(3, batch), "gw", SERIES.get))
    assert [(r.seq, r.ts_ms, r.quantity, r.clock_synced) for r in decoded] == [
        (q, t, SERIES[a].quantity, not f) for q, t, a, _, f in batch
    ]
    assert all(same(r.value, b[3]) for r, b in zip(decoded, batch, strict=True))


def test_a_message_of_a_slow_station_is_a_fraction_of_v1() -> None:
    from gateway.wire import v1

    batch = [
        (n, 1_700_000_000_000 + (n // 2) * 150_000, 1 + n % 2, 10 + (n % 7) / 10, 0)
        for n in range(1, 9)
    ]
    v1 = v1.encode_data("gw-0001", 12345, batch, SERIES.__getitem__)
    v2 = wire2.encode_data(12345, batch)
    assert len(v2) < len(v1) / 2, (len(v1), len(v2))


def test_an_unknown_alias_says_the_birth_is_missing() -> None:
    payload = wire2.encode_data(1, [(1, 0, 42, 1.0, 0)])
    with pytest.raises(WireError, match="birth"):
        list(wire2.decode_data(payload, "gw", SERIES.get))


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_wire_error(payload: bytes) -> None:
    with contextlib.suppress(WireError):
        list(wire2.decode_data(payload, "gw", SERIES.get))


def test_a_deflate_bomb_is_refused() -> None:
    import zlib

    bomb = zlib.compress(b"\x00" * (50 << 20), 9, wbits=-15)
    payload = msgpack.packb([2, 1, 1, 0, 0, 1, [], [], 1, bomb], use_bin_type=True)
    with pytest.raises(WireError, match="inflates beyond"):
        list(wire2.decode_data(payload, "gw", SERIES.get))


def test_a_deflated_body_cut_short_is_refused() -> None:
    import zlib

    deflated = zlib.compress(bytes(1000), 9, wbits=-15)
    payload = msgpack.packb([2, 1, 1, 0, 0, 1, [], [], 1, deflated[:-2]], use_bin_type=True)
    with pytest.raises(WireError, match="cut short"):
        list(wire2.decode_data(payload, "gw", SERIES.get))


def test_birth_table_round_trips() -> None:
    from gateway import wire

    birth = wire.decode_map(
        wire.encode_status("gw", state="online", version="1", started_ms=0, series=SERIES)
    )
    assert birth["wire"] == 2 and wire.series_table(birth) == SERIES


def test_a_large_value_before_a_finely_resolved_one_stays_exact() -> None:
    batch = [(1, 0, 1, float(2**40), 0), (2, 0, 1, 0.123456789, 0), (3, 0, 1, -float(2**40), 0)]
    decoded = list(wire2.decode_data(wire2.encode_data(1, batch), "gw", SERIES.get))
    assert [r.value for r in decoded] == [float(2**40), 0.123456789, -float(2**40)]
