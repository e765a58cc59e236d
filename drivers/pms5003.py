"""Plantower PMS5003 / PMS7003 (and the PMS5003T variant): a sans-IO codec for their UART frames.

Data frame, 32 bytes, all fields big-endian (9600 8N1):

    42 4D | length u16 = 28 | 13 words u16 | checksum u16 = sum of bytes 0..29 & 0xFFFF

    word  PMS5003 / PMS7003              PMS5003T
    1-3   PM1.0, PM2.5, PM10 CF=1 ug/m3  same
    4-6   PM1.0, PM2.5, PM10 atmospheric same (the ones to report for ambient air)
    7-10  particles >0.3, >0.5, >1.0, >2.5 um per 0.1 L
    11    particles >5.0 um per 0.1 L    temperature x10 degC, signed
    12    particles >10 um per 0.1 L     relative humidity x10 %
    13    reserved (version, error code)

Host command, 7 bytes: 42 4D | command | data u16 | checksum u16 = sum of bytes 0..4.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import Final, Literal, TypeAlias

from drivers import framing
from drivers.base import DecodeError, Measurement, StreamStats

HEAD: Final = b"BM"
FRAME_LEN: Final = 32
LENGTH_FIELD: Final = 28  # 13 words + checksum
COMMAND_LEN: Final = 7

CMD_MODE: Final = 0xE1  # data 0 = passive, 1 = active (streams)
CMD_READ: Final = 0xE2  # data 0: send one frame in passive mode
CMD_SLEEP: Final = 0xE4  # data 0 = sleep, 1 = wake
COMMANDS: Final = frozenset((CMD_MODE, CMD_READ, CMD_SLEEP))

Model: TypeAlias = Literal["pms5003", "pms5003t"]
MODELS: Final[tuple[Model, ...]] = ("pms5003", "pms5003t")

_LAYOUTS: Final[dict[Model, struct.Struct]] = {
    "pms5003": struct.Struct(">2sH13HH"),  # head, length, 13 words, checksum
    "pms5003t": struct.Struct(">2sH10HhHHH"),  # word 11 (temperature) is signed
}
_COMMAND = struct.Struct(">2sBHH")  # head, command, data, checksum
_PM: Final = "ug/m3"
_COUNT: Final = "1/0.1L"

# (field, quantity, unit) of each measured word, in wire order.
_PM_FIELDS: Final = (
    ("pm1_0_cf1", "pm1_0_cf1_ugm3", _PM),
    ("pm2_5_cf1", "pm2_5_cf1_ugm3", _PM),
    ("pm10_cf1", "pm10_cf1_ugm3", _PM),
    ("pm1_0_atm", "pm1_0_ugm3", _PM),
    ("pm2_5_atm", "pm2_5_ugm3", _PM),
    ("pm10_atm", "pm10_ugm3", _PM),
    ("n0_3", "n0_3_per_dl", _COUNT),
    ("n0_5", "n0_5_per_dl", _COUNT),
    ("n1_0", "n1_0_per_dl", _COUNT),
    ("n2_5", "n2_5_per_dl", _COUNT),
)
_FIELDS: Final = (*_PM_FIELDS, ("n5_0", "n5_0_per_dl", _COUNT), ("n10", "n10_per_dl", _COUNT))
_FIELDS_T: Final = (
    *_PM_FIELDS,
    ("temperature_c", "temperature_c", "Cel"),
    ("humidity_pct", "humidity_pct", "%"),
)


@dataclass(frozen=True, slots=True)
class DataFrame:
    """A PMS5003 / PMS7003 data frame: the 13 words as sent."""

    pm1_0_cf1: int
    pm2_5_cf1: int
    pm10_cf1: int
    pm1_0_atm: int
    pm2_5_atm: int
    pm10_atm: int
    n0_3: int
    n0_5: int
    n1_0: int
    n2_5: int
    n5_0: int
    n10: int
    reserved: int

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """All 12 data words: PM (CF=1 and atmospheric) and particle counts."""
        return tuple(Measurement(q, float(getattr(self, f)), unit) for f, q, unit in _FIELDS)


@dataclass(frozen=True, slots=True)
class DataFrameT:
    """A PMS5003T data frame: words 11 and 12 carry temperature and humidity instead of counts."""

    pm1_0_cf1: int
    pm2_5_cf1: int
    pm10_cf1: int
    pm1_0_atm: int
    pm2_5_atm: int
    pm10_atm: int
    n0_3: int
    n0_5: int
    n1_0: int
    n2_5: int
    temperature_c: float
    humidity_pct: float
    reserved: int

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """PM (CF=1 and atmospheric), four particle counts, temperature and humidity."""
        return tuple(Measurement(q, float(getattr(self, f)), unit) for f, q, unit in _FIELDS_T)


@dataclass(frozen=True, slots=True)
class CommandFrame:
    """A host -> sensor command."""

    command: int
    data: int

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Empty: a command carries no readings."""
        return ()


Frame: TypeAlias = DataFrame | DataFrameT | CommandFrame


def _check_model(model: str) -> Model:
    for known in MODELS:
        if model == known:
            return known
    raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")


def _decode_data_at(buf: bytes, i: int, model: Model) -> DataFrame | DataFrameT:
    """Decode buf[i:i+32], whose head is known to be 42 4D."""
    _, length, *words, checksum = _LAYOUTS[model].unpack_from(buf, i)
    if length != LENGTH_FIELD:
        raise DecodeError(f"length field is {length}, expected {LENGTH_FIELD}", offset=2)
    want = sum(buf[i : i + FRAME_LEN - 2]) & 0xFFFF
    if checksum != want:
        raise DecodeError(f"checksum is {checksum}, expected {want}", offset=FRAME_LEN - 2)
    if model == "pms5003":
        return DataFrame(*words)
    scaled = (*words[:10], words[10] / 10, words[11] / 10, words[12])  # temperature, RH x10
    return DataFrameT(*scaled)


def _decode_command_at(buf: bytes, i: int) -> CommandFrame:
    """Decode buf[i:i+7], whose head is known to be 42 4D."""
    _, command, data, checksum = _COMMAND.unpack_from(buf, i)
    if command not in COMMANDS:
        raise DecodeError(f"unknown command 0x{command:02x}", offset=2)
    want = sum(buf[i : i + COMMAND_LEN - 2])
    if checksum != want:
        raise DecodeError(f"checksum is {checksum}, expected {want}", offset=COMMAND_LEN - 2)
    return CommandFrame(command, data)


def _check_framing(frame: bytes, length: int) -> None:
    if len(frame) != length:
        message = f"frame is {len(frame)} bytes, expected {length}"
        raise DecodeError(message, offset=min(len(frame), length))
    if frame[:2] != HEAD:
        raise DecodeError(f"head is {frame[:2].hex(' ')}, expected 42 4d", offset=0)


def decode(frame: bytes, *, model: Model = "pms5003") -> DataFrame | DataFrameT:
    """Decode exactly one 32-byte data frame; raise DecodeError if it is not one."""
    model = _check_model(model)
    frame = bytes(frame)
    _check_framing(frame, FRAME_LEN)
    return _decode_data_at(frame, 0, model)


def decode_command(frame: bytes) -> CommandFrame:
    """Decode exactly one 7-byte host command; raise DecodeError if it is not one."""
    frame = bytes(frame)
    _check_framing(frame, COMMAND_LEN)
    return _decode_command_at(frame, 0)


class StreamDecoder:
    """Frames from a byte stream split anywhere, with noise between frames. Never raises.

    By default it decodes data frames of `model`; `host_commands=True` decodes host commands
    instead (for the simulator). At most one frame length minus one byte stays pending between
    calls; `stats` counts frames, frame-shaped garbage and skipped bytes.
    """

    __slots__ = ("_buf", "_commands", "_model", "max_pending", "stats")

    def __init__(self, *, model: Model = "pms5003", host_commands: bool = False) -> None:
        self._model = _check_model(model)
        self._commands = host_commands
        self._buf = b""
        self.max_pending = (COMMAND_LEN if host_commands else FRAME_LEN) - 1
        self.stats = StreamStats()

    @property
    def pending(self) -> int:
        """Bytes buffered while waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by `data`; command acks skipped, garbage counted; never raises."""
        buf = self._buf + data
        model = self._model
        length = COMMAND_LEN if self._commands else FRAME_LEN

        def probe(b: bytes, i: int) -> int:
            if len(b) - i < 4:
                return framing.NEED_MORE
            return length if self._plausible(b, i) else framing.NOT_A_FRAME

        decode_at: Callable[[bytes, int], Frame] = (
            _decode_command_at if self._commands else lambda b, i: _decode_data_at(b, i, model)
        )
        frames, used = framing.scan(buf, HEAD, probe, decode_at, self.stats)
        self._buf = buf[used:]
        return frames

    def _plausible(self, buf: bytes, i: int) -> bool:
        """Whether the 4 bytes at buf[i] can start a frame of the kind this decoder wants."""
        if self._commands:
            return buf[i + 2] in COMMANDS
        return buf[i + 2] == 0 and buf[i + 3] == LENGTH_FIELD


def encode_data(frame: DataFrame | DataFrameT) -> bytes:
    """The 32 wire bytes of a data frame (for the simulator); ValueError if a word does not fit."""
    if isinstance(frame, DataFrame):
        model: Model = "pms5003"
        words: tuple[int, ...] = astuple(frame)
    else:
        model = "pms5003t"
        temperature, humidity = round(frame.temperature_c * 10), round(frame.humidity_pct * 10)
        words = (*astuple(frame)[:10], temperature, humidity, frame.reserved)
    try:
        body = _LAYOUTS[model].pack(HEAD, LENGTH_FIELD, *words, 0)[:-2]
    except struct.error as exc:
        raise ValueError(f"{frame!r} does not fit the frame: {exc}") from None
    return body + (sum(body) & 0xFFFF).to_bytes(2, "big")


def _command(command: int, data: int = 0) -> bytes:
    body = struct.pack(">2sBH", HEAD, command, data)
    return body + sum(body).to_bytes(2, "big")


def encode_command(frame: CommandFrame) -> bytes:
    """The 7 wire bytes of a host command."""
    return _command(frame.command, frame.data)


def cmd_passive() -> bytes:
    """Passive mode: the sensor sends a frame only when asked with cmd_read()."""
    return _command(CMD_MODE, 0)


def cmd_active() -> bytes:
    """Active mode (the default): the sensor streams frames."""
    return _command(CMD_MODE, 1)


def cmd_read() -> bytes:
    """Ask for one frame in passive mode."""
    return _command(CMD_READ, 0)


def cmd_sleep() -> bytes:
    """Sleep: fan off, no frames."""
    return _command(CMD_SLEEP, 0)


def cmd_wake() -> bytes:
    """Wake from sleep (the fan needs about 30 s before readings are stable)."""
    return _command(CMD_SLEEP, 1)
