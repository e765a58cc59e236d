"""Energy meters over Modbus RTU with the real pymodbus stack on both ends of a socat pty pair
(gateway/devtools/sim_modbus.py): two meters on one bus, one unplugged mid-run and back, a
corrupt answer, the adapter vanishing; then through the agent and a real Mosquitto to the hub.

Only the sink of the source-level tests is ours (a list): everything from the source to the
meters' register map is the real code and the real pymodbus client and server."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from drivers.base import Measurement
from gateway.config import ModbusMeter, ModbusSourceConfig
from gateway.devtools.sim_modbus import ModbusBusSimulator, SimMeter
from gateway.sources.modbus.source import ModbusSource
from gateway.system.clock import WallClock

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("socat") is None, reason="socat is missing (make deps)"),
]


class ListSink:
    """The ingest's side of a source, as a list of (source, quantity, unit, value)."""

    def __init__(self) -> None:
        self.readings: list[tuple[str, str, str, float]] = []

    def emit(
        self, source: str, measurements: Sequence[Measurement], ts_ms: int, flags: int
    ) -> None:
        self.readings += [(source, m.quantity, m.unit, m.value) for m in measurements]

    async def room(self) -> None:
        return None

    def count(self, source: str) -> int:
        return sum(1 for r in self.readings if r[0] == source)


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110  # stats change without an event to wait on
            await asyncio.sleep(0.05)
    assert condition(), what


def _config(port: Path) -> ModbusSourceConfig:
    return ModbusSourceConfig(
        name="energy",
        port=str(port),
        interval_s=1.0,
        timeout_s=0.2,
        retries=1,
        reopen_max_s=0.5,
        meters=[
            ModbusMeter(name="lights", address=1, model="sdm630"),
            ModbusMeter(name="cabinet", address=2, model="sdm120"),
        ],
    )


def _meters() -> list[SimMeter]:
    return [SimMeter(1, "sdm630", seed=0), SimMeter(2, "sdm120", seed=1)]


async def test_two_meters_one_unplugged_mid_run_the_other_keeps_being_read_then_it_recovers(
    tmp_path: Path,
) -> None:
    async with ModbusBusSimulator(_meters(), directory=tmp_path) as bus:
        source = ModbusSource(_config(bus.device), clock=WallClock())
        sink = ListSink()
        task = asyncio.create_task(source.run(sink))
        try:
            lights, cabinet = source.stats.meters["lights"], source.stats.meters["cabinet"]
            await wait_until(lambda: source.stats.polls >= 1, "first poll")
            units = {(r[0], r[1]): r[2] for r in sink.readings}
            assert units[("energy/lights", "voltage_l3_v")] == "V"
            assert units[("energy/lights", "power_total_w")] == "W"
            assert units[("energy/cabinet", "energy_total_kwh")] == "kW.h"
            assert len([k for k in units if k[0] == "energy/lights"]) == 28  # the whole map
            assert len([k for k in units if k[0] == "energy/cabinet"]) == 12
            assert (lights.state, cabinet.state) == ("answering", "answering")

            bus.unplug(2)
            await wait_until(lambda: cabinet.state == "not answering", "cabinet reported")
            assert cabinet.timeouts >= 2 and cabinet.crc_errors == 0
            assert source.stats.meters_not_answering == 1
            silent_from, heard_from = sink.count("energy/cabinet"), sink.count("energy/lights")
            polls_from, requests_from = source.stats.polls, bus.requests[2]
            await wait_until(lambda: source.stats.polls >= polls_from + 2, "two more polls")
            assert sink.count("energy/lights") >= heard_from + 2 * 28, "the other meter is read"
            assert sink.count("energy/cabinet") == silent_from
            # a silent meter costs one block's attempts per poll, not all its blocks
            assert bus.requests[2] - requests_from <= 2 * (1 + 1) + 2
            assert lights.state == "answering" and lights.timeouts == 0

            bus.plug(2)
            await wait_until(lambda: cabinet.state == "answering", "cabinet back")
            await wait_until(lambda: sink.count("energy/cabinet") > silent_from, "its readings")
            assert source.stats.meters_not_answering == 0
            assert cabinet.failed_polls >= 1 and cabinet.silent_polls_in_row == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_corrupt_answer_is_counted_as_a_crc_error_and_read_again(tmp_path: Path) -> None:
    async with ModbusBusSimulator(_meters(), directory=tmp_path) as bus:
        source = ModbusSource(_config(bus.device), clock=WallClock())
        sink = ListSink()
        task = asyncio.create_task(source.run(sink))
        try:
            lights = source.stats.meters["lights"]
            await wait_until(lambda: source.stats.polls >= 1, "first poll")
            readings = sink.count("energy/lights")
            bus.corrupt(1, answers=1)
            await wait_until(lambda: lights.crc_errors == 1, "the CRC error counted")
            await wait_until(lambda: sink.count("energy/lights") >= readings + 28, "next poll")
            assert lights.state == "answering"  # the request sent again got the answer
            assert "CRC" in lights.last_error
            assert source.stats.meters["cabinet"].crc_errors == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_vanished_adapter_is_reopened_and_the_meters_read_again(tmp_path: Path) -> None:
    bus = ModbusBusSimulator(_meters(), directory=tmp_path)
    await bus.start()
    source = ModbusSource(_config(bus.device), clock=WallClock())
    sink = ListSink()
    task = asyncio.create_task(source.run(sink))
    try:
        await wait_until(lambda: source.stats.polls >= 1, "first poll")
        await bus.stop()  # the USB adapter pulled: the pty pair and its link are gone
        await wait_until(lambda: source.stats.state == "port missing", "reported missing")
        assert not source.stats.connected
        readings = len(sink.readings)
        bus = ModbusBusSimulator(_meters(), directory=tmp_path)
        await bus.start()
        await wait_until(lambda: len(sink.readings) > readings, "read again")
        assert source.stats.reopens == 1 and source.stats.state == "polling"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.stop()


async def _tail_lines(
    stream: asyncio.StreamReader, want: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while not want(lines):
            lines.append(json.loads(await stream.readline()))
    return lines


async def _status(config: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "status",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    return out.decode()


async def test_meter_readings_reach_the_hub_with_units_and_a_silent_meter_shows_in_status(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    write_config: Any,
    agent_process: Any,
) -> None:
    async with ModbusBusSimulator(_meters(), directory=tmp_path / "bus") as bus:
        config = write_config(
            {
                "gateway": {"id": "gw-modbus", "data_dir": str(tmp_path / "data")},
                "hub": {
                    "url": mosquitto.url,
                    "topic_prefix": topic_prefix,
                    "flush_interval_s": 0.2,
                },
                "buffer": {"commit_interval_ms": 50},
                "sources": [
                    {
                        "type": "modbus",
                        "name": "energy",
                        "port": str(bus.device),
                        "interval_s": 1,
                        "timeout_s": 0.2,
                        "meters": [
                            {"name": "lights", "address": 1, "model": "sdm630"},
                            {"name": "cabinet", "address": 2, "model": "sdm120"},
                        ],
                    }
                ],
            }
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
            "hub-modbus",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert tail.stdout is not None
        agent = agent_process(config)
        try:
            await mosquitto.wait_for_subscription("hub-modbus", f"{topic_prefix}/+/alert")
            agent.start()
            await agent.wait_for_log("connected to hub")
            wanted = {("energy/cabinet", "voltage_v"), ("energy/lights", "frequency_hz")}
            lines = await _tail_lines(
                tail.stdout,
                lambda got: wanted <= {(g["source"], g["quantity"]) for g in got},
            )
            units = {(line["source"], line["quantity"]): line["unit"] for line in lines}
            assert units[("energy/cabinet", "voltage_v")] == "V"
            assert units[("energy/lights", "frequency_hz")] == "Hz"
            assert 200 < next(g["value"] for g in lines if g["quantity"] == "voltage_v") < 260
            assert {line["unit"] for line in lines} <= {
                "V",
                "A",
                "W",
                "V.A",
                "var",
                "1",
                "Hz",
                "kW.h",
                "kvar.h",
            }
            assert all(line["gateway"] == "gw-modbus" for line in lines)
            status = await _status(config)
            assert "source energy (Modbus on" in status and "0 not answering" in status

            bus.unplug(2)
            async with asyncio.timeout(20):
                while "meter cabinet (sdm120 at address 2): NOT ANSWERING" not in status:
                    await asyncio.sleep(0.5)
                    status = await _status(config)
            assert "1 not answering" in status
            # the other meter's readings keep reaching the hub
            more = await _tail_lines(
                tail.stdout, lambda got: sum(g["source"] == "energy/lights" for g in got) >= 56
            )
            assert more
        finally:
            tail.terminate()
            await tail.wait()


async def test_citygw_simulate_meters_serves_the_bus_and_takes_it_away_on_sigterm(
    tmp_path: Path,
) -> None:
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "simulate-meters",
        "--dir",
        str(tmp_path),
        "--meters",
        "5:sdm120",
        stdout=asyncio.subprocess.PIPE,
    )
    assert sim.stdout is not None
    try:
        async with asyncio.timeout(20):
            line = (await sim.stdout.readline()).decode()
        assert line.startswith(f"meters (sdm120 at 5) on {tmp_path / 'rs485'}")
        config = ModbusSourceConfig(
            name="energy",
            port=str(tmp_path / "rs485"),
            meters=[ModbusMeter(name="m", address=5, model="sdm120")],
        )
        source = ModbusSource(config, clock=WallClock())
        sink = ListSink()
        task = asyncio.create_task(source.run(sink))
        try:
            await wait_until(lambda: sink.count("energy/m") == 12, "one poll of the meter")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        sim.terminate()
        assert await asyncio.wait_for(sim.wait(), timeout=15) == 0
    assert not (tmp_path / "rs485").exists()
