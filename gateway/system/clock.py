"""Wall-clock time for timestamps and whether the kernel says it is synchronised (NTP)."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.system import libc

_TIME_ERROR = 5  # adjtimex(2): clock not synchronised
_RECHECK_S = 60.0


def _kernel_clock_synced() -> bool | None:
    """True/False from ntp_adjtime(2) read-only; None where the call is unavailable."""
    state = libc.ntp_adjtime_state()
    if state is None or state < 0:
        return None
    return bool(state != _TIME_ERROR)


class WallClock:
    """UTC milliseconds plus a cached "synchronised?" answer, re-asked once a minute."""

    def __init__(
        self,
        *,
        now_s: Callable[[], float] = time.time,
        monotonic_s: Callable[[], float] = time.monotonic,
        synced: Callable[[], bool | None] = _kernel_clock_synced,
    ) -> None:
        self._now_s = now_s
        self._monotonic_s = monotonic_s
        self._synced = synced
        self._checked_at = float("-inf")
        self._is_synced = True

    def now_ms(self) -> int:
        """Wall-clock time in Unix milliseconds."""
        return int(self._now_s() * 1000)

    def is_synced(self) -> bool:
        """Whether the kernel says NTP synchronised the clock (asked at most every few seconds)."""
        now = self._monotonic_s()
        if now - self._checked_at >= _RECHECK_S:
            self._checked_at = now
            answer = self._synced()
            self._is_synced = True if answer is None else answer
        return self._is_synced
