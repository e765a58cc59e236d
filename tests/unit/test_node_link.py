"""drivers/node.py: the gateway side of the node UART link (COBS + CRC-16 + msgpack)."""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import get_driver, node, serial_drivers
from drivers.base import DecodeError, Measurement

FIRMWARE_LINK = Path(__file__).resolve().parents[2] / "firmware" / "link.py"


def _firmware_crc16() -> Callable[[bytes], int]:
    """The node's own crc16, lifted out of firmware/link.py (which imports MicroPython-only
    modules) and run on CPython."""
    tree = ast.parse(FIRMWARE_LINK.read_text())
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "crc16"]
    namespace: dict[str, Callable[[bytes], int]] = {}
    exec(compile(ast.Module([function], []), str(FIRMWARE_LINK), "exec"), namespace)
    return namespace["crc16"]


FIRMWARE_CRC16 = _firmware_crc16()

REPORT = node.Report(
    node_id=17,
    seq=513,
    measurements=(Measurement("temperature_c", 21.5, "Cel"), Measurement("pm10_ugm3", 7, "ug/m3")),
    status=(("bme280", "ok"), ("sds011", "error: no frame from sensor")),
    uptime_s=3600,
    interval_s=60,
)


@given(st.binary(max_size=node.MAX_FRAME))
def test_the_gateway_crc_equals_the_firmwares_on_any_bytes(data: bytes) -> None:
    assert node.crc16(data) == FIRMWARE_CRC16(data)


def test_crc_and_cobs_reference_values() -> None:
    assert node.crc16(b"123456789") == 0x29B1
    assert node.cobs_encode(b"") == b"\x01"
    assert node.cobs_encode(b"\x00") == b"\x01\x01"
    assert node.cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert node.cobs_encode(bytes(range(1, 255))) == b"\xff" + bytes(range(1, 255)) + b"\x01"
    for data in (b"", b"\x00", b"\x00\x00", bytes(range(256)) * 3):
        assert node.cobs_decode(node.cobs_encode(data)) == data


def test_report_round_trip_and_exact_layout() -> None:
    wire = node.encode_report(REPORT)
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    raw = node.cobs_decode(wire[:-1])
    assert raw[:6] == bytes((1, node.T_REPORT, 0, 17, 2, 1))
    assert int.from_bytes(raw[-2:], "big") == node.crc16(raw[:-2])
    assert node.decode(wire) == REPORT
    assert node.decode(wire[:-1]) == REPORT


def test_stream_whole_byte_by_byte_and_with_noise() -> None:
    wire = node.encode_report(REPORT) + node.encode(
        node.T_ACK, 17, 514, {"ack": 9, "cmd": "reboot", "ok": True, "err": None}
    )
    whole = node.StreamDecoder().feed(wire)
    assert [type(f) for f in whole] == [node.Report, node.Ack]
    dec = node.StreamDecoder()
    single = [f for b in wire for f in dec.feed(bytes((b,)))]
    assert single == whole
    dec = node.StreamDecoder()
    noisy = dec.feed(b"\x13\x37garbage\x00" + wire[:10] + b"\xff\x00" + wire + b"\x05\x01")
    assert noisy == whole
    assert dec.stats.bad_frames == 2 and dec.stats.frames == 2 and dec.pending == 2


def test_corrupted_frame_is_counted_and_the_next_one_decodes() -> None:
    wire = bytearray(node.encode_report(REPORT))
    wire[8] ^= 0x01
    dec = node.StreamDecoder()
    assert dec.feed(bytes(wire) + node.encode_report(REPORT)) == [REPORT]
    assert dec.stats.bad_frames == 1


def test_buffer_is_bounded_without_delimiters() -> None:
    dec = node.StreamDecoder()
    for _ in range(100):
        assert dec.feed(b"\x55" * 100) == []
        assert dec.pending <= dec.max_pending
    assert dec.feed(b"\x00" + node.encode_report(REPORT)) == [REPORT]
    assert dec.stats.bad_frames == 1


def test_commands_only_for_a_simulated_node() -> None:
    cmd = node.encode_command("set_interval", 30, node_id=17, seq=5)
    assert node.StreamDecoder().feed(cmd) == []
    (frame,) = node.StreamDecoder(host_commands=True).feed(cmd)
    assert frame == node.Command(node_id=17, seq=5, command="set_interval", arg=30)
    with pytest.raises(ValueError, match="unknown command"):
        node.encode_command("selfdestruct", node_id=1, seq=1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"r": [["t", "hot", "Cel"]]}, "expected a finite number"),
        ({"r": [["t", 1]]}, "not \\[quantity, value, unit"),
        ([1, 2], "expected a map"),
        ({"r": [], "up_s": "x"}, "up_s is str"),
    ],
)
def test_malformed_bodies_raise_decode_error(body: object, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        node.decode(node.encode(node.T_REPORT, 1, 1, body))


def test_registered_as_a_serial_driver() -> None:
    assert "node" in serial_drivers()
    assert get_driver("node").decode_one(node.encode_report(REPORT)) == REPORT.measurements


@given(st.binary(max_size=2000))
def test_any_bytes_never_raise(data: bytes) -> None:
    dec = node.StreamDecoder()
    dec.feed(data)
    assert dec.pending <= dec.max_pending
    with contextlib.suppress(DecodeError):
        node.decode(data)


def test_sensor_names_ride_along_and_keep_same_quantities_apart() -> None:
    report = node.Report(
        node_id=17,
        seq=1,
        measurements=(
            Measurement("temperature_c", 21.5, "Cel"),
            Measurement("temperature_c", 21.25, "Cel"),
        ),
        status=(("bme280", "ok"), ("sht3x", "ok")),
        uptime_s=1,
        interval_s=60,
        sensors=("bme280", "sht3x"),
    )
    (decoded,) = get_driver("node").new_stream().feed(node.encode_report(report))  # type: ignore[misc]
    assert decoded == report
    assert node.decode(node.encode_report(REPORT)).sensors == ()  # type: ignore[union-attr]
