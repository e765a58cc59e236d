"""Commands to a serial sensor, delivered whole or counted as lost; never dropped silently.

A sensor's output buffer fills when the line is stalled (flow control, a hung adapter, a pty
nobody reads). A write then waits for the fd to become writable (`loop.add_writer`), and retries
with capped backoff until the caller's deadline; a command still unsent by then is counted in
the source's stats (`commands_lost`) and logged at most once a minute. A lost sleep command
leaves an SDS011's laser on (it wears out after ~8,000 h), so callers choose deadlines that fit
their duty cycle and send again when the next phase needs it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from gateway.backoff import Backoff, RateLimitedLog

log = logging.getLogger(__name__)


class PortVanished(Exception):
    """The device went away (unplugged adapter, EOF, I/O error)."""


class CommandCounts(Protocol):
    """Where the writer counts (the source's stats, which `citygw status` and metrics show)."""

    commands_sent: int
    """Commands written whole."""
    commands_waited: int
    """Times a command found the output buffer full and had to wait for room."""
    commands_lost: int
    """Commands given up on at their deadline (the sensor may be in the wrong state)."""


class CommandWriter:
    """Writes commands to a non-blocking fd: waits for room, retries, counts what it loses."""

    def __init__(
        self,
        fd: int,
        *,
        name: str,
        counts: CommandCounts,
        retry_base_s: float = 0.05,
        retry_cap_s: float = 2.0,
        monotonic_s: Callable[[], float] = time.monotonic,
        warnings: RateLimitedLog | None = None,
    ) -> None:
        self._fd = fd
        self._name = name
        self.counts = counts
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._monotonic_s = monotonic_s
        self._warnings = warnings or RateLimitedLog(log, monotonic_s=monotonic_s)

    async def send(self, command: bytes, *, what: str, timeout_s: float) -> bool:
        """Write all of `command` within `timeout_s`; False (counted, logged) if it could not.

        Raises PortVanished when the device is gone (the caller reopens it)."""
        if not command:
            return True
        deadline = self._monotonic_s() + timeout_s
        backoff = Backoff(base_s=self._retry_base_s, cap_s=self._retry_cap_s)
        view = self._write_some(memoryview(command))
        while view:
            self.counts.commands_waited += 1
            remaining = deadline - self._monotonic_s()
            if remaining <= 0 or not await self._writable(remaining):
                break
            before = len(view)
            view = self._write_some(view)
            if view and len(view) == before:  # writable, yet nothing fitted: back off
                await asyncio.sleep(min(backoff.next_delay(), remaining))
        else:
            self.counts.commands_sent += 1
            return True
        self.counts.commands_lost += 1
        self._warnings.log(
            logging.WARNING,
            f"{self._name}:{what}",
            "source %s: %s command (%d bytes, %d unsent) not delivered in %.1f s: the output "
            "is stalled; %d commands lost so far",
            self._name,
            what,
            len(command),
            len(view),
            timeout_s,
            self.counts.commands_lost,
            extra={"source": self._name, "event": "command_lost", "command": what},
        )
        return False

    def send_once(self, command: bytes, *, what: str) -> bool:
        """One write without waiting (the source is stopping); a short write counts as lost."""
        try:
            left = self._write_some(memoryview(command))
        except PortVanished:
            left = memoryview(command)
        if left:
            self.counts.commands_lost += 1
            log.warning(
                "source %s: %s command not delivered on stop (output stalled or port gone)",
                self._name,
                what,
                extra={"source": self._name, "event": "command_lost", "command": what},
            )
            return False
        self.counts.commands_sent += 1
        return True

    def _write_some(self, view: memoryview) -> memoryview:
        """What is left of `view` after one non-blocking write."""
        try:
            written = os.write(self._fd, view)
        except BlockingIOError:
            return view
        except OSError as error:
            raise PortVanished(f"write failed: {error}") from error
        return view[written:]

    async def _writable(self, timeout_s: float) -> bool:
        """Whether the fd became writable within `timeout_s`."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def on_writable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_writer(self._fd, on_writable)
        try:
            async with asyncio.timeout(timeout_s):
                await ready
        except TimeoutError:
            return False
        finally:
            loop.remove_writer(self._fd)
        return True
