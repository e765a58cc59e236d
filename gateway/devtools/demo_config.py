"""What `citygw demo` configures and says first: the gateway's local file, the config the
operator pushes, and the opening lines.

Two owners share the gateway: the municipality (`gemeente`, the operator: its readings go to its
hub) and a citizen group (`burgermeetnet`: its PMS5003, added by the push, goes to the group's
own broker and to a SensorThings API server, never to the hub). Every source has a public
register record (docs/register.md).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from gateway.devtools.demo_view import COLUMNS
from gateway.devtools.sim_ble import SENSOR_ADDRESS
from gateway.devtools.sim_lines import DEMO_LEVEL_ALERT_MM, demo_sources

GATEWAY_ID = "gw-demo"
OPERATOR = "gemeente"
CITIZENS = "burgermeetnet"
METRICS_INTERVAL_S = 5
CANAL_ALERT = {
    "name": "canal-high",
    "source": "canal",
    "quantity": "water_level_mm",
    "above": DEMO_LEVEL_ALERT_MM,
    "hysteresis": 100,
}
"""An edge alert (docs/alerts.md): the simulated canal rises past it a few seconds in."""

_PURPOSES = {
    "pm-north": ("Air", "Fijnstof langs de doorgaande weg, voor het luchtplan"),
    "canal": ("Water", "Waterstand van de gracht: waarschuwt bewoners bij hoog water"),
    "radar": ("Road Traffic", "Snelheid van het verkeer, op verzoek van bewoners"),
    "pm-south": ("Air", "Fijnstof bij de school, gemeten door het burgermeetnet"),
}


def _register(name: str) -> dict[str, Any]:
    theme, purpose = _PURPOSES[name]
    return {
        "purpose": purpose,
        "theme": theme,
        "location": [52.0907, 5.1214],
        "open_data": True,
        "active_until": "2028-12-31",
    }


def local_config(
    hub: tuple[str, str],
    citizens: tuple[str, str],
    sta_url: str | None,
    workdir: Path,
    ports: dict[str, str],
    trusted_key: Path,
) -> dict[str, Any]:
    """The gateway's local file: the operator's sensors and the citizens' uplinks (their
    PMS5003 is not in it yet: a push adds it). `hub` and `citizens` are (url, MQTT protocol)."""
    node = (
        [
            {
                "type": "serial",
                "name": "pole-node",
                "port": ports["node"],
                "driver": "node",
                "baud": 115200,
                "node_interval_s": 5,
            }
        ]
        if "node" in ports
        else []
    )
    lines = [
        {**source, "register": _register(str(source["name"]))}
        for source in demo_sources(ports["radar"], ports["canal"])
    ]
    pm_north = {"type": "serial", "name": "pm-north", "port": ports["sds011"], "driver": "sds011"}
    return {
        "gateway": {
            "id": GATEWAY_ID,
            "owner": OPERATOR,
            "data_dir": str(workdir / "data"),
            "log_level": "warning",
        },
        "hub": {
            "url": hub[0],
            "protocol": hub[1],
            "flush_interval_s": 2,
            "metrics_interval_s": METRICS_INTERVAL_S,
        },
        "uplinks": _uplinks(citizens, sta_url),
        "sources": [
            {**pm_north, "register": _register("pm-north")},
            *lines,
            {
                "type": "ble",
                "name": "ble",
                "devices": [{"name": "kerbside", "address": SENSOR_ADDRESS, "kind": "bthome"}],
            },
            *node,
        ],
        "alerts": [CANAL_ALERT],
        "remote_config": {
            "trusted_keys": [str(trusted_key)],
            "groups": ["demo"],
            "allowed_ports": [str(workdir / "tty*")],
        },
    }


def _uplinks(citizens: tuple[str, str], sta_url: str | None) -> list[dict[str, Any]]:
    """The citizen group's own broker, and its SensorThings server when there is one."""
    uplinks: list[dict[str, Any]] = [
        {
            "name": "burgers-mqtt",
            "owners": [CITIZENS],
            "url": citizens[0],
            "protocol": citizens[1],
            "format": "citygw",
            "flush_interval_s": 2,
        }
    ]
    if sta_url is not None:
        uplinks.append(
            {
                "name": "burgers-sta",
                "owners": [CITIZENS],
                "url": sta_url,
                "format": "sensorthings",
                "flush_interval_s": 2,
            }
        )
    return uplinks


def pushed_config(local: dict[str, Any], ports: dict[str, str]) -> dict[str, Any]:
    """What the operator pushes: the same, plus the citizens' PMS5003 on its port."""
    pm_south = {
        "type": "serial",
        "name": "pm-south",
        "owner": CITIZENS,
        "port": ports["pms5003"],
        "driver": "pms5003",
        "register": _register("pm-south"),
    }
    return {
        "gateway": {"owner": OPERATOR, "log_level": "warning"},
        "hub": local["hub"],
        "uplinks": local["uplinks"],
        "sources": [*local["sources"], pm_south],
        "alerts": local["alerts"],
    }


def opening(
    *,
    brokers: tuple[str, str],
    ports: dict[str, str],
    node_missing: str | None,
    sta: str,
    push_after_s: float,
    seconds: float | None,
) -> str:
    """What runs and what the user will see, a line each (`brokers`: the hub's, the citizens')."""
    node = (
        ["a virtual node running the real firmware in MicroPython (pole-node)"]
        if node_missing is None
        else textwrap.wrap(f"none ({node_missing})", width=COLUMNS - 12)
    )
    return "\n".join(
        [
            f"citygw demo: the agent {GATEWAY_ID}, simulated sensors and two owners' brokers here",
            f"  owners:   {OPERATOR} (the operator: its readings go to its hub) and {CITIZENS}",
            "            (a citizen group: its readings go to its own broker and SensorThings)",
            f"  hub:      {brokers[0]}",
            f"  citizens: {brokers[1]}",
            f"  STA:      {sta}",
            f"  serial:   an SDS011 on {ports['sds011']} (pm-north); an OPS243 radar over the",
            "            street (radar): passing cars; a MaxBotix over a rising canal (canal):",
            f"            an alert above {DEMO_LEVEL_ALERT_MM} mm, sent at once",
            "  BLE:      a BTHome climate sensor (kerbside) and a passing phone (not on the",
            "            allow-list, so dropped), on a replayed adapter",
            f"  node:     {node[0]}",
            *(f"            {line}" for line in node[1:]),
            f"  operator: after {push_after_s:.3g} s, pushes a signed config that adds the",
            f"            citizens' PMS5003 on {ports['pms5003']} (pm-south, owner {CITIZENS})",
            "Below: each reading as the hub (hub <-) and the citizens' broker (citizens <-)",
            "receive it, the public register the gateway publishes, the observations on the",
            f"SensorThings server and the gateway's health every {METRICS_INTERVAL_S} s.",
            "Ctrl-C stops." if seconds is None else f"It stops after {seconds:g} s.",
        ]
    )
