"""The modbus source's accounting, per meter, with a scripted bus at the transport seam (the
`Bus` protocol pymodbus sits behind; tests/integration/test_modbus.py runs the real stack):
what an exception, a cut answer, a corrupt one and silence each count as, and what is retried."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from drivers import eastron
from drivers.base import Measurement
from gateway.config import ModbusMeter, ModbusSourceConfig
from gateway.sources.modbus.source import ModbusSource
from gateway.sources.modbus.transport import Bus, BusGone, BusSettings
from gateway.system.clock import WallClock


class ScriptedBus:
    """Answers per (slave, start register): a list of raw answers used in turn; then `default`."""

    def __init__(self, script: dict[tuple[int, int], list[bytes]], default: bytes = b"") -> None:
        self.script = script
        self.default = default
        self.asked: list[tuple[int, int, int]] = []

    async def read_input_registers(self, slave: int, start_register: int, count: int) -> bytes:
        self.asked.append((slave, start_register, count))
        answers = self.script.get((slave, start_register))
        if answers:
            return answers.pop(0)
        if self.default == b"gone":
            raise BusGone("unplugged")
        return self.default or _good(slave, start_register, count)

    def close(self) -> None:
        pass


def _good(slave: int, start: int, count: int) -> bytes:
    registers: list[int] = []
    while len(registers) < count:
        registers += eastron.float_registers(1.5)
    return eastron.encode_response(slave, registers[:count])


class Sink:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, int]] = []

    def emit(
        self, source: str, measurements: Sequence[Measurement], ts_ms: int, flags: int
    ) -> None:
        self.emitted.append((source, len(measurements)))

    async def room(self) -> None:
        return None


CONFIG = ModbusSourceConfig(
    name="energy",
    port="/dev/null",
    retries=1,
    meters=[
        ModbusMeter(name="one", address=1, model="sdm120"),
        ModbusMeter(name="two", address=2, model="sdm120"),
    ],
)


async def _one_poll(bus: ScriptedBus) -> tuple[ModbusSource, Sink]:
    async def open_bus(settings: BusSettings) -> Bus:
        assert settings.port == "/dev/null" and settings.baud == 9600
        return bus

    source = ModbusSource(CONFIG, clock=WallClock(), open_bus=open_bus, turnaround_s=0)
    sink = Sink()
    task = asyncio.create_task(source.run(sink))
    try:
        async with asyncio.timeout(5):
            while source.stats.polls < 1:  # noqa: ASYNC110  # stats change without an event
                await asyncio.sleep(0.001)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return source, sink


async def test_a_clean_poll_reads_every_block_of_every_meter_once() -> None:
    bus = ScriptedBus({})
    source, sink = await _one_poll(bus)
    blocks = eastron.blocks("sdm120")
    assert bus.asked == [(a, b.start_register, b.count) for a in (1, 2) for b in blocks]
    assert sink.emitted == [("energy/one", 12), ("energy/two", 12)]
    one = source.stats.meters["one"]
    assert (one.state, one.requests, one.readings, one.timeouts) == ("answering", 3, 12, 0)


async def test_a_corrupt_answer_is_a_crc_error_and_the_request_is_sent_again() -> None:
    good = _good(1, 0, 32)
    bad = good[:-1] + bytes((good[-1] ^ 1,))
    source, sink = await _one_poll(ScriptedBus({(1, 0): [bad]}))
    one = source.stats.meters["one"]
    assert (one.crc_errors, one.requests, one.state) == (1, 4, "answering")
    assert sink.emitted[0] == ("energy/one", 12)


async def test_an_exception_response_is_counted_and_not_retried() -> None:
    source, sink = await _one_poll(ScriptedBus({(1, 70): [eastron.encode_exception(1, 2)]}))
    one = source.stats.meters["one"]
    assert (one.exceptions, one.requests, one.state) == (1, 3, "errors")
    assert "illegal data address" in one.last_error
    assert sink.emitted[0] == ("energy/one", 7)  # the other two blocks' readings


async def test_a_cut_answer_is_a_bad_answer_then_retried() -> None:
    source, _ = await _one_poll(ScriptedBus({(2, 342): [_good(2, 342, 2)[:5]]}))
    two = source.stats.meters["two"]
    assert (two.bad_answers, two.requests, two.state) == (1, 4, "answering")


async def test_a_silent_meter_costs_only_its_first_block_and_is_reported() -> None:
    bus = ScriptedBus({(2, 0): [b"", b""]})
    source, sink = await _one_poll(bus)
    two = source.stats.meters["two"]
    assert (two.state, two.timeouts, two.requests, two.failed_polls) == ("not answering", 2, 2, 1)
    assert [a for a in bus.asked if a[0] == 2] == [(2, 0, 32), (2, 0, 32)]
    assert sink.emitted == [("energy/one", 12)]
    assert source.stats.meters_not_answering == 1
    assert source.stats.as_dict()["meters"]["two"]["state"] == "not answering"


async def test_a_vanished_bus_is_reported_and_reopened() -> None:
    opened: list[int] = []
    bus = ScriptedBus({}, default=b"gone")

    async def open_bus(settings: BusSettings) -> Bus:
        opened.append(1)
        if len(opened) == 2:
            raise BusGone("cannot open")
        return bus

    source = ModbusSource(CONFIG, clock=WallClock(), open_bus=open_bus, turnaround_s=0)
    task = asyncio.create_task(source.run(Sink()))
    try:
        async with asyncio.timeout(10):
            while len(opened) < 3:  # noqa: ASYNC110  # stats change without an event
                await asyncio.sleep(0.01)
        assert source.stats.last_error in ("unplugged", "cannot open")
        assert source.stats.reopens >= 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_citygw_status_shows_the_bus_and_a_line_for_the_silent_meter() -> None:
    from gateway.cli.agent import format_status

    source, _ = await _one_poll(ScriptedBus({(2, 0): [b"", b""]}))
    status = {
        "gateway": "gw-1",
        "agent": "running",
        "buffer": {"depth": 0},
        "sources": {"energy": {"type": "modbus", "port": "/dev/null", **source.stats.as_dict()}},
    }
    lines = format_status(status).splitlines()
    assert lines[-2] == (
        "  source energy (Modbus on /dev/null, 2 meters): polling, 12 readings, "
        "1 not answering, 0 reopens"
    )
    assert lines[-1].startswith(
        "    meter two (sdm120 at address 2): NOT ANSWERING for 1 polls, 2 timeouts, "
        "0 CRC errors, 0 exceptions; last: no answer to a read of 32 registers at 0"
    )
