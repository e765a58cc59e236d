"""Nova Fitness SDS011 particulate sensor: a sans-IO codec for its UART frames (9600 8N1).

Frame layouts (offsets from the head byte; "dN" is data byte N as the datasheet counts them):

    sensor -> host, 10 bytes:  AA | cmd | d1 d2 d3 d4 d5 d6 | sum(d1..d6) & 0xFF | AB
      cmd C0 (measurement):    d1-2 PM2.5 u16le x0.1 ug/m3, d3-4 PM10 u16le x0.1 ug/m3, d5-6 id
      cmd C5 (reply):          d1 sub-command, d2 0=query 1=set, d3 value, d4 reserved, d5-6 id
                               (firmware reply, sub-command 07: d2 d3 d4 = year, month, day)
    host -> sensor, 19 bytes:  AA | B4 | d1 sub-command | d2..d13 | d14-15 id | sum(d1..d15) | AB

The device id is the two id bytes in wire order: `A1 60` is 0xA160. 0xFFFF addresses every sensor.
0xAB may occur inside the data, so frames are found by head, length and checksum, never by tail.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from drivers import framing
from drivers.base import DecodeError, Measurement, StreamStats

HEAD: Final = 0xAA
TAIL: Final = 0xAB
CMD_DATA: Final = 0xC0
CMD_REPLY: Final = 0xC5
CMD_HOST: Final = 0xB4
SENSOR_FRAME_LEN: Final = 10
HOST_FRAME_LEN: Final = 19
BROADCAST_ID: Final = 0xFFFF

# Sub-commands (d1 of B4 commands and C5 replies).
REPORTING_MODE: Final = 0x02  # value 0 = active (streams ~1 frame/s), 1 = query (passive)
QUERY_DATA: Final = 0x04  # the sensor answers with a C0 frame
SET_DEVICE_ID: Final = 0x05  # new id in d12-13 of the command
SLEEP_WORK: Final = 0x06  # value 0 = sleep (fan and laser off), 1 = work
FIRMWARE: Final = 0x07  # reply carries year, month, day
WORKING_PERIOD: Final = 0x08  # value n = 0..30 minutes, 0 = continuous
MAX_WORKING_PERIOD_MIN: Final = 30

Operation: TypeAlias = Literal["query", "set"]
_OPERATIONS: Final[tuple[Operation, Operation]] = ("query", "set")
_UNIT: Final = "ug/m3"
_MAX_RAW_PM: Final = 9999  # 999.9 ug/m3 in units of 0.1

_DATA = struct.Struct("<2xHHBB2x")  # C0: PM2.5, PM10, id high byte, id low byte
_REPLY = struct.Struct("<2xBBB1sBB2x")  # C5: sub-command, op, value, reserved, id high, id low
_FIRMWARE = struct.Struct("<2xB3sBB2x")  # C5 sub 07: sub-command, year+month+day, id high, low
_COMMAND = struct.Struct("<2xB12sBB2x")  # B4: sub-command, d2..d13, id high, id low


@dataclass(frozen=True, slots=True)
class DataFrame:
    """A C0 measurement."""

    pm2_5_ugm3: float
    pm10_ugm3: float
    device_id: int

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """PM2.5 and PM10 in ug/m3."""
        return (
            Measurement("pm2_5_ugm3", self.pm2_5_ugm3, _UNIT),
            Measurement("pm10_ugm3", self.pm10_ugm3, _UNIT),
        )


@dataclass(frozen=True, slots=True)
class ReplyFrame:
    """A C5 reply to a command. For the firmware reply (sub-command 07) `operation` is "query",
    `value` is 0 and `extra` holds year, month, day; otherwise `extra` is the reserved byte d4."""

    sub_command: int
    operation: Operation
    value: int
    extra: bytes
    device_id: int

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Empty: a reply carries no readings."""
        return ()

    @property
    def firmware(self) -> tuple[int, int, int] | None:
        """(year, month, day) of a firmware reply as sent (15 is 2015); None for other replies."""
        if self.sub_command != FIRMWARE:
            return None
        year, month, day = self.extra
        return year, month, day


@dataclass(frozen=True, slots=True)
class CommandFrame:
    """A host -> sensor B4 command. `data` is d2..d13 (12 bytes)."""

    sub_command: int
    data: bytes
    device_id: int

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Empty: a command carries no readings."""
        return ()

    @property
    def operation(self) -> Operation:
        """ "set" or "query", from the first data byte."""
        return "set" if self.data[0] else "query"

    @property
    def value(self) -> int:
        """The value set (mode, sleep/work, period), from the second data byte."""
        return self.data[1]

    @property
    def new_device_id(self) -> int:
        """The id a SET_DEVICE_ID command assigns (d12-13)."""
        return self.data[10] << 8 | self.data[11]


Frame: TypeAlias = DataFrame | ReplyFrame | CommandFrame


def _parse_data(buf: bytes, i: int) -> Frame:
    pm2_5, pm10, id_hi, id_lo = _DATA.unpack_from(buf, i)
    return DataFrame(pm2_5 / 10, pm10 / 10, id_hi << 8 | id_lo)


def _parse_reply(buf: bytes, i: int) -> Frame:
    if buf[i + 2] == FIRMWARE:
        sub, ymd, id_hi, id_lo = _FIRMWARE.unpack_from(buf, i)
        return ReplyFrame(sub, "query", 0, ymd, id_hi << 8 | id_lo)
    sub, op, value, reserved, id_hi, id_lo = _REPLY.unpack_from(buf, i)
    if op > 1:
        raise DecodeError(f"reply operation byte is {op}, expected 0 (query) or 1 (set)", offset=3)
    return ReplyFrame(sub, _OPERATIONS[op], value, reserved, id_hi << 8 | id_lo)


def _parse_command(buf: bytes, i: int) -> Frame:
    sub, data, id_hi, id_lo = _COMMAND.unpack_from(buf, i)
    return CommandFrame(sub, data, id_hi << 8 | id_lo)


@dataclass(frozen=True, slots=True)
class _Kind:
    length: int
    parse: Callable[[bytes, int], Frame]


_KINDS: Final = {
    CMD_DATA: _Kind(SENSOR_FRAME_LEN, _parse_data),
    CMD_REPLY: _Kind(SENSOR_FRAME_LEN, _parse_reply),
    CMD_HOST: _Kind(HOST_FRAME_LEN, _parse_command),
}
_HEAD_BYTES: Final = bytes((HEAD,))
_SENSOR_KINDS: Final = {cmd: _KINDS[cmd] for cmd in (CMD_DATA, CMD_REPLY)}
_HOST_KINDS: Final = {CMD_HOST: _KINDS[CMD_HOST]}


def _decode_at(buf: bytes, i: int, kind: _Kind) -> Frame:
    """Decode the frame at buf[i:], whose head and command id are known and whose length fits."""
    end = i + kind.length
    if buf[end - 1] != TAIL:
        raise DecodeError(f"tail is 0x{buf[end - 1]:02x}, expected 0xab", offset=kind.length - 1)
    want = sum(buf[i + 2 : end - 2]) & 0xFF
    if buf[end - 2] != want:
        raise DecodeError(
            f"checksum is 0x{buf[end - 2]:02x}, expected 0x{want:02x}", offset=kind.length - 2
        )
    return kind.parse(buf, i)


def decode(frame: bytes) -> Frame:
    """Decode exactly one frame (sensor -> host or host -> sensor); raise DecodeError if invalid."""
    frame = bytes(frame)
    if len(frame) < 2:
        raise DecodeError(f"frame is {len(frame)} bytes, too short", offset=len(frame))
    if frame[0] != HEAD:
        raise DecodeError(f"head is 0x{frame[0]:02x}, expected 0xaa", offset=0)
    kind = _KINDS.get(frame[1])
    if kind is None:
        raise DecodeError(f"unknown command id 0x{frame[1]:02x}", offset=1)
    if len(frame) != kind.length:
        raise DecodeError(
            f"frame is {len(frame)} bytes, a 0x{frame[1]:02x} frame has {kind.length}",
            offset=min(len(frame), kind.length),
        )
    return _decode_at(frame, 0, kind)


class StreamDecoder:
    """Frames from a byte stream split anywhere, with noise between frames. Never raises.

    By default it decodes what a sensor sends (C0, C5); `host_commands=True` decodes the B4
    commands a host sends (for the simulator). At most one frame length minus one byte stays
    pending between calls; `stats` counts frames, frame-shaped garbage and skipped bytes.
    """

    __slots__ = ("_buf", "_kinds", "max_pending", "stats")

    def __init__(self, *, host_commands: bool = False) -> None:
        self._kinds = _HOST_KINDS if host_commands else _SENSOR_KINDS
        self._buf = b""
        self.max_pending = max(kind.length for kind in self._kinds.values()) - 1
        self.stats = StreamStats()

    @property
    def pending(self) -> int:
        """Bytes buffered while waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by `data`; garbage is skipped and counted, never raised."""
        buf = self._buf + data
        kinds = self._kinds

        def probe(b: bytes, i: int) -> int:
            if len(b) - i < 2:
                return framing.NEED_MORE
            kind = kinds.get(b[i + 1])
            return framing.NOT_A_FRAME if kind is None else kind.length

        frames, used = framing.scan(
            buf, _HEAD_BYTES, probe, lambda b, i: _decode_at(b, i, kinds[b[i + 1]]), self.stats
        )
        self._buf = buf[used:]
        return frames


def _check_range(name: str, value: int, high: int) -> int:
    if not 0 <= value <= high:
        raise ValueError(f"{name} must be 0..{high}, got {value}")
    return value


def _sensor_frame(cmd: int, data: bytes) -> bytes:
    return bytes((HEAD, cmd)) + data + bytes((sum(data) & 0xFF, TAIL))


def _id_bytes(device_id: int) -> bytes:
    return _check_range("device_id", device_id, 0xFFFF).to_bytes(2, "big")


def encode(frame: Frame) -> bytes:
    """The wire bytes of a frame; the inverse of `decode`. ValueError if a field does not fit."""
    if isinstance(frame, DataFrame):
        return encode_data(frame.pm2_5_ugm3, frame.pm10_ugm3, device_id=frame.device_id)
    if isinstance(frame, ReplyFrame):
        return encode_reply(
            frame.sub_command,
            frame.operation,
            frame.value,
            device_id=frame.device_id,
            extra=frame.extra,
        )
    return _command(frame.sub_command, frame.data, device_id=frame.device_id)


def _raw_pm(name: str, ugm3: float) -> int:
    if math.isnan(ugm3):
        raise ValueError(f"{name} is NaN")
    return round(min(max(ugm3, 0.0), _MAX_RAW_PM / 10) * 10)


def encode_data(pm2_5_ugm3: float, pm10_ugm3: float, *, device_id: int) -> bytes:
    """A 10-byte C0 frame; values are clamped to 0..999.9 and rounded to 0.1 ug/m3."""
    pm2_5 = _raw_pm("pm2_5_ugm3", pm2_5_ugm3)
    pm10 = _raw_pm("pm10_ugm3", pm10_ugm3)
    return _sensor_frame(CMD_DATA, struct.pack("<HH", pm2_5, pm10) + _id_bytes(device_id))


def encode_reply(
    sub_command: int,
    operation: Operation,
    value: int,
    *,
    device_id: int,
    extra: bytes = b"\x00",
) -> bytes:
    """A 10-byte C5 reply. For FIRMWARE: operation "query", value 0, extra = year, month, day."""
    _check_range("sub_command", sub_command, 0xFF)
    if sub_command == FIRMWARE:
        if operation != "query" or value != 0 or len(extra) != 3:
            raise ValueError("a firmware reply is query, value 0, extra = (year, month, day)")
        body = extra
    else:
        if len(extra) != 1:
            raise ValueError(f"extra is the one reserved byte, got {len(extra)} bytes")
        body = bytes((_OPERATIONS.index(operation), _check_range("value", value, 0xFF))) + extra
    return _sensor_frame(CMD_REPLY, bytes((sub_command,)) + body + _id_bytes(device_id))


def _command(sub_command: int, data: bytes = b"", *, device_id: int) -> bytes:
    if len(data) > 12:
        raise ValueError(f"a command carries at most 12 data bytes, got {len(data)}")
    body = bytes((_check_range("sub_command", sub_command, 0xFF),)) + data.ljust(12, b"\x00")
    body += _id_bytes(device_id)
    return bytes((HEAD, CMD_HOST)) + body + bytes((sum(body) & 0xFF, TAIL))


def cmd_query(*, device_id: int = BROADCAST_ID) -> bytes:
    """Ask for one measurement (the answer is a C0 frame); the way to poll in query mode."""
    return _command(QUERY_DATA, device_id=device_id)


def cmd_get_setting(sub_command: int, *, device_id: int = BROADCAST_ID) -> bytes:
    """Query REPORTING_MODE, SLEEP_WORK or WORKING_PERIOD; the sensor answers with a C5 reply."""
    if sub_command not in (REPORTING_MODE, SLEEP_WORK, WORKING_PERIOD):
        raise ValueError(f"sub-command 0x{sub_command:02x} is not a setting")
    return _command(sub_command, b"\x00", device_id=device_id)


def cmd_set_sleep(sleep: bool, *, device_id: int = BROADCAST_ID) -> bytes:
    """Sleep (fan and laser off) or work."""
    return _command(SLEEP_WORK, bytes((1, 0 if sleep else 1)), device_id=device_id)


def cmd_set_working_period(minutes: int, *, device_id: int = BROADCAST_ID) -> bytes:
    """Measure once every `minutes` (1..30) and idle in between; 0 is continuous."""
    _check_range("minutes", minutes, MAX_WORKING_PERIOD_MIN)
    return _command(WORKING_PERIOD, bytes((1, minutes)), device_id=device_id)


def cmd_set_reporting_mode(query_mode: bool, *, device_id: int = BROADCAST_ID) -> bytes:
    """Query mode (answers cmd_query only) or active mode (streams about one frame a second)."""
    return _command(REPORTING_MODE, bytes((1, int(query_mode))), device_id=device_id)


def cmd_set_device_id(new_id: int, *, device_id: int = BROADCAST_ID) -> bytes:
    """Give the addressed sensor a new id."""
    return _command(SET_DEVICE_ID, bytes(10) + _id_bytes(new_id), device_id=device_id)


def cmd_firmware(*, device_id: int = BROADCAST_ID) -> bytes:
    """Ask for the firmware date."""
    return _command(FIRMWARE, device_id=device_id)
