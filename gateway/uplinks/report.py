"""What the uplink tells an operator about its hub: counters, and outages and refusals logged
once per episode.

A refusal (an MQTT 5 PUBACK with a reason code of 0x80 or above, e.g. 0x87 "Not authorized" from
a broker's ACL, or 0x10 "No matching subscribers" where subscribers are required) is not an
acknowledgement: the readings stay in the buffer and are sent again, and the refusal is logged
once per episode and per topic, counted, and shown in `citygw status`.
For MQTT 3.1.1, which has no refusal codes, the echo check (`echo`) says whether one of our own
data messages came back to us once after the start.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("gateway.uplinks.mqtt")  # operators filter on the uplink's logger name

ECHO_STATES = ("unchecked", "pending", "ok", "missing", "not-allowed")
"""`UplinkStats.echo`: not checked (MQTT 5, or no data sent yet), waiting for our data message
to come back, it came back, it did not come back in time, the broker would not let us read it."""


@dataclass(slots=True)
class UplinkStats:
    """What the agent's status and metrics report about the uplink."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    messages_out: int = 0
    readings_out: int = 0
    bytes_out: int = 0
    last_error: str = ""
    connected_since_ms: int | None = None
    refused: int = 0
    """Publishes the broker refused (PUBACK reason code >= 0x80, or 0x10 where subscribers are
    required) since the start."""
    last_refusal: str = ""
    """The last refusal, e.g. "Not authorized (0x87) on citygw/v1/gw-1/data"."""
    last_refusal_code: int = 0
    """The last refusal's reason code (what the warning tells the operator to check)."""
    refusing: set[str] = field(default_factory=set)
    """Topics whose last publish was refused (the episode lasts until one is accepted)."""
    echo: str = "unchecked"
    """MQTT 3.1.1 only: one of `ECHO_STATES`."""
    rebirths: int = 0
    """Births published again because the hub asked (rebirth.py)."""
    rebirths_suppressed: int = 0
    """Re-birth requests ignored: within 10 s of the last one honoured."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready part of the agent's snapshot."""
        return {
            "connected": self.connected,
            "reconnects": self.reconnects,
            "messages_out": self.messages_out,
            "readings_out": self.readings_out,
            "bytes_out": self.bytes_out,
            "last_error": self.last_error,
            "refused": self.refused,
            "refusing": sorted(self.refusing),
            "last_refusal": self.last_refusal,
            "echo": self.echo,
            "rebirths": self.rebirths,
            "rebirths_suppressed": self.rebirths_suppressed,
            "warnings": self.warnings(),
        }

    def warnings(self) -> list[str]:
        """What an operator must act on, one line each (`citygw status` shows them)."""
        out = []
        if self.refusing:
            check = "the broker's ACL"
            if self.last_refusal_code == 0x10:  # "No matching subscribers" (client.NoSubscribers)
                check = "that the hub (ingest) subscribes"
            out.append(
                f"REFUSED by the broker: {self.last_refusal} ({self.refused} refused publishes;"
                f" readings stay buffered: check {check})"
            )
        if self.echo == "missing":
            out.append(
                "our data was acknowledged but never came back to us: the broker may drop it"
                " (MQTT 3.1.1 cannot say so; check the broker's ACL)"
            )
        return out


class HubReport:
    """Logs each hub episode once: an outage, a refusal per topic, the echo check's verdict."""

    def __init__(self, stats: UplinkStats, *, url: str, lane: str) -> None:
        self.stats = stats
        self._url = url
        self._setting = (  # where an operator turns require_subscribers off
            "hub.require_subscribers" if lane == "hub" else f"require_subscribers of uplink {lane}"
        )
        self._outage_logged = False
        self._echo_deadline: asyncio.TimerHandle | None = None

    def connected(self) -> None:
        """A connection is up: the next outage is a new episode."""
        self._outage_logged = False

    def outage(self, error: BaseException) -> None:
        """The connection failed or ended: logged once per outage."""
        self.stats.last_error = str(error)
        if self._outage_logged:
            return
        text = str(error).lower()
        what = (
            "refused us (check username and password)"
            if "authori" in text or "bad user" in text
            else "unreachable"
        )
        log.warning(
            "hub %s %s: %s; readings stay buffered, retrying",
            self._url,
            what,
            error,
            extra={"event": "hub_down"},
        )
        self._outage_logged = True

    def refused(self, topic: str, code: int, name: str) -> None:
        """The broker refused a publish on `topic`: counted always, logged once per episode."""
        self.stats.refused += 1
        self.stats.last_refusal = f"{name} (0x{code:02X}) on {topic}"
        self.stats.last_refusal_code = code
        if topic in self.stats.refusing:
            return
        self.stats.refusing.add(topic)
        why = "check the broker's ACL"
        if code == 0x10:  # MQTT 5 "No matching subscribers" (client.NoSubscribers)
            why = f"no one subscribes to it ({self._setting})"
        log.error(
            "hub %s refuses our publishes on %s: %s (0x%02X); nothing is deleted, readings stay "
            "buffered and are sent again with backoff: %s",
            self._url,
            topic,
            name,
            code,
            why,
            extra={"event": "hub_refused"},
        )

    def accepted(self, topic: str) -> bool:
        """A publish on `topic` was acknowledged; True if that ends a refusal episode."""
        if topic not in self.stats.refusing:
            return False
        self.stats.refusing.discard(topic)
        log.warning(
            "hub %s accepts our publishes on %s again (%d refused since the start)",
            self._url,
            topic,
            self.stats.refused,
            extra={"event": "hub_accepts"},
        )
        return True

    def echo(self, state: str) -> None:
        """The echo check moved to `state` (one of `ECHO_STATES`); verdicts are logged."""
        if state == self.stats.echo:
            return
        self.stats.echo = state
        if state == "ok":
            log.info("hub %s: our first data message came back to us", self._url)
        elif state == "missing":
            log.warning(
                "hub %s acknowledged our data but it never came back to us on our own "
                "subscription: with MQTT 3.1.1 a broker that may not forward it (an ACL) still "
                "acknowledges it, and the readings are lost; check the broker's ACL",
                self._url,
                extra={"event": "hub_echo_missing"},
            )
        elif state == "not-allowed":
            log.warning(
                "hub %s does not let us read our own data topic: cannot check that MQTT 3.1.1 "
                "publishes are really accepted",
                self._url,
            )

    def echo_sent(self, wait_s: float) -> None:
        """An acked data message has `wait_s` to come back (3.1.1 brokers ack what ACLs drop)."""
        if self.stats.echo != "pending" or self._echo_deadline is not None:
            return

        def missing() -> None:
            if self.stats.echo == "pending":
                self.echo("missing")

        self._echo_deadline = asyncio.get_running_loop().call_later(wait_s, missing)

    def disconnected(self) -> None:
        """The connection ended: the echo check starts again on the next one."""
        if self._echo_deadline is not None:
            self._echo_deadline.cancel()
            self._echo_deadline = None
