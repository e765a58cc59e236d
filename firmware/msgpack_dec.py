"""A small msgpack decoder for the gateway's commands: nil, bool, int, float, str, bin, array, map.

Raises ValueError on anything else or on truncated input.
"""

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FIXED = {
    0xCC: ">B",
    0xCD: ">H",
    0xCE: ">I",
    0xD0: ">b",
    0xD1: ">h",
    0xD2: ">i",
    0xCA: ">f",
    0xCB: ">d",
}
_SIZED = {
    0xD9: (">B", 0),
    0xDA: (">H", 0),
    0xDB: (">I", 0),
    0xC4: (">B", 1),
    0xC5: (">H", 1),
    0xC6: (">I", 1),
    0xDC: (">H", 2),
    0xDD: (">I", 2),
    0xDE: (">H", 3),
    0xDF: (">I", 3),
}


def _take(data: bytes, i: int, n: int) -> int:
    if i + n > len(data):
        raise ValueError("msgpack: truncated")
    return i + n


def _items(data: bytes, i: int, kind: int, n: int) -> "tuple[Any, int]":
    if kind == 0:
        end = _take(data, i, n)
        return str(data[i:end], "utf-8"), end
    if kind == 1:
        end = _take(data, i, n)
        return bytes(data[i:end]), end
    if kind == 2:
        items = []
        for _ in range(n):
            item, i = _decode(data, i)
            items.append(item)
        return items, i
    mapping = {}
    for _ in range(n):
        key, i = _decode(data, i)
        mapping[key], i = _decode(data, i)
    return mapping, i


def _decode(data: bytes, i: int) -> "tuple[Any, int]":
    end = _take(data, i, 1)
    b = data[i]
    if b < 0x80:
        return b, end
    if b >= 0xE0:
        return b - 0x100, end
    if b < 0x90:
        return _items(data, end, 3, b & 0x0F)
    if b < 0xA0:
        return _items(data, end, 2, b & 0x0F)
    if b < 0xC0:
        return _items(data, end, 0, b & 0x1F)
    if b == 0xC0:
        return None, end
    if b in (0xC2, 0xC3):
        return b == 0xC3, end
    if b in (0xCF, 0xD3):
        hi, lo = struct.unpack_from(">II", data, _take(data, end, 8) - 8)
        v = hi << 32 | lo
        if b == 0xD3 and hi & 0x80000000:
            v -= 1 << 64
        return v, end + 8
    fmt = _FIXED.get(b)
    if fmt is not None:
        size = struct.calcsize(fmt)
        return struct.unpack_from(fmt, data, _take(data, end, size) - size)[0], end + size
    sized = _SIZED.get(b)
    if sized is None:
        raise ValueError("msgpack: unsupported type byte")
    size = struct.calcsize(sized[0])
    n = struct.unpack_from(sized[0], data, _take(data, end, size) - size)[0]
    return _items(data, end + size, sized[1], n)


def unpackb(data: bytes) -> "Any":
    """The one value msgpack-encoded in `data`; ValueError if bad or if bytes are left over."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError("msgpack: extra bytes")
    return value
