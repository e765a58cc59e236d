"""Pty sensor simulators: they stream real frames, obey sleep and mode commands, and need a host."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from drivers import pms5003, sds011
from gateway.devtools.sim_serial import (
    SimulatedPms5003,
    SimulatedSds011,
    close_pty,
    open_pty,
    pm_random_walk,
)

INTERVAL_S = 0.01
TIMEOUT_S = 5.0
FrameT = TypeVar("FrameT")


class Host:
    """The agent's side of the pty, reading frames with a stream decoder."""

    def __init__(self, path: str, decoder: sds011.StreamDecoder | pms5003.StreamDecoder) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.decoder = decoder
        self.frames: list[Any] = []

    def write(self, command: bytes) -> None:
        os.write(self.fd, command)

    def drain(self) -> list[Any]:
        """Whatever arrived so far, decoded; clears the list."""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.fd, 4096):
                self.frames += self.decoder.feed(chunk)
        frames, self.frames = self.frames, []
        return frames

    async def wait_for(self, done: Callable[[list[Any]], bool]) -> list[Any]:
        """Read until `done(frames)` holds for the frames read; returns and clears them."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(self.fd, readable.set)
        try:
            async with asyncio.timeout(TIMEOUT_S):
                while not done(self.frames):
                    await readable.wait()
                    readable.clear()
                    with contextlib.suppress(BlockingIOError):
                        self.frames += self.decoder.feed(os.read(self.fd, 4096))
        finally:
            loop.remove_reader(self.fd)
        frames, self.frames = self.frames, []
        return frames

    def close(self) -> None:
        os.close(self.fd)


def _count(kind: type[FrameT], n: int) -> Callable[[list[Any]], bool]:
    return lambda frames: sum(isinstance(f, kind) for f in frames) >= n


@contextlib.asynccontextmanager
async def running(sensor: SimulatedSds011 | SimulatedPms5003) -> AsyncIterator[None]:
    task = asyncio.create_task(sensor.run(), name="simulated-sensor")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool]) -> None:
    """Poll a simulator's state: it offers counters and flags, not events."""
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(INTERVAL_S / 2)


def _run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_sds011_streams_seeded_values_and_stops_when_told_to_sleep(tmp_path: Path) -> None:
    link = str(tmp_path / "ttySDS011")
    master_fd, slave_path = open_pty(link)
    assert os.path.realpath(link) == slave_path

    async def scenario() -> None:
        host = Host(link, sds011.StreamDecoder())
        sensor = SimulatedSds011(master_fd, device_id=0xA160, interval_s=INTERVAL_S, seed=7)
        async with running(sensor):
            frames = await host.wait_for(_count(sds011.DataFrame, 3))
            expected = pm_random_walk(seed=7)
            assert frames[:3] == [sds011.DataFrame(*next(expected), 0xA160) for _ in range(3)]

            host.write(sds011.cmd_set_sleep(True, device_id=0xA160))
            replies = await host.wait_for(_count(sds011.ReplyFrame, 1))
            assert replies[-1] == sds011.ReplyFrame(sds011.SLEEP_WORK, "set", 0, b"\x00", 0xA160)
            assert sensor.sleeping
            assert sensor.last_command is not None
            assert sensor.last_command.sub_command == sds011.SLEEP_WORK

            sent = sensor.frames_sent
            host.write(sds011.cmd_query(device_id=0xA160))  # a sleeping sensor ignores it
            await asyncio.sleep(20 * INTERVAL_S)
            assert host.drain() == []
            assert sensor.frames_sent == sent

            host.write(sds011.cmd_set_sleep(False))
            frames = await host.wait_for(_count(sds011.DataFrame, 1))
            assert frames[0] == sds011.ReplyFrame(sds011.SLEEP_WORK, "set", 1, b"\x00", 0xA160)
            assert sensor.commands_received == 3
        host.close()

    try:
        _run(scenario)
    finally:
        close_pty(master_fd, link)
    assert not os.path.lexists(link)


def test_sds011_in_query_mode_sends_data_only_when_asked() -> None:
    master_fd, slave_path = open_pty()

    async def scenario() -> None:
        host = Host(slave_path, sds011.StreamDecoder())
        values = iter([(12.3, 20.1), (14.0, 22.5)])
        sensor = SimulatedSds011(
            master_fd, device_id=0x0101, interval_s=INTERVAL_S, values=values, query_mode=True
        )
        async with running(sensor):
            await asyncio.sleep(10 * INTERVAL_S)
            assert host.drain() == []

            host.write(sds011.cmd_firmware() + sds011.cmd_query())
            frames = await host.wait_for(_count(sds011.DataFrame, 1))
            assert [f.firmware for f in frames[:1]] == [(15, 7, 10)]
            assert frames[1:] == [sds011.DataFrame(12.3, 20.1, 0x0101)]

            host.write(sds011.cmd_set_reporting_mode(False))
            frames = await host.wait_for(_count(sds011.DataFrame, 1))
            assert frames == [
                sds011.ReplyFrame(sds011.REPORTING_MODE, "set", 0, b"\x00", 0x0101),
                sds011.DataFrame(14.0, 22.5, 0x0101),
            ]
            await asyncio.sleep(10 * INTERVAL_S)  # the values ran out: the sensor falls silent
            assert host.drain() == []
        host.close()

    try:
        _run(scenario)
    finally:
        close_pty(master_fd)


def test_pms5003t_passive_mode_answers_reads_and_sleep_silences_it() -> None:
    master_fd, slave_path = open_pty()

    async def scenario() -> None:
        host = Host(slave_path, pms5003.StreamDecoder(model="pms5003t"))
        sensor = SimulatedPms5003(master_fd, model="pms5003t", interval_s=INTERVAL_S, seed=3)
        async with running(sensor):
            frames = await host.wait_for(_count(pms5003.DataFrameT, 2))
            assert all(15.0 <= f.temperature_c <= 30.0 for f in frames)
            assert all(8 <= f.pm2_5_atm <= 20 for f in frames)

            host.write(pms5003.cmd_passive())
            await until(lambda: sensor.passive)
            host.drain()  # frames streamed before the command took effect
            host.write(pms5003.cmd_read())
            assert len(await host.wait_for(_count(pms5003.DataFrameT, 1))) == 1

            host.write(pms5003.cmd_sleep() + pms5003.cmd_read())
            await asyncio.sleep(10 * INTERVAL_S)
            assert host.drain() == []
            assert sensor.sleeping
            assert sensor.last_command == pms5003.CommandFrame(pms5003.CMD_READ, 0)
        host.close()

    try:
        _run(scenario)
    finally:
        close_pty(master_fd)


def test_sensor_without_a_host_drops_frames_and_keeps_its_values_for_later() -> None:
    master_fd, slave_path = open_pty()

    async def scenario() -> None:
        sensor = SimulatedSds011(master_fd, interval_s=INTERVAL_S, seed=1)
        async with running(sensor):
            await until(lambda: sensor.frames_dropped >= 3)
            assert sensor.frames_sent == 0
            host = Host(slave_path, sds011.StreamDecoder())
            frames = await host.wait_for(_count(sds011.DataFrame, 1))
            assert frames[0].pm2_5_ugm3 == next(pm_random_walk(seed=1))[0]
            host.close()

    try:
        _run(scenario)
    finally:
        close_pty(master_fd)
