"""The hub's re-birth request (`<prefix>/<gateway>/cmd/birth`, payload ignored): publish the
birth again, with the series table, so a hub that lost it can decode wire v2/v3 data. At most
once per `interval_s`, so a hostile or looping hub cannot make a gateway spam; suppressed
requests are counted (`rebirths`, `rebirths_suppressed` in the uplink's metrics)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from gateway.uplinks.report import UplinkStats

REBIRTH_LEAF = "cmd/birth"


class RebirthGate:
    """Honours a re-birth request unless one was honoured in the last `interval_s`."""

    def __init__(
        self,
        stats: UplinkStats,
        *,
        interval_s: float = 10.0,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stats, self._interval_s, self._monotonic_s = stats, interval_s, monotonic_s
        self._last: float | None = None

    def allow(self) -> bool:
        """True (counted in `rebirths`) if no request was honoured in the last `interval_s`;
        else False (counted in `rebirths_suppressed`)."""
        now = self._monotonic_s()
        if self._last is not None and now - self._last < self._interval_s:
            self._stats.rebirths_suppressed += 1
            return False
        self._last = now
        self._stats.rebirths += 1
        return True

    async def offer(self, retained: bool, publish: Callable[[], Awaitable[None]]) -> None:
        """A request arrived: `publish` the birth if allowed (a retained request is stale:
        ignored, not counted)."""
        if not retained and self.allow():
            await publish()
