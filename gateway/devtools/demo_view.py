"""What `citygw demo` prints: each reading as a broker (the hub's, the citizens') receives it,
compactly, alerts, the public register, the SensorThings server's count, and the health.

Lines stay under 100 columns: a particulate sensor's many quantities (a PMS5003 sends twelve)
are grouped with short labels, its particle counts on a line of their own, and a source with
more values than fit on one line continues on the next.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.hub.decode import HubEvent
from gateway.wire import HubReading

BOLD, DIM, RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"
COLUMNS = 99
"""The widest line the demo prints (where one value fits)."""

MASS = (("pm1_0", "PM1"), ("pm2_5", "PM2.5"), ("pm10", "PM10"))
"""Particulate mass quantities (`<stem>_ugm3`, `<stem>_cf1_ugm3`) and their labels, in order."""

COUNTS = (
    ("n0_3_per_dl", ">0.3um"),
    ("n0_5_per_dl", ">0.5"),
    ("n1_0_per_dl", ">1"),
    ("n2_5_per_dl", ">2.5"),
    ("n5_0_per_dl", ">5"),
    ("n10_per_dl", ">10"),
)
"""Particle counts per 0.1 L of air, by the size they exceed, and their labels."""


def format_values(values: dict[str, float], *, width: int) -> list[str]:
    """One source's readings at one instant as lines of at most `width` columns (where one value
    fits): particulate mass first, as `PM1 11  PM2.5 16  PM10 20 ug/m3 (CF=1: 11 17 22)`, then
    the other quantities as `quantity=value`, then particle counts on a line of their own."""
    rest = dict(values)
    mass = [
        f"{label} {rest.pop(f'{stem}_ugm3'):g}" for stem, label in MASS if f"{stem}_ugm3" in rest
    ]
    cf1 = [f"{rest.pop(f'{stem}_cf1_ugm3'):g}" for stem, _ in MASS if f"{stem}_cf1_ugm3" in rest]
    counts = [f"{label} {rest.pop(name):g}" for name, label in COUNTS if name in rest]
    items = [f"{quantity}={value:g}" for quantity, value in rest.items()]
    if mass:
        items.insert(0, "  ".join(mass) + " ug/m3" + (f" (CF=1: {' '.join(cf1)})" if cf1 else ""))
    if counts:
        items.append("count/0.1L " + " ".join(counts))
    lines: list[str] = []
    for item in items:
        if lines and not item.startswith("count/") and len(lines[-1]) + 1 + len(item) <= width:
            lines[-1] += f" {item}"
        else:
            lines.append(item)
    return lines


class LiveView:
    """Prints readings as one broker receives them (`label`: whose broker), the gateway's
    health from `metrics`, and the public register when it changes."""

    def __init__(self, *, color: bool, label: str = "hub") -> None:
        self._color = color
        self._label = label
        self._register: object = None
        self.readings = 0

    def style(self, text: str, style: str) -> str:
        """`text` in a terminal style (BOLD, DIM) when the output is a terminal."""
        return f"{style}{text}{RESET}" if self._color else text

    def show(self, event: HubEvent) -> None:
        """Print what one hub event says: readings, health, or the gateway going on or offline."""
        if event.kind in ("data", "alert"):  # an alert reading a data message brought too
            for r in event.readings:
                if r.quantity.startswith("alert/"):
                    self._show_alert(r, event.fields if event.kind == "alert" else None)
            self._show_readings([r for r in event.readings if not r.quantity.startswith("alert/")])
        elif event.kind == "metrics" and event.fields:
            print(self.style("\n".join(health_lines(event.fields)), BOLD), flush=True)
        elif event.kind == "register" and event.fields and event.fields != self._register:
            self._register = event.fields
            print(self.style("\n".join(register_lines(event.fields)), DIM), flush=True)
        elif event.kind == "status" and event.fields:
            print(
                self.style(
                    f"-- {self._label}: gateway {event.gateway} is {event.fields.get('state')}",
                    DIM,
                ),
                flush=True,
            )

    def _show_alert(self, r: HubReading, fields: dict[str, Any] | None) -> None:
        """An edge alert (docs/alerts.md): its rule, raised or cleared, the value that crossed."""
        stamp = time.strftime("%H:%M:%S", time.gmtime(r.ts_ms / 1000))
        state = "RAISED" if r.value else "cleared"
        text = (
            f"{stamp}  {self._label:>8} <- {r.gateway}/{r.source:<9} ALERT {r.quantity[6:]} {state}"
        )
        if fields and fields.get("value") is not None:
            text += f": {fields['value']:g} {fields['unit']}"
            if fields.get("threshold") is not None:
                text += f" (threshold {fields['threshold']:g})"
        print(self.style(text[:COLUMNS], BOLD), flush=True)

    def _show_readings(self, readings: list[HubReading]) -> None:
        groups: dict[tuple[str, str, int], dict[str, float]] = {}
        for r in readings:
            self.readings += 1
            groups.setdefault((r.gateway, r.source, r.ts_ms), {})[r.quantity] = r.value
        for (gateway, source, ts_ms), values in groups.items():
            stamp = time.strftime("%H:%M:%S", time.gmtime(ts_ms / 1000))
            prefix = f"{stamp}  {self._label:>8} <- {gateway}/{source:<9} "
            lines = format_values(values, width=COLUMNS - len(prefix)) or [""]
            print(prefix + f"\n{' ' * len(prefix)}".join(lines), flush=True)


def register_lines(register: dict[str, Any]) -> list[str]:
    """The public register (docs/register.md): a line per source, its owner, what it measures
    and why."""
    lines = [f"== register {register.get('gateway')}: what this pole measures, by whom, why"]
    for s in register.get("sources", []):
        record = s.get("register") or {}
        quantities = [str(q.get("quantity", "")) for q in s.get("quantities", [])]
        measures = record.get("theme") or ",".join(quantities) or s.get("type")
        why = record.get("purpose") or "(no register record)"
        line = f"   {s.get('source')} ({s.get('owner')}, {measures}): {why}"
        lines.append(line if len(line) <= COLUMNS else line[: COLUMNS - 3] + "...")
    return lines


def health_lines(m: dict[str, Any]) -> list[str]:
    """The gateway's health: process, buffer and uplinks, then a line per source."""
    buffer, uplink = m.get("buffer", {}), m.get("uplink", {})
    sources = [f"   {_source_health(name, s)}" for name, s in m.get("sources", {}).items()]
    uplinks = [
        f"{name}{'' if u.get('connected') else ' (down)'} {u.get('sent')}, {u.get('backlog')}"
        for name, u in m.get("uplinks", {}).items()
    ]
    sent = (
        "\n   uplinks (readings sent, waiting): " + "; ".join(uplinks)
        if uplinks
        else f"; uplink: {uplink.get('readings_out')} readings sent in "
        f"{uplink.get('messages_out')} msgs ({uplink.get('bytes_out')} B)"
    )
    return [
        f"== health {m.get('gw')}: up {m.get('uptime_s')} s, "
        f"RSS {m.get('rss_bytes', 0) / 1e6:.1f} MB",
        f"   buffer: {buffer.get('depth')} waiting, {buffer.get('dropped')} dropped{sent}",
        *sources,
    ]


def _source_health(name: str, s: dict[str, Any]) -> str:
    if s.get("type") == "ble":
        return (
            f"{name}: {s.get('state')}, {s.get('readings')} readings; "
            f"{s.get('adverts_dropped_not_allowed')} adverts of unlisted devices dropped"
        )
    return f"{name}: {s.get('state')}, {s.get('readings')} readings, {s.get('bad_frames')} bad"
