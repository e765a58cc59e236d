"""A tiny sd_notify(3) client: no dependency, one datagram per message to $NOTIFY_SOCKET.

Every function is a no-op when the agent does not run under systemd (no $NOTIFY_SOCKET), and
never raises: a lost notification must not take the agent down (systemd will notice anyway).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def _address() -> str | None:
    """$NOTIFY_SOCKET as a socket address: a path, or an abstract name (leading '@')."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        return "\0" + address[1:]
    if address.startswith("/"):
        return address
    return None  # unset, or a form this client does not speak (vsock:...)


def notify(message: str) -> bool:
    """Sends ``message`` (newline-separated KEY=VALUE lines); True if it was sent."""
    address = _address()
    if address is None:
        return False
    try:
        # Non-blocking: called from the event loop; a full socket drops the message instead.
        flags = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        with socket.socket(socket.AF_UNIX, flags) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as error:
        log.debug("sd_notify %r to %r failed: %s", message, address, error)
        return False
    return True


def notify_ready() -> bool:
    """Tell systemd start-up is complete (Type=notify)."""
    return notify("READY=1")


def notify_watchdog() -> bool:
    """Ping systemd's watchdog (WatchdogSec=)."""
    return notify("WATCHDOG=1")


def notify_stopping() -> bool:
    """Tell systemd an orderly shutdown has begun."""
    return notify("STOPPING=1")


def notify_status(text: str) -> bool:
    """One line for `systemctl status`; newlines would start a new (bogus) assignment."""
    return notify("STATUS=" + " ".join(text.split()))


def watchdog_interval_s() -> float | None:
    """The service's watchdog timeout in seconds, or None if there is none for this process
    ($WATCHDOG_USEC unset or invalid, or $WATCHDOG_PID names another process)."""
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


async def ping_watchdog_every(interval_s: float) -> None:
    """WATCHDOG=1 from the event loop every ``interval_s``: a hung loop stops the pings and
    systemd restarts the service. Runs until cancelled."""
    while True:
        notify_watchdog()
        await asyncio.sleep(interval_s)


async def report_status_every(interval_s: float, summary: Callable[[], Awaitable[str]]) -> None:
    """STATUS=<summary> now and every ``interval_s``. Runs until cancelled."""
    while True:
        try:
            notify_status(await summary())
        except Exception:  # a status line is not worth stopping the agent for
            log.debug("status summary failed", exc_info=True)
        await asyncio.sleep(interval_s)
