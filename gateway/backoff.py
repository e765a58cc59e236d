"""Capped full-jitter backoff and a log filter that says a repeated problem once per interval."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable


class Backoff:
    """Delays for retries: uniform(0, min(cap, base * 2**attempt)), as in AWS's "full jitter"."""

    def __init__(
        self, *, base_s: float, cap_s: float, rng: Callable[[float, float], float] = random.uniform
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt (the ceiling doubles each time)."""
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return max(self.base_s / 10, self._rng(0.0, ceiling))

    def reset(self) -> None:
        """Start again from base_s (after a success)."""
        self.attempt = 0


class RateLimitedLog:
    """Logs a message per key at most once per interval and says how many were held back."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval_s: float = 60.0,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._monotonic_s = monotonic_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(
        self,
        level: int,
        key: str,
        message: str,
        *args: object,
        extra: dict[str, object] | None = None,
    ) -> bool:
        """Log unless `key` was logged within the interval; whether it was logged."""
        now = self._monotonic_s()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        suffix = f" ({held} more like this in the last {self._interval_s:.0f} s)" if held else ""
        self._logger.log(level, message + suffix, *args, extra=extra)
        return True
