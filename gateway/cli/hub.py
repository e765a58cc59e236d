"""`citygw hub tail`: subscribe as a hub would, decode, drop duplicates, print each reading."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gateway.cli.base import Commands

if TYPE_CHECKING:
    from gateway.hub.decode import HubEvent
    from gateway.wire import HubReading


def add_commands(commands: Commands) -> None:
    """Add the hub group: hub tail."""
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
