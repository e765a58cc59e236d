"""The serial source: a sensor on a UART (USB adapter or GPIO), decoded by its driver.

Reads without blocking the loop (the port's fd in the event loop's selector), reopens with
capped backoff when the device vanishes, and duty-cycles sensors whose lasers wear out. While
the ingest has no room (`sink.room()` waits) the fd leaves the selector, so the backlog waits in
the kernel's tty buffer; the port stays open (pyserial discards pending input at every open).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import serial

from drivers import Frame, StreamDecoderProtocol, new_stream
from gateway.backoff import Backoff, RateLimitedLog
from gateway.config import DutyCycle, SerialSourceConfig
from gateway.readings import CLOCK_UNSYNCED, Sink
from gateway.sources.outage import PortOutage
from gateway.sources.serial.commands import SensorCommands, driver_options, sensor_commands
from gateway.sources.serial.writer import CommandWriter, PortVanished
from gateway.sources.silence import Silence, judge_all, serial_gap_s, threshold_s
from gateway.system.clock import WallClock

if TYPE_CHECKING:
    from gateway.sources.serial.aggregate import IntervalAggregator
    from gateway.sources.serial.node_monitor import NodeMonitor

log = logging.getLogger(__name__)

_MAX_PENDING_BYTES = 16 * 1024
"""Bytes read but not yet decoded; beyond this the port is not read until they are (backpressure
reaches the UART's own buffer instead of our memory). 1,600 SDS011 frames; 64 KiB cost ~0.5 MB
of peak RSS with four ports at full rate (BENCHMARKS.md, memory)."""
_READ_BYTES = 4096
"""Asked per read(2): a tty hands out at most a few KiB at a time, and each read first allocates
this much (a larger buffer, shrunk afterwards, fragments the heap)."""
_SLICE_BYTES = 4096
"""Decoded and emitted at a time, with `sink.room()` awaited in between (a few hundred readings),
so one burst can never overrun the ingest's staging."""
COMMAND_TIMEOUT_S = 5.0
"""How long a start command may wait for room in a stalled output buffer before it counts as
lost (a UART at 9600 baud empties a 4 KiB buffer in ~4 s)."""

__all__ = [
    "PortVanished",
    "SensorCommands",
    "SerialSource",
    "SerialStats",
    "open_serial",
    "sensor_commands",
]


class Port(Protocol):
    """An open serial device: the source only needs its fd (read and written non-blocking)."""

    def fileno(self) -> int:
        """The OS file descriptor, watched in the event loop's selector."""
        ...

    def close(self) -> None:
        """Release the device, and its exclusive lock, for the next open."""
        ...


def open_serial(path: str, baud: int) -> Port:
    """Opens the device non-blocking and exclusively (a second agent cannot steal its bytes)."""
    port: Port = serial.Serial(path, baudrate=baud, timeout=0, write_timeout=0, exclusive=True)
    return port


@dataclass(slots=True)
class SerialStats:
    """A serial source's health, as `citygw status` and the `metrics` topic show it."""

    connected: bool = False
    readings: int = 0
    frames: int = 0
    bad_frames: int = 0
    skipped_bytes: int = 0
    reopens: int = 0
    last_reading_ms: int | None = None
    last_error: str = ""
    state: str = "starting"
    node: dict[str, Any] | None = None  # driver "node": what the node reports about itself
    commands_sent: int = 0
    commands_waited: int = 0  # a command found the output buffer full and waited for room
    commands_lost: int = 0  # not delivered by its deadline: the sensor may be in the wrong state
    silent_for_s: float | None = None  # port open, but no frame for silent_after_s (silence.py)

    def as_dict(self) -> dict[str, Any]:
        """The stats as JSON-ready values."""
        return {name: getattr(self, name) for name in self.__slots__}


class SerialSource:
    """Reads one sensor on a serial port and hands its readings to the ingest."""

    def __init__(
        self,
        config: SerialSourceConfig,
        *,
        clock: WallClock,
        open_port: Callable[[str, int], Port] = open_serial,
        monotonic_s: Callable[[], float] = time.monotonic,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
    ) -> None:
        self.config = config
        self.name = config.name
        self._clock = clock
        self._open_port = open_port
        self._monotonic_s = monotonic_s
        self._options = driver_options(config)
        self._commands = sensor_commands(
            config.driver, node_interval_s=config.node_interval_s, options=self._options
        )
        self.stats = SerialStats()
        self._silence = Silence(threshold_s(config.silent_after_s, serial_gap_s(config)))
        self._command_timeout_s = command_timeout_s
        self._command_warnings = RateLimitedLog(log, monotonic_s=monotonic_s)
        self._node: NodeMonitor | None = None
        if config.driver == "node":
            from gateway.sources.serial.node_monitor import NodeMonitor

            self._node = NodeMonitor(config.name)
            self.stats.node = self._node.state
        self._aggregator: IntervalAggregator | None = None
        if config.aggregate_s is not None:
            from gateway.sources.serial.aggregate import interval_aggregator

            self._aggregator = interval_aggregator(config, start_s=monotonic_s())

    async def run(self, sink: Sink) -> None:
        """Read until cancelled; reopen the port whenever it vanishes."""
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
                port = self._open_port(self.config.port, self.config.baud)
            except (serial.SerialException, OSError, ValueError) as error:
                outage.cannot_open(error)
                await asyncio.sleep(backoff.next_delay())
                continue
            outage.opened()
            backoff.reset()
            self.stats.connected = True
            self._silence.listen(self._monotonic_s())
            try:
                await self._session(port, sink)
            except PortVanished as error:
                outage.vanished(error)
            finally:
                self.stats.connected = False
                self._silence.stop()
                port.close()

    def check_silence(self) -> dict[str, float]:
        """Judge the sensor's silence (logged once per episode); {name: seconds} if silent."""
        silent = judge_all(
            {self.name: self._silence}, self._monotonic_s(), log=log, source=self.name
        )
        self.stats.silent_for_s = silent.get(self.name)
        return silent

    async def _session(self, port: Port, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        fd = port.fileno()
        inbox = _Inbox()

        def on_readable() -> None:  # only reads and queues; decoding happens in _decode_loop
            if inbox.holding:  # the ingest has no room: leave the bytes in the kernel
                loop.remove_reader(fd)
                inbox.paused = True
                return
            try:
                data = os.read(fd, _READ_BYTES)
            except BlockingIOError:
                return
            except OSError as error:
                inbox.failure = error
                loop.remove_reader(fd)
            else:
                if data:
                    inbox.chunks.append(data)
                    inbox.size += len(data)
                    if inbox.size > _MAX_PENDING_BYTES:
                        loop.remove_reader(fd)
                        inbox.paused = True
                else:
                    inbox.failure = PortVanished("end of file")
                    loop.remove_reader(fd)
            inbox.ready.set()

        decoder = new_stream(self.config.driver, **self._options)
        gate = _Gate(self._monotonic_s)
        writer = CommandWriter(
            fd,
            name=self.name,
            counts=self.stats,
            monotonic_s=self._monotonic_s,
            warnings=self._command_warnings,
        )
        loop.add_reader(fd, on_readable)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._control(writer, gate), name=f"{self.name}-control")
                if self._aggregator is not None:
                    group.create_task(self._aggregate(self._aggregator, sink))
                group.create_task(
                    self._decode_loop(
                        decoder, inbox, gate, sink, resume=lambda: loop.add_reader(fd, on_readable)
                    )
                )
        except BaseExceptionGroup as group_error:
            leaf: BaseException = group_error
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            raise leaf from None
        finally:
            loop.remove_reader(fd)

    async def _decode_loop(
        self,
        decoder: StreamDecoderProtocol,
        inbox: _Inbox,
        gate: _Gate,
        sink: Sink,
        resume: Callable[[], None],
    ) -> None:
        stats = self.stats
        while True:
            await inbox.ready.wait()
            inbox.ready.clear()
            if inbox.chunks:
                data = b"".join(inbox.chunks)
                inbox.chunks.clear()
                inbox.size = 0
                for start in range(0, len(data), _SLICE_BYTES):
                    # the slice's frames are gone before the await: four paused ports' worth
                    # of frame objects were ~0.4 MB of peak RSS (BENCHMARKS.md, memory)
                    if self._emit(decoder.feed(data[start : start + _SLICE_BYTES]), gate, sink):
                        inbox.holding = True  # the reader stops at its next call if this waits
                        await sink.room()
                        inbox.holding = False
                stats.frames = decoder.stats.frames
                stats.bad_frames = decoder.stats.bad_frames
                stats.skipped_bytes = decoder.stats.skipped_bytes
            if inbox.failure is not None:
                raise PortVanished(str(inbox.failure))
            if inbox.paused:
                inbox.paused = False
                resume()

    def _emit(self, frames: Sequence[Frame], gate: _Gate, sink: Sink) -> int:
        """Hand a slice's measurements to the sink, timestamped now; how many there were."""
        if frames:
            self._silence.heard(self._monotonic_s())
        if self._node is not None:
            self._node.observe(frames)
        if not frames or not gate.is_open():
            return 0
        ts_ms = self._clock.now_ms()
        flags = 0 if self._clock.is_synced() else CLOCK_UNSYNCED
        count = 0
        if self._node is None:
            if self._aggregator is None:
                measurements = [m for frame in frames for m in frame.measurements]
            else:
                measurements = self._aggregator.take(frames, self._monotonic_s())
            count = len(measurements)
            sink.emit(self.name, measurements, ts_ms, flags)
        else:
            for frame in frames:
                for source, measured in self._node.per_sensor(frame):
                    count += len(measured)
                    sink.emit(source, measured, ts_ms, flags)
        if count:
            self.stats.readings += count
            self.stats.last_reading_ms = ts_ms
        return count

    async def _control(self, writer: CommandWriter, gate: _Gate) -> None:
        """Set the sensor up at every (re)connect, then duty-cycle it or let it measure."""
        cycle = self.config.duty_cycle
        if cycle is None:
            self.stats.state = "measuring"
            gate.open_at = 0.0
        for command in self._commands.start:
            await writer.send(command, what="start", timeout_s=self._command_timeout_s)
        if cycle is not None:
            await self._duty_cycle(writer, gate, cycle)

    async def _duty_cycle(self, writer: CommandWriter, gate: _Gate, cycle: DutyCycle) -> None:
        """Wake, let the fan settle, measure, sleep; once per period. Spares the laser.

        Each command may wait for room until its phase ends (a wake until the end of the
        measuring window, a sleep until the next wake-up); a sensor left awake when the source
        stops is sent one last sleep command."""
        awake = False
        try:
            while True:
                started = self._monotonic_s()
                gate.open_at = started + cycle.warmup_s
                self.stats.state = "warming up"
                awake = True
                await writer.send(self._commands.wake, what="wake", timeout_s=cycle.on_s)
                await self._sleep_until(started + cycle.warmup_s)
                self.stats.state = "measuring"
                await self._sleep_until(started + cycle.on_s)
                gate.open_at = None
                self.stats.state = "going to sleep"
                until_wake_s = started + cycle.period_s - self._monotonic_s()
                if await writer.send(self._commands.sleep, what="sleep", timeout_s=until_wake_s):
                    awake = False
                    self.stats.state = "sleeping"
                await self._sleep_until(started + cycle.period_s)
        finally:
            if awake:
                writer.send_once(self._commands.sleep, what="sleep")

    async def _aggregate(self, aggregator: IntervalAggregator, sink: Sink) -> None:
        """At the end of each interval, its readings, stamped now (the interval's end)."""
        while True:
            await self._sleep_until(aggregator.due_s)
            measurements = aggregator.flush(self._monotonic_s())
            if measurements:
                ts_ms = self._clock.now_ms()
                flags = 0 if self._clock.is_synced() else CLOCK_UNSYNCED
                sink.emit(self.name, measurements, ts_ms, flags)
                self.stats.readings += len(measurements)
                self.stats.last_reading_ms = ts_ms

    async def _sleep_until(self, deadline_s: float) -> None:
        await asyncio.sleep(max(0.0, deadline_s - self._monotonic_s()))


class _Inbox:
    """Bytes the reader callback queued for the decode loop."""

    __slots__ = ("chunks", "failure", "holding", "paused", "ready", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.paused = False  # the fd is out of the selector until the decode loop catches up
        self.holding = False  # the decode loop waits for the ingest's room: read nothing
        self.failure: BaseException | None = None
        self.ready = asyncio.Event()


class _Gate:
    """Whether readings are wanted now: from `open_at` (monotonic seconds) on; None = closed."""

    __slots__ = ("_monotonic_s", "open_at")

    def __init__(self, monotonic_s: Callable[[], float]) -> None:
        self._monotonic_s = monotonic_s
        self.open_at: float | None = None

    def is_open(self) -> bool:
        return self.open_at is not None and self._monotonic_s() >= self.open_at
