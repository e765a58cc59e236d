"""What every wire format shares: its error, the reading a hub decodes, varints, decimals, ticks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.readings import StoredReading

MAX_DECIMALS = 9
MAX_EXACT = 2**53
"""Integers up to here are exact in a float64: a scaled value must stay below it."""


MAX_MESSAGE_BYTES = 1 << 20
"""A hub refuses a message larger than this before decoding it (1 MiB: a full batch of 10,000
readings, the uplink's `batch_max_readings` limit, takes at most ~400 kB in v1)."""
MAX_READINGS = 10_000
"""The most readings a data message may hold: the uplink's largest batch."""
MAX_SERIES = 4096
"""The most series a data message or a birth may name."""
MAX_NAME_CHARS = 256
"""The longest source, quantity or unit name a hub accepts."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Epochs, sequence numbers and flags are signed 64-bit, as a hub's database stores them."""
TS_MS_MIN, TS_MS_MAX = -62_135_596_800_000, 253_402_300_799_999
"""Timestamps a hub accepts: the years 1 to 9999 (what a UTC date can show)."""


class WireError(ValueError):
    """A payload that is not a valid citygw message (of a version this decoder knows)."""


def check_size(payload: bytes) -> None:
    """WireError for a message over MAX_MESSAGE_BYTES, before anything decodes it."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {len(payload)} bytes is over the {MAX_MESSAGE_BYTES} limit")


def wire_int(value: object, what: str, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """`value` if it is an integer (not a bool) within [low, high], else WireError naming `what`."""
    if type(value) is not int:
        raise WireError(f"{what}: expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        shown = value if value.bit_length() <= 64 else f"a {value.bit_length()}-bit integer"
        raise WireError(f"{what} out of range [{low}, {high}]: {shown}")
    return value


def wire_name(value: object, what: str) -> str:
    """`value` if it is a string of at most MAX_NAME_CHARS, else WireError naming `what`."""
    if type(value) is not str or len(value) > MAX_NAME_CHARS:
        raise WireError(f"{what}: expected a string of at most {MAX_NAME_CHARS} characters")
    return value


@dataclass(frozen=True, slots=True)
class HubReading:
    """A reading as the hub sees it. `key` is the same every time this reading is re-sent."""

    gateway: str
    epoch: int
    seq: int
    ts_ms: int
    source: str
    quantity: str
    unit: str
    value: float
    clock_synced: bool

    def __post_init__(self) -> None:
        """A hub stores the key and the time as 64-bit integers and shows the time as a date:
        a decoder that let anything else through raises WireError here."""
        wire_int(self.epoch, "epoch")
        wire_int(self.seq, "sequence number")
        wire_int(self.ts_ms, "timestamp", TS_MS_MIN, TS_MS_MAX)

    @property
    def key(self) -> tuple[str, int, int]:
        """(gateway, buffer epoch, sequence): unique per reading, kept when it is re-sent."""
        return (self.gateway, self.epoch, self.seq)

    def as_json(self) -> dict[str, Any]:
        """The reading as `citygw hub tail --json` prints it."""
        return {
            "gateway": self.gateway,
            "source": self.source,
            "quantity": self.quantity,
            "value": self.value,
            "unit": self.unit,
            "ts_ms": self.ts_ms,
            "key": f"{self.gateway}/{self.epoch}/{self.seq}",
            "clock_synced": self.clock_synced,
        }


def put_uvarint(out: bytearray, n: int) -> None:
    """Append `n` >= 0 as a LEB128 varint (7 bits a byte, low bits first)."""
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def uvarint_bytes(n: int) -> bytearray:
    """`n` as a varint on its own."""
    out = bytearray()
    put_uvarint(out, n)
    return out


def read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it; WireError if truncated or over 64 bits."""
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def zigzag(n: int) -> int:
    """Signed to unsigned, small magnitudes small: 0, -1, 1, -2 -> 0, 1, 2, 3."""
    return n << 1 if n >= 0 else (-n << 1) - 1


def unzigzag(u: int) -> int:
    """The inverse of `zigzag`."""
    return (u >> 1) ^ -(u & 1)


def put_svarint(out: bytearray, n: int) -> None:
    """Append a signed 64-bit integer as a zigzag varint; ValueError beyond 64 bits."""
    if not -(2**63) <= n < 2**63:
        raise ValueError(f"integer out of range for a 64-bit varint: {n}")
    put_uvarint(out, zigzag(n))


def decimals(value: float) -> int | None:
    """Decimal places that represent `value` exactly (its shortest repr) as a scaled integer
    below 2**53, or None when only the float itself is exact (NaN, inf, -0.0, 1e-20, ...)."""
    if not math.isfinite(value) or (value == 0 and math.copysign(1.0, value) < 0):
        return None
    text = repr(value)
    if "e" in text or "E" in text:
        return 0 if value.is_integer() and abs(value) < MAX_EXACT else None
    places = len(text.partition(".")[2].rstrip("0"))
    if places > MAX_DECIMALS or abs(value) * 10**places >= MAX_EXACT:
        return None
    return places


def scaled_integer(value: float, scale: int) -> int:
    """`value` * 10**scale as the integer a decoder divides by 10**scale to get `value` back
    (`scale` at least the value's own decimals). The float product can round the wrong way
    (2**45 + 0.23 scaled by 100 gives ...22): then the exact decimal of its repr decides."""
    factor: int = 10**scale
    scaled = round(value * factor)
    if scaled / factor != value:
        from decimal import Decimal  # rarely needed: not loaded by every gateway (RSS)

        scaled = int(Decimal(repr(value)).scaleb(scale))
    return scaled


def tick_ms(batch: Sequence[StoredReading]) -> int:
    """The largest step dividing every timestamp's distance to the first (1 if all are equal)."""
    t0, tick = batch[0][1], 0
    for _, ts, *_rest in batch:
        tick = math.gcd(tick, ts - t0)
    return tick or 1
