"""Supervision: a component that fails unexpectedly is restarted with capped jittered backoff;
the ordered stop's steps are bounded, and a second SIGTERM/SIGINT exits at once."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

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


def first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error in a (nested) exception group from the in-flight TaskGroup."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


STABLE_AFTER_S = 60.0
"""A component that ran this long before failing starts its backoff over."""

STEP_S = 3.0
"""The longest one step of the ordered stop waits for a component to end."""

STOP_BOUND_S = 45.0
"""After this long the stop is abandoned and the process exits (systemd waits 90 s by default,
then kills): every step is bounded, so this only catches what no step foresaw."""

EXIT_FORCED = 1
"""Exit status of a forced exit (second signal, or the stop took longer than STOP_BOUND_S)."""

T = TypeVar("T")


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


async def stop_tasks(what: str, tasks: list[asyncio.Task[Any]], *, timeout_s: float) -> None:
    """Cancel `tasks` and wait at most `timeout_s` for them to end; say which did not."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    if pending:
        names = ", ".join(sorted(t.get_name() for t in pending))
        log.error("stopping %s: %s did not end within %.0f s", what, names, timeout_s)


async def bounded(what: str, step: Coroutine[Any, Any, T], *, timeout_s: float) -> T | None:
    """Await one step of the stop for at most `timeout_s`; None (logged) if it took longer."""
    try:
        async with asyncio.timeout(timeout_s):
            return await step
    except TimeoutError:
        log.warning("stopping: %s took longer than %.0f s, skipped", what, timeout_s)
        return None


def handle_stop_signals(stop: asyncio.Event, *, force_after_s: float) -> None:
    """The first SIGTERM or SIGINT sets `stop` (the ordered stop, at most `force_after_s`); the
    next one exits at once. Committed readings are safe in the buffer either way."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            stop.set()
            loop.call_later(force_after_s, force_exit, f"the stop took over {force_after_s:.0f} s")
            return
        force_exit(f"second signal ({signal.Signals(signum).name})")

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


def force_exit(why: str) -> None:
    """Exit now, skipping what the stop still waits for (as a power cut would, no worse)."""
    log.critical("%s: exiting now; committed readings stay in the buffer", why)
    logging.shutdown()
    os._exit(EXIT_FORCED)


class AgentAlreadyRunning(RuntimeError):
    """Another agent holds the data directory's lock."""


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Two agents on one buffer would send every reading twice: refuse the second."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "agent.lock").open("a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AgentAlreadyRunning(f"another agent is using {data_dir}") from None
        yield
