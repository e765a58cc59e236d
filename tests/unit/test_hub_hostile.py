"""The hub survives what anyone on the broker publishes (issue 16): each message reproduced
there gives an "invalid" event with a reason, never an exception, a hang or unbounded memory."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import msgpack
import pytest

from gateway import wire
from gateway.cli.hub import print_event
from gateway.hub.decode import HubDecoder, HubEvent, SeriesTables
from gateway.hub.dedupe import Deduplicator
from gateway.readings import Series, StoredReading
from gateway.wire import v2, v3
from gateway.wire.bits import Adaptive

SERIES = {1: Series("pm-north", "pm2_5_ugm3", "ug/m3")}
BIRTH: dict[str, Any] = {"v": 1, "gw": "gw", "state": "online", "version": "0", "started_ms": 0}


def pack(message: object) -> bytes:
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def v1_data(gw: str = "gw", **fields: Any) -> bytes:
    message = {"v": 1, "gw": gw, "ep": 1, "s0": 1, "t0": 1_700_000_000_000}
    message |= {"series": [list(SERIES[1])], "r": [[0, 0, 0, 1.5]]} | fields
    return pack(message)


def v2_data(*, scales: object = (1, 0), body: object = b"\x01\x00\x00\x01\x02") -> bytes:
    scale_list = list(scales) if isinstance(scales, tuple) else scales
    return pack([2, 1, 10, 1_700_000_000, 0, 1000, scale_list, [], 0, body])


def decoder_with_birth(epoch: int = 1) -> HubDecoder:
    decoder = HubDecoder()
    birth = BIRTH | {"wire": 3, "ep": epoch, "series": [[1, *SERIES[1]]]}
    assert decoder.decode("p/gw/status", pack(birth)).kind == "status"
    return decoder


def invalid(decoder: HubDecoder, topic: str, payload: bytes, reason: str) -> HubEvent:
    start = time.perf_counter()
    event = decoder.decode(topic, payload)
    assert time.perf_counter() - start < 1.0
    assert event.kind == "invalid", event
    assert reason in event.error, event.error
    return event


def test_the_valid_messages_these_cases_start_from_decode() -> None:
    decoder = decoder_with_birth()
    assert [r.value for r in decoder.decode("p/gw/data", v1_data()).readings] == [1.5]
    assert [r.value for r in decoder.decode("p/gw/data", v2_data()).readings] == [1.0]


def test_v1_an_infinite_sequence_delta_is_invalid_not_an_overflow_error() -> None:
    payload = v1_data(r=[[float("inf"), 0, 0, 1.0]])
    assert len(payload) < 100
    invalid(HubDecoder(), "p/gw/data", payload, "dseq: expected an integer, got float")


def test_v1_a_spoofed_gateway_is_refused_and_does_not_suppress_the_real_ones() -> None:
    decoder = HubDecoder()
    invalid(decoder, "p/attacker/data", v1_data(gw="gw"), "names gateway 'gw'")
    assert [r.gateway for r in decoder.decode("p/gw/data", v1_data()).readings] == ["gw"]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("t0", 2**62, "timestamp out of range"),
        ("s0", 2**63, "s0 out of range"),
        ("r", [[2**63 - 1, 0, 0, 1.0]], "sequence number out of range"),  # s0 + dseq
        ("r", [[0, 0, 5, 1.0]], "series index out of range"),
        ("r", [[0, 0, 0, "1"]], "value: expected an integer, got str"),
        ("r", 7, "r must be a list"),
        ("series", [[1, 2, 3]], "series name"),
        ("ep", True, "ep: expected an integer, got bool"),
    ],
)
def test_v1_fields_of_the_wrong_type_or_range_are_invalid(
    field: str, value: object, reason: str
) -> None:
    invalid(HubDecoder(), "p/gw/data", v1_data(**{field: value}), reason)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (v2_data(body=2**40), "body is not a byte string"),  # was MemoryError from bytes(2**40)
        (v2_data(scales=(1, 10**18)), "decimals for series alias 1"),  # was a hang on 10**scale
        (v2_data(scales=(1, -400.0)), "decimals: expected an integer, got float"),  # was 1/0
        (v2_data(scales=(1, 1.5)), "decimals: expected an integer, got float"),
        (v2_data(scales=(1, -3)), "decimals out of range"),
        (v2_data(body=5), "body is not a byte string"),
        (v2_data(scales=7), "scales must be a list"),
        (v2_data(body=b"\x01\x00\x00\x02\x02"), "no decimals for series alias 2"),
        (v2_data(body=b"\x01\x00\x00\x01\xfe\xff\xff\xff\xff\xff\xff\x7f"), "out of range"),
    ],
)
def test_v2_hostile_fields_are_invalid(payload: bytes, reason: str) -> None:
    assert len(payload) < 100
    invalid(decoder_with_birth(), "p/gw/data", payload, reason)


def exp_golomb_bomb(readings: int = 40) -> bytes:
    """A v3 message whose value codes each take the longest run of zeros the old decoder
    allowed (80), so the adaptive order k and the numbers grow without end."""
    bits, delta = "1" + "0000", Adaptive(1024)  # alias 1 (width 1), 0 decimals
    for index in range(readings):
        if index:
            bits += "0" + "1" + "00" + "1"  # not the same row; step 0 (k=2); alias 1
        k = delta.k()
        bits += "0" * 80 + "1" + "1" * (80 + k)
        delta.update((1 << (81 + k)) - 1 - (1 << k))
        delta = delta if index else Adaptive(64)  # later values use the delta context
    bits += "0" * (-len(bits) % 8)
    stream = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return bytes([3, 1 << 3, 1, 1, readings, 0, 1]) + stream


def test_v3_an_exp_golomb_bomb_is_invalid_at_once() -> None:
    invalid(decoder_with_birth(), "p/gw/data", exp_golomb_bomb(), "Exp-Golomb code over 80 bits")


def test_v3_keys_too_long_for_json_are_invalid() -> None:
    batch: list[StoredReading] = [(2**69, 1_700_000_000_000, 1, 1.0, 0)]
    payload = v3.encode_data(1, batch, SERIES.__getitem__)
    invalid(decoder_with_birth(), "p/gw/data", payload, "sequence number out of range")


def test_v3_and_v2_timestamps_beyond_year_9999_are_invalid() -> None:
    batch: list[StoredReading] = [(1, 10**17, 1, 1.0, 0)]
    for payload in (v3.encode_data(1, batch, SERIES.__getitem__), v2.encode_data(1, batch)):
        invalid(decoder_with_birth(), "p/gw/data", payload, "timestamp out of range")


@pytest.mark.parametrize(
    ("series", "reason"),
    [
        (5, "series must be a list"),  # was TypeError
        ([[float("inf"), "s", "q", "u"]], "alias: expected an integer, got float"),  # OverflowError
        ([[1, "s", "q"]], "malformed series entry"),
        ([[-1, "s", "q", "u"]], "alias out of range"),
        ([[1, "s", b"q", "u"]], "not msgpack"),  # bin refused
        ([[1, "s", "q" * 300, "u"]], "series name"),
    ],
)
def test_hostile_births_are_invalid_and_keep_the_table_we_had(series: object, reason: str) -> None:
    decoder = decoder_with_birth()
    invalid(decoder, "p/gw/status", pack(BIRTH | {"ep": 1, "series": series}), reason)
    data = v3.encode_data(1, [(1, 1_700_000_000_000, 1, 2.5, 0)], SERIES.__getitem__)
    assert [r.value for r in decoder.decode("p/gw/data", data).readings] == [2.5]


def test_a_poisoned_retained_birth_is_invalid_at_every_restart() -> None:
    poisoned = pack(BIRTH | {"series": [[float("inf"), "s", "q", "u"]]})
    for _restart in range(3):  # a new decoder reads the retained birth first
        invalid(HubDecoder(), "p/gw/status", poisoned, "alias")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (pack(BIRTH | {"x": msgpack.ExtType(5, b"ab")}), "unexpected ExtType"),
        (pack(BIRTH | {"x": [[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}), "nested deeper"),
        (pack(BIRTH | {"v": True}), "unknown wire version"),
        (pack(BIRTH | {"ep": "1", "series": []}), "birth: ep"),
        (pack([1, 2]), "expected a msgpack map"),
    ],
)
def test_hostile_status_and_metrics_are_invalid(payload: bytes, reason: str) -> None:
    for leaf in ("status", "metrics"):
        if leaf == "metrics" and "birth" in reason:
            continue
        invalid(HubDecoder(), f"p/gw/{leaf}", payload, reason)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "over the limit"),
        (b"[" * 30_000 + b"]" * 30_000, "expected a JSON object"),  # was RecursionError
        (b'{"a":' * 20 + b"1" + b"}" * 20, "nested deeper"),
        (b"\xff\xfe", "expected a JSON object"),
    ],
)
def test_hostile_config_state_reports_are_invalid(payload: bytes, reason: str) -> None:
    invalid(HubDecoder(), "p/gw/config/state", payload, reason)


def test_a_50_mb_message_is_refused_before_decoding_in_bounded_time_and_memory() -> None:
    big = v1_data(r=[[n, n, 0, 1.5] for n in range(5000)]) + b"\x00" * (50 << 20)
    tracemalloc.start()
    try:
        for topic in ("p/gw/data", "p/gw/status", "p/gw/metrics", "p/gw/config/state"):
            invalid(HubDecoder(), topic, big, "over the")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_message_with_more_readings_than_any_batch_is_invalid() -> None:
    payload = v1_data(r=[[n, n, 0, 1.5] for n in range(wire.codec.MAX_READINGS + 1)])
    invalid(HubDecoder(), "p/gw/data", payload, "at most 10000 readings")


def test_forged_timestamps_print_in_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    for ts_ms in (wire.codec.TS_MS_MIN, wire.codec.TS_MS_MAX, 0):
        reading = wire.HubReading("gw\x1b[2J", 1, 1, ts_ms, "s\n", "q", "u", 1.0, True)
        event = HubEvent("p/gw/data", "gw", "data", readings=(reading,))
        print_event(event, as_json=False)
        print_event(event, as_json=True)
    out = capsys.readouterr().out
    assert "0001-01-01T00:00:00.000Z gw\\x1b[2J s\\n q = 1 u" in out
    assert "9999-12-31T23:59:59.999Z" in out and "\x1b" not in out


def test_births_of_thousands_of_forged_gateways_and_epochs_stay_bounded() -> None:
    tables = SeriesTables(max_gateways=50, max_bytes=256 << 10)
    decoder = HubDecoder(tables=tables)
    entries = [[a, "s" * 100, f"q{a}", "u"] for a in range(20)]
    births = [pack(BIRTH | {"ep": n, "series": entries}) for n in range(2000)]
    tracemalloc.start()
    try:
        for n, birth in enumerate(births):
            assert decoder.decode(f"p/gw{n % 500}/status", birth).kind == "status"
        current = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(tables) <= 50 and tables.bytes <= 256 << 10 and tables.evicted > 0
    assert current < 2 << 20


def test_readings_of_thousands_of_forged_epochs_keep_the_dedupe_bounded() -> None:
    dedup = Deduplicator(max_streams=100, max_total_pending=1000)
    decoder = HubDecoder(dedup=dedup)
    for epoch in range(2000):  # gaps in every message: pending seqs to keep
        rows = [[n * 2, 0, 0, 1.0] for n in range(50)]
        event = decoder.decode(f"p/gw{epoch % 7}/data", v1_data(f"gw{epoch % 7}", ep=epoch, r=rows))
        assert len(event.readings) == 50
    assert len(dedup) <= 100 and dedup._total_pending <= 1000 and dedup.evicted > 0
    real = v1_data(ep=5000, r=[[0, 0, 0, 1.0], [1, 0, 0, 1.0]])
    assert len(decoder.decode("p/gw/data", real).readings) == 2
    assert decoder.decode("p/gw/data", real).readings == ()  # still dropped as duplicates


def test_a_topic_gateway_id_of_any_length_or_shape_is_handled() -> None:
    decoder = HubDecoder()
    invalid(decoder, "p/" + "g" * 1000 + "/data", v1_data(), "too long")
    assert decoder.decode("data", v1_data()).kind == "invalid"
    assert decoder.decode("", b"").kind == "invalid"
