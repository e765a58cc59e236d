"""citygw sensor nodes (firmware/): a sans-IO codec for their UART link to the gateway.

One frame on the wire (docs/node-link.md has it byte by byte):

    COBS( version=1 | type | node_id u16be | seq u16be | msgpack body | crc16 u16be ) 00

CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over everything before it. 0x00 only ever appears
as the delimiter, so a receiver resynchronises at the next 0x00 after any corruption.

    type 0x01 report   node -> gw   {"r": [[quantity, value, unit], ...], "s": {sensor: status},
                                     "up_s": uptime, "iv_s": interval}
    type 0x02 ack      node -> gw   {"ack": command seq, "cmd": name, "ok": bool, "err": str|nil}
    type 0x10 command  gw -> node   {"cmd": name, "arg": value|nil}
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import msgpack

from drivers.base import DecodeError, Measurement, StreamStats

VERSION: Final = 1
T_REPORT: Final = 0x01
T_ACK: Final = 0x02
T_COMMAND: Final = 0x10
BROADCAST: Final = 0xFFFF
HEADER_LEN: Final = 6
CRC_LEN: Final = 2
MAX_FRAME: Final = 512  # decoded bytes, header and CRC included (the node's limit too)
MAX_ENCODED: Final = MAX_FRAME + MAX_FRAME // 254 + 1
COMMANDS: Final = frozenset(("set_interval", "identify", "sleep", "wake", "reboot"))


@dataclass(frozen=True, slots=True)
class Report:
    """A node's readings of one cycle; `status` maps each sensor (and "config") to "ok",
    "asleep" or "error: ..."."""

    node_id: int
    seq: int
    measurements: tuple[Measurement, ...]
    status: tuple[tuple[str, str], ...]
    uptime_s: int
    interval_s: int
    sensors: tuple[str, ...] = ()
    """Per measurement, the node.json name of the sensor that took it ("" if not sent), so two
    sensors measuring one quantity (BME280 and SHT3x temperature) stay apart."""


@dataclass(frozen=True, slots=True)
class Ack:
    """The node's answer to the command whose seq is `command_seq`."""

    node_id: int
    seq: int
    command_seq: int
    command: str | None
    ok: bool
    error: str | None

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Empty: an ack carries no readings."""
        return ()


@dataclass(frozen=True, slots=True)
class Command:
    """A gateway -> node command (decoded for simulators and tests)."""

    node_id: int
    seq: int
    command: str
    arg: Any

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Empty: a command carries no readings."""
        return ()


Frame: TypeAlias = Report | Ack | Command


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: crc16(b"123456789") == 0x29B1.

    binascii's CRC-CCITT (XMODEM's, which starts from the given value) is this CRC from
    0xFFFF, in C: ~0.3 us a 120-byte frame where a Python loop takes ~70 us. The firmware
    keeps its own loop (MicroPython's binascii has no crc_hqx); a test keeps them equal."""
    return binascii.crc_hqx(data, crc)


def cobs_encode(data: bytes) -> bytes:
    """COBS: the result holds no 0x00 (the delimiter is not included)."""
    out = bytearray(b"\x00")
    code_at, code = 0, 1
    for byte in data:
        if byte:
            out.append(byte)
            code += 1
        if not byte or code == 0xFF:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """The bytes COBS-encoded as `data` (no delimiter); DecodeError if it is not valid COBS."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0:
            raise DecodeError("0x00 inside a COBS frame", offset=i)
        if end > n:
            raise DecodeError(f"COBS block of {code - 1} bytes runs past the end", offset=i)
        chunk = data[i + 1 : end]
        if 0 in chunk:
            raise DecodeError("0x00 inside a COBS frame", offset=i + 1 + chunk.index(0))
        out += chunk
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"{what} is {type(value).__name__}, expected str")
    return value


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise DecodeError(f"{what} is {type(value).__name__}, expected int")
    return value


def _map(body: object, what: str) -> dict[Any, Any]:
    if not isinstance(body, dict):
        raise DecodeError(f"{what} body is {type(body).__name__}, expected a map")
    return body


def _reading(item: object) -> tuple[Measurement, str]:
    if not isinstance(item, list) or len(item) not in (3, 4):
        raise DecodeError("a reading is not [quantity, value, unit(, sensor)]")
    quantity, value, unit = item[:3]
    sensor = _str(item[3], "sensor") if len(item) == 4 else ""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise DecodeError(f"reading {quantity!r} has value {value!r}, expected a finite number")
    return Measurement(_str(quantity, "quantity"), value, _str(unit, "unit")), sensor


def _report(node_id: int, seq: int, body: object) -> Report:
    m = _map(body, "report")
    readings, status = m.get("r", []), m.get("s", {})
    if not isinstance(readings, list) or not isinstance(status, dict):
        raise DecodeError("report: r must be a list and s a map")
    parsed = [_reading(item) for item in readings]
    return Report(
        node_id=node_id,
        seq=seq,
        measurements=tuple(m for m, _ in parsed),
        sensors=tuple(s for _, s in parsed) if any(s for _, s in parsed) else (),
        status=tuple((_str(k, "status key"), _str(v, "status")) for k, v in status.items()),
        uptime_s=_int(m.get("up_s", 0), "up_s"),
        interval_s=_int(m.get("iv_s", 0), "iv_s"),
    )


def _ack(node_id: int, seq: int, body: object) -> Ack:
    m = _map(body, "ack")
    cmd, err = m.get("cmd"), m.get("err")
    return Ack(
        node_id=node_id,
        seq=seq,
        command_seq=_int(m.get("ack"), "ack"),
        command=None if cmd is None else _str(cmd, "cmd"),
        ok=m.get("ok") is True,
        error=None if err is None else _str(err, "err"),
    )


def _command(node_id: int, seq: int, body: object) -> Command:
    m = _map(body, "command")
    return Command(node_id=node_id, seq=seq, command=_str(m.get("cmd"), "cmd"), arg=m.get("arg"))


_PARSERS: Final[dict[int, Callable[[int, int, object], Frame]]] = {
    T_REPORT: _report,
    T_ACK: _ack,
    T_COMMAND: _command,
}


def decode(frame: bytes) -> Frame:
    """Decode exactly one frame: the COBS bytes, with or without the trailing 0x00."""
    frame = bytes(frame)
    if frame.endswith(b"\x00"):
        frame = frame[:-1]
    if len(frame) > MAX_ENCODED:
        raise DecodeError(f"frame is {len(frame)} bytes, at most {MAX_ENCODED}", offset=0)
    raw = cobs_decode(frame)
    if len(raw) < HEADER_LEN + 1 + CRC_LEN:
        raise DecodeError(f"frame is {len(raw)} bytes after COBS, too short", offset=len(frame))
    want = crc16(raw[:-CRC_LEN])
    got = int.from_bytes(raw[-CRC_LEN:], "big")
    if got != want:
        raise DecodeError(f"CRC is 0x{got:04x}, expected 0x{want:04x}", offset=len(frame))
    if raw[0] != VERSION:
        raise DecodeError(f"link version {raw[0]}, expected {VERSION}", offset=0)
    parse = _PARSERS.get(raw[1])
    if parse is None:
        raise DecodeError(f"unknown frame type 0x{raw[1]:02x}", offset=1)
    try:
        body = msgpack.unpackb(raw[HEADER_LEN:-CRC_LEN], raw=False, strict_map_key=False)
    except Exception as e:  # msgpack raises several types for malformed input
        raise DecodeError(f"msgpack body: {e}", offset=HEADER_LEN) from None
    node_id = int.from_bytes(raw[2:4], "big")
    seq = int.from_bytes(raw[4:6], "big")
    return parse(node_id, seq, body)


class StreamDecoder:
    """Frames from a byte stream split anywhere. Never raises.

    Bytes are buffered up to the next 0x00; a run longer than a frame can be is dropped and the
    rest of it skipped until the next 0x00. `stats` counts frames, bad frames and skipped bytes.
    By default only node -> gateway frames (report, ack) are returned; `host_commands=True`
    returns only commands (for a simulated node).
    """

    __slots__ = ("_buf", "_discarding", "_types", "max_pending", "stats")

    def __init__(self, *, host_commands: bool = False) -> None:
        self._types = (Command,) if host_commands else (Report, Ack)
        self._buf = bytearray()
        self._discarding = False
        self.max_pending = MAX_ENCODED
        self.stats = StreamStats()

    @property
    def pending(self) -> int:
        """Bytes held back for an unfinished frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by `data`; a corrupt frame is dropped and counted, never raised."""
        frames: list[Frame] = []
        stats = self.stats
        parts = bytes(data).split(b"\x00")
        for k, part in enumerate(parts):
            last = k == len(parts) - 1
            if self._discarding:
                stats.skipped_bytes += len(part) + (0 if last else 1)
                if not last:
                    self._discarding = False
                continue
            self._buf += part
            if len(self._buf) > MAX_ENCODED:
                stats.bad_frames += 1
                stats.skipped_bytes += len(self._buf) + (0 if last else 1)
                self._buf.clear()
                self._discarding = last
                continue
            if last:
                break
            if not self._buf:
                stats.skipped_bytes += 1  # a delimiter with no frame before it
                continue
            try:
                frame = decode(bytes(self._buf))
            except DecodeError:
                stats.bad_frames += 1
                stats.skipped_bytes += len(self._buf) + 1
            else:
                if isinstance(frame, self._types):
                    frames.append(frame)
                    stats.frames += 1
            self._buf.clear()
        return frames


def encode(ftype: int, node_id: int, seq: int, body: object) -> bytes:
    """The wire bytes of one frame, delimiter included. ValueError if a field does not fit."""
    if not 0 <= node_id <= 0xFFFF or not 0 <= seq <= 0xFFFF or not 0 <= ftype <= 0xFF:
        raise ValueError("node_id and seq are u16, type is u8")
    raw = bytes((VERSION, ftype)) + node_id.to_bytes(2, "big") + seq.to_bytes(2, "big")
    raw += msgpack.packb(body)
    if len(raw) + CRC_LEN > MAX_FRAME:
        raise ValueError(f"frame would be {len(raw) + CRC_LEN} bytes, at most {MAX_FRAME}")
    raw += crc16(raw).to_bytes(2, "big")
    return cobs_encode(raw) + b"\x00"


def encode_command(command: str, arg: object = None, *, node_id: int, seq: int) -> bytes:
    """A command for node `node_id` (BROADCAST for every node on the line). The node answers
    with an Ack whose command_seq is `seq`. Commands: set_interval (seconds, 5..86400),
    identify (blink count), sleep / wake (sensor name, or None for all), reboot."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; known: {', '.join(sorted(COMMANDS))}")
    return encode(T_COMMAND, node_id, seq, {"cmd": command, "arg": arg})


def encode_report(report: Report) -> bytes:
    """The wire bytes of a report (for simulators and tests)."""
    body = {
        "r": [
            [m.quantity, m.value, m.unit, *([s] if s else [])]
            for m, s in zip(
                report.measurements, report.sensors or ("",) * len(report.measurements), strict=True
            )
        ],
        "s": dict(report.status),
        "up_s": report.uptime_s,
        "iv_s": report.interval_s,
    }
    return encode(T_REPORT, report.node_id, report.seq, body)
