"""The node's UART link to the gateway: COBS frames with a 0x00 delimiter and CRC-16/CCITT.

One frame on the wire (docs/node-link.md has the byte-by-byte layout):

    COBS( version | type | node_id u16be | seq u16be | msgpack body | crc16 u16be ) 00

CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR) over everything
before the CRC. Types: 0x01 report (node -> gateway), 0x02 ack (node -> gateway),
0x10 command (gateway -> node). The node only decodes commands; bad frames are dropped.
`Link(uart)` is the link on a UART the caller opened (hal.uart); the rest is pure.
"""

from micropython import const

import msgpack_enc

VERSION = const(1)
T_REPORT = const(0x01)
T_ACK = const(0x02)
T_COMMAND = const(0x10)
MAX_FRAME = const(512)  # decoded bytes, CRC included

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE; crc16(b"123456789") == 0x29B1."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


def cobs_encode(data: bytes) -> bytes:
    """Consistent-overhead byte stuffing: the result has no 0x00 byte."""
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


def cobs_decode(data: bytes) -> "bytes | None":
    """The bytes COBS-encoded as `data` (no delimiter), or None if `data` is not valid COBS."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            return None
        chunk = data[i + 1 : end]
        if 0 in chunk:
            return None
        out.extend(chunk)
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def frame(ftype: int, node_id: int, seq: int, body: "Any") -> bytes:
    """The wire bytes of one frame, delimiter included."""
    raw = bytearray((VERSION, ftype, node_id >> 8, node_id & 0xFF, seq >> 8 & 0xFF, seq & 0xFF))
    msgpack_enc.pack_into(raw, body)
    crc = crc16(raw)
    raw.append(crc >> 8)
    raw.append(crc & 0xFF)
    return cobs_encode(raw) + b"\x00"


def parse(encoded: bytes) -> "tuple[int, int, int, bytes] | None":
    """(type, node_id, seq, msgpack body) of one frame without its delimiter; None if bad."""
    raw = cobs_decode(encoded)
    if raw is None or len(raw) < 9 or raw[0] != VERSION:
        return None
    if crc16(raw[:-2]) != raw[-2] << 8 | raw[-1]:
        return None
    return raw[1], raw[2] << 8 | raw[3], raw[4] << 8 | raw[5], raw[6:-2]


class FrameReader:
    """Splits bytes from the UART into frames at 0x00; drops frames longer than MAX_FRAME."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.bad = 0

    def feed(self, data: bytes) -> "list[tuple[int, int, int, bytes]]":
        frames = []
        for byte in data:
            if byte:
                if len(self._buf) <= MAX_FRAME + 4:
                    self._buf.append(byte)
                continue
            if self._buf:
                got = parse(bytes(self._buf)) if len(self._buf) <= MAX_FRAME + 4 else None
                if got is None:
                    self.bad += 1
                else:
                    frames.append(got)
                self._buf = bytearray()
        return frames


class Link:
    """The link on `uart` (anything with write(bytes) and read() -> bytes or None): frames out,
    commands in."""

    def __init__(self, uart: "Any") -> None:
        self.uart = uart
        self.reader = FrameReader()

    def send(self, ftype: int, node_id: int, seq: int, body: "Any") -> None:
        self.uart.write(frame(ftype, node_id, seq, body))

    def receive(self) -> "list[tuple[int, int, int, bytes]]":
        """The frames received since the last call; bad ones are dropped (counted in .reader)."""
        data = self.uart.read()
        return self.reader.feed(data) if data else []
