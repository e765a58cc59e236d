"""MaxBotix MaxSonar-WR codec: shared vectors, models, no-target status, water level, stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import maxbotix
from drivers.base import DecodeError, Measurement
from drivers.maxbotix_models import MODELS

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "maxbotix.json").read_text()
)
VALID = [v for v in VECTORS if v["expect"].get("valid", True)]
INVALID = [v for v in VECTORS if not v["expect"].get("valid", True)]


def _bytes(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["hex"])


def _status(expect: dict[str, Any]) -> int:
    if expect.get("no_target"):
        return maxbotix.NO_TARGET
    if expect.get("at_min_range"):
        return maxbotix.AT_MIN
    if expect.get("at_max_range"):
        return maxbotix.AT_MAX
    return maxbotix.IN_RANGE


@pytest.mark.parametrize("vector", VALID, ids=lambda v: f"{v['model']}-{v['hex']}")
def test_vector_decodes_to_the_distance_and_status_its_source_asserts(
    vector: dict[str, Any],
) -> None:
    expect = vector["expect"]
    frame = maxbotix.decode(_bytes(vector), model=vector["model"])
    assert frame.distance_mm == expect["range_mm"]
    assert frame.status == _status(expect)
    expected = [Measurement("range_status", _status(expect), "1")]
    if expect["range_mm"] is not None:
        expected.append(Measurement("distance_mm", expect["range_mm"], "mm"))
    assert list(frame.measurements) == expected


def test_no_target_is_a_status_and_never_a_distance_or_a_level() -> None:
    frame = maxbotix.decode(b"R5000\r", model="MB7389", mount_height_mm=4000)
    assert frame.measurements == (Measurement("range_status", maxbotix.NO_TARGET, "1"),)


def test_water_level_is_the_mount_height_minus_the_distance() -> None:
    frame = maxbotix.decode(b"R3000\r", model="MB7389", mount_height_mm=4200)
    assert frame.measurements == (
        Measurement("range_status", 0, "1"),
        Measurement("distance_mm", 3000, "mm"),
        Measurement("water_level_mm", 1200, "mm"),
    )
    # water closer than the minimum: the level is a lower bound, flagged by the status
    near = maxbotix.decode(b"R0300\r", model="MB7389", mount_height_mm=4200)
    assert near.status == maxbotix.AT_MIN and near.water_level_mm == 3900


def test_xl_reads_centimetres_and_hrxl_millimetres() -> None:
    assert maxbotix.decode(b"R123\r", model="MB7060").distance_mm == 1230
    assert maxbotix.decode(b"R1230\r", model="MB7360").distance_mm == 1230


def test_wrong_digit_count_for_the_model_is_refused() -> None:
    with pytest.raises(DecodeError, match="length"):
        maxbotix.decode(b"R123\r", model="MB7389")  # an XL line on an HRXL config: 10x off
    with pytest.raises(DecodeError, match="length"):
        maxbotix.decode(b"R1234\r", model="MB7060")


def test_value_above_the_model_maximum_is_refused() -> None:
    with pytest.raises(DecodeError, match="maximum"):
        maxbotix.decode(b"R7000\r", model="MB7360")
    with pytest.raises(DecodeError, match="maximum"):
        maxbotix.decode(b"R800\r", model="MB7060")


def test_unknown_model_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="MB7389"):
        maxbotix.decode(b"R1000\r", model="MB9999")


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: v["hex"])
def test_invalid_vector_raises_decode_error_naming_the_fault(vector: dict[str, Any]) -> None:
    with pytest.raises(DecodeError, match=vector["expect"]["error"]):
        maxbotix.decode(_bytes(vector), model=vector["model"])


@pytest.mark.parametrize("vector", VALID, ids=lambda v: f"{v['model']}-{v['hex']}")
def test_vector_fed_byte_by_byte_and_with_trailing_bytes(vector: dict[str, Any]) -> None:
    wire = _bytes(vector)
    decoder = maxbotix.StreamDecoder(model=vector["model"])
    frames = [f for i in range(len(wire)) for f in decoder.feed(wire[i : i + 1])]
    assert frames == [maxbotix.decode(wire, model=vector["model"])]
    assert decoder.feed(wire + b"R1") == frames
    assert decoder.pending == 2


def test_power_up_banner_and_stray_ff_bytes_are_skipped_and_counted() -> None:
    banner = b"HRXL-MaxSonar-WRL\rPN:MB7386\rCopyright 2011-2013\rMaxBotix Inc.\r"
    banner += b"RoHS 1.8b090  0713\rTempI\r"
    decoder = maxbotix.StreamDecoder(model="MB7386")
    frames = decoder.feed(banner + b"\xffR1234\r\xff\xffR9999\r")
    assert [f.distance_mm for f in frames] == [1234, None]
    assert decoder.stats.skipped_bytes == len(banner) + 3
    assert decoder.stats.frames == 2


def test_digits_without_cr_are_a_bad_frame_and_the_next_frame_is_found() -> None:
    decoder = maxbotix.StreamDecoder(model="MB7360")
    frames = decoder.feed(b"R12345\rR0450\r")
    assert [f.distance_mm for f in frames] == [450]
    assert decoder.stats.bad_frames == 1


def test_encoders_round_trip_and_clamp_like_the_sensor() -> None:
    assert maxbotix.encode_distance(2257, model="MB7363") == b"R2257\r"
    assert maxbotix.encode_distance(100, model="MB7363") == b"R0300\r"
    assert maxbotix.encode_distance(12_000, model="MB7363") == b"R9999\r"
    assert maxbotix.encode_distance(None, model="MB7389") == b"R5000\r"
    assert maxbotix.encode_distance(9000, model="MB7060") == b"R765\r"
    assert maxbotix.encode_distance(1234, model="MB7060") == b"R123\r"


@given(st.sampled_from(sorted(MODELS)), st.binary(max_size=200), st.data())
def test_any_bytes_in_any_chunking_never_raise_and_stay_bounded(
    model: str, stream: bytes, data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    decoder = maxbotix.StreamDecoder(model=model, mount_height_mm=5000)
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        for frame in decoder.feed(stream[start:end]):
            assert all(m.unit for m in frame.measurements)
        assert decoder.pending < MODELS[model].digits + 2


@given(st.sampled_from(sorted(MODELS)), st.binary(max_size=12))
def test_decode_of_any_bytes_gives_a_frame_or_decode_error(model: str, data: bytes) -> None:
    try:
        frame = maxbotix.decode(data, model=model)
    except DecodeError:
        return  # the one error a codec may raise
    assert all(isinstance(m.value, int | float) and m.unit for m in frame.measurements)


@given(
    st.sampled_from(sorted(MODELS)),
    st.lists(st.one_of(st.none(), st.integers(0, 12_000)), min_size=1, max_size=8),
    st.binary(max_size=20).filter(lambda b: b"R" not in b),
)
def test_frames_after_noise_are_all_recovered(
    model: str, distances: list[int | None], noise: bytes
) -> None:
    wire = b"".join(maxbotix.encode_distance(d, model=model) for d in distances)
    decoder = maxbotix.StreamDecoder(model=model)
    assert len(decoder.feed(noise + wire)) == len(distances)
    assert decoder.stats.skipped_bytes == len(noise)
