"""Replay and downgrade protection for BTHome adverts: per device, the encryption counter must rise.

The only state a BTHome receiver keeps. It sees adverts after `bthome.decode` has verified their
MIC, so a counter here is authentic; what it stops is a recorded advert sent again.

* An encrypted advert is accepted when its counter is higher than the last accepted one.
* A counter below `restart_below` (100) after one at or above it is accepted as a restart: the
  wrap from 0xFFFFFFFF to 0, or a device that lost its counter with its battery. bthome-ble accepts
  the same window. The price: a recorded advert with a counter below 100 could be replayed once
  the device is past 100. Pass `restart_below=1` to accept only a restart at exactly 0.
* A plain (unencrypted) advert from a device that has a bind key is a downgrade and is refused.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

from drivers.bthome import Advert

Verdict: TypeAlias = Literal["accept", "replay", "downgrade"]
RESTART_BELOW: Final = 100


class ReplayGuard:
    """Remembers the last accepted counter of each device (by whatever name the caller uses)."""

    __slots__ = ("_last", "restart_below")

    def __init__(self, *, restart_below: int = RESTART_BELOW) -> None:
        self.restart_below = restart_below
        self._last: dict[str, int] = {}

    def check(self, device: str, advert: Advert, *, has_key: bool) -> Verdict:
        """Whether to forward `advert`; an accepted counter becomes the device's last one."""
        if not advert.encrypted or advert.counter is None:
            return "downgrade" if has_key else "accept"
        counter, last = advert.counter, self._last.get(device)
        restarted = last is not None and counter < self.restart_below <= last
        if last is not None and counter <= last and not restarted:
            return "replay"
        self._last[device] = counter
        return "accept"

    def last_counter(self, device: str) -> int | None:
        """The highest encryption counter accepted from `device`; None before its first."""
        return self._last.get(device)

    def forget(self, device: str) -> None:
        """Drop a device's counter (its key changed, or it was removed from the allow-list)."""
        self._last.pop(device, None)
