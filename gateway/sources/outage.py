"""A device path that is missing or vanished: the state, counters and log lines every source
that opens one (serial port, RS-485 adapter) keeps the same way, one line per episode."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol


class PortStats(Protocol):
    """What a source's stats must have for its outages to be reported."""

    state: str
    last_error: str
    reopens: int


class PortOutage:
    """Says "cannot open" once until the device is back, "is back after N s" once, and
    "vanished" when an open device goes away; counts the reopens in `stats`."""

    def __init__(
        self,
        *,
        source: str,
        port: str,
        stats: PortStats,
        log: logging.Logger,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._port = port
        self._stats = stats
        self._log = log
        self._monotonic_s = monotonic_s
        self.since: float | None = None
        """Monotonic start of the current outage; None while the device is open."""

    def cannot_open(self, error: BaseException | str) -> None:
        """An open failed; logged only at the start of an outage."""
        self._stats.last_error = str(error)
        if self.since is None:
            self.since = self._monotonic_s()
            self._stats.state = "port missing"
            self._log.warning(
                "source %s: cannot open %s (%s); retrying until it is back",
                self._source,
                self._port,
                error,
                extra={"source": self._source, "event": "port_missing"},
            )

    def opened(self) -> None:
        """An open succeeded: the end of an outage, if there was one, is counted and logged."""
        if self.since is None:
            return
        self._stats.reopens += 1
        self._log.info(
            "source %s: %s is back after %.1f s",
            self._source,
            self._port,
            self._monotonic_s() - self.since,
            extra={"source": self._source, "event": "port_back"},
        )
        self.since = None

    def vanished(self, error: BaseException | str, *, say: bool = True) -> None:
        """The open device went away; `say=False` when it never worked since it was opened
        (the outage that was just logged goes on)."""
        self._stats.last_error = str(error)
        self._stats.state = "port missing"
        self.since = self._monotonic_s()
        if say:
            self._log.warning(
                "source %s: %s vanished (%s); waiting for it to come back",
                self._source,
                self._port,
                error,
                extra={"source": self._source, "event": "port_vanished"},
            )
