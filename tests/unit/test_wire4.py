"""Wire format v4: exact values, stable keys, smaller than v3, only WireError on bad input."""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway import wire
from gateway.hub.tail import HubDecoder
from gateway.readings import Series, StoredReading
from gateway.wire import WireError
from gateway.wire import v3 as wire3
from gateway.wire import v4 as wire4

SERIES = {
    1: Series("pm-north", "pm2_5_ugm3", "ug/m3"),
    2: Series("pm-north", "pm10_ugm3", "ug/m3"),
    3: Series("climate", "temperature_c", "Cel"),
    4: Series("climate", "humidity_pct", "%"),
    5: Series("pm-south", "pm2_5_ugm3", "ug/m3"),
    2**31 - 1: Series("far", "pressure_hpa", "hPa"),
}


def same(a: float, b: float) -> bool:
    """Equal as the sensor reported it: NaN is NaN, -0.0 is not 0.0."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def round_trip(batch: list[StoredReading], epoch: int = 7) -> list[wire.HubReading]:
    return list(
        wire4.decode_data(wire4.encode_data(epoch, batch, SERIES.__getitem__), "gw", SERIES.get)
    )


values = st.one_of(
    st.floats(),  # NaN, infinities, -0.0, subnormals, 1e308
    st.integers(-(2**60), 2**60).map(float),
    st.decimals(min_value=-100_000, max_value=100_000, places=4, allow_nan=False).map(float),
    st.decimals(min_value=-1, max_value=1, places=9, allow_nan=False).map(float),
    st.sampled_from([999.9, 1999.9, 0.0, 1013.6409, 2.0**53, -(2.0**53), 1e-9, 123456.7891]),
)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**20),
            st.one_of(st.integers(-(10**9), 10**9), st.sampled_from([0, 1000, 150_000])),
            st.sampled_from(sorted(SERIES)),
            values,
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=80,
    ),
    st.integers(0, 2**40),
    st.one_of(st.integers(-(2**42), 2**43), st.sampled_from([-62_000_000_000_000, 2**42 * 50])),
    st.integers(0, 2**31),
)
@example(
    rows=[(0, 0, 1, math.nan, 0), (0, 0, 2, -0.0, 0), (0, 1, 3, math.inf, 1)],
    s0=1,
    t0=1_556_668_805_123,
    epoch=0,
)
@example(rows=[(0, 2**47, 1, 1.5, 0), (0, -(2**46), 1, 2.25, 0)], s0=0, t0=-(2**45), epoch=1)
@example(rows=[(0, 0, 1, 2.0**53 - 1, 0), (0, 0, 5, 1e-9, 0)], s0=0, t0=0, epoch=1)
def test_any_batch_round_trips_exactly(
    rows: list[tuple[int, int, int, float, int]], s0: int, t0: int, epoch: int
) -> None:
    """Gaps in sequence, timestamps out of order or before 1970 or past 2106 (as far as a hub
    takes them: years 1 to 9999), NaN/inf/-0.0,
    huge values, flags, series anywhere in the batch: everything comes back as it went in."""
    batch: list[StoredReading] = []
    seq, ts = s0, t0
    for gap, step, alias, value, flags in rows:
        batch.append((seq, ts, alias, value, flags))
        seq, ts = seq + 1 + (gap if gap > 2**19 else 0), ts + step
    decoded = round_trip(batch, epoch)
    assert [
        (r.epoch, r.seq, r.ts_ms, r.source, r.quantity, r.unit, r.clock_synced) for r in decoded
    ] == [
        (epoch, q, t, SERIES[a].source, SERIES[a].quantity, SERIES[a].unit, not f & 1)
        for q, t, a, _, f in batch
    ]
    assert all(same(r.value, b[3]) for r, b in zip(decoded, batch, strict=True))


def test_a_nan_keeps_its_bits_and_float64_series_stay_float64() -> None:
    quiet_nan_with_payload = struct.unpack(">d", bytes.fromhex("7ff8000000000123"))[0]
    decoded = round_trip([(1, 0, 1, quiet_nan_with_payload, 0), (2, 0, 1, 0.1, 0)])
    assert struct.pack(">d", decoded[0].value).hex() == "7ff8000000000123"
    assert decoded[1].value == 0.1


def test_an_unknown_alias_says_the_birth_is_missing() -> None:
    payload = wire4.encode_data(1, [(1, 0, 42, 1.0, 0)], lambda alias: SERIES[1])
    with pytest.raises(WireError, match="alias 42 unknown: the gateway's birth message"):
        list(wire4.decode_data(payload, "gw", SERIES.get))


def test_every_truncation_of_a_message_is_a_wire_error() -> None:
    payload = wire4.encode_data(
        9,
        [(5, 10_000, 1, 12.5, 0), (6, 10_000, 2, 30.25, 1), (7, 12_000, 3, -4.5, 0)],
        SERIES.__getitem__,
    )
    for end in range(len(payload)):
        with contextlib.suppress(WireError):
            decoded = list(wire4.decode_data(payload[:end], "gw", SERIES.get))
            assert len(decoded) < 3 or end >= len(payload) - 1, end  # padding bits only


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_wire_error(payload: bytes) -> None:
    with contextlib.suppress(WireError):
        list(wire4.decode_data(payload, "gw", SERIES.get))


@given(st.integers(0x40, 0x5F), st.binary(max_size=200))
def test_any_bytes_after_a_v4_first_byte_decode_or_raise_wire_error(
    first: int, tail: bytes
) -> None:
    with contextlib.suppress(WireError):
        list(wire4.decode_data(bytes((first,)) + tail, "gw", SERIES.get))


def test_a_message_claiming_more_readings_than_it_can_hold_is_refused() -> None:
    payload = wire4.encode_data(1, [(n, 0, 1, 1.0, 0) for n in (1, 2, 3)], SERIES.__getitem__)
    with pytest.raises(WireError, match="claims"):
        list(wire4.decode_data(payload, "gw", SERIES.get, max_readings=2))


def test_the_hub_decodes_v4_by_its_first_byte_with_the_birth_of_its_epoch() -> None:
    batch = [(1, 1_000_000, 1, 12.5, 0), (2, 1_000_000, 2, 20.25, 0)]
    decoder = HubDecoder()
    decoder.decode(
        "p/gw/status",
        wire.encode_status(
            "gw", state="online", version="1", started_ms=0, series=SERIES, wire_format=4, epoch=3
        ),
    )
    payload = wire.encode_data(
        4, gateway_id="gw", epoch=3, batch=batch, series_of=SERIES.__getitem__
    )
    assert wire.version_of(payload) == 4 and wire4.epoch_of(payload) == 3
    event = decoder.decode("p/gw/data", payload)
    assert event.kind == "data", event.error
    assert [(r.seq, r.quantity, r.value) for r in event.readings] == [
        (1, "pm2_5_ugm3", 12.5),
        (2, "pm10_ugm3", 20.25),
    ]
    again = decoder.decode("p/gw/data", wire3.encode_data(3, batch, SERIES.__getitem__))
    assert again.kind == "data" and not again.readings  # the same keys in v3: duplicates
    unknown = decoder.decode(
        "p/gw/data",
        wire.encode_data(4, gateway_id="gw", epoch=9, batch=batch, series_of=SERIES.__getitem__),
    )
    assert unknown.kind == "invalid" and "epoch 9" in unknown.error


def test_a_slow_station_message_is_smaller_than_in_v3() -> None:
    """Eight readings of an air-quality station in one message (its 300 s flush)."""
    batch = [
        (n, 1_556_668_800_000 + (n // 4) * 150_000 + (n % 4 > 1) * 1000, 1 + n % 4, v, 0)
        for n, v in enumerate([13.3, 28.83, 11.2, 99.9, 13.1, 27.5, 11.3, 99.9], start=1000)
    ]
    v3_size = len(wire3.encode_data(1843029, batch, SERIES.__getitem__))
    v4_size = len(wire4.encode_data(1843029, batch, SERIES.__getitem__))
    assert v4_size <= v3_size - 4, (v4_size, v3_size)
    assert [r.value for r in round_trip(batch)] == [b[3] for b in batch]
