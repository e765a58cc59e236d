"""The public page: every registered sensor, what it measures and why, who owns it, whether it
processes personal data, and the latest values of the open-data ones.

Plain server-rendered HTML, one small inline stylesheet (allowed by its hash in the
Content-Security-Policy, which allows no script at all), readable on a phone. Everything that
came from a gateway goes through `_e` (html.escape, quotes too); a link is made only from a
privacy statement the catalog accepted as http(s) and from coordinates that are numbers.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape

from gateway.hub.serve.catalog import Catalog, Sensor, Stream
from gateway.hub.serve.store import Observation

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fff;line-height:1.5}
header,main,footer{max-width:52rem;margin:0 auto;padding:0 1rem}
h1{font-size:1.6rem;margin:1rem 0 .25rem}
h2{font-size:1.2rem;margin:0 0 .5rem;overflow-wrap:anywhere}
ul.sensors{list-style:none;padding:0}
article{border:1px solid #767676;border-radius:.4rem;padding:.75rem 1rem;margin:0 0 1rem}
dl{display:grid;grid-template-columns:minmax(7rem,max-content) 1fr;gap:.2rem .75rem;margin:0}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;margin-top:.75rem;width:100%}
caption{text-align:left;font-weight:600}
th,td{text-align:left;padding:.25rem .5rem .25rem 0;border-bottom:1px solid #ccc}
td.value{font-variant-numeric:tabular-nums}
a{color:#0645ad}a:focus{outline:3px solid #ffbf47}
@media (max-width:30rem){dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}}
"""
CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""No script runs on this page, whatever a register record holds."""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def render(
    catalog: Catalog, latest: Mapping[int, Observation | None], generated_at: datetime
) -> str:
    """The whole page; `latest` maps a Datastream id to its newest observation."""
    sensors = catalog.sensors
    open_count = sum(1 for s in sensors if s.open_data)
    items = "\n".join(_sensor(s, latest) for s in sensors)
    when = generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sensors in public space</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>Sensors in public space</h1>
<p lang="nl">Sensoren in de openbare ruimte: wat ze meten, waarom, en van wie ze zijn.</p>
</header>
<main>
<p id="summary">{len(sensors)} sensors registered; {open_count} publish open data.
Updated {when}.</p>
<ul class="sensors">
{items}
</ul>
</main>
<footer>
<p>Open data is also available to programs through the
<a href="/v1.1/">SensorThings API</a> (OGC SensorThings 1.1).</p>
</footer>
</body>
</html>
"""


def _sensor(sensor: Sensor, latest: Mapping[int, Observation | None]) -> str:
    name = f"{sensor.gateway} / {sensor.source}"
    rows = [
        ("Measures", _measures(sensor)),
        ("Purpose", _e(sensor.purpose) if sensor.purpose else "<em>not stated</em>"),
        ("Theme", _e(sensor.theme or "-")),
        ("Owner", _e(sensor.owner or "-")),
        ("Personal data", _yes_no(sensor.personal_data)),
        ("Legal ground", _e(sensor.legal_ground or "-")),
        ("Privacy statement", _privacy(sensor)),
        ("Location", _location(sensor)),
        ("Active until", _e(sensor.active_until or "-")),
        ("Open data", "yes" if sensor.open_data else "no"),
    ]
    if not sensor.described:
        rows = [rows[0], ("Register", "<em>no register record published for this sensor</em>")]
    details = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    values = _values(sensor, latest) if sensor.open_data else ""
    return (
        f'<li><article class="sensor" aria-label="{_e(name)}">'
        f"<h2>{_e(name)}</h2><dl>{details}</dl>{values}</article></li>"
    )


def _measures(sensor: Sensor) -> str:
    if not sensor.quantities:
        return "-"
    parts = [f"{_e(q.name)} ({_e(q.unit)})" if q.unit else _e(q.name) for q in sensor.quantities]
    return ", ".join(parts)


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "not stated"}[value]


def _privacy(sensor: Sensor) -> str:
    if not sensor.privacy_statement:
        return "none published"
    label = _e(f"privacy statement for {sensor.gateway} / {sensor.source}")
    href = _e(sensor.privacy_statement)
    return f'<a href="{href}" rel="nofollow noopener" aria-label="{label}">privacy statement</a>'


def _location(sensor: Sensor) -> str:
    if sensor.location is None:
        return "-"
    lat, lon = sensor.location
    text = f"{lat:.5f}, {lon:.5f}"
    url = f"https://www.openstreetmap.org/?mlat={lat:.6f}&amp;mlon={lon:.6f}#map=18/{lat:.6f}/{lon:.6f}"
    return f'<a href="{url}">{text}</a> (on a map)'


def _values(sensor: Sensor, latest: Mapping[int, Observation | None]) -> str:
    rows = []
    for quantity in sensor.quantities:
        found = latest.get(Stream(sensor, quantity).id)
        if found is None:
            rows.append(f"<tr><td>{_e(quantity.name)}</td><td>no reading yet</td><td></td></tr>")
            continue
        value = f"{found.value:g}" if math.isfinite(found.value) else "-"
        unit = f" {_e(found.unit or quantity.unit)}" if (found.unit or quantity.unit) else ""
        when = found.ts.strftime("%Y-%m-%d %H:%M:%S")
        rows.append(
            f'<tr><td>{_e(quantity.name)}</td><td class="value">{_e(value)}{unit}</td>'
            f'<td><time datetime="{_e(found.ts.isoformat())}">{when}</time></td></tr>'
        )
    return (
        '<table><caption>Latest values</caption><thead><tr><th scope="col">Quantity</th>'
        '<th scope="col">Value</th><th scope="col">Measured (UTC)</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
