"""A small msgpack encoder for what a node sends: None, bool, int, float, str, bytes, list, dict.

Byte-compatible with CPython's `msgpack.packb(value)` with its defaults (use_bin_type=True,
use_single_float=False): every int takes the smallest msgpack form, str is UTF-8 in the str
family, bytes in the bin family, tuples go out as arrays, maps have sorted keys (below).

Floats are always float64 (0xcb), as packb sends them. On boards whose MicroPython floats are
single precision (ESP32, RP2) the float32 value is widened exactly, so nothing is lost; the
gateway reads a Python float either way. Anything else raises TypeError; an int beyond 64 bits
raises ValueError.

Maps go out with their keys sorted: MicroPython's dict does not keep insertion order, so sorting
is what makes the bytes reproducible. They equal packb's for a dict built in sorted key order.
"""

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _head(out: bytearray, small: int, limit: int, size: int, c8: int, c16: int, c32: int) -> None:
    """A length header: the fix form (small | size) below `limit`, else 8/16/32-bit forms."""
    if size < limit:
        out.append(small | size)
    elif c8 and size < 0x100:
        out.append(c8)
        out.append(size)
    elif size < 0x10000:
        out.append(c16)
        out.extend(struct.pack(">H", size))
    else:
        out.append(c32)
        out.extend(struct.pack(">I", size))


def _int(out: bytearray, v: int) -> None:
    if 0 <= v < 0x80 or -32 <= v < 0:
        out.append(v & 0xFF)
    elif v >= 0:
        if v < 0x100:
            out.append(0xCC)
            out.append(v)
        elif v < 0x10000:
            out.extend(b"\xcd" + struct.pack(">H", v))
        elif v < 0x100000000:
            out.extend(b"\xce" + struct.pack(">I", v))
        elif v < 0x10000000000000000:
            out.extend(b"\xcf" + struct.pack(">II", v >> 32, v & 0xFFFFFFFF))
        else:
            raise ValueError("int too big for msgpack")
    elif v >= -0x80:
        out.extend(b"\xd0" + struct.pack(">b", v))
    elif v >= -0x8000:
        out.extend(b"\xd1" + struct.pack(">h", v))
    elif v >= -0x80000000:
        out.extend(b"\xd2" + struct.pack(">i", v))
    elif v >= -0x8000000000000000:
        v += 0x10000000000000000  # two's complement in 64 bits
        out.extend(b"\xd3" + struct.pack(">II", v >> 32, v & 0xFFFFFFFF))
    else:
        raise ValueError("int too small for msgpack")


def pack_into(out: bytearray, obj: "Any") -> None:
    """Append the msgpack encoding of `obj` to `out`."""
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        _int(out, obj)
    elif isinstance(obj, float):
        out.append(0xCB)
        out.extend(struct.pack(">d", obj))
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        _head(out, 0xA0, 32, len(data), 0xD9, 0xDA, 0xDB)
        out.extend(data)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _head(out, 0xC4, 0, len(obj), 0xC4, 0xC5, 0xC6)
        out.extend(obj)
    elif isinstance(obj, (list, tuple)):
        _head(out, 0x90, 16, len(obj), 0, 0xDC, 0xDD)
        for item in obj:
            pack_into(out, item)
    elif isinstance(obj, dict):
        _head(out, 0x80, 16, len(obj), 0, 0xDE, 0xDF)
        try:
            keys = sorted(obj)
        except TypeError:  # keys of mixed types: no order to agree on
            keys = list(obj)
        for key in keys:
            pack_into(out, key)
            pack_into(out, obj[key])
    else:
        raise TypeError("msgpack: cannot encode " + type(obj).__name__)


def packb(obj: "Any") -> bytes:
    """The msgpack encoding of `obj`."""
    out = bytearray()
    pack_into(out, obj)
    return bytes(out)
