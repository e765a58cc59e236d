"""Data messages set aside until their gateway's birth arrives (re-birth), and when to ask.

A v2 or v3 message names its series by the birth's aliases; when the hub does not know them
(a retained birth lost, a broker without retained messages, a new worker) the message waits
here, unacknowledged: if this worker dies the broker gives it back. Bounded in messages and
bytes (MQTT 5 Receive Maximum keeps the broker sending past them); a message that does not fit,
or waits longer than `max_age_s`, is quarantined. Pure: the caller passes the time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as the ingest received it (`mid`, `qos` acknowledge it)."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    retained: bool
    received_ms: int
    generation: int = 0
    """Which connection it came on (acknowledged only on that one)."""


class Pending:
    """Parked messages per gateway, oldest first, and the birth requests they call for."""

    def __init__(
        self,
        *,
        max_messages: int = 2000,
        max_bytes: int = 64 << 20,
        max_age_s: float = 600.0,
        ask_every_s: float = 15.0,
    ) -> None:
        self._parked: OrderedDict[str, list[tuple[float, Incoming]]] = OrderedDict()
        self._asked: dict[str, float] = {}
        self._max_messages, self._max_bytes = max_messages, max_bytes
        self._max_age_s, self._ask_every_s = max_age_s, ask_every_s
        self.messages = 0
        self.bytes = 0

    def park(self, gateway: str, message: Incoming, *, now_s: float) -> bool:
        """Keep `message` until `gateway`'s birth; False (not kept) when full."""
        size = len(message.payload)
        if self.messages + 1 > self._max_messages or self.bytes + size > self._max_bytes:
            return False
        self._parked.setdefault(gateway, []).append((now_s, message))
        self.messages += 1
        self.bytes += size
        return True

    def take(self, gateway: str) -> list[Incoming]:
        """Everything parked for `gateway`, oldest first (its birth arrived: decode them)."""
        parked = self._parked.pop(gateway, [])
        self._asked.pop(gateway, None)
        self.messages -= len(parked)
        self.bytes -= sum(len(m.payload) for _, m in parked)
        return [m for _, m in parked]

    def gateways(self) -> list[str]:
        """Gateways with parked messages."""
        return list(self._parked)

    def to_ask(self, *, now_s: float) -> list[str]:
        """Gateways to send a birth request now: at once for newly parked data, then every
        `ask_every_s` while their data waits (the gateway ignores requests within 10 s)."""
        due = []
        for gateway in self._parked:
            asked = self._asked.get(gateway)
            if asked is None or now_s - asked >= self._ask_every_s:
                self._asked[gateway] = now_s
                due.append(gateway)
        return due

    def expired(self, *, now_s: float) -> list[tuple[str, Incoming]]:
        """Messages parked longer than `max_age_s`, removed: the caller quarantines them."""
        out: list[tuple[str, Incoming]] = []
        for gateway in list(self._parked):
            parked = self._parked[gateway]
            keep = [(t, m) for t, m in parked if now_s - t < self._max_age_s]
            out.extend((gateway, m) for t, m in parked if now_s - t >= self._max_age_s)
            if keep:
                self._parked[gateway] = keep
            else:
                del self._parked[gateway]
                self._asked.pop(gateway, None)
        self.messages -= len(out)
        self.bytes -= sum(len(m.payload) for _, m in out)
        return out
