"""What the uplink needs of remote config: the topics, a hand-off for pushes, the report."""

from __future__ import annotations

from typing import Protocol


class ConfigChannel(Protocol):
    """The remote config as the uplink sees it: topics to subscribe, a non-blocking hand-off
    for what arrives there, and the retained report to (re)publish on every connect."""

    def topics(self, topic_prefix: str, gateway_id: str) -> list[str]:
        """The topics pushes arrive on (subscribed at QoS 1 on every connect)."""
        ...

    def offer(self, payload: bytes, *, retained: bool) -> None:
        """Take a pushed message without blocking (the uplink's reader must keep reading)."""
        ...

    def state_payload(self) -> bytes:
        """The retained `config/state` report as it stands now."""
        ...
