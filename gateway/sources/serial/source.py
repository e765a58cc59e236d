"""The serial source: a sensor on a UART (USB adapter or GPIO), decoded by its driver.

Reads without blocking the loop (the port's fd in the event loop's selector), reopens with
capped backoff when the device vanishes, and duty-cycles sensors whose lasers wear out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import serial

from drivers import new_stream
from drivers.base import Measurement
from gateway.backoff import Backoff
from gateway.config import SerialSourceConfig
from gateway.readings import CLOCK_UNSYNCED, Sink
from gateway.system.clock import WallClock

if TYPE_CHECKING:
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


class Port(Protocol):
    def fileno(self) -> int: ...
    def close(self) -> None: ...


def open_serial(path: str, baud: int) -> Port:
    """Opens the device non-blocking and exclusively (a second agent cannot steal its bytes)."""
    port: Port = serial.Serial(path, baudrate=baud, timeout=0, write_timeout=0, exclusive=True)
    return port


class PortVanished(Exception):
    """The device went away (unplugged adapter, EOF, I/O error)."""


@dataclass(frozen=True, slots=True)
class SensorCommands:
    """What to write to a sensor of a driver: on connect, to wake it, to put it to sleep."""

    start: tuple[bytes, ...]
    wake: bytes
    sleep: bytes


def sensor_commands(driver: str, *, node_interval_s: int | None = None) -> SensorCommands:
    # codecs imported here, for the one driver asked: a gateway loads only those it uses
    if driver == "node":  # a citygw node duty-cycles its own sensors; we may set its pace
        from drivers import node

        start = (
            ()
            if node_interval_s is None
            else (
                node.encode_command("set_interval", node_interval_s, node_id=node.BROADCAST, seq=1),
            )
        )
        return SensorCommands(start=start, wake=b"", sleep=b"")
    if driver == "sds011":
        from drivers import sds011

        return SensorCommands(
            # active reporting, continuous working period: our duty cycle decides
            start=(
                sds011.cmd_set_sleep(False),
                sds011.cmd_set_reporting_mode(False),
                sds011.cmd_set_working_period(0),
            ),
            wake=sds011.cmd_set_sleep(False),
            sleep=sds011.cmd_set_sleep(True),
        )
    from drivers import pms5003

    return SensorCommands(
        start=(pms5003.cmd_wake(), pms5003.cmd_active()),
        wake=pms5003.cmd_wake(),
        sleep=pms5003.cmd_sleep(),
    )


@dataclass(slots=True)
class SerialStats:
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

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class SerialSource:
    def __init__(
        self,
        config: SerialSourceConfig,
        *,
        clock: WallClock,
        open_port: Callable[[str, int], Port] = open_serial,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.name = config.name
        self._clock = clock
        self._open_port = open_port
        self._monotonic_s = monotonic_s
        self._commands = sensor_commands(config.driver, node_interval_s=config.node_interval_s)
        self.stats = SerialStats()
        self._node: NodeMonitor | None = None
        if config.driver == "node":
            from gateway.sources.serial.node_monitor import NodeMonitor

            self._node = NodeMonitor(config.name)
            self.stats.node = self._node.state

    async def run(self, sink: Sink) -> None:
        """Read until cancelled; reopen the port whenever it vanishes."""
        backoff = Backoff(base_s=0.2, cap_s=self.config.reopen_max_s)
        outage_since: float | None = None
        while True:
            try:
                port = self._open_port(self.config.port, self.config.baud)
            except (serial.SerialException, OSError, ValueError) as error:
                self.stats.last_error = str(error)
                if outage_since is None:
                    outage_since = self._monotonic_s()
                    self.stats.state = "port missing"
                    log.warning(
                        "source %s: cannot open %s (%s); retrying until it is back",
                        self.name,
                        self.config.port,
                        error,
                        extra={"source": self.name, "event": "port_missing"},
                    )
                await asyncio.sleep(backoff.next_delay())
                continue
            if outage_since is not None:
                self.stats.reopens += 1
                log.info(
                    "source %s: %s is back after %.1f s",
                    self.name,
                    self.config.port,
                    self._monotonic_s() - outage_since,
                    extra={"source": self.name, "event": "port_back"},
                )
                outage_since = None
            backoff.reset()
            self.stats.connected = True
            try:
                await self._session(port, sink)
            except PortVanished as error:
                self.stats.last_error = str(error)
                self.stats.state = "port missing"
                outage_since = self._monotonic_s()
                log.warning(
                    "source %s: %s vanished (%s); waiting for it to come back",
                    self.name,
                    self.config.port,
                    error,
                    extra={"source": self.name, "event": "port_vanished"},
                )
            finally:
                self.stats.connected = False
                port.close()

    async def _session(self, port: Port, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        fd = port.fileno()
        inbox = _Inbox()

        def on_readable() -> None:  # only reads and queues; decoding happens in _decode_loop
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

        decoder = new_stream(self.config.driver)
        gate = _Gate(self._monotonic_s)
        loop.add_reader(fd, on_readable)
        try:
            for command in self._commands.start:
                _write(fd, command)
            async with asyncio.TaskGroup() as group:
                if self.config.duty_cycle is not None:
                    group.create_task(self._duty_cycle(fd, gate), name=f"{self.name}-duty")
                else:
                    self.stats.state = "measuring"
                    gate.open_at = 0.0
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
        decoder: Any,
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
                        await sink.room()
                stats.frames = decoder.stats.frames
                stats.bad_frames = decoder.stats.bad_frames
                stats.skipped_bytes = decoder.stats.skipped_bytes
            if inbox.failure is not None:
                raise PortVanished(str(inbox.failure))
            if inbox.paused:
                inbox.paused = False
                resume()

    def _emit(self, frames: list[Any], gate: _Gate, sink: Sink) -> int:
        """Hand a slice's measurements to the sink, timestamped now; how many there were."""
        if self._node is not None:
            self._node.observe(frames)
        if not frames or not gate.is_open():
            return 0
        ts_ms = self._clock.now_ms()
        flags = 0 if self._clock.is_synced() else CLOCK_UNSYNCED
        count = 0
        if self._node is None:
            measurements = [m for frame in frames for m in frame.measurements]
            count = len(measurements)
            sink.emit(self.name, measurements, ts_ms, flags)
        else:
            for frame in frames:
                for source, measured in _per_sensor(self.name, frame):
                    count += len(measured)
                    sink.emit(source, measured, ts_ms, flags)
        if count:
            self.stats.readings += count
            self.stats.last_reading_ms = ts_ms
        return count

    async def _duty_cycle(self, fd: int, gate: _Gate) -> None:
        """Wake, let the fan settle, measure, sleep; once per period. Spares the laser."""
        cycle = self.config.duty_cycle
        assert cycle is not None
        while True:
            started = self._monotonic_s()
            _write(fd, self._commands.wake)
            gate.open_at = started + cycle.warmup_s
            self.stats.state = "warming up"
            await asyncio.sleep(cycle.warmup_s)
            self.stats.state = "measuring"
            await asyncio.sleep(cycle.on_s - cycle.warmup_s)
            gate.open_at = None
            _write(fd, self._commands.sleep)
            self.stats.state = "sleeping"
            await asyncio.sleep(max(0.0, started + cycle.period_s - self._monotonic_s()))


def _per_sensor(name: str, frame: Any) -> list[tuple[str, list[Measurement]]]:
    """A node's measurements grouped by source, `<source>/<sensor>` when the node names its
    sensors."""
    sensors = getattr(frame, "sensors", ())
    if not sensors:
        return [(name, list(frame.measurements))]
    grouped: dict[str, list[Measurement]] = {}
    for m, s in zip(frame.measurements, sensors, strict=True):
        grouped.setdefault(f"{name}/{s}" if s else name, []).append(m)
    return list(grouped.items())


class _Inbox:
    """Bytes the reader callback queued for the decode loop."""

    __slots__ = ("chunks", "failure", "paused", "ready", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.paused = False
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


def _write(fd: int, command: bytes) -> None:
    try:
        os.write(fd, command)
    except BlockingIOError:
        log.warning("serial output full; command %s not sent", command.hex())
    except OSError as error:
        raise PortVanished(f"write failed: {error}") from error
