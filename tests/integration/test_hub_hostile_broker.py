"""`citygw hub tail --json` against a real Mosquitto where someone publishes hostile messages on
a gateway's data, status (retained), metrics and config/state topics (issue 16): it keeps
running and still prints the real gateway's readings, each once."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiomqtt
import msgpack
import pytest

from gateway import wire
from gateway.readings import Series, StoredReading
from gateway.wire import v1, v3

pytestmark = pytest.mark.integration

SERIES = {1: Series("pm-north", "pm2_5_ugm3", "ug/m3")}
T0 = 1_700_000_000_000


def pack(message: object) -> bytes:
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def real_v1(first: int, last: int) -> bytes:
    rows: list[StoredReading] = [(n, T0 + n, 1, n / 10, 0) for n in range(first, last + 1)]
    return v1.encode_data("gw-7", 99, rows, SERIES.__getitem__)


def hostile() -> list[tuple[str, bytes]]:
    """(leaf, payload): every kind of message issue 16 reproduced, and a few more."""
    v1_head = {"v": 1, "ep": 99, "s0": 1, "t0": T0, "series": [list(SERIES[1])]}
    bomb = bytes([3, 8, 1, 1, 40, 0, 1, 0x80]) + b"\x00" * 20 + b"\xff" * 40
    return [
        ("data", pack(v1_head | {"gw": "gw-7", "r": [[float("inf"), 0, 0, 1.0]]})),
        ("data", pack(v1_head | {"gw": "gw-7", "r": [[2**63 - 1, 0, 0, 1.0]]})),
        ("data", pack(v1_head | {"gw": "gw-8", "r": [[n, 0, 0, 1.0] for n in range(1, 20)]})),
        ("data", pack([2, 99, 1, 0, 0, 1, [1, 0], [], 0, 2**40])),
        ("data", pack([2, 99, 1, 0, 0, 1, [1, 10**18], [], 0, b"\x01\x00\x00\x01\x02"])),
        ("data", pack([2, 99, 1, 0, 0, 1, [1, -400.0], [], 0, b"\x01\x00\x00\x01\x02"])),
        ("data", bomb),
        ("data", v3.encode_data(99, [(2**69, T0, 1, 1.0, 0)], SERIES.__getitem__)),
        ("data", b"\x82" * 3 + b"\x00" * (3 << 20)),  # over the size limit (MQTT 5: never sent)
        ("status", pack({"v": 1, "gw": "gw-7", "state": "online", "series": 5})),
        ("status", pack({"v": 1, "gw": "gw-7", "series": [[float("inf"), "s", "q", "u"]]})),
        ("metrics", pack({"v": 1, "gw": "gw-7", "x": msgpack.ExtType(1, b"z")})),
        ("metrics", pack({"v": 1, "gw": "gw-7", "x": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]})),
        ("config/state", b"[" * 30_000 + b"]" * 30_000),
        ("config/state", b"\xff" * 100),
    ]


async def start_tail(url: str, prefix: str, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gateway.cli", "hub", "tail", "--url", url),
        *("--topic-prefix", prefix, "--client-id", "hub-hostile", *extra),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def lines_until(tail: asyncio.subprocess.Process, key: str) -> list[dict[str, Any]]:
    assert tail.stdout is not None
    lines: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while not lines or lines[-1]["key"] != key:
            lines.append(json.loads(await tail.stdout.readline()))
    return lines


async def test_hub_tail_keeps_printing_the_real_gateway_through_hostile_messages(
    mosquitto: Any, topic_prefix: str
) -> None:
    gw = f"{topic_prefix}/gw-7"
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
        poison = pack({"v": 1, "gw": "gw-7", "state": "online", "series": [[1e999, "s", "q", "u"]]})
        await client.publish(f"{gw}/status", poison, qos=1, retain=True)  # read at every start
    tail = await start_tail(mosquitto.url, topic_prefix, "--json")
    try:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            for _ in range(50):  # until the tail has subscribed; repeats are duplicates
                await client.publish(f"{gw}/data", real_v1(1, 2), qos=1)
                assert tail.stdout is not None
                try:
                    line = await asyncio.wait_for(tail.stdout.readline(), 0.5)
                    break
                except TimeoutError:
                    continue
            assert json.loads(line)["key"] == "gw-7/99/1"
            for leaf, payload in hostile():
                await client.publish(f"{gw}/{leaf}", payload, qos=1)
            await client.publish(f"{gw}/data", real_v1(1, 6), qos=1)
            lines = await lines_until(tail, "gw-7/99/6")
            assert [x["key"] for x in lines] == [f"gw-7/99/{n}" for n in range(2, 7)]
            assert {x["gateway"] for x in lines} == {"gw-7"}  # the spoofed gw-8 data is refused
            birth = wire.encode_status(
                "gw-7", state="online", version="0", started_ms=0, series=SERIES, epoch=99
            )
            await client.publish(f"{gw}/status", birth, qos=1, retain=True)
            v3_data = v3.encode_data(99, [(7, T0 + 7, 1, 0.7, 0)], SERIES.__getitem__)
            await client.publish(f"{gw}/data", v3_data, qos=1)
            assert [x["value"] for x in await lines_until(tail, "gw-7/99/7")] == [0.7]
        assert tail.returncode is None
    finally:
        tail.terminate()
        await tail.wait()
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            await client.publish(f"{gw}/status", b"", qos=1, retain=True)


async def test_hub_tail_text_output_survives_the_same_messages(
    mosquitto: Any, topic_prefix: str
) -> None:
    tail = await start_tail(mosquitto.url, topic_prefix)
    assert tail.stdout is not None
    gw = f"{topic_prefix}/gw-7"
    try:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            seen = b""
            for _ in range(50):
                await client.publish(f"{gw}/metrics", pack({"v": 1, "gw": "gw-7"}), qos=1)
                try:
                    seen = await asyncio.wait_for(tail.stdout.readline(), 0.5)
                    break
                except TimeoutError:
                    continue
            assert b"-- metrics from gw-7" in seen
            for leaf, payload in hostile():
                await client.publish(f"{gw}/{leaf}", payload, qos=1)
            await client.publish(f"{gw}/data", real_v1(1, 1), qos=1)
            async with asyncio.timeout(20):
                while b"pm2_5_ugm3 = 0.1" not in (line := await tail.stdout.readline()):
                    assert line, "hub tail exited"
                    assert b"Traceback" not in line
        assert tail.returncode is None
    finally:
        tail.terminate()
        await tail.wait()
