"""`citygw hub tail --json`: JSON lines, duplicates dropped, nothing lost on a broker restart."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from spine_setup import sources_open

from gateway.readings import Series, StoredReading
from gateway.wire import v1

pytestmark = pytest.mark.integration

SERIES = Series("pm-north", "pm2_5_ugm3", "ug/m3")


def payload(first: int, last: int) -> bytes:
    rows: list[StoredReading] = [
        (n, 1_700_000_000_000 + n, 1, n / 10, 0) for n in range(first, last + 1)
    ]
    return v1.encode_data("gw-7", 99, rows, lambda sid: SERIES)


async def read_lines(stream: asyncio.StreamReader, count: int) -> list[dict[str, Any]]:
    lines = []
    async with asyncio.timeout(15):
        while len(lines) < count:
            lines.append(json.loads(await stream.readline()))
    return lines


async def test_hub_tail_prints_each_reading_once_and_survives_a_broker_restart(
    mosquitto: Any,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    tail = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "hub",
        "tail",
        "--url",
        mosquitto.url,
        "--json",
        "--topic-prefix",
        topic_prefix,
        "--client-id",
        "hub-test",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert tail.stdout is not None
    try:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            topic = f"{topic_prefix}/gw-7/data"
            for _ in range(50):  # until the tail has subscribed; repeats are duplicates to drop
                await client.publish(topic, payload(1, 3), qos=1)
                try:
                    first = [json.loads(await asyncio.wait_for(tail.stdout.readline(), 0.5))]
                    break
                except TimeoutError:
                    continue
            await client.publish(topic, payload(1, 5), qos=1)  # re-sent after a "crash"
        lines = first + await read_lines(tail.stdout, 4)
        assert [line["key"] for line in lines] == [f"gw-7/99/{n}" for n in range(1, 6)]
        assert lines[0] == {
            "gateway": "gw-7",
            "source": "pm-north",
            "quantity": "pm2_5_ugm3",
            "value": 0.1,
            "unit": "ug/m3",
            "ts_ms": 1_700_000_000_001,
            "key": "gw-7/99/1",
            "clock_synced": True,
        }
        mosquitto.stop()
        mosquitto.start()
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            await client.publish(f"{topic_prefix}/gw-7/data", payload(6, 7), qos=1)
        lines = await read_lines(tail.stdout, 2)
        assert [line["value"] for line in lines] == [0.6, 0.7]
    finally:
        tail.terminate()
        await tail.wait()


@pytest.mark.parametrize("wire_format", [2, 3])
async def test_wire_v2_and_v3_end_to_end_agent_to_hub_tail_with_exact_values(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    wire_format: int,
) -> None:
    from drivers import sds011

    pty = make_pty("ttyUSB0")
    agent = agent_process(
        write_config(
            {
                "gateway": {"id": "gw-v2", "data_dir": str(tmp_path / "data")},
                "hub": {
                    "url": mosquitto.url,
                    "topic_prefix": topic_prefix,
                    "flush_interval_s": 0.2,
                    "wire_format": wire_format,
                },
                "buffer": {"commit_interval_ms": 50},
                "sources": [
                    {"type": "serial", "name": "pm", "port": str(pty.link), "driver": "sds011"}
                ],
            }
        )
    )
    tail = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "hub",
        "tail",
        "--url",
        mosquitto.url,
        "--json",
        "--topic-prefix",
        topic_prefix,
        "--client-id",
        "hub-v2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert tail.stdout is not None
    try:
        await mosquitto.wait_for_subscription("hub-v2", f"{topic_prefix}/+/alert")  # its last one
        agent.start()
        await agent.wait_for_log("connected to hub")
        await sources_open(agent)
        for pm2_5, pm10 in ((123.6, 261.8), (0.9, 0.9), (999.9, 0.0)):
            await pty.write_async(sds011.encode_data(pm2_5, pm10, device_id=0xA160))
        lines = await read_lines(tail.stdout, 6)
        assert [(line["quantity"], line["value"]) for line in lines] == [
            ("pm2_5_ugm3", 123.6),
            ("pm10_ugm3", 261.8),
            ("pm2_5_ugm3", 0.9),
            ("pm10_ugm3", 0.9),
            ("pm2_5_ugm3", 999.9),
            ("pm10_ugm3", 0.0),
        ]
        assert all(line["gateway"] == "gw-v2" and line["source"] == "pm" for line in lines)
        assert len({line["key"] for line in lines}) == 6
    finally:
        tail.terminate()
        await tail.wait()
