"""What paho's network thread hands the ingest loop: a queue bounded in messages and in bytes.

A full inbox holds the network thread (and the broker holds the rest: our PUBACKs are what let
it send more), so a flood of large messages, even at QoS 0, costs at most `max_bytes`.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from gateway.hub.pending import Incoming


class Inbox:
    """A thread-safe FIFO of Incoming, at most `max_messages` and about `max_bytes` of payload
    (one message is always let in, however large, so nothing can wedge it)."""

    def __init__(self, *, max_messages: int = 20_000, max_bytes: int = 256 << 20) -> None:
        self._items: deque[Incoming] = deque()
        self._bytes = 0
        self._max_messages, self._max_bytes = max_messages, max_bytes
        self._changed = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def _full(self, size: int) -> bool:
        return bool(self._items) and (
            len(self._items) >= self._max_messages or self._bytes + size > self._max_bytes
        )

    def put(self, message: Incoming, *, timeout_s: float) -> bool:
        """Add `message`, waiting up to `timeout_s` for room; False if there was none."""
        size = len(message.payload)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._full(size):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            self._items.append(message)
            self._bytes += size
            self._changed.notify_all()
        return True

    def get(self, *, timeout_s: float) -> Incoming | None:
        """The oldest message, waiting up to `timeout_s` for one; None if none came."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not self._items:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            message = self._items.popleft()
            self._bytes -= len(message.payload)
            self._changed.notify_all()
            return message
