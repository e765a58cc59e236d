"""Duty cycling: the agent wakes a simulated SDS011, discards warm-up readings, puts it to sleep."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from drivers import sds011
from gateway import wire
from gateway.config import DutyCycle, SerialSourceConfig
from gateway.devtools.sim_serial import SimulatedSds011
from gateway.sources.serial.source import SerialSource
from gateway.system.clock import WallClock

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
                    "wire_format": 1,  # decoded message by message
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


# --- commands on a stalled line: in process, against a pty whose far end does not read ----

SLEEP = sds011.cmd_set_sleep(True)
WAKE = sds011.cmd_set_sleep(False)
START = (WAKE, sds011.cmd_set_reporting_mode(False), sds011.cmd_set_working_period(0))


class _Sink:
    def __init__(self) -> None:
        self.readings = 0

    def emit(self, source: str, measurements: Sequence[Any], ts_ms: int, flags: int) -> None:
        self.readings += len(measurements)

    async def room(self) -> None:
        return None


def _stall(link: Path) -> int:
    """Fills the port's output buffer (the far end reads nothing); the fd keeps it stalled."""
    fd = os.open(link, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
    for _ in range(100):  # the tty layer moves bytes on to the far end in the background
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(fd, bytes(1024))
        time.sleep(0.02)
        with contextlib.suppress(BlockingIOError):
            os.write(fd, bytes(1))
            continue
        return fd
    raise AssertionError("the pty kept taking bytes")


def _duty_cycled_sds011(link: Path, **kwargs: Any) -> SerialSource:
    # Shorter than the config allows (period_s >= 10), built directly to keep the test short.
    cycle = DutyCycle(period_s=1.5, on_s=0.6, warmup_s=0.1)
    config = SerialSourceConfig(name="pm", port=str(link), driver="sds011", duty_cycle=cycle)
    return SerialSource(config, clock=WallClock(), **kwargs)


async def _until(predicate: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls the source's stats, which have no event
            await asyncio.sleep(0.02)


async def _read_until(pty: Any, wanted: bytes, *, timeout_s: float = 5.0) -> bytes:
    """Drains the far end until `wanted` arrived; everything read."""
    received = bytearray()
    deadline = time.monotonic() + timeout_s
    while wanted not in received:
        assert time.monotonic() < deadline, f"{wanted.hex()} not received"
        received += await asyncio.to_thread(pty.read, 65536, timeout_s=0.1)
    return bytes(received)


async def test_commands_wait_for_a_stalled_line_and_are_all_delivered(make_pty: Any) -> None:
    pty = make_pty("ttyPM0")
    filler = _stall(pty.link)
    source = _duty_cycled_sds011(pty.link)
    task = asyncio.create_task(source.run(_Sink()))
    try:
        await _until(lambda: source.stats.commands_waited > 0)
        assert source.stats.commands_sent == 0
        received = await _read_until(pty, b"".join(START))  # the line drains now
        received += await _read_until(pty, SLEEP)
        commands = received.lstrip(b"\x00")
        assert commands.startswith(b"".join(START)), "start commands whole and in order"
        assert commands.index(WAKE + SLEEP) == len(b"".join(START)), "woken, then put to sleep"
        assert source.stats.commands_lost == 0
        assert source.stats.commands_sent >= len(START) + 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        os.close(filler)


async def test_a_command_the_line_never_takes_is_counted_lost_logged_and_sent_again(
    make_pty: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pty = make_pty("ttyPM0")
    filler = _stall(pty.link)
    source = _duty_cycled_sds011(pty.link, command_timeout_s=0.1)
    task = asyncio.create_task(source.run(_Sink()))
    try:
        # 3 start commands, then the wake (until the end of on_s) and the sleep (until the
        # next wake-up) of the first period: all lost on a line that never drains.
        await _until(lambda: source.stats.commands_lost >= len(START) + 2)
        assert source.stats.commands_lost == len(START) + 2
        assert source.stats.as_dict()["commands_lost"] == len(START) + 2, "in status and metrics"
        lost = [r for r in caplog.records if getattr(r, "event", "") == "command_lost"]
        assert [r.command for r in lost] == ["start", "wake", "sleep"], "once per kind a minute"
        assert "not delivered" in lost[-1].getMessage()
        await _read_until(pty, WAKE + SLEEP)  # drained: the next period wakes and sleeps again
        await _until(lambda: source.stats.state == "sleeping")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        os.close(filler)


async def test_a_sensor_awake_when_the_source_stops_is_put_to_sleep(make_pty: Any) -> None:
    pty = make_pty("ttyPM0")
    source = _duty_cycled_sds011(pty.link)
    task = asyncio.create_task(source.run(_Sink()))
    await _until(lambda: source.stats.state == "measuring")
    await _read_until(pty, b"".join(START) + WAKE)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await _read_until(pty, SLEEP, timeout_s=1.0) == SLEEP
