"""Sensor simulators on pseudo-terminals: an SDS011 and a PMS5003 that answer like the real ones.

Used by `make demo` and the integration tests. Each simulator owns the master side of a pty; the
agent opens the slave path (or a symlink to it) as if it were a USB serial adapter. The simulators
are thread-free: `run()` is a coroutine that runs until cancelled. Cancel it before `close_pty`.

    master_fd, slave_path = open_pty("/tmp/ttySDS011")
    sensor = SimulatedSds011(master_fd, device_id=0xA160, interval_s=1.0)
    task = asyncio.create_task(sensor.run())
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import random
import select
import termios
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Generic, TypeAlias, TypeVar

from drivers import pms5003, sds011

log = logging.getLogger(__name__)

PmPair: TypeAlias = tuple[float, float]  # (pm2_5_ugm3, pm10_ugm3)
PmsFrame: TypeAlias = pms5003.DataFrame | pms5003.DataFrameT

_INBOX_SIZE = 64  # chunks read from the pty and not yet parsed
_READ_SIZE = 4096
REATTACH_S = 0.05  # how soon to look again for a host after the slave side was closed

CommandT = TypeVar("CommandT")
ValueT = TypeVar("ValueT")


def _make_raw(fd: int) -> None:
    """cfmakeraw(3) on a tty: bytes pass unmodified, no echo, no signals, 8 data bits."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(fd)
    iflag &= ~(
        termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
        | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON
    )  # fmt: skip
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    cc[termios.VMIN], cc[termios.VTIME] = 1, 0
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])


def open_pty(link_path: str | None = None) -> tuple[int, str]:
    """A raw pty: (non-blocking master fd, slave path). With `link_path`, a symlink to the slave
    is put there (atomically replacing an old one), so a test can make a device vanish and return.
    """
    master_fd, slave_fd = os.openpty()
    try:
        _make_raw(slave_fd)  # the settings stay with the pty after this fd is closed
        slave_path = os.ttyname(slave_fd)
    finally:
        os.close(slave_fd)
    os.set_blocking(master_fd, False)
    if link_path is not None:
        temporary = Path(f"{link_path}.{os.getpid()}.tmp")
        temporary.symlink_to(slave_path)
        temporary.replace(link_path)
    return master_fd, slave_path


def close_pty(master_fd: int, link_path: str | None = None) -> None:
    """Close the master (the device vanishes) and remove the symlink, if any."""
    if link_path is not None:
        with contextlib.suppress(FileNotFoundError):
            Path(link_path).unlink()
    os.close(master_fd)


def read_master(master_fd: int) -> bytes | None:
    """What the host wrote to the pty: None if nothing is waiting, b"" if no host has the slave
    open (the master then stays readable, a hang-up, until one does)."""
    try:
        return os.read(master_fd, _READ_SIZE)
    except BlockingIOError:
        return None
    except OSError:
        return b""  # EIO: no host has the slave open


def host_attached(master_fd: int) -> bool:
    """Whether anything has the slave side open (else the master reports a hang-up)."""
    poller = select.poll()
    poller.register(master_fd, select.POLLIN)
    return not any(events & select.POLLHUP for _, events in poller.poll(0))


def pm_random_walk(
    *, seed: int = 0, low_ugm3: float = 8.0, high_ugm3: float = 20.0
) -> Iterator[PmPair]:
    """Endless, reproducible (PM2.5, PM10) pairs: a mean-reverting walk kept within the bounds."""
    rng = random.Random(seed)
    mean = (low_ugm3 + high_ugm3) / 2
    pm2_5 = mean
    while True:
        pm2_5 = min(max(pm2_5 + 0.1 * (mean - pm2_5) + rng.gauss(0.0, 1.0), low_ugm3), high_ugm3)
        yield round(pm2_5, 1), round(pm2_5 * rng.uniform(1.2, 1.8), 1)


def pms_frame(
    pm2_5_ugm3: float,
    pm10_ugm3: float,
    *,
    model: pms5003.Model = "pms5003",
    temperature_c: float = 21.0,
    humidity_pct: float = 45.0,
) -> PmsFrame:
    """A plausible PMS frame around the given PM2.5 and PM10: PM1.0 and counts are derived."""
    pm2_5, pm10 = round(pm2_5_ugm3), round(pm10_ugm3)
    pm1_0 = round(pm2_5_ugm3 * 0.7)
    n0_3 = round(pm2_5_ugm3 * 110)
    n0_5 = round(n0_3 * 0.32)
    n1_0 = round(n0_5 * 0.25)
    n2_5 = round(n1_0 * 0.15 + max(pm10_ugm3 - pm2_5_ugm3, 0.0))
    pm = (pm1_0, round(pm2_5 * 1.08), round(pm10 * 1.08), pm1_0, pm2_5, pm10)
    reserved = 0x9700  # version 0x97, no error, as in captured frames
    if model == "pms5003t":
        temperature, humidity = round(temperature_c, 1), round(humidity_pct, 1)
        return pms5003.DataFrameT(*pm, n0_3, n0_5, n1_0, n2_5, temperature, humidity, reserved)
    n5_0 = round(n2_5 * 0.2)
    return pms5003.DataFrame(*pm, n0_3, n0_5, n1_0, n2_5, n5_0, round(n5_0 * 0.3), reserved)


def pms_random_walk(*, model: pms5003.Model = "pms5003", seed: int = 0) -> Iterator[PmsFrame]:
    """Endless, reproducible PMS frames; for the T model with a drifting temperature and RH."""
    rng = random.Random(seed)
    temperature_c, humidity_pct = 21.0, 45.0
    for pm2_5, pm10 in pm_random_walk(seed=seed):
        temperature_c = min(max(temperature_c + rng.gauss(0.0, 0.1), 15.0), 30.0)
        humidity_pct = min(max(humidity_pct + rng.gauss(0.0, 0.5), 20.0), 80.0)
        yield pms_frame(
            pm2_5, pm10, model=model, temperature_c=temperature_c, humidity_pct=humidity_pct
        )


def _value_source(
    values: Callable[[], ValueT] | Iterator[ValueT],
) -> Callable[[], ValueT | None]:
    """One call per data frame; an iterator that runs out makes the sensor fall silent."""
    if isinstance(values, Iterator):
        iterator = values
        return lambda: next(iterator, None)
    return values


class _PtySensor(abc.ABC, Generic[CommandT]):
    """What both simulators share: the pty, the command inbox, the data schedule, the counters."""

    def __init__(self, master_fd: int, *, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.master_fd = master_fd
        self.interval_s = interval_s
        self.frames_sent = 0  # data frames written
        self.replies_sent = 0  # command replies written
        self.frames_dropped = 0  # frames not written: no host attached, or its buffer full
        self.commands_received = 0  # parsed, whether addressed to this sensor and obeyed or not
        self.last_command: CommandT | None = None
        self.sleeping = False
        self._next_data_s = 0.0  # loop time of the next data frame in active mode
        self._reattach: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Stream data while active and awake, and answer commands; runs until cancelled."""
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[bytes] = asyncio.Queue(_INBOX_SIZE)
        os.set_blocking(self.master_fd, False)
        self._watch(loop, inbox)
        self._next_data_s = loop.time() + self._period_s()
        try:
            while True:
                try:
                    async with asyncio.timeout_at(self._next_data_s):
                        chunk = await inbox.get()
                except TimeoutError:
                    if self._streaming():
                        self._send_data()
                    self._reschedule(loop.time(), keep_phase=True)
                    continue
                for command in self._parse(chunk):
                    self.commands_received += 1
                    self.last_command = command
                    self._handle(command, loop.time())
        finally:
            loop.remove_reader(self.master_fd)
            if self._reattach is not None:
                self._reattach.cancel()

    def _watch(self, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[bytes]) -> None:
        self._reattach = None
        loop.add_reader(self.master_fd, self._on_readable, loop, inbox)

    def _on_readable(self, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[bytes]) -> None:
        """Reader callback: only reads and queues; parsing happens in run()."""
        chunk = read_master(self.master_fd)
        if chunk is None:
            return
        if not chunk:
            loop.remove_reader(self.master_fd)
            self._reattach = loop.call_later(REATTACH_S, self._watch, loop, inbox)
            return
        try:
            inbox.put_nowait(chunk)
        except asyncio.QueueFull:
            log.warning("simulator inbox full, dropped %d command bytes", len(chunk))

    def _reschedule(self, now_s: float, *, keep_phase: bool = False) -> None:
        period_s = self._period_s()
        if keep_phase and self._next_data_s + period_s > now_s:
            self._next_data_s += period_s
        else:
            self._next_data_s = now_s + period_s

    def _deliverable(self) -> bool:
        """Whether a host has the slave open; counts a dropped frame if not. Checked before a
        frame's values are drawn, so a seeded sensor sends the same sequence whenever it starts."""
        if host_attached(self.master_fd):
            return True
        self.frames_dropped += 1
        return False

    def _write(self, frame: bytes) -> bool:
        try:
            written = os.write(self.master_fd, frame)
        except OSError as exc:  # BlockingIOError: the host does not read
            log.debug("simulator dropped a frame: %s", exc)
            self.frames_dropped += 1
            return False
        return written == len(frame)

    def _period_s(self) -> float:
        return self.interval_s

    @abc.abstractmethod
    def _parse(self, chunk: bytes) -> Sequence[CommandT]: ...

    @abc.abstractmethod
    def _handle(self, command: CommandT, now_s: float) -> None: ...

    @abc.abstractmethod
    def _streaming(self) -> bool:
        """Whether the sensor sends data frames on its own now."""

    @abc.abstractmethod
    def _send_data(self) -> None: ...


class SimulatedSds011(_PtySensor[sds011.CommandFrame]):
    """An SDS011: active mode streams a C0 frame every `interval_s` (or every working period);
    query mode answers cmd_query; a sleeping sensor ignores everything but sleep/work.
    `values` gives (PM2.5, PM10) per frame; by default a random walk seeded with `seed`.
    An iterator that runs out makes the sensor fall silent."""

    def __init__(
        self,
        master_fd: int,
        *,
        device_id: int = 0xA160,
        interval_s: float = 1.0,
        values: Callable[[], PmPair] | Iterator[PmPair] | None = None,
        seed: int = 0,
        query_mode: bool = False,
        firmware: tuple[int, int, int] = (15, 7, 10),
    ) -> None:
        super().__init__(master_fd, interval_s=interval_s)
        self.device_id = device_id
        self.query_mode = query_mode  # a real sensor keeps it across power cycles
        self.working_period_min = 0
        self.firmware = firmware
        self.last_values: PmPair | None = None
        self._values = _value_source(pm_random_walk(seed=seed) if values is None else values)
        self._commands = sds011.StreamDecoder(host_commands=True)

    def _parse(self, chunk: bytes) -> list[sds011.CommandFrame]:
        frames = self._commands.feed(chunk)
        return [frame for frame in frames if isinstance(frame, sds011.CommandFrame)]

    def _handle(self, command: sds011.CommandFrame, now_s: float) -> None:
        if command.device_id not in (sds011.BROADCAST_ID, self.device_id):
            return
        if self.sleeping and command.sub_command != sds011.SLEEP_WORK:
            return
        is_set = command.operation == "set"
        match command.sub_command:
            case sds011.QUERY_DATA:
                self._send_data()
                return
            case sds011.FIRMWARE:
                self._reply(sds011.FIRMWARE, "query", 0, extra=bytes(self.firmware))
                return
            case sds011.SET_DEVICE_ID:
                self.device_id = command.new_device_id
                self._reply(sds011.SET_DEVICE_ID, "query", 0)  # as in the datasheet example
                return
            case sds011.REPORTING_MODE:
                if is_set:
                    self.query_mode = command.value == 1
                value = int(self.query_mode)
            case sds011.SLEEP_WORK:
                if is_set:
                    self.sleeping = command.value == 0
                value = int(not self.sleeping)
            case sds011.WORKING_PERIOD:
                if is_set and command.value <= sds011.MAX_WORKING_PERIOD_MIN:
                    self.working_period_min = command.value
                value = self.working_period_min
            case _:
                log.debug("simulated SDS011 ignores sub-command 0x%02x", command.sub_command)
                return
        self._reply(command.sub_command, command.operation, value)
        if is_set:
            self._reschedule(now_s)

    def _reply(
        self, sub_command: int, operation: sds011.Operation, value: int, *, extra: bytes = b"\x00"
    ) -> None:
        frame = sds011.encode_reply(
            sub_command, operation, value, device_id=self.device_id, extra=extra
        )
        if self._deliverable() and self._write(frame):
            self.replies_sent += 1

    def _period_s(self) -> float:
        return self.working_period_min * 60.0 if self.working_period_min else self.interval_s

    def _streaming(self) -> bool:
        return not self.sleeping and not self.query_mode

    def _send_data(self) -> None:
        values = self._values() if self._deliverable() else None
        if values is None:
            return
        if self._write(sds011.encode_data(*values, device_id=self.device_id)):
            self.frames_sent += 1
            self.last_values = values


class SimulatedPms5003(_PtySensor[pms5003.CommandFrame]):
    """A PMS5003 (or PMS5003T): active mode streams a frame every `interval_s`; passive mode
    answers cmd_read; asleep it sends nothing. It sends no command acknowledgements.
    `values` gives whole frames; by default a random walk seeded with `seed`."""

    def __init__(
        self,
        master_fd: int,
        *,
        model: pms5003.Model = "pms5003",
        interval_s: float = 1.0,
        values: Callable[[], PmsFrame] | Iterator[PmsFrame] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(master_fd, interval_s=interval_s)
        self.model = model
        self.passive = False
        self.last_values: PmsFrame | None = None
        default = pms_random_walk(model=model, seed=seed)
        self._values = _value_source(default if values is None else values)
        self._commands = pms5003.StreamDecoder(model=model, host_commands=True)

    def _parse(self, chunk: bytes) -> list[pms5003.CommandFrame]:
        frames = self._commands.feed(chunk)
        return [frame for frame in frames if isinstance(frame, pms5003.CommandFrame)]

    def _handle(self, command: pms5003.CommandFrame, now_s: float) -> None:
        match command.command:
            case pms5003.CMD_SLEEP:
                self.sleeping = command.data == 0
            case pms5003.CMD_MODE:
                self.passive = command.data == 0
            case pms5003.CMD_READ:
                if not self.sleeping:
                    self._send_data()
                return
        self._reschedule(now_s)

    def _streaming(self) -> bool:
        return not self.sleeping and not self.passive

    def _send_data(self) -> None:
        frame = self._values() if self._deliverable() else None
        if frame is None:
            return
        if self._write(pms5003.encode_data(frame)):
            self.frames_sent += 1
            self.last_values = frame
