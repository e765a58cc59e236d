"""Eastron SDM120 / SDM630 energy meters: a sans-IO codec for their Modbus RTU input registers.

The gateway reads input registers with function 04 (drivers/README.md, "Eastron"):

    request, 8 bytes:    slave | 04 | start register u16be | register count u16be | CRC
    response, 5 + 2n:    slave | 04 | byte count n | n data bytes | CRC
    exception, 5 bytes:  slave | 84 | exception code | CRC

CRC is CRC-16/MODBUS (init FFFF, reflected polynomial A001), sent low byte first. Each value is
an IEEE 754 float32 in two registers, most significant register first. A response does not say
which registers it carries: it only means something with its request (`slave`,
`start_register`, `count`). Registers the map does not list read as 0 and are skipped.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from drivers.base import DecodeError, Measurement

READ_INPUT_REGISTERS: Final = 0x04
EXCEPTION_BIT: Final = 0x80
MAX_REGISTERS: Final = 80
"""The most registers (40 values) an Eastron meter returns for one request."""
MIN_ADDRESS: Final = 1
MAX_ADDRESS: Final = 247
REQUEST_LEN: Final = 8
EXCEPTION_LEN: Final = 5

EXCEPTION_CODES: Final = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "slave device failure",
    5: "slave device failure",  # Eastron's table numbers it 05; standard Modbus 04
}

Model: TypeAlias = Literal["sdm120", "sdm630"]
ErrorKind: TypeAlias = Literal["crc", "length", "exception", "mismatch", "function", "value"]


@dataclass(frozen=True, slots=True)
class Register:
    """One float32 input register pair of a meter's map: its start address and what it holds."""

    address: int
    quantity: str
    unit: str


def _phases(address: int, quantity: str, unit: str) -> tuple[Register, ...]:
    """The three per-phase registers L1, L2, L3 at address, +2, +4 (the SDM630's layout)."""
    base, _, suffix = quantity.rpartition("_") if unit != "1" else (quantity, "", "")
    return tuple(
        Register(address + 2 * i, f"{base}_l{i + 1}{'_' + suffix if suffix else ''}", unit)
        for i in range(3)
    )


# Units are UCUM-style: V.A is volt-ampere, var the reactive power unit (not in UCUM), 1 a ratio.
_ENERGY: Final = (
    Register(0x0046, "frequency_hz", "Hz"),
    Register(0x0048, "energy_import_kwh", "kW.h"),
    Register(0x004A, "energy_export_kwh", "kW.h"),
    Register(0x004C, "energy_reactive_import_kvarh", "kvar.h"),
    Register(0x004E, "energy_reactive_export_kvarh", "kvar.h"),
    Register(0x0156, "energy_total_kwh", "kW.h"),
)
REGISTERS: Final[dict[str, tuple[Register, ...]]] = {
    "sdm120": (
        Register(0x0000, "voltage_v", "V"),
        Register(0x0006, "current_a", "A"),
        Register(0x000C, "power_w", "W"),
        Register(0x0012, "apparent_power_va", "V.A"),
        Register(0x0018, "reactive_power_var", "var"),
        Register(0x001E, "power_factor", "1"),  # sign: + capacitive, - inductive
        *_ENERGY,
    ),
    "sdm630": (
        *_phases(0x0000, "voltage_v", "V"),  # line to neutral
        *_phases(0x0006, "current_a", "A"),
        *_phases(0x000C, "power_w", "W"),
        *_phases(0x0012, "apparent_power_va", "V.A"),
        *_phases(0x0018, "reactive_power_var", "var"),
        *_phases(0x001E, "power_factor", "1"),
        Register(0x0034, "power_total_w", "W"),
        Register(0x0038, "apparent_power_total_va", "V.A"),
        Register(0x003C, "reactive_power_total_var", "var"),
        Register(0x003E, "power_factor_total", "1"),
        *_ENERGY,
    ),
}
"""Each model's input register map (Eastron's protocol documents; drivers/README.md)."""

MODELS: Final = tuple(REGISTERS)


class ModbusError(DecodeError):
    """Bytes that are not the answer to the request. `kind` says why: a bad CRC, a cut or
    overlong frame, an exception response (`code` set), another slave's or request's answer, a
    function other than 04, or a value that is not a finite number."""

    def __init__(
        self, message: str, *, kind: ErrorKind, offset: int | None = None, code: int | None = None
    ) -> None:
        super().__init__(message, offset=offset)
        self.kind = kind
        self.code = code


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """A function 04 request, as the gateway sends it; carries no readings."""

    slave: int
    start_register: int
    count: int

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Empty: a request carries no readings."""
        return ()


@dataclass(frozen=True, slots=True)
class ReadResponse:
    """The answer to a ReadRequest: every mapped register the request covered, decoded."""

    slave: int
    start_register: int
    count: int
    measurements: tuple[Measurement, ...]


Frame: TypeAlias = ReadRequest | ReadResponse


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS: crc16(b"123456789") == 0x4B37. On the wire low byte first:
    `crc16(frame).to_bytes(2, "little")`. (binascii.crc_hqx is CRC-16/CCITT, another CRC.)"""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def _check_crc(frame: bytes) -> None:
    want = crc16(frame[:-2])
    got = int.from_bytes(frame[-2:], "little")
    if got != want:
        raise ModbusError(
            f"CRC {frame[-2:].hex()} on the wire, computed {want.to_bytes(2, 'little').hex()}",
            kind="crc",
            offset=len(frame) - 2,
        )


def _expected_len(frame: bytes, *, request_ok: bool) -> int:
    """The length of the frame that starts at frame[0] (at least 4 bytes given), from its
    function and byte count."""
    function = frame[1]
    if function == READ_INPUT_REGISTERS | EXCEPTION_BIT:
        return EXCEPTION_LEN
    if function != READ_INPUT_REGISTERS:
        raise ModbusError(
            f"function 0x{function:02x}: only 04 (read input registers) is read",
            kind="function",
            offset=1,
        )
    if request_ok and len(frame) == REQUEST_LEN:
        return REQUEST_LEN  # a response is 5 + 2n bytes: never 8
    return 5 + frame[2]


def _frame_at(buf: bytes, i: int, *, request_ok: bool = False) -> bytes:
    """The whole frame starting at buf[i] (function and length checked, CRC not yet); with
    `request_ok`, 8 bytes of function 04 are a request (else the start of a response)."""
    if len(buf) - i < 4:
        raise ModbusError(
            f"frame is {len(buf) - i} bytes, too short", kind="length", offset=len(buf)
        )
    length = _expected_len(buf[i:], request_ok=request_ok)
    if len(buf) - i < length:
        raise ModbusError(
            f"frame ends inside the data: {length} bytes expected, {len(buf) - i} given",
            kind="length",
            offset=len(buf),
        )
    return buf[i : i + length]


def _measurements(
    data: bytes, model: str, start_register: int, count: int
) -> tuple[Measurement, ...]:
    """The mapped registers that `start_register`..+count covers, from the response's data."""
    end = start_register + count
    out = []
    for register in REGISTERS[model]:
        if start_register <= register.address and register.address + 2 <= end:
            offset = 2 * (register.address - start_register)
            raw = data[offset : offset + 4]
            (value,) = _FLOAT.unpack(raw)
            if not math.isfinite(value):
                raise ModbusError(
                    f"register 0x{register.address:04x} ({register.quantity}) is {value}",
                    kind="value",
                    offset=3 + offset,
                )
            out.append(Measurement(register.quantity, _shortest(value, raw), register.unit))
    return tuple(out)


_FLOAT: Final = struct.Struct(">f")


def _shortest(value: float, raw: bytes) -> float:
    """The shortest decimal that is the same float32 (230.2, not 230.20001220703125): what
    the meter meant, and fewer digits on the wire. Nine significant digits always suffice."""
    if not value:
        return value
    places = 5 - math.floor(math.log10(abs(value)))  # 6 significant digits
    for extra in range(3):  # round() is ~2x cheaper than formatting and parsing
        candidate = round(value, places + extra)
        if _FLOAT.pack(candidate) == raw:
            return candidate
    return value


def _check_model(model: str) -> None:
    if model not in REGISTERS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")


def _response(frame: bytes, request: ReadRequest, model: str) -> ReadResponse:
    """A CRC-checked response frame as the answer to `request`."""
    if frame[0] != request.slave:
        raise ModbusError(
            f"answer from slave {frame[0]}, the request went to {request.slave}",
            kind="mismatch",
            offset=0,
        )
    if frame[1] & EXCEPTION_BIT:
        code = frame[2]
        name = EXCEPTION_CODES.get(code, "unknown code")
        raise ModbusError(
            f"Modbus exception response: function 0x{frame[1]:02x}, code {code:02d} {name}",
            kind="exception",
            offset=2,
            code=code,
        )
    if frame[2] != 2 * request.count:
        raise ModbusError(
            f"byte count {frame[2]}, the request asked for {request.count} registers "
            f"({2 * request.count} bytes)",
            kind="mismatch",
            offset=2,
        )
    data = frame[3:-2]
    measurements = _measurements(data, model, request.start_register, request.count)
    return ReadResponse(request.slave, request.start_register, request.count, measurements)


def decode(
    frame: bytes,
    *,
    model: str = "sdm120",
    slave: int | None = None,
    start_register: int | None = None,
    count: int | None = None,
) -> Frame:
    """Decode exactly one frame: a request (8 bytes) or the response to the request that
    `slave`, `start_register` and `count` describe (`slave` and `count` default to what the
    frame says). Raises ModbusError (a DecodeError) for anything else, exceptions included."""
    _check_model(model)
    frame = bytes(frame)
    whole = _frame_at(frame, 0, request_ok=True)
    if len(whole) != len(frame):
        raise ModbusError(
            f"{len(frame) - len(whole)} bytes after the end of the frame",
            kind="length",
            offset=len(whole),
        )
    _check_crc(frame)
    if len(frame) == REQUEST_LEN:
        first, number = struct.unpack_from(">HH", frame, 2)
        return ReadRequest(frame[0], first, number)
    if start_register is None and not frame[1] & EXCEPTION_BIT:
        raise ModbusError(
            "a response only means something with its request: give start_register "
            "(and count and slave)",
            kind="mismatch",
        )
    request = ReadRequest(
        frame[0] if slave is None else slave,
        start_register or 0,
        frame[2] // 2 if count is None else count,
    )
    return _response(frame, request, model)


def read_response(buf: bytes, request: ReadRequest, *, model: str) -> ReadResponse:
    """The answer to `request` in what the bus returned, which may start with stray bytes (bus
    turnaround): the first CRC-valid frame from `request.slave` counts. ModbusError if there is
    none, with the reason of the first candidate (CRC, cut, exception) or that nothing came."""
    _check_model(model)
    buf = bytes(buf)
    first_error: ModbusError | None = None
    start = 0
    while (i := buf.find(bytes((request.slave,)), start)) >= 0:
        start = i + 1
        try:
            frame = _frame_at(buf, i)
            _check_crc(frame)
        except ModbusError as error:
            first_error = first_error or error
            continue
        return _response(frame, request, model)
    if first_error is not None:
        raise first_error
    raise ModbusError(
        f"no answer from slave {request.slave} in {len(buf)} bytes", kind="length", offset=0
    )


def encode_request(slave: int, start_register: int, count: int) -> bytes:
    """The 8-byte function 04 request; ValueError if a field is out of range."""
    if not MIN_ADDRESS <= slave <= MAX_ADDRESS:
        raise ValueError(f"slave must be {MIN_ADDRESS}..{MAX_ADDRESS}, got {slave}")
    if not 0 <= start_register <= 0xFFFF or not 1 <= count <= MAX_REGISTERS:
        raise ValueError(f"start_register 0..65535 and count 1..{MAX_REGISTERS}")
    return _with_crc(struct.pack(">BBHH", slave, READ_INPUT_REGISTERS, start_register, count))


def encode_response(slave: int, registers: Sequence[int]) -> bytes:
    """A function 04 response carrying `registers` (16-bit values)."""
    data = struct.pack(f">{len(registers)}H", *registers)
    return _with_crc(bytes((slave, READ_INPUT_REGISTERS, len(data))) + data)


def encode_exception(slave: int, code: int) -> bytes:
    """A 5-byte exception response to a function 04 request."""
    return _with_crc(bytes((slave, READ_INPUT_REGISTERS | EXCEPTION_BIT, code)))


def float_registers(value: float) -> tuple[int, int]:
    """The two registers that carry `value` as float32, most significant first."""
    high, low = struct.unpack(">HH", _FLOAT.pack(value))
    return high, low


def _with_crc(frame: bytes) -> bytes:
    return frame + crc16(frame).to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class Block:
    """One request's worth of registers: `count` registers from `start_register`."""

    start_register: int
    count: int


def blocks(model: str, *, max_gap: int = 24) -> tuple[Block, ...]:
    """The requests that read every register of the model's map: neighbours joined while the
    block stays within MAX_REGISTERS and the unmapped gap (read as 0, on the wire for
    nothing) is at most `max_gap` registers. Few requests: each costs a bus turnaround."""
    _check_model(model)
    out: list[Block] = []
    for register in sorted(REGISTERS[model], key=lambda r: r.address):
        end = register.address + 2
        if out:
            last = out[-1]
            gap = register.address - (last.start_register + last.count)
            if gap <= max_gap and end - last.start_register <= MAX_REGISTERS:
                out[-1] = Block(last.start_register, end - last.start_register)
                continue
        out.append(Block(register.address, 2))
    return tuple(out)
