"""A citygw sensor node on a serial line: readings reach the hub, the node's sensor status and
uptime show in the gateway's health, and a command makes the round trip (set, acknowledged).

The node side speaks the link with the gateway's own codec (drivers/node.py); the firmware's
bytes are checked against that codec on the real MicroPython interpreter in tests/firmware.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drivers import node
from drivers.base import Measurement
from gateway import wire

pytestmark = pytest.mark.integration


def report(seq: int, temperature_c: float, pm_status: str) -> bytes:
    return node.encode_report(
        node.Report(
            node_id=0x0102,
            seq=seq,
            measurements=(
                Measurement("temperature_c", temperature_c, "Cel"),
                Measurement("supply_v", 4.95, "V"),
            ),
            status=(("bme280", "ok"), ("sds011", pm_status)),
            uptime_s=60 * seq,
            interval_s=60,
        )
    )


async def test_node_readings_status_and_a_command_round_trip(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/+/data")
    path = write_config(
        {
            "gateway": {"id": "gw-node", "data_dir": str(tmp_path / "data")},
            "hub": {
                "url": mosquitto.url,
                "topic_prefix": topic_prefix,
                "flush_interval_s": 0.2,
                "wire_format": 1,  # decoded message by message
            },
            "buffer": {"commit_interval_ms": 50},
            "sources": [
                {
                    "type": "serial",
                    "name": "pole-7",
                    "port": str(pty.link),
                    "driver": "node",
                    "baud": 115200,
                    "node_interval_s": 30,
                }
            ],
        }
    )
    agent = agent_process(path)
    agent.start()
    await agent.wait_for_log("connected to hub")
    # The gateway sets the node's interval when it opens the line: read that command.
    commands: list[Any] = []
    decoder = node.StreamDecoder(host_commands=True)
    for _ in range(50):
        commands += decoder.feed(await asyncio.to_thread(pty.read, timeout_s=0.2))
        if commands:
            break
    assert [(c.command, c.arg, c.node_id) for c in commands] == [
        ("set_interval", 30, node.BROADCAST)
    ]
    ack = node.encode(
        node.T_ACK, 0x0102, 2, {"ack": commands[0].seq, "cmd": "set_interval", "ok": True}
    )
    await pty.write_async(report(1, 21.5, "ok") + ack + report(2, 21.75, "error: no data"))
    msgs = await sub.wait_for(
        lambda ms: sum(len(list(wire.decode_data(m.payload))) for m in ms) >= 4
    )
    got = [(r.source, r.quantity, r.value) for m in msgs for r in wire.decode_data(m.payload)]
    assert got == [
        ("pole-7", "temperature_c", 21.5),
        ("pole-7", "supply_v", 4.95),
        ("pole-7", "temperature_c", 21.75),
        ("pole-7", "supply_v", 4.95),
    ]
    status = json.loads(
        (
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "gateway.cli", "status", "--config", str(path), "--json"],
                capture_output=True,
                text=True,
                check=True,
            )
        ).stdout
    )
    seen = status["sources"]["pole-7"]["node"]
    assert seen["node_id"] == 0x0102 and seen["uptime_s"] == 120 and seen["acks"] == 1
    assert seen["sensors"] == {"bme280": "ok", "sds011": "error: no data"}
    assert "sensor sds011 is error: no data" in agent.log_text()
