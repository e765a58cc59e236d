"""OPS243 radar codec: shared vectors, stream resynchronisation, units, commands at connect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import ops243
from drivers.base import DecodeError, Measurement
from drivers.ops243_units import UNITS, start_commands

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "ops243.json").read_text()
)
VALID = [v for v in VECTORS if v["expect"].get("valid", True)]
INVALID = [v for v in VECTORS if not v["expect"].get("valid", True)]
READINGS = [v for v in VALID if not v["expect"].get("no_detection") and "type" not in v["expect"]]
_UNIT_COMMANDS = {unit.command.decode(): key for key, unit in UNITS.items()}
_DIRECTIONS = {"inbound": 1, "outbound": -1, "none": 0}


def _bytes(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["hex"])


def _options(vector: dict[str, Any]) -> dict[str, Any]:
    """The codec's options from the API commands the vector says were in force."""
    settings = vector.get("settings", [])
    plain = "OJ" not in settings
    units = next((_UNIT_COMMANDS[s] for s in settings if s in _UNIT_COMMANDS), "mps")
    return {
        "units": units,
        "json": not plain,
        "time": plain and "OT" in settings,
        "magnitude": plain and "OM" in settings,
    }


def _expected(expect: dict[str, Any]) -> set[tuple[str, float]]:
    """The vector's keys as our quantity names: `speed_mps_1` -> `speed_1_mps`, directions as
    +1/-1, the radar's counts as `vehicles_<direction>` and `speed_avg_<direction>_<unit>`."""
    skip = {"sensor_time_s", "unit", "direction"}
    out: set[tuple[str, float]] = set()
    if "count" in expect:
        name = expect["direction"]
        unit = expect["unit"]
        return {
            (f"vehicles_{name}", expect["count"]),
            (f"speed_avg_{name}_{unit}", expect[f"average_speed_{unit}"]),
        }
    for key, value in expect.items():
        if key in skip:
            continue
        base, _, index = key.rpartition("_")
        if index.isdigit():
            if base.startswith("direction"):
                out.add((f"direction_{index}", _DIRECTIONS[value]))
                continue
            quantity, _, unit = base.partition("_")
            out.add((f"{quantity}_{index}_{unit}" if unit else f"{quantity}_{index}", value))
        else:
            out.add((key, value))
    if "direction" in expect:
        out.add(("direction", _DIRECTIONS[expect["direction"]]))
    return out


# --- vectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", READINGS, ids=lambda v: v["hex"][:40])
def test_vector_decodes_to_the_values_its_source_asserts(vector: dict[str, Any]) -> None:
    expect = vector["expect"]
    frame = ops243.decode(_bytes(vector), **_options(vector))
    assert isinstance(frame, ops243.Report | ops243.CountReport)
    assert {(m.quantity, m.value) for m in frame.measurements} == _expected(expect)
    assert all(m.unit for m in frame.measurements)
    if "sensor_time_s" in expect:
        assert frame.sensor_time_s == pytest.approx(expect["sensor_time_s"])
    if "unit" in expect:
        assert frame.unit == expect["unit"]


def test_speed_units_are_ucum_and_the_quantity_names_the_unit() -> None:
    got = {
        units: ops243.decode(b"-12.5\r\n", units=units).measurements[0]
        for units in ("mps", "kmh", "mph", "fps", "cmps")
    }
    assert got == {
        "mps": Measurement("speed_mps", 12.5, "m/s"),
        "kmh": Measurement("speed_kmh", 12.5, "km/h"),
        "mph": Measurement("speed_mph", 12.5, "[mi_i]/h"),
        "fps": Measurement("speed_fps", 12.5, "[ft_i]/s"),
        "cmps": Measurement("speed_cmps", 12.5, "cm/s"),
    }


def test_reply_and_filler_vectors_carry_no_readings() -> None:
    reply = next(v for v in VALID if v["expect"].get("type") == "reply")
    frame = ops243.decode(_bytes(reply))
    assert frame == ops243.Reply("Units", "km-per-hr", "kmh")
    filler = next(v for v in VALID if v["expect"].get("no_detection"))
    assert ops243.decode(_bytes(filler)) == ops243.NoDetection()
    for line in (b" \r\n", b"0\r\n", b"0.00\r\n", b"\r\n", b'{"speed":"0.0"}\r\n'):
        assert ops243.decode(line) == ops243.NoDetection()
    assert ops243.decode(b"12.5,0.0\r\n", magnitude=True) == ops243.NoDetection()


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: v["hex"][:40])
def test_invalid_vector_raises_decode_error_naming_the_fault(vector: dict[str, Any]) -> None:
    with pytest.raises(DecodeError, match=vector["expect"]["error"]):
        ops243.decode(_bytes(vector), **_options(vector))


@pytest.mark.parametrize("vector", VALID, ids=lambda v: v["hex"][:40])
def test_vector_fed_byte_by_byte_gives_exactly_its_frame(vector: dict[str, Any]) -> None:
    wire = _bytes(vector)
    decoder = ops243.StreamDecoder(**_options(vector))
    frames = [frame for i in range(len(wire)) for frame in decoder.feed(wire[i : i + 1])]
    assert frames == [ops243.decode(wire, **_options(vector))]
    assert decoder.pending == 0


@pytest.mark.parametrize("vector", VALID, ids=lambda v: v["hex"][:40])
def test_vector_with_trailing_bytes_gives_its_frame_and_keeps_the_rest(
    vector: dict[str, Any],
) -> None:
    decoder = ops243.StreamDecoder(**_options(vector))
    assert decoder.feed(_bytes(vector) + b"-1.2") == [
        ops243.decode(_bytes(vector), **_options(vector))
    ]
    assert decoder.pending == 4


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: v["hex"][:40])
def test_stream_counts_invalid_line_as_bad_frame_and_reads_the_next(vector: dict[str, Any]) -> None:
    decoder = ops243.StreamDecoder(units="kmh")
    frames = decoder.feed(_bytes(vector) + b"-33.5\r\n")
    assert [f.measurements for f in frames] == [
        (Measurement("speed_kmh", 33.5, "km/h"), Measurement("direction", -1, "1"))
    ]
    assert decoder.stats.bad_frames == 1
    assert decoder.stats.skipped_bytes == len(_bytes(vector))


# --- stream --------------------------------------------------------------------------------------


def test_noise_before_a_line_is_skipped_and_the_line_read() -> None:
    decoder = ops243.StreamDecoder()
    frames = decoder.feed(b"\xff\x00\xfe1.35\r\n\x80\r\n2.5\r\n")
    assert [f.measurements[0].value for f in frames] == [1.35, 2.5]
    assert decoder.stats.skipped_bytes == 3 + 3
    assert decoder.stats.bad_frames == 0


def test_line_longer_than_the_limit_is_dropped_to_its_end() -> None:
    decoder = ops243.StreamDecoder()
    long = b"1" * (ops243.MAX_LINE + 10)
    assert decoder.feed(long) == []
    assert decoder.pending == 0
    frames = decoder.feed(b"2345\r\n-1.5\r\n")
    assert [f.measurements[0].value for f in frames] == [1.5]
    assert decoder.stats.skipped_bytes == len(long) + 6


def test_units_reply_changes_the_unit_of_the_plain_lines_that_follow() -> None:
    decoder = ops243.StreamDecoder(units="mps")
    frames = decoder.feed(b'4.2\r\n{"Units":"km-per-hr"}\r\n45.6\r\n')
    assert [m.unit for f in frames for m in f.measurements if m.quantity.startswith("speed")] == [
        "m/s",
        "km/h",
    ]


def test_json_unit_label_overrides_the_configured_unit_for_that_report() -> None:
    frame = ops243.decode(b'{"unit":"mph","speed":"-20.5"}\r\n', units="kmh")
    assert frame.measurements[0] == Measurement("speed_mph", 20.5, "[mi_i]/h")


@pytest.mark.parametrize(
    "line",
    [
        b'{"speed":NaN}',
        b'{"speed":1e999}',
        b'{"speed":true}',
        b'{"speed":[1,2],"magnitude":[3]}',
        b'{"speed":[]}',
        b"[1,2]",
        b'{"TimedSpeedCounts":{"direction":"sideways","count":"1"}}',
        b'{"unit":"furlongs","speed":"1"}',
        b'{"unit":"m","speed":"1"}',
        b'{"TimedSpeedCounts":{"direction":"inbound","count":"-1"}}',
        b'{"TimedSpeedCounts":{"direction":"inbound","count":"2.5"}}',
        b"1.2,3.4,5.6",
        b"inf",
        b"1_000",
        b"1\r2",
        "1.5\u00e9".encode(),
        b"[" * 400,
    ],
)
def test_malformed_lines_raise_decode_error(line: bytes) -> None:
    with pytest.raises(DecodeError):
        ops243.decode(line, magnitude=True)


def test_several_lines_are_not_one_frame() -> None:
    with pytest.raises(DecodeError, match="more than one line"):
        ops243.decode(b"1.2\r\n3.4\r\n")


# --- commands at connect -------------------------------------------------------------------------


def test_commands_at_connect_are_byte_exact() -> None:
    assert start_commands(units="kmh", json=False) == (
        b"\x03",
        b"UK",
        b"F1",
        b"Oj",
        b"Ou",
        b"Om",
        b"Ot",
    )
    assert start_commands(units="mps", json=True) == (
        b"\x03",
        b"UM",
        b"F2",
        b"OJ",
        b"OU",
        b"Om",
        b"Ot",
    )
    assert start_commands(units="mph", json=False)[1:3] == (b"US", b"F1")
    assert start_commands(units="fps", json=False)[1] == b"UF"
    assert start_commands(units="cmps", json=False)[1:3] == (b"UC", b"F0")
    assert start_commands(units="m", json=False)[1] == b"uM"


# --- properties ----------------------------------------------------------------------------------

_LINES = st.sampled_from([_bytes(v) for v in VALID])
_NOISE = st.binary(max_size=40)
_TEXTY = st.text(alphabet='0123456789.,-+"{}[]:\r\n abcdefjsunitpdgmhk', max_size=60).map(
    str.encode
)


@given(st.lists(st.one_of(_NOISE, _LINES, _TEXTY), max_size=12), st.data())
def test_any_bytes_in_any_chunking_give_frames_or_counted_skips(
    parts: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = ops243.StreamDecoder(magnitude=data.draw(st.booleans()))
    frames = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        frames.extend(decoder.feed(stream[start:end]))
    assert decoder.pending <= ops243.MAX_LINE
    assert decoder.stats.frames == len(frames)
    for frame in frames:
        assert all(isinstance(m.value, int | float) and m.unit for m in frame.measurements)


@given(st.binary(max_size=200))
def test_decode_of_any_bytes_gives_a_frame_or_decode_error(data: bytes) -> None:
    try:
        frame = ops243.decode(data, time=True)
    except DecodeError:
        return  # the one error a codec may raise
    assert all(isinstance(m.value, int | float) and m.unit for m in frame.measurements)


@given(st.lists(_LINES, min_size=1, max_size=5), _NOISE.filter(lambda n: b"\n" not in n))
def test_lines_after_noise_are_all_recovered(lines: list[bytes], noise: bytes) -> None:
    decoder = ops243.StreamDecoder()
    wanted = ops243.StreamDecoder().feed(b"".join(lines))
    got = decoder.feed(noise + b"\n" + b"".join(lines))
    assert got[-len(wanted) :] == wanted
