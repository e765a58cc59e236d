"""`citygw hub tail`: subscribe as a hub would, decode, drop duplicates, print each reading."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gateway.cli.base import LOG_LEVELS, Commands, fail, setup_logging

if TYPE_CHECKING:
    from gateway.hub.decode import HubEvent
    from gateway.wire import HubReading


def add_commands(commands: Commands) -> None:
    """Add the hub group: hub tail, ingest, status, serve, grant-owner, grant-reader."""
    hub = commands.group("hub", help="hub-side tools")
    p = hub.add(
        "tail", help="subscribe like a hub, decode, drop duplicates, print", handler=cmd_hub_tail
    )
    p.add_argument("--url", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--json", action="store_true", help="JSON lines, one per reading")
    p.add_argument("--topic-prefix", default="citygw/v1")
    p.add_argument("--client-id", default="", help="persistent session id (default per host)")
    p.add_argument("--username")
    p.add_argument("--ca-file", help="CA for mqtts:// (password from $CITYGW_HUB_PASSWORD)")
    add_ingest_command(hub)
    add_status_command(hub)
    add_serve_commands(hub)


def add_ingest_command(hub: Commands) -> None:
    """hub ingest: the hub service, readings into the database exactly once (docs/hub.md)."""
    p = hub.add(
        "ingest",
        help="store what gateways publish in PostgreSQL or SQLite, exactly once",
        handler=cmd_hub_ingest,
    )
    p.add_argument("--url", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--db", required=True, help="postgresql://... or sqlite:///PATH")
    p.add_argument("--share", help="MQTT 5 shared subscription group (several workers)")
    p.add_argument(
        "--client-id",
        default="",
        help="stable session id, one per worker: a restarted worker must take its id back"
        " (default citygw-ingest-<host>)",
    )
    p.add_argument("--topic-prefix", default="citygw/v1")
    p.add_argument(
        "--grace-s",
        type=float,
        default=60.0,
        help="a sequence range missing this long is an open gap (default 60)",
    )
    p.add_argument("--username")
    p.add_argument("--ca-file", help="CA for mqtts:// (password from $CITYGW_HUB_PASSWORD)")
    p.add_argument("--log-level", default="info", choices=LOG_LEVELS)


def cmd_hub_ingest(args: argparse.Namespace) -> int:
    """Run the ingest service until SIGTERM or Ctrl-C."""
    from gateway.hub.db import Unavailable
    from gateway.hub.ingest import Settings
    from gateway.hub.service import run_ingest
    from gateway.hub.tail import HubOptions

    setup_logging(args.log_level)
    options = HubOptions(
        url=args.url,
        topic_prefix=args.topic_prefix,
        client_id=args.client_id or f"citygw-ingest-{socket.gethostname()}"[:64],
        username=args.username,
        password=os.environ.get("CITYGW_HUB_PASSWORD") or None,
        ca_file=args.ca_file,
    )
    try:
        return run_ingest(
            options, args.db, share=args.share, settings=Settings(grace_s=args.grace_s)
        )
    except (ValueError, Unavailable) as error:
        fail("hub ingest", error)
        return 2


def add_status_command(hub: Commands) -> None:
    """hub status: the fleet from the hub database, worst first."""
    p = hub.add(
        "status", help="the fleet: online, last seen, backlog, drops, gaps", handler=cmd_hub_status
    )
    p.add_argument("--db", required=True, help="postgresql://... or sqlite:///PATH")
    p.add_argument("--json", action="store_true", help="one JSON array")


def cmd_hub_status(args: argparse.Namespace) -> int:
    """Print the fleet, worst first."""
    from gateway.hub.db import Refused, Unavailable, open_database
    from gateway.hub.status import as_json, table, worst_first

    try:
        db = open_database(args.db, migrate=False)
        try:
            rows = worst_first(db.fleet())
        finally:
            db.close()
    except (ValueError, Unavailable, Refused) as error:
        fail("hub status", f"{error} (a database citygw hub ingest has written?)")
        return 2
    if args.json:
        print(json.dumps(as_json(rows), indent=1))
    else:
        print("\n".join(table(rows)))
    return 0


def cmd_hub_tail(args: argparse.Namespace) -> int:
    """Print what gateways publish until Ctrl-C."""
    from gateway.hub.tail import HubOptions, events

    options = HubOptions(
        url=args.url,
        topic_prefix=args.topic_prefix,
        client_id=args.client_id,
        username=args.username,
        password=os.environ.get("CITYGW_HUB_PASSWORD") or None,
        ca_file=args.ca_file,
    )

    async def tail() -> None:
        async for event in events(options):
            print_event(event, as_json=args.json)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail())
    return 0


def print_event(event: HubEvent, *, as_json: bool) -> None:
    """A line per reading (JSON, or text with UTC time), and a line for status and metrics.
    Names come from anyone on the broker: text output shows control characters escaped.
    Alerts (and alert readings a data message brought) get a line of their own; an alert
    whose reading was shown already (same key) none."""
    if event.kind in ("data", "alert"):
        for r in event.readings:
            if r.quantity.startswith("alert/"):
                _print_alert(r, event.fields if event.kind == "alert" else None, as_json=as_json)
            elif as_json:
                print(json.dumps(r.as_json()), flush=True)
            else:
                clock = "" if r.clock_synced else " (clock unsynced)"
                names = " ".join(_printable(n) for n in (r.gateway, r.source, r.quantity))
                print(
                    f"{_iso(r.ts_ms)} {names} = {r.value:g} {_printable(r.unit)}{clock}",
                    flush=True,
                )
    elif not as_json:
        detail = event.error if event.kind == "invalid" else json.dumps(event.fields)
        print(f"-- {event.kind} from {_printable(event.gateway)}: {_printable(detail)}", flush=True)


def _print_alert(r: HubReading, fields: dict[str, Any] | None, *, as_json: bool) -> None:
    """`fields`: the alert message's (None: the reading came in a data message, without the
    value that crossed and the threshold)."""
    detail = {k: v for k, v in (fields or {}).items() if k not in ("v", "gateway", "source")}
    alert = {"rule": r.quantity[len("alert/") :], "state": "raised" if r.value else "cleared"}
    alert |= {
        k: detail[k]
        for k in ("quantity", "unit", "value", "threshold", "rate_per_min")
        if k in detail
    }
    if as_json:
        print(json.dumps({**r.as_json(), "alert": alert}), flush=True)
        return
    names = " ".join(_printable(n) for n in (r.gateway, r.source, alert["rule"]))
    text = f"{_iso(r.ts_ms)} ALERT {alert['state'].upper()} {names}"
    if "value" in alert and alert["value"] is not None:
        text += (
            f": {_printable(alert['quantity'])} = {alert['value']:g} {_printable(alert['unit'])}"
        )
    if alert.get("threshold") is not None:
        text += f" (threshold {alert['threshold']:g})"
    print(f"{text} [key {r.epoch}/{r.seq}]", flush=True)


def _iso(ts_ms: int) -> str:
    """UTC time with milliseconds, or the raw number where a date cannot show it."""
    try:
        when = _EPOCH + timedelta(milliseconds=ts_ms)
    except OverflowError:
        return f"{ts_ms}ms"
    return when.isoformat(timespec="milliseconds")[:-6] + "Z"


def _printable(text: str) -> str:
    """`text`, or its escaped repr when it holds control characters (terminal escapes)."""
    return text if text.isprintable() else repr(text)[1:-1]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- serving: the public page, the read API, each owner's database role -----------------------


def add_serve_commands(hub: Commands) -> None:
    """hub serve, hub grant-owner, hub grant-reader (docs/hub.md, "Serving")."""
    p = hub.add(
        "serve",
        help="the public sensor page and a SensorThings read API (open data only)",
        handler=cmd_hub_serve,
    )
    p.add_argument("--db", required=True, help="postgresql://... or sqlite:///PATH (read only)")
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (default %(default)s)")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    p = hub.add(
        "grant-owner",
        help="a PostgreSQL role that sees only OWNER's rows plus open data (row-level security)",
        handler=cmd_hub_grant_owner,
    )
    p.add_argument("--db", required=True, help="postgresql://... as the tables' owner")
    p.add_argument("owner", help="the owner as readings and the register name it")
    p.add_argument("--role", help="role name (default citygw_owner_<owner>_<hash>)")
    p = hub.add(
        "grant-reader",
        help="a PostgreSQL role that sees open data only (e.g. for hub serve)",
        handler=cmd_hub_grant_reader,
    )
    p.add_argument("--db", required=True, help="postgresql://... as the tables' owner")
    p.add_argument("role", help="role name")


def cmd_hub_serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM."""
    from gateway.hub.serve.app import serve
    from gateway.hub.serve.db import Reader, Target
    from gateway.hub.serve.store import Store

    setup_logging(args.log_level)
    host, _, port = args.listen.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        fail("hub serve", f"--listen must be HOST:PORT, not {args.listen!r}")
        return 2
    try:
        target = Target.parse(args.db)
    except ValueError as error:
        fail("hub serve", error)
        return 2
    host = host.strip("[]") or "127.0.0.1"
    serve(Store(Reader(target)), host=host, port=int(port), log_level=args.log_level)
    return 0


def cmd_hub_grant_owner(args: argparse.Namespace) -> int:
    """Create or update an owner's role; prints the role name. Password: $CITYGW_OWNER_PASSWORD."""
    from gateway.hub.access import role_for

    role = args.role or role_for(args.owner)
    return _grant("hub grant-owner", args.db, role, args.owner)


def cmd_hub_grant_reader(args: argparse.Namespace) -> int:
    """Create or update an open-data-only role; prints the role name."""
    return _grant("hub grant-reader", args.db, args.role, None)


def _grant(command: str, dsn: str, role: str, owner: str | None) -> int:
    if not dsn.startswith(("postgresql://", "postgres://")):
        fail(command, "row-level security needs PostgreSQL (--db postgresql://...)")
        return 2
    import psycopg

    from gateway.hub.access import grant_reader

    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            grant_reader(conn, role, owner=owner, password=os.environ.get("CITYGW_OWNER_PASSWORD"))
    except psycopg.Error as error:
        fail(command, error)
        return 1
    print(role)
    return 0
