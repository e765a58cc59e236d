"""`citygw demo`: the whole system on one machine, on simulated hardware.

A local broker (Debian's Mosquitto, or the embedded amqtt broker when Mosquitto is absent), two
simulated sensors speaking their real protocols on pseudo-terminals (SDS011 and PMS5003), BLE
adverts from a replay scanner (a BTHome sensor on the allow-list, a phone that is not), the
agent as `citygw run` runs it, and a live view of what arrives at the hub. A few seconds in, the
demo signs and pushes a config that adds the PMS5003 (remote config), as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.agent import Agent
from gateway.config import parse_config
from gateway.devtools import sim_node as nodesim
from gateway.devtools.sim_ble import SENSOR_ADDRESS, replay_scanner_factory
from gateway.devtools.sim_serial import SimulatedPms5003, SimulatedSds011, close_pty, open_pty
from gateway.hub.tail import HubEvent, HubOptions, events

GATEWAY_ID = "gw-demo"
_BOLD, _DIM, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"


def _mosquitto() -> str | None:
    if os.environ.get("CITYGW_DEMO_BROKER") == "embedded":
        return None
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def local_broker(workdir: Path) -> AsyncIterator[tuple[str, str, str]]:
    """Yields (url, what runs it, MQTT protocol). Mosquitto if installed, else amqtt here."""
    port = _free_port()
    mosquitto = _mosquitto()
    if mosquitto:
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
        )
        process = await asyncio.create_subprocess_exec(
            mosquitto, "-c", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            await _wait_for_port(port)
            yield f"mqtt://127.0.0.1:{port}", f"Mosquitto ({mosquitto})", "5"
        finally:
            process.terminate()
            await process.wait()
        return
    try:
        from amqtt.broker import Broker  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise SystemExit(
            "citygw demo: no MQTT broker: install Debian's mosquitto "
            "(apt-get install mosquitto) or `pip install amqtt`"
        ) from None
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)  # it logs cancelled tasks at shutdown
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(
        lambda lp, context: (
            None
            if isinstance(context.get("exception"), asyncio.CancelledError)
            else lp.default_exception_handler(context)
        )
    )
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield f"mqtt://127.0.0.1:{port}", "embedded amqtt broker (MQTT 3.1.1)", "3.1.1"
    finally:
        await broker.shutdown()


async def _wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def _demo_config(
    url: str, protocol: str, workdir: Path, ports: dict[str, str], trusted_key: Path
) -> dict[str, Any]:
    """The gateway's local file; the PMS5003 is not in it yet (a push adds it)."""
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
    return {
        "gateway": {"id": GATEWAY_ID, "data_dir": str(workdir / "data"), "log_level": "warning"},
        "hub": {"url": url, "protocol": protocol, "flush_interval_s": 2, "metrics_interval_s": 5},
        "sources": [
            {"type": "serial", "name": "pm-north", "port": ports["sds011"], "driver": "sds011"},
            {
                "type": "ble",
                "name": "ble",
                "devices": [{"name": "kerbside", "address": SENSOR_ADDRESS, "kind": "bthome"}],
            },
            *node,
        ],
        "remote_config": {
            "trusted_keys": [str(trusted_key)],
            "groups": ["demo"],
            "allowed_ports": [str(workdir / "tty*")],
        },
    }


def _pushed_config(local: dict[str, Any], ports: dict[str, str]) -> dict[str, Any]:
    """What the operator pushes: the same, plus the PMS5003 on its port."""
    pm_south = {"type": "serial", "name": "pm-south", "port": ports["pms5003"], "driver": "pms5003"}
    return {
        "gateway": {"log_level": "warning"},
        "hub": local["hub"],
        "sources": [*local["sources"], pm_south],
    }


async def _push_after(
    delay_s: float,
    url: str,
    protocol: str,
    private_key: Path,
    document: dict[str, Any],
    view: LiveView,
) -> None:
    from gateway.hub import fleet
    from gateway.remote import signing

    await asyncio.sleep(delay_s)
    payload = fleet.sign_config(
        signing.load_private(private_key), document, version=None, target={"gateway": GATEWAY_ID}
    )
    options = HubOptions(
        url=url, client_id=f"citygw-demo-ops-{time.time_ns()}", protocol=protocol, persistent=False
    )
    print(
        view.style(
            f"-- operator: signed config push to {GATEWAY_ID} (adds pm-south, a PMS5003)", _BOLD
        ),
        flush=True,
    )
    outcome = await fleet.push(options, payload, target={"gateway": GATEWAY_ID}, timeout_s=30)
    for answer in outcome.answers.values():
        print(
            view.style(
                f"-- {answer.gateway}: push {answer.result} after "
                f"{answer.after_s:.2f} s: {answer.detail}",
                _BOLD,
            ),
            flush=True,
        )


class LiveView:
    """Prints readings as the hub receives them, and the gateway's health from `metrics`."""

    def __init__(self, *, color: bool) -> None:
        self._color = color
        self.readings = 0

    def style(self, text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if self._color else text

    def show(self, event: HubEvent) -> None:
        if event.kind == "data":
            groups: dict[tuple[str, str, int], list[str]] = {}
            for r in event.readings:
                self.readings += 1
                groups.setdefault((r.gateway, r.source, r.ts_ms), []).append(
                    f"{r.quantity}={r.value:g}"
                )
            for (gateway, source, ts_ms), values in groups.items():
                stamp = time.strftime("%H:%M:%S", time.gmtime(ts_ms / 1000))
                print(f"{stamp}  hub <- {gateway}/{source:<9} {' '.join(values)}", flush=True)
        elif event.kind == "metrics" and event.fields:
            print(self.style(_health_line(event.fields), _BOLD), flush=True)
        elif event.kind == "status" and event.fields:
            print(
                self.style(f"-- gateway {event.gateway} is {event.fields.get('state')}", _DIM),
                flush=True,
            )


def _source_health(name: str, s: dict[str, Any]) -> str:
    if s.get("type") == "ble":
        return (
            f"{name}: {s.get('state')} {s.get('readings')} rd, "
            f"{s.get('adverts_dropped_not_allowed')} adverts of unlisted devices dropped"
        )
    return f"{name}: {s.get('state')} {s.get('readings')} rd {s.get('bad_frames')} bad"


def _health_line(m: dict[str, Any]) -> str:
    buffer, uplink = m.get("buffer", {}), m.get("uplink", {})
    sources = ", ".join(_source_health(name, s) for name, s in m.get("sources", {}).items())
    return (
        f"== health {m.get('gw')}: up {m.get('uptime_s')} s, RSS "
        f"{m.get('rss_bytes', 0) / 1e6:.1f} MB, buffer {buffer.get('depth')} waiting, "
        f"{buffer.get('dropped')} dropped, sent {uplink.get('readings_out')} readings in "
        f"{uplink.get('messages_out')} msgs ({uplink.get('bytes_out')} B) | {sources}"
    )


async def _demo(seconds: float | None) -> int:
    with tempfile.TemporaryDirectory(prefix="citygw-demo-") as tmp:
        workdir = Path(tmp)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with local_broker(workdir) as (url, broker_name, protocol):
            sds_master, sds_port = open_pty(str(workdir / "ttyUSB0"))
            pms_master, pms_port = open_pty(str(workdir / "ttyAMA0"))
            sds = SimulatedSds011(sds_master, device_id=0xA160, interval_s=1.0, seed=1)
            pms = SimulatedPms5003(pms_master, interval_s=1.0, seed=2)
            ports = {"sds011": str(workdir / "ttyUSB0"), "pms5003": str(workdir / "ttyAMA0")}
            push_after_s = 8.0 if seconds is None else min(8.0, seconds / 3)
            node_missing = nodesim.missing()
            virtual_node = None
            if node_missing is None:  # the real firmware in MicroPython, its UART on a pty
                ports["node"] = str(workdir / "ttyNODE")
                virtual_node = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "gateway.cli",
                    "node",
                    "simulate",
                    "--port",
                    ports["node"],
                    "--interval-s",
                    "5",
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(100):  # its pty appears within a moment
                    if os.path.exists(ports["node"]):  # noqa: ASYNC240 - a stat, once per 50 ms
                        break
                    await asyncio.sleep(0.05)
            from gateway.remote import signing  # remote config, as on a gateway: a provisioned key

            private_key, public_key = signing.generate(workdir / "keys", "ops")
            document = _demo_config(url, protocol, workdir, ports, public_key)
            config = parse_config(document)
            print(
                f"citygw demo: broker {broker_name} at {url}; SDS011 on {sds_port}, "
                f"PMS5003 on {pms_port}, a BTHome climate sensor and a passing phone on a "
                f"replayed BLE adapter; "
                + (
                    "a virtual node running the real firmware; "
                    if virtual_node
                    else f"no virtual node ({node_missing}); "
                )
                + f"agent {GATEWAY_ID}; an operator pushes a signed config adding the PMS5003 "
                f"after {push_after_s:g} s. "
                + ("Ctrl-C stops." if seconds is None else f"Stops after {seconds:g} s."),
                flush=True,
            )
            view = LiveView(color=sys.stdout.isatty())
            agent_stop = asyncio.Event()

            async def hub() -> None:
                options = HubOptions(
                    url=url, client_id=f"citygw-demo-hub-{time.time_ns()}", protocol=protocol
                )
                async for event in events(options):
                    view.show(event)

            async def timer() -> None:
                if seconds is not None:
                    await asyncio.sleep(seconds)
                    stop.set()

            async with asyncio.TaskGroup() as group:
                operator = _push_after(
                    push_after_s, url, protocol, private_key, _pushed_config(document, ports), view
                )
                tasks = [
                    group.create_task(c) for c in (sds.run(), pms.run(), hub(), timer(), operator)
                ]
                agent = group.create_task(
                    Agent(
                        config, document=document, ble_scanner_factory=replay_scanner_factory
                    ).run(agent_stop)
                )
                await stop.wait()
                agent_stop.set()
                await agent
                await asyncio.sleep(0.3)  # let the hub print the last messages
                for task in tasks:
                    task.cancel()
            if virtual_node is not None:
                virtual_node.terminate()
                await virtual_node.wait()
            close_pty(sds_master, str(workdir / "ttyUSB0"))
            close_pty(pms_master, str(workdir / "ttyAMA0"))
        print(f"citygw demo: stopped cleanly; the hub received {view.readings} readings.")
    return 0


def run_demo(*, seconds: float | None) -> int:
    return asyncio.run(_demo(seconds))
