"""Supervision: a component that fails unexpectedly is restarted with capped jittered backoff."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.backoff import Backoff

log = logging.getLogger(__name__)


def raise_if_cancelling() -> None:
    """Raise CancelledError if someone asked to cancel the current task.

    A cancellation can be replaced by another error on its way out (aiomqtt's `__aexit__`
    raises `MqttError` when the broker goes at that moment; a TaskGroup whose child failed
    raises the child's error) or lost (`asyncio.wait_for` in 3.11 when its future completes at
    the same moment). A loop that catches errors and goes round again calls this first."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


STABLE_AFTER_S = 60.0
"""A component that ran this long before failing starts its backoff over."""


async def supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run `run` until it returns; after an exception, log it and run it again after a delay.

    Cancellation passes through (never swallowed): that is how the agent stops a component."""
    backoff = Backoff(base_s=1.0, cap_s=60.0)
    while True:
        started = time.monotonic()
        try:
            await run()
            return
        except Exception:
            raise_if_cancelling()  # a stop, dressed as an error: not a failure
            log.exception("%s failed; restarting", name)
        if time.monotonic() - started > STABLE_AFTER_S:
            backoff.reset()
        await asyncio.sleep(backoff.next_delay())
