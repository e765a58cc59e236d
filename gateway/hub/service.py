"""Wiring `citygw hub ingest`: the database, the MQTT session and the loop, until a signal."""

from __future__ import annotations

import logging
import signal
import threading
import time

from gateway.hub.client import HubOptions
from gateway.hub.db import Database, Unavailable, open_database
from gateway.hub.inbox import Inbox
from gateway.hub.ingest import Ingest, Settings
from gateway.hub.route import Router
from gateway.hub.session import AckingSession

log = logging.getLogger(__name__)


def connect_database(dsn: str, *, wait_s: float = 30.0) -> Database:
    """The database of `dsn`, retrying while it is unavailable for up to `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return open_database(dsn)
        except Unavailable as error:
            if time.monotonic() > deadline:
                raise
            log.warning("database unavailable (%s); retrying", error)
            time.sleep(1.0)


def run_ingest(options: HubOptions, dsn: str, *, share: str | None, settings: Settings) -> int:
    """Run until SIGINT or SIGTERM; the exit code."""
    db = connect_database(dsn)
    inbox = Inbox()
    session = AckingSession(options, share=share, inbox=inbox)
    ingest = Ingest(db, session, inbox, Router(options.topic_prefix), settings=settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping (what is not acknowledged stays with the broker)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "hub ingest as %s%s into %s",
        session.client_id,
        f" (shared group {share})" if share else "",
        dsn.split("://")[0],
    )
    session.start()
    try:
        ingest.run(stop)
    finally:
        session.stop()
        db.close()
    return 0
