"""firmware/msgpack_enc.py is byte-compatible with the gateway's msgpack.packb on the same values,
and firmware/msgpack_dec.py reads what the gateway sends."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgpack

# JSON-expressible values (bytes are added inside the interpreter): every int width boundary,
# floats, str lengths across fixstr/str8/str16, containers across fix/16-bit headers.
VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    2**64 - 1,
    -1,
    -32,
    -33,
    -128,
    -129,
    -32768,
    -32769,
    -(2**31),
    -(2**31) - 1,
    -(2**63),
    0.0,
    -0.0,
    1.5,
    3.141592653589793,
    -273.15,
    1e300,
    21.37,
    "",
    "a",
    "x" * 31,
    "x" * 32,
    "y" * 255,
    "z" * 256,
    "é ü 温度",
    "q" * 70000,
    [],
    [1, 2, 3],
    list(range(15)),
    list(range(16)),
    list(range(70000)),
    {},
    {"a": 1},
    {str(i): i for i in range(15)},
    {str(i): i for i in range(16)},
    {"r": [["temperature_c", 21.5, "Cel"]], "s": {"bme280": "ok"}, "up_s": 12, "iv_s": 60},
]
BYTES: list[int] = [0, 1, 255, 256, 65535, 65536]


def sorted_maps(value: Any) -> Any:
    """`value` with every dict rebuilt in sorted key order: the order the firmware sends."""
    if isinstance(value, dict):
        return {k: sorted_maps(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_maps(v) for v in value]
    return value


def test_encoder_matches_msgpack_packb_byte_for_byte(micropython: Callable[..., str]) -> None:
    code = f"""
import json, msgpack_enc
for v in json.loads({json.dumps(json.dumps(VALUES))}):
    print(msgpack_enc.packb(v).hex())
for n in {BYTES!r}:
    print(msgpack_enc.packb(bytes(n % 251 for n in range(n))).hex())
print(msgpack_enc.packb((1, "t")).hex())
"""
    lines = micropython(code).split()
    want = [msgpack.packb(sorted_maps(v)).hex() for v in VALUES]
    want += [msgpack.packb(bytes(i % 251 for i in range(n))).hex() for n in BYTES]
    want.append(msgpack.packb((1, "t")).hex())
    assert lines == want


def test_encoder_refuses_what_msgpack_cannot_carry(micropython: Callable[..., str]) -> None:
    out = micropython("""
import msgpack_enc
for v in (2**64, -(2**63) - 1, object()):
    try:
        msgpack_enc.packb(v)
        print("packed")
    except (ValueError, TypeError) as e:
        print(type(e).__name__)
""")
    assert out.split() == ["ValueError", "ValueError", "TypeError"]


def test_decoder_reads_gateway_packb(micropython_json: Callable[..., Any]) -> None:
    values: list[Any] = [
        {"cmd": "set_interval", "arg": 30},
        {"cmd": "sleep", "arg": None},
        [1, -1, 300, -300, 2**40, -(2**40), 1.25, "x" * 40, True, False],
        {"k": [{"n": {}}]},
    ]
    packed = [msgpack.packb(v).hex() for v in values]
    got = micropython_json(f"""
import json, msgpack_dec
print(json.dumps([msgpack_dec.unpackb(bytes.fromhex(h)) for h in {packed!r}]))
""")
    assert got == values
    out = micropython_json("""
import json, msgpack_dec
bad = []
for h in ("dc00", "c1", "0102", "a3616263ff"):
    try:
        msgpack_dec.unpackb(bytes.fromhex(h))
    except ValueError:
        bad.append(h)
print(json.dumps(bad))
""")
    assert out == ["dc00", "c1", "0102", "a3616263ff"]
