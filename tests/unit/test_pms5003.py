"""PMS5003/PMS5003T codec: shared vectors, stream resynchronisation, encoders, stream properties."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from drivers import pms5003
from drivers.base import DecodeError, Measurement, StreamStats

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "pms5003.json").read_text()
)
DATA = [v for v in VECTORS if "checksum_ok" in v["expect"] and "type" not in v["expect"]]
COMMANDS = [v for v in VECTORS if v["expect"].get("type") == "command"]
INVALID = [v for v in VECTORS if not v["expect"].get("valid", True)]
WORDS = ("pm1_0_cf1", "pm2_5_cf1", "pm10_cf1", "pm1_0_atm", "pm2_5_atm", "pm10_atm")
COUNTS = ("n0_3", "n0_5", "n1_0", "n2_5")


def _bytes(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["hex"])


def _model(vector: dict[str, Any]) -> pms5003.Model:
    return "pms5003t" if vector["model"] == "PMS5003T" else "pms5003"


def _feed_all(decoder: pms5003.StreamDecoder, chunks: list[bytes]) -> list[pms5003.Frame]:
    return [frame for chunk in chunks for frame in decoder.feed(chunk)]


def _with_checksum(body: bytes) -> bytes:
    return body + (sum(body) & 0xFFFF).to_bytes(2, "big")


# --- vectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", DATA, ids=lambda v: v["hex"])
def test_vector_decodes_to_the_values_its_source_asserts(vector: dict[str, Any]) -> None:
    expect = vector["expect"]
    frame = pms5003.decode(_bytes(vector), model=_model(vector))
    for name in (*WORDS, *COUNTS):
        assert getattr(frame, name) == expect[name], name
    if _model(vector) == "pms5003t":
        assert isinstance(frame, pms5003.DataFrameT)
        assert (frame.temperature_c, frame.humidity_pct) == (
            expect["temperature"],
            expect["humidity"],
        )
    else:
        assert isinstance(frame, pms5003.DataFrame)
        assert (frame.n5_0, frame.n10) == (expect["n5_0"], expect["n10"])


def test_pms5003_frame_reports_every_measured_word_with_units() -> None:
    frame = pms5003.decode(_bytes(DATA[0]))
    assert frame.measurements == (
        Measurement("pm1_0_cf1_ugm3", 0.0, "ug/m3"),
        Measurement("pm2_5_cf1_ugm3", 8.0, "ug/m3"),
        Measurement("pm10_cf1_ugm3", 8.0, "ug/m3"),
        Measurement("pm1_0_ugm3", 0.0, "ug/m3"),
        Measurement("pm2_5_ugm3", 8.0, "ug/m3"),
        Measurement("pm10_ugm3", 8.0, "ug/m3"),
        Measurement("n0_3_per_dl", 210.0, "1/0.1L"),
        Measurement("n0_5_per_dl", 70.0, "1/0.1L"),
        Measurement("n1_0_per_dl", 45.0, "1/0.1L"),
        Measurement("n2_5_per_dl", 30.0, "1/0.1L"),
        Measurement("n5_0_per_dl", 0.0, "1/0.1L"),
        Measurement("n10_per_dl", 0.0, "1/0.1L"),
    )


def test_pms5003t_frame_reports_temperature_and_humidity_instead_of_large_counts() -> None:
    vector = next(v for v in DATA if v["model"] == "PMS5003T")
    measurements = pms5003.decode(_bytes(vector), model="pms5003t").measurements
    by_quantity = {m.quantity: m for m in measurements}
    assert len(by_quantity) == len(measurements) == 12
    assert by_quantity["temperature_c"] == Measurement("temperature_c", 21.2, "Cel")
    assert by_quantity["humidity_pct"] == Measurement("humidity_pct", 22.4, "%")
    assert by_quantity["pm2_5_ugm3"] == Measurement("pm2_5_ugm3", 34.0, "ug/m3")
    assert "n5_0_per_dl" not in by_quantity and "n10_per_dl" not in by_quantity


def test_negative_temperature_is_decoded_as_signed() -> None:
    frame = pms5003.DataFrameT(1, 2, 3, 1, 2, 3, 100, 50, 10, 1, -12.5, 80.0, 0x9700)
    wire = pms5003.encode_data(frame)
    assert wire[24:26] == (-125).to_bytes(2, "big", signed=True)
    assert pms5003.decode(wire, model="pms5003t") == frame


@pytest.mark.parametrize("vector", DATA, ids=lambda v: v["hex"])
def test_vector_fed_byte_by_byte_gives_exactly_its_frame(vector: dict[str, Any]) -> None:
    wire = _bytes(vector)
    decoder = pms5003.StreamDecoder(model=_model(vector))
    frames = _feed_all(decoder, [wire[i : i + 1] for i in range(len(wire))])
    assert frames == [pms5003.decode(wire, model=_model(vector))]
    assert decoder.stats == StreamStats(frames=1, bad_frames=0, skipped_bytes=0)
    assert decoder.pending == 0


@pytest.mark.parametrize("vector", DATA, ids=lambda v: v["hex"])
def test_vector_split_at_every_position_gives_exactly_its_frame(vector: dict[str, Any]) -> None:
    wire, model = _bytes(vector), _model(vector)
    for cut in range(len(wire) + 1):
        decoder = pms5003.StreamDecoder(model=model)
        assert _feed_all(decoder, [wire[:cut], wire[cut:]]) == [pms5003.decode(wire, model=model)]


@pytest.mark.parametrize("vector", DATA, ids=lambda v: v["hex"])
def test_vector_between_noise_is_found_and_the_noise_counted(vector: dict[str, Any]) -> None:
    before, after = b"\x00BMB\x42\x4d\x00\x04M", b"BM\x00"
    decoder = pms5003.StreamDecoder(model=_model(vector))
    frames = _feed_all(decoder, [before + _bytes(vector) + after])
    assert frames == [pms5003.decode(_bytes(vector), model=_model(vector))]
    assert decoder.stats.skipped_bytes == len(before)
    assert decoder.pending == len(after)  # a frame may still start there


@pytest.mark.parametrize("vector", DATA, ids=lambda v: v["hex"])
def test_encode_data_reproduces_every_vector_exactly(vector: dict[str, Any]) -> None:
    wire = _bytes(vector)
    assert pms5003.encode_data(pms5003.decode(wire, model=_model(vector))) == wire


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: v["hex"])
def test_invalid_vector_raises_decode_error_naming_the_fault(vector: dict[str, Any]) -> None:
    expect = vector["expect"]
    with pytest.raises(DecodeError, match=expect["error"]) as caught:
        pms5003.decode(_bytes(vector), model=_model(vector))
    assert str(expect["expected_checksum"]) in str(caught.value)
    assert caught.value.offset == 30


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: v["hex"])
def test_stream_counts_invalid_vector_as_bad_frame_and_finds_the_next(
    vector: dict[str, Any],
) -> None:
    good = _bytes(DATA[0])
    decoder = pms5003.StreamDecoder()
    assert decoder.feed(_bytes(vector) + good) == [pms5003.decode(good)]
    assert decoder.stats.bad_frames == 1


@pytest.mark.parametrize("vector", COMMANDS, ids=lambda v: v["hex"])
def test_command_vector_decodes_and_is_what_the_encoder_sends(vector: dict[str, Any]) -> None:
    expect = vector["expect"]
    command = pms5003.decode_command(_bytes(vector))
    assert command == pms5003.CommandFrame(expect["cmd"], expect["data"])
    assert command.measurements == ()
    assert pms5003.encode_command(command) == _bytes(vector)


@pytest.mark.parametrize("vector", COMMANDS, ids=lambda v: v["hex"])
def test_command_stream_split_at_every_position_gives_the_command(vector: dict[str, Any]) -> None:
    wire = _bytes(vector)
    for cut in range(len(wire) + 1):
        decoder = pms5003.StreamDecoder(host_commands=True)
        assert _feed_all(decoder, [wire[:cut], wire[cut:]]) == [pms5003.decode_command(wire)]


def test_command_encoders_send_the_documented_bytes() -> None:
    assert pms5003.cmd_read().hex() == "424de200000171"
    assert pms5003.cmd_wake().hex() == "424de400010174"
    assert pms5003.decode_command(pms5003.cmd_passive()) == pms5003.CommandFrame(0xE1, 0)
    assert pms5003.decode_command(pms5003.cmd_active()) == pms5003.CommandFrame(0xE1, 1)
    assert pms5003.decode_command(pms5003.cmd_sleep()) == pms5003.CommandFrame(0xE4, 0)


# --- rejects -------------------------------------------------------------------------------------

GOOD = bytes.fromhex("424d001c00000008000800000008000800d20046002d001e00000000970002c5")

REJECTS = {
    "empty": (b"", 0),
    "too short": (GOOD[:31], 31),
    "too long": (GOOD + b"\x00", 32),
    "wrong head": (b"BN" + GOOD[2:], 0),
    "length field not 28": (_with_checksum(GOOD[:2] + b"\x00\x1d" + GOOD[4:30]), 2),
    "bad checksum": (GOOD[:31] + b"\xc6", 30),
    "a command": (pms5003.cmd_read(), 7),
}


@pytest.mark.parametrize(("wire", "offset"), REJECTS.values(), ids=REJECTS.keys())
def test_decode_rejects_malformed_frame_with_offset(wire: bytes, offset: int) -> None:
    with pytest.raises(DecodeError) as caught:
        pms5003.decode(wire)
    assert caught.value.offset == offset


COMMAND_REJECTS = {
    "unknown command": (_with_checksum(b"BM\xe3\x00\x00"), 2),
    "bad checksum": (b"BM\xe2\x00\x00\x01\x72", 5),
    "wrong head": (b"MB" + pms5003.cmd_read()[2:], 0),
    "too short": (pms5003.cmd_read()[:6], 6),
}


@pytest.mark.parametrize(("wire", "offset"), COMMAND_REJECTS.values(), ids=COMMAND_REJECTS.keys())
def test_decode_command_rejects_malformed_command_with_offset(wire: bytes, offset: int) -> None:
    with pytest.raises(DecodeError) as caught:
        pms5003.decode_command(wire)
    assert caught.value.offset == offset


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="pms5003t"):
        pms5003.StreamDecoder(model="pms9003")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model"):
        pms5003.decode(GOOD, model="sds011")  # type: ignore[arg-type]


def test_acknowledgement_frames_are_skipped_without_counting_as_bad() -> None:
    # Some PMS7003 firmware answers a command with an 8-byte frame whose length field is 4.
    ack = bytes.fromhex("424d0004e1000174")
    decoder = pms5003.StreamDecoder()
    assert decoder.feed(ack + GOOD + ack) == [pms5003.decode(GOOD)]
    assert decoder.stats.bad_frames == 0
    assert decoder.stats.skipped_bytes == 2 * len(ack)


def test_megabyte_of_noise_leaves_less_than_a_frame_pending() -> None:
    decoder = pms5003.StreamDecoder()
    assert decoder.feed(bytes(range(256)) * 4096) == []
    assert decoder.pending <= decoder.max_pending == pms5003.FRAME_LEN - 1


def test_encode_data_refuses_words_that_do_not_fit() -> None:
    too_big = pms5003.DataFrame(70000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="does not fit"):
        pms5003.encode_data(too_big)
    too_hot = pms5003.DataFrameT(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4000.0, 0.0, 0)
    with pytest.raises(ValueError, match="does not fit"):
        pms5003.encode_data(too_hot)


# --- properties ----------------------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
frames = st.builds(pms5003.DataFrame, *[u16] * 13)
frames_t = st.builds(
    pms5003.DataFrameT,
    *[u16] * 10,
    st.integers(-0x8000, 0x7FFF).map(lambda raw: raw / 10),
    u16.map(lambda raw: raw / 10),
    u16,
)
noise = st.lists(
    st.one_of(
        st.binary(max_size=34),
        st.sampled_from([b"B", b"M", b"BM", b"BM\x00", b"BM\x00\x1c", b"BM\xe2", b"BBM"]),
        frames.map(pms5003.encode_data).flatmap(lambda w: st.integers(1, 31).map(lambda n: w[:n])),
    ),
    max_size=8,
).map(b"".join)


def _chunks(data: st.DataObject, wire: bytes) -> list[bytes]:
    """`wire` cut at up to 12 drawn positions (empty chunks included)."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    return [wire[a:b] for a, b in itertools.pairwise([0, *cuts, len(wire)])]


@given(st.one_of(frames, frames_t))
def test_encode_then_decode_gives_the_same_frame(frame: pms5003.DataFrame) -> None:
    model: pms5003.Model = "pms5003" if isinstance(frame, pms5003.DataFrame) else "pms5003t"
    assert pms5003.decode(pms5003.encode_data(frame), model=model) == frame


@given(st.sampled_from([0xE1, 0xE2, 0xE4]), u16)
def test_encode_then_decode_command_gives_the_same_command(command: int, data: int) -> None:
    frame = pms5003.CommandFrame(command, data)
    assert pms5003.decode_command(pms5003.encode_command(frame)) == frame


@given(st.data(), st.lists(st.one_of(noise, frames.map(pms5003.encode_data))), st.booleans())
def test_any_bytes_in_any_chunking_never_raise_and_account_for_every_byte(
    data: st.DataObject, pieces: list[bytes], host_commands: bool
) -> None:
    wire = b"".join(pieces)
    decoder = pms5003.StreamDecoder(host_commands=host_commands)
    frame_len = pms5003.COMMAND_LEN if host_commands else pms5003.FRAME_LEN
    decoded = []
    for chunk in _chunks(data, wire):
        decoded += decoder.feed(chunk)
        assert decoder.pending <= decoder.max_pending
    stats = decoder.stats
    assert stats.frames == len(decoded)
    assert len(wire) == stats.frames * frame_len + stats.skipped_bytes + decoder.pending


def _valid_frame_starts_at(wire: bytes, start: int) -> bool:
    try:
        pms5003.decode(wire[start : start + pms5003.FRAME_LEN])
    except DecodeError:
        return False
    return True


@given(st.data(), st.lists(st.tuples(noise, frames), max_size=5), noise)
def test_frames_between_noise_are_all_recovered_unless_noise_forms_a_frame(
    data: st.DataObject, pairs: list[tuple[bytes, pms5003.DataFrame]], tail: bytes
) -> None:
    wire, noise_positions = b"", list[int]()
    for gap, frame in pairs:
        noise_positions += range(len(wire), len(wire) + len(gap))
        wire += gap + pms5003.encode_data(frame)
    noise_positions += range(len(wire), len(wire) + len(tail))
    wire += tail
    # A valid frame may start in the noise and overlap a real one (a real stream can do that
    # too); then that frame is what the decoder must return, so such inputs prove nothing here.
    assume(not any(_valid_frame_starts_at(wire, p) for p in noise_positions))
    decoder = pms5003.StreamDecoder()
    assert _feed_all(decoder, _chunks(data, wire)) == [frame for _, frame in pairs]
