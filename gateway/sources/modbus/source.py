"""The modbus source: energy meters on one RS-485 bus, polled over Modbus RTU at an interval.

Each poll reads every meter's register blocks (`drivers.eastron.blocks`), one request at a time,
each bounded by `timeout_s` and sent again up to `retries` times; what came back is decoded by
`drivers.eastron`, so a corrupt answer (CRC), an exception response and no answer at all are
counted apart, per meter. A meter that answers nothing in a poll is reported as not answering
(stats, `citygw status`, one log line per episode) and costs the bus only its first block's
attempts per poll; the others keep being read. A vanished adapter is reopened with capped
backoff, as the serial source does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from drivers import eastron
from drivers.base import Measurement
from gateway.backoff import Backoff
from gateway.config import ModbusMeter, ModbusSourceConfig
from gateway.readings import CLOCK_UNSYNCED, Sink
from gateway.sources.modbus.transport import Bus, BusGone, BusSettings, open_bus
from gateway.sources.outage import PortOutage
from gateway.sources.silence import Silence, judge_all, threshold_s
from gateway.system.clock import WallClock

log = logging.getLogger(__name__)

TURNAROUND_S = 0.06
"""Silence between an answer and the next request (the SDM630 document asks for 60 ms)."""

__all__ = ["MeterStats", "ModbusSource", "ModbusStats"]


@dataclass(slots=True)
class MeterStats:
    """One meter's health: what was asked, what came back, and what went wrong how often."""

    address: int
    model: str
    state: str = "starting"  # answering | not answering | errors (some blocks lost)
    polls: int = 0
    readings: int = 0
    requests: int = 0
    timeouts: int = 0  # no byte came back
    crc_errors: int = 0  # an answer whose CRC was wrong
    exceptions: int = 0  # a Modbus exception response (the meter refused the request)
    bad_answers: int = 0  # cut short, another slave's, a wrong byte count, not a number
    failed_polls: int = 0  # polls in which the meter answered nothing
    silent_polls_in_row: int = 0
    last_reading_ms: int | None = None
    last_error: str = ""
    silent_for_s: float | None = None  # bus open, but no reading for silent_after_s

    def as_dict(self) -> dict[str, Any]:
        """The stats as JSON-ready values."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class ModbusStats:
    """The bus's health and each meter's, as `citygw status` and the `metrics` topic show it."""

    connected: bool = False
    state: str = "starting"  # polling | port missing
    readings: int = 0
    polls: int = 0
    reopens: int = 0
    meters_not_answering: int = 0
    last_reading_ms: int | None = None
    last_error: str = ""
    meters: dict[str, MeterStats] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The stats as JSON-ready values, each meter's under `meters`."""
        out = {name: getattr(self, name) for name in self.__slots__ if name != "meters"}
        out["meters"] = {name: meter.as_dict() for name, meter in self.meters.items()}
        return out


class ModbusSource:
    """Polls the meters of one RS-485 bus and hands their readings to the ingest."""

    def __init__(
        self,
        config: ModbusSourceConfig,
        *,
        clock: WallClock,
        open_bus: Callable[[BusSettings], Awaitable[Bus]] = open_bus,
        monotonic_s: Callable[[], float] = time.monotonic,
        turnaround_s: float = TURNAROUND_S,
    ) -> None:
        self.config = config
        self.name = config.name
        self._clock = clock
        self._open_bus = open_bus
        self._monotonic_s = monotonic_s
        self._turnaround_s = turnaround_s
        self._settings = BusSettings(
            port=config.port,
            baud=config.baud,
            parity=config.parity,
            stop_bits=config.stop_bits,
            timeout_s=config.timeout_s,
        )
        self._blocks = {meter.name: eastron.blocks(meter.model) for meter in config.meters}
        self.stats = ModbusStats(
            meters={m.name: MeterStats(address=m.address, model=m.model) for m in config.meters}
        )
        # a meter is read once per poll; a poll in which every request times out runs late
        worst_poll_s = (
            sum(len(b) for b in self._blocks.values())
            * (config.retries + 1)
            * (config.timeout_s + turnaround_s)
        )
        after_s = threshold_s(config.silent_after_s, max(config.interval_s, worst_poll_s))
        self._silence = {m.name: Silence(after_s) for m in config.meters}

    def check_silence(self) -> dict[str, float]:
        """Judge each meter's silence, {"<source>/<meter>": seconds} for the silent ones. A
        meter that does not answer was logged as such (`_judge`): its silence is not again."""
        silent = judge_all(
            {f"{self.name}/{name}": silence for name, silence in self._silence.items()},
            self._monotonic_s(),
            log=log,
            source=self.name,
            said_elsewhere={
                f"{self.name}/{name}"
                for name, meter in self.stats.meters.items()
                if meter.state == "not answering"
            },
        )
        for name, meter in self.stats.meters.items():
            meter.silent_for_s = silent.get(f"{self.name}/{name}")
        return silent

    async def run(self, sink: Sink) -> None:
        """Poll until cancelled; reopen the adapter whenever it vanishes."""
        backoff = Backoff(base_s=0.2, cap_s=self.config.reopen_max_s)
        outage = PortOutage(
            source=self.name,
            port=self.config.port,
            stats=self.stats,
            log=log,
            monotonic_s=self._monotonic_s,
        )
        while True:
            try:
                bus = await self._open_bus(self._settings)
            except BusGone as error:
                outage.cannot_open(error)
                await asyncio.sleep(backoff.next_delay())
                continue
            outage.opened()
            self.stats.connected = True
            self.stats.state = "polling"
            for silence in self._silence.values():
                silence.listen(self._monotonic_s())
            polls_before = self.stats.polls
            try:
                await self._poll_forever(bus, sink)
            except BusGone as error:  # said unless it never worked since it was opened
                outage.vanished(error, say=self.stats.polls > polls_before)
            finally:
                self.stats.connected = False
                for silence in self._silence.values():
                    silence.stop()
                bus.close()
            if self.stats.polls > polls_before:  # it worked for a while: start again quickly
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    async def _poll_forever(self, bus: Bus, sink: Sink) -> None:
        """Every meter once per interval; a poll that runs late starts the next one at once
        (no burst of catch-up polls)."""
        next_at = self._monotonic_s()
        while True:
            for meter in self.config.meters:
                if await self._poll_meter(bus, meter, sink):
                    await sink.room()
            self.stats.polls += 1
            next_at = max(next_at + self.config.interval_s, self._monotonic_s())
            await asyncio.sleep(next_at - self._monotonic_s())

    async def _poll_meter(self, bus: Bus, meter: ModbusMeter, sink: Sink) -> int:
        """Read one meter's blocks and emit its readings; how many there were."""
        stats = self.stats.meters[meter.name]
        stats.polls += 1
        measurements: list[Measurement] = []
        answered = lost = 0
        for block in self._blocks[meter.name]:
            request = eastron.ReadRequest(meter.address, block.start_register, block.count)
            response, heard = await self._read_block(bus, meter, request, stats)
            answered += heard
            if response is None:
                lost += 1
                if not answered:  # silent on its first block: do not spend the bus on the rest
                    break
            else:
                measurements.extend(response.measurements)
        if measurements:
            ts_ms = self._clock.now_ms()
            flags = 0 if self._clock.is_synced() else CLOCK_UNSYNCED
            sink.emit(f"{self.name}/{meter.name}", measurements, ts_ms, flags)
            stats.readings += len(measurements)
            stats.last_reading_ms = self.stats.last_reading_ms = ts_ms
            self.stats.readings += len(measurements)
            self._silence[meter.name].heard(self._monotonic_s())
        self._judge(meter, stats, answered=answered, lost=lost)
        return len(measurements)

    async def _read_block(
        self, bus: Bus, meter: ModbusMeter, request: eastron.ReadRequest, stats: MeterStats
    ) -> tuple[eastron.ReadResponse | None, int]:
        """The block's response, sending the request again after a timeout or a corrupt
        answer (not after an exception response: the meter meant it); and whether any bytes
        came back at all."""
        heard = 0
        for _attempt in range(self.config.retries + 1):
            raw = await bus.read_input_registers(
                request.slave, request.start_register, request.count
            )
            stats.requests += 1
            await asyncio.sleep(self._turnaround_s)
            if not raw:
                stats.timeouts += 1
                stats.last_error = f"no answer to a read of {request.count} registers at " + (
                    f"{request.start_register} within {self.config.timeout_s} s"
                )
                continue
            heard = 1
            try:
                return eastron.read_response(raw, request, model=meter.model), heard
            except eastron.ModbusError as error:
                stats.last_error = str(error)
                if error.kind == "crc":
                    stats.crc_errors += 1
                elif error.kind == "exception":
                    stats.exceptions += 1
                    return None, heard
                else:
                    stats.bad_answers += 1
        return None, heard

    def _judge(self, meter: ModbusMeter, stats: MeterStats, *, answered: int, lost: int) -> None:
        """The meter's state after a poll; a change to or from "not answering" is logged once."""
        was = stats.state
        if not answered:
            stats.failed_polls += 1
            stats.silent_polls_in_row += 1
            stats.state = "not answering"
        else:
            stats.silent_polls_in_row = 0
            stats.state = "errors" if lost else "answering"
        self.stats.meters_not_answering = sum(
            m.state == "not answering" for m in self.stats.meters.values()
        )
        where = f"meter {meter.name} (address {meter.address})"
        if stats.state == "not answering" and was != "not answering":
            log.warning(
                "source %s: %s is not answering (%s); the other meters are still read",
                self.name,
                where,
                stats.last_error,
                extra={"source": self.name, "meter": meter.name, "event": "meter_silent"},
            )
        elif was == "not answering" and stats.state != "not answering":
            log.info(
                "source %s: %s answers again",
                self.name,
                where,
                extra={"source": self.name, "meter": meter.name, "event": "meter_back"},
            )
