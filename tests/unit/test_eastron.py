"""Eastron SDM120/SDM630 over Modbus RTU: the shared vectors whole, cut and behind noise, the
CRC against pymodbus's, exception responses, and any bytes giving readings or the decode error."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import DecodeError, get_driver
from drivers.eastron import (
    MAX_REGISTERS,
    MODELS,
    REGISTERS,
    ModbusError,
    ReadRequest,
    ReadResponse,
    blocks,
    crc16,
    decode,
    encode_exception,
    encode_request,
    encode_response,
    float_registers,
    read_response,
)

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "eastron_sdm.json").read_text()
)
REQUEST_KEYS = {"type", "slave", "function", "start_register", "count", "crc_ok"}
ERROR_KEYS = {"valid", "error", "why", "exception_function", "exception_code"}


def _model(vector: dict[str, Any]) -> str:
    return str(vector["model"]).lower()


def _request(expect: dict[str, Any]) -> ReadRequest:
    return ReadRequest(expect["slave"], expect["start_register"], expect["count"])


RESPONSES = [
    v for v in VECTORS if v["expect"].get("valid", True) and v["expect"].get("type") != "command"
]
REQUESTS = [v for v in VECTORS if v["expect"].get("type") == "command"]
INVALID = [v for v in VECTORS if not v["expect"].get("valid", True)]


def test_the_vector_file_has_every_kind_of_frame() -> None:
    assert len(RESPONSES) >= 14 and len(REQUESTS) == 3
    assert {v["expect"]["error"] for v in INVALID} == {"exception", "crc", "length"}
    assert {_model(v) for v in VECTORS} == set(MODELS)


@pytest.mark.parametrize("vector", RESPONSES, ids=lambda v: v["hex"])
def test_each_response_vector_decodes_to_exactly_its_values_and_units(
    vector: dict[str, Any],
) -> None:
    expect = vector["expect"]
    frame = decode(
        bytes.fromhex(vector["hex"]),
        model=_model(vector),
        slave=expect["slave"],
        start_register=expect["start_register"],
        count=expect["count"],
    )
    assert isinstance(frame, ReadResponse)
    values = {k: v for k, v in expect.items() if k not in REQUEST_KEYS}
    got = {m.quantity: m.value for m in frame.measurements}
    assert set(got) == set(values)
    # vectors round the float32 to 4 decimals, the driver gives the shortest decimal of the
    # float32: they agree within 4 decimals or one float32 step (2**-23 relative)
    for quantity, value in values.items():
        assert math.isclose(got[quantity], value, rel_tol=1.2e-7, abs_tol=5e-5), quantity
    units = {register.quantity: register.unit for register in REGISTERS[_model(vector)]}
    assert all(m.unit == units[m.quantity] for m in frame.measurements)


def test_values_are_the_shortest_decimal_of_their_float32() -> None:
    frame = decode(bytes.fromhex("01040445c2d666913e"), model="sdm630", start_register=52)
    assert [(m.quantity, m.value, m.unit) for m in frame.measurements] == [
        ("power_total_w", 6234.8, "W")
    ]
    energy = decode(bytes.fromhex("010404449a522533e0"), model="sdm120", start_register=72)
    assert [(m.quantity, m.value, m.unit) for m in energy.measurements] == [
        ("energy_import_kwh", 1234.567, "kW.h")
    ]


@pytest.mark.parametrize("vector", RESPONSES, ids=lambda v: v["hex"])
def test_a_response_fed_byte_by_byte_is_incomplete_until_its_last_byte(
    vector: dict[str, Any],
) -> None:
    wire = bytes.fromhex(vector["hex"])
    request = _request(vector["expect"])
    whole = read_response(wire, request, model=_model(vector))
    for cut in range(len(wire)):
        with pytest.raises(ModbusError) as error:
            read_response(wire[:cut], request, model=_model(vector))
        assert error.value.kind == "length"
    assert read_response(wire, request, model=_model(vector)) == whole


@pytest.mark.parametrize("vector", RESPONSES, ids=lambda v: v["hex"])
def test_a_response_behind_stray_bytes_of_bus_turnaround_is_still_found(
    vector: dict[str, Any],
) -> None:
    wire = bytes.fromhex(vector["hex"])
    request = _request(vector["expect"])
    whole = read_response(wire, request, model=_model(vector))
    for noise in (b"\x00", b"\xff\xff", bytes((request.slave,)), bytes((request.slave, 4, 2))):
        assert read_response(noise + wire, request, model=_model(vector)) == whole


@pytest.mark.parametrize("vector", REQUESTS, ids=lambda v: v["hex"])
def test_request_vectors_decode_as_requests_and_encode_back_byte_exact(
    vector: dict[str, Any],
) -> None:
    expect = vector["expect"]
    wire = bytes.fromhex(vector["hex"])
    assert decode(wire, model=_model(vector)) == _request(expect)
    assert decode(wire, model=_model(vector)).measurements == ()
    assert encode_request(expect["slave"], expect["start_register"], expect["count"]) == wire


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: v["expect"]["error"])
def test_invalid_vectors_raise_the_decode_error_of_their_kind(vector: dict[str, Any]) -> None:
    expect = vector["expect"]
    wire = bytes.fromhex(vector["hex"])
    for attempt in (
        lambda: decode(wire, model=_model(vector), start_register=expect["start_register"]),
        lambda: read_response(wire, _request(expect), model=_model(vector)),
    ):
        with pytest.raises(DecodeError) as error:
            attempt()
        assert isinstance(error.value, ModbusError)
        assert error.value.kind == expect["error"]
        if expect["error"] == "exception":
            assert error.value.code == expect["exception_code"]
            assert "illegal data address" in str(error.value)


def test_modbus_crc_is_crc16_modbus_sent_low_byte_first() -> None:
    assert crc16(b"123456789") == 0x4B37  # the CRC catalogue's check value
    assert crc16(bytes.fromhex("010400000002")).to_bytes(2, "little") == bytes.fromhex("71cb")


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_crc_agrees_with_pymodbus_table_driven_crc(data: bytes) -> None:
    from pymodbus.framer.rtu import FramerRTU

    assert crc16(data).to_bytes(2, "little") == FramerRTU.compute_CRC(data).to_bytes(2, "big")


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 0x0B])
def test_every_exception_response_is_the_decode_error_with_its_code(code: int) -> None:
    wire = encode_exception(7, code)
    assert len(wire) == 5 and wire[1] == 0x84
    with pytest.raises(ModbusError) as error:
        read_response(wire, ReadRequest(7, 0, 2), model="sdm120")
    assert (error.value.kind, error.value.code) == ("exception", code)
    with pytest.raises(ModbusError):
        get_driver("sdm120").decode_frame(wire, slave=7, start_register=0, count=2)


def test_an_answer_from_another_slave_or_of_another_size_is_a_mismatch() -> None:
    wire = bytes.fromhex("010404436633341b38")
    with pytest.raises(ModbusError) as error:
        decode(wire, slave=2, start_register=0)
    assert error.value.kind == "mismatch"
    with pytest.raises(ModbusError) as error:
        decode(wire, start_register=0, count=4)
    assert error.value.kind == "mismatch" and "byte count 4" in str(error.value)
    with pytest.raises(ModbusError) as error:
        read_response(wire, ReadRequest(2, 0, 2), model="sdm120")
    assert "no answer from slave 2" in str(error.value)


def test_a_response_without_its_request_says_what_is_missing() -> None:
    with pytest.raises(ModbusError, match="give start_register"):
        decode(bytes.fromhex("010404436633341b38"))


def test_another_function_and_trailing_bytes_are_refused() -> None:
    with pytest.raises(ModbusError) as error:
        decode(bytes.fromhex("0103000000020bc4"))
    assert error.value.kind == "function"
    with pytest.raises(ModbusError) as error:
        decode(bytes.fromhex("010404436633341b3800"), start_register=0)
    assert error.value.kind == "length"


def test_a_value_that_is_not_a_finite_number_is_refused() -> None:
    wire = encode_response(1, float_registers(float("nan")))
    with pytest.raises(ModbusError) as error:
        decode(wire, start_register=0)
    assert error.value.kind == "value"


@pytest.mark.parametrize("model", MODELS)
def test_blocks_read_every_register_of_the_map_in_few_legal_requests(model: str) -> None:
    found = blocks(model)
    assert len(found) <= 3
    for block in found:
        assert block.start_register % 2 == 0 and block.count % 2 == 0
        assert 2 <= block.count <= MAX_REGISTERS
    covered = {
        r.quantity
        for r in REGISTERS[model]
        for b in found
        if b.start_register <= r.address < b.start_register + b.count
    }
    assert covered == {r.quantity for r in REGISTERS[model]}


@pytest.mark.parametrize("model", MODELS)
def test_encoded_responses_of_every_block_decode_back_to_their_values(model: str) -> None:
    for block in blocks(model):
        registers = [0] * block.count
        expected = {}
        for index, register in enumerate(REGISTERS[model]):
            offset = register.address - block.start_register
            if 0 <= offset < block.count:
                value = float(index * 10 + 1) / 4
                registers[offset : offset + 2] = float_registers(value)
                expected[register.quantity] = value
        wire = encode_response(9, registers)
        response = read_response(
            wire, ReadRequest(9, block.start_register, block.count), model=model
        )
        assert {m.quantity: m.value for m in response.measurements} == expected


def test_sdm630_has_every_quantity_per_phase_and_the_totals() -> None:
    quantities = {r.quantity for r in REGISTERS["sdm630"]}
    for base in ("voltage_l{}_v", "current_l{}_a", "power_l{}_w", "power_factor_l{}"):
        assert {base.format(phase) for phase in (1, 2, 3)} <= quantities
    assert {"power_total_w", "frequency_hz", "energy_import_kwh", "energy_total_kwh"} <= quantities


@settings(max_examples=500)
@given(
    st.binary(max_size=120),
    st.integers(1, 247),
    st.integers(0, 400),
    st.integers(1, 80),
    st.sampled_from(MODELS),
)
def test_any_bytes_give_a_frame_or_the_decode_error(
    data: bytes, slave: int, start: int, count: int, model: str
) -> None:
    for attempt in (
        lambda: decode(data, model=model, slave=slave, start_register=start, count=count),
        lambda: decode(data, model=model),
        lambda: read_response(data, ReadRequest(slave, start, count), model=model),
    ):
        try:
            frame = attempt()
        except DecodeError:
            continue
        assert all(isinstance(m.value, float) for m in frame.measurements)


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 8))
def test_any_noise_around_a_valid_answer_still_gives_the_answer_or_the_decode_error(
    noise: bytes, split: int
) -> None:
    wire = bytes.fromhex("010404436633341b38")
    request = ReadRequest(1, 0, 2)
    try:
        response = read_response(noise[:split] + wire + noise[split:], request, model="sdm120")
    except DecodeError:
        return
    assert response.slave == 1 and len(response.measurements) == 1


def test_citygw_decode_takes_the_request_as_set_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gateway.cli import main

    hex_ = "010404436633341b38"
    assert main(["decode", "sdm120", hex_, "--set", "slave=1", "start_register=0", "count=2"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record == {
        "driver": "sdm120",
        "quantity": "voltage_v",
        "value": 230.20001,
        "unit": "V",
        "slave": 1,
    }
    assert (
        main(["decode", "sdm630", "0104084248147b4678059a9894", "--set", "start_register=70"]) == 0
    )
    units = [json.loads(line)["unit"] for line in capsys.readouterr().out.splitlines()]
    assert units == ["Hz", "kW.h"]
    assert main(["decode", "sdm120", "018402c2c1"]) == 1
    assert "code 02 illegal data address" in capsys.readouterr().err
    assert main(["decode", "sdm120", hex_, "--set", "units=kmh"]) == 2
    assert "not an option of sdm120 (its options: slave, start_register, count)" in (
        capsys.readouterr().err
    )
    assert main(["decode", "sdm120", hex_, "--set", "count=two"]) == 2
    assert "count: expected an integer 1..125, got 'two'" in capsys.readouterr().err
    assert main(["decode", "sdm120", hex_, "--set", "slave=0"]) == 2
    assert "slave: expected an integer 1..247" in capsys.readouterr().err
    assert main(["decode", "sds011", "aac0d4043a0aa1601dab", "--set", "slave=1"]) == 2
    assert "not an option of sds011 (its options: none)" in capsys.readouterr().err
