"""Wire format v3: exact values, stable keys, bytes as documented, only WireError on bad input."""

from __future__ import annotations

import contextlib
import math
import struct
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway import wire
from gateway.hub.tail import HubDecoder
from gateway.readings import Series, StoredReading
from gateway.wire import WireError, v1
from gateway.wire import v3 as wire3

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
        wire3.decode_data(wire3.encode_data(epoch, batch, SERIES.__getitem__), "gw", SERIES.get)
    )


def test_the_worked_example_of_protocol_md_is_byte_exact() -> None:
    batch = [
        (1000, 1_556_668_805_000, 1, 13.3, 0),
        (1001, 1_556_668_805_000, 2, 28.83, 0),
        (1002, 1_556_668_806_000, 3, 11.2, 0),
        (1003, 1_556_668_806_000, 4, 99.9, 0),
        (1004, 1_556_668_953_000, 1, 13.1, 0),
        (1005, 1_556_668_953_000, 2, 27.5, 0),
    ]
    payload = wire3.encode_data(1843029, batch, SERIES.__getitem__)
    assert payload.hex(" ") == (
        "03 18 d5 be 70 e8 07 06 8a 86 c7 cc 0b e8 07 23 42 a4 6a 19 98 ce 08 af 38 04 a8 c3 94 90"
    )
    decoded = list(wire3.decode_data(payload, "gw-0001", SERIES.get))
    assert [(r.seq, r.ts_ms, r.quantity, r.value) for r in decoded] == [
        (q, t, SERIES[a].quantity, v) for q, t, a, v, _ in batch
    ]
    assert all(r.epoch == 1843029 and r.clock_synced for r in decoded)


values = st.one_of(
    st.floats(),  # NaN, infinities, -0.0, subnormals, 1e308
    st.integers(-(2**60), 2**60).map(float),
    st.decimals(min_value=-100_000, max_value=100_000, places=4, allow_nan=False).map(float),
    st.sampled_from([999.9, 1999.9, 0.0, 1013.6409, 2.0**53, -(2.0**53), 1e-9, 123456.7891]),
)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**20),
            st.integers(-(10**9), 10**9),
            st.sampled_from(sorted(SERIES)),
            values,
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=80,
    ),
    st.integers(0, 2**40),
    st.integers(-(2**42), 2**43),
    st.integers(0, 2**31),
)
@example(
    rows=[(0, 0, 1, math.nan, 0), (0, 0, 2, -0.0, 0), (0, 1, 3, math.inf, 1)],
    s0=1,
    t0=1_556_668_805_123,
    epoch=0,
)
def test_any_batch_round_trips_exactly(
    rows: list[tuple[int, int, int, float, int]], s0: int, t0: int, epoch: int
) -> None:
    """Gaps in sequence, timestamps out of order, NaN/inf/-0.0, huge values, flags, and series
    appearing anywhere in the batch: everything comes back as it went in."""
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


def test_resent_readings_keep_their_keys_however_they_are_batched() -> None:
    batch = [(n, 1_000_000 + n * 1000, 1 + n % 2, n / 10, 0) for n in range(1, 21)]
    decoder = HubDecoder()
    decoder.decode(
        "citygw/v1/gw/status",
        wire.encode_status(
            "gw", state="online", version="1", started_ms=0, series=SERIES, wire_format=3
        ),
    )
    first = decoder.decode(
        "citygw/v1/gw/data", wire3.encode_data(5, batch[:12], SERIES.__getitem__)
    )
    again = decoder.decode("citygw/v1/gw/data", wire3.encode_data(5, batch[8:], SERIES.__getitem__))
    assert [r.seq for r in first.readings] == list(range(1, 13))
    assert [r.seq for r in again.readings] == list(range(13, 21))  # 9..12 were duplicates


def test_an_unknown_alias_says_the_birth_is_missing() -> None:
    payload = wire3.encode_data(1, [(1, 0, 42, 1.0, 0)], lambda alias: SERIES[1])
    with pytest.raises(WireError, match="alias 42 unknown: the gateway's birth message"):
        list(wire3.decode_data(payload, "gw", SERIES.get))


def test_every_truncation_of_a_message_is_a_wire_error() -> None:
    payload = wire3.encode_data(
        9,
        [(5, 10_000, 1, 12.5, 0), (6, 10_000, 2, 30.25, 1), (7, 12_000, 3, -4.5, 0)],
        SERIES.__getitem__,
    )
    for end in range(len(payload)):
        with contextlib.suppress(WireError):
            decoded = list(wire3.decode_data(payload[:end], "gw", SERIES.get))
            assert len(decoded) < 3 or end >= len(payload) - 1, end  # padding bits only


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_wire_error(payload: bytes) -> None:
    with contextlib.suppress(WireError):
        list(wire3.decode_data(payload, "gw", SERIES.get))


@given(st.binary(max_size=200))
def test_any_bytes_after_the_version_byte_decode_or_raise_wire_error(tail: bytes) -> None:
    with contextlib.suppress(WireError):
        list(wire3.decode_data(b"\x03" + tail, "gw", SERIES.get))


def test_the_hub_tells_v1_v2_and_v3_apart_by_the_first_byte() -> None:
    from gateway.wire import v2 as wire2

    batch = [(1, 1_000_000, 1, 12.5, 0)]
    payloads = [
        v1.encode_data("gw", 3, batch, SERIES.__getitem__),
        wire2.encode_data(3, batch),
        wire3.encode_data(3, batch, SERIES.__getitem__),
    ]
    decoder = HubDecoder()
    decoder.decode(
        "p/gw/status",
        wire.encode_status("gw", state="online", version="1", started_ms=0, series=SERIES),
    )
    events = [decoder.decode("p/gw/data", payload) for payload in payloads]
    assert [e.kind for e in events] == ["data"] * 3
    assert [len(e.readings) for e in events] == [1, 0, 0]  # the same key: duplicates
    assert decoder.dedup.duplicates == 2


def test_a_slow_station_message_is_a_fraction_of_v2() -> None:
    from gateway.wire import v2 as wire2

    batch = [
        (n, 1_700_000_000_000 + (n // 2) * 150_000, 1 + n % 2, 10 + (n % 7) / 10, 0)
        for n in range(1, 9)
    ]
    assert (
        len(wire3.encode_data(12345, batch, SERIES.__getitem__))
        < len(wire2.encode_data(12345, batch)) * 0.7
    )


@given(
    st.lists(st.integers(1, 12), min_size=1, max_size=12),
    st.randoms(use_true_random=False),
    st.integers(0, 5),
)
def test_every_copy_of_a_reading_decodes_the_same_in_any_message_order(
    cuts: list[int],
    rng: Any,
    new_series_at: int,
) -> None:
    """Re-sent in other batches, repeated, delivered in any order, a series appearing
    mid-connection (the birth grew): every copy of a key decodes to the same reading, so a hub
    may keep any one of them."""
    readings: list[StoredReading] = [
        (
            n,
            1_556_668_800_000 + (n // 2) * 147_000,
            1 + n % 2 + (2 if n > new_series_at * 8 else 0),
            n / 4,
            int(n % 3 == 0),
        )
        for n in range(1, 41)
    ]
    messages, start = [], 0
    for cut in cuts * 4:  # batches of varying size, wrapping round: the readings re-sent
        batch = readings[start : start + cut] or readings[:cut]
        messages.append(wire3.encode_data(11, batch, SERIES.__getitem__))
        start = (start + cut) % len(readings)
    rng.shuffle(messages)
    decoder = HubDecoder()
    decoder.decode(
        "p/gw/status",
        wire.encode_status(
            "gw",
            state="online",
            version="1",
            started_ms=0,
            series={1: SERIES[1], 2: SERIES[2]},
            wire_format=3,
        ),
    )
    decoder.decode(
        "p/gw/status",
        wire.encode_status(  # re-published: new series were named
            "gw", state="online", version="1", started_ms=0, series=SERIES, wire_format=3
        ),
    )
    copies: dict[tuple[str, int, int], set[tuple[Any, ...]]] = {}
    for message in messages:
        event = decoder.decode("p/gw/data", message)
        assert event.kind == "data", event.error
        for r in wire3.decode_data(message, "gw", SERIES.get):
            copies.setdefault(r.key, set()).add(
                (r.ts_ms, r.source, r.quantity, r.value, r.clock_synced)
            )
    for (_, epoch, seq), seen in copies.items():
        _, ts, alias, value, flags = readings[seq - 1]
        assert epoch == 11
        assert seen == {(ts, SERIES[alias].source, SERIES[alias].quantity, value, not flags)}


def test_the_hub_names_series_by_the_birth_of_the_messages_own_buffer_epoch() -> None:
    """A recreated buffer (new epoch) numbers its series again: a late message of the old
    epoch must keep its old names, and one of an epoch whose birth was never seen is refused
    rather than mislabelled."""
    from gateway.readings import Series
    from gateway.wire import v2 as wire2

    old = {1: Series("pm", "pm2_5_ugm3", "ug/m3")}
    new = {1: Series("climate", "temperature_c", "C")}
    batch = [(5, 1_000_000, 1, 21.5, 0)]
    for encode in (
        lambda ep: wire3.encode_data(ep, batch, {**old, **new}.__getitem__),
        lambda ep: wire2.encode_data(ep, batch),
    ):
        decoder = HubDecoder()
        for epoch, table in ((7, old), (8, new)):
            decoder.decode(
                "p/gw/status",
                wire.encode_status(
                    "gw",
                    state="online",
                    version="1",
                    started_ms=0,
                    series=table,
                    wire_format=3,
                    epoch=epoch,
                ),
            )
        late = decoder.decode("p/gw/data", encode(7))
        current = decoder.decode("p/gw/data", encode(8))
        assert [(r.source, r.quantity) for r in (*late.readings, *current.readings)] == [
            ("pm", "pm2_5_ugm3"),
            ("climate", "temperature_c"),
        ]
        unknown = decoder.decode("p/gw/data", encode(6))
        assert unknown.kind == "invalid" and "epoch 6" in unknown.error
    assert wire3.epoch_of(wire3.encode_data(9, batch, old.__getitem__)) == 9
    assert wire2.epoch_of(wire2.encode_data(9, batch)) == 9
