"""Duty cycling: the agent wakes a simulated SDS011, discards warm-up readings, puts it to sleep."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from gateway import wire
from gateway.devtools.sim_serial import SimulatedSds011

pytestmark = pytest.mark.integration


async def test_sds011_is_duty_cycled_and_warm_up_readings_are_discarded(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sensor = SimulatedSds011(pty.master_fd, interval_s=0.1, seed=3)
    sensor.sleeping = True  # left asleep by a previous run: the agent must wake it
    sim = asyncio.create_task(sensor.run())
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/+/data")
    agent = agent_process(
        write_config(
            {
                "gateway": {"id": "gw-duty", "data_dir": str(tmp_path / "data")},
                "hub": {
                    "url": mosquitto.url,
                    "topic_prefix": topic_prefix,
                    "flush_interval_s": 0.2,
                },
                "buffer": {"commit_interval_ms": 50},
                "sources": [
                    {
                        "type": "serial",
                        "name": "pm",
                        "port": str(pty.link),
                        "driver": "sds011",
                        "duty_cycle": {"period_s": 10, "on_s": 3, "warmup_s": 1},
                    }
                ],
            }
        )
    )
    try:
        started = time.monotonic()
        agent.start()
        await agent.wait_for_log("connected to hub")
        awake_seen = False
        while time.monotonic() - started < 2.5:  # within on_s: awake and streaming
            awake_seen = awake_seen or not sensor.sleeping
            await asyncio.sleep(0.1)
        assert awake_seen, "the agent woke the sensor"
        await asyncio.sleep(max(0.0, started + 5.0 - time.monotonic()))
        assert sensor.sleeping, "after on_s the agent put the sensor to sleep"
        frames_while_asleep = sensor.frames_sent
        msgs = await sub.wait_for(lambda ms: any(m.topic.endswith("/data") for m in ms))
        count_first_window = sum(len(list(wire.decode_data(m.payload))) for m in msgs)
        await asyncio.sleep(2.0)
        assert sensor.frames_sent == frames_while_asleep, "a sleeping sensor sends nothing"
        # Frames at 10/s for ~3 s awake, of which the first second is warm-up and discarded.
        assert 20 <= count_first_window <= 2 * 25, count_first_window
        await asyncio.sleep(max(0.0, started + 11.5 - time.monotonic()))
        assert sensor.frames_sent > frames_while_asleep, "woken again for the next period"
    finally:
        sim.cancel()
