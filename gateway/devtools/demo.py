"""`citygw demo`: the whole system on one machine, on simulated hardware.

A local broker (Debian's Mosquitto, or the embedded amqtt broker when Mosquitto is absent), two
simulated sensors speaking their real protocols on pseudo-terminals (SDS011 and PMS5003), BLE
adverts from a replay scanner (a BTHome sensor on the allow-list, a phone that is not), the
agent as `citygw run` runs it, and a live view of what arrives at the hub. A few seconds in, the
demo signs and pushes a config that adds the PMS5003 (remote config), as an operator would. A
MaxBotix rangefinder over a rising canal raises an edge alert (docs/alerts.md) a few seconds in.
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
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

from gateway.agent import Agent
from gateway.config import parse_config
from gateway.devtools import sim_node as nodesim
from gateway.devtools.demo_view import BOLD, LiveView
from gateway.devtools.sim_ble import SENSOR_ADDRESS, replay_scanner_factory
from gateway.devtools.sim_lines import (
    DEMO_LEVEL_ALERT_MM,
    DEMO_MOUNT_HEIGHT_MM,
    SimulatedMaxbotix,
    rising_water,
)
from gateway.devtools.sim_serial import SimulatedPms5003, SimulatedSds011, close_pty, open_pty
from gateway.hub.tail import HubOptions, events

GATEWAY_ID = "gw-demo"
METRICS_INTERVAL_S = 5
CANAL_ALERT = {
    "name": "canal-high",
    "source": "canal",
    "quantity": "water_level_mm",
    "above": DEMO_LEVEL_ALERT_MM,
    "hysteresis": 100,
}
"""An edge alert (docs/alerts.md): the simulated canal rises past it a few seconds in."""


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
        "hub": {
            "url": url,
            "protocol": protocol,
            "flush_interval_s": 2,
            "metrics_interval_s": METRICS_INTERVAL_S,
        },
        "sources": [
            {"type": "serial", "name": "pm-north", "port": ports["sds011"], "driver": "sds011"},
            {
                "type": "serial",
                "name": "canal",  # a MaxBotix rangefinder over a canal: its water level
                "port": ports["canal"],
                "driver": "maxbotix",
                "model": "MB7389",
                "mount_height_mm": DEMO_MOUNT_HEIGHT_MM,
            },
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


def _pushed_config(local: dict[str, Any], ports: dict[str, str]) -> dict[str, Any]:
    """What the operator pushes: the same, plus the PMS5003 on its port."""
    pm_south = {"type": "serial", "name": "pm-south", "port": ports["pms5003"], "driver": "pms5003"}
    return {
        "gateway": {"log_level": "warning"},
        "hub": local["hub"],
        "sources": [*local["sources"], pm_south],
        "alerts": local["alerts"],
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
            f"-- operator: signed config push to {GATEWAY_ID} (adds pm-south, a PMS5003)", BOLD
        ),
        flush=True,
    )
    outcome = await fleet.push(options, payload, target={"gateway": GATEWAY_ID}, timeout_s=30)
    for answer in outcome.answers.values():
        print(
            view.style(
                f"-- {answer.gateway}: push {answer.result} after "
                f"{answer.after_s:.2f} s: {answer.detail}",
                BOLD,
            ),
            flush=True,
        )


def _opening(
    *,
    broker: str,
    ports: dict[str, str],
    node_missing: str | None,
    push_after_s: float,
    seconds: float | None,
) -> str:
    """What runs and what the user will see, a line each."""
    node = (
        "a virtual node running the real firmware in MicroPython (pole-node)"
        if node_missing is None
        else f"none ({node_missing})"
    )
    return "\n".join(
        [
            f"citygw demo: the agent {GATEWAY_ID}, simulated sensors and a hub on this machine",
            f"  broker:   {broker}",
            f"  serial:   an SDS011 on {ports['sds011']} (pm-north); a MaxBotix over a rising",
            f"            canal (canal): an alert above {DEMO_LEVEL_ALERT_MM} mm, sent at once",
            "  BLE:      a BTHome climate sensor (kerbside) and a passing phone (not on the",
            "            allow-list, so dropped), on a replayed adapter",
            f"  node:     {node}",
            f"  operator: after {push_after_s:.3g} s, pushes a signed config that adds a PMS5003",
            f"            on {ports['pms5003']} (pm-south)",
            f"Below: each reading as the hub receives it, and the gateway's health every "
            f"{METRICS_INTERVAL_S} s.",
            "Ctrl-C stops." if seconds is None else f"It stops after {seconds:g} s.",
        ]
    )


async def _start_virtual_node(link: Path) -> asyncio.subprocess.Process | None:
    """`citygw node simulate` with its pty at `link`, once its pty is there; None if it cannot
    run here (nodesim.missing() says why)."""
    if nodesim.missing() is not None:
        return None
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "node",
        "simulate",
        "--port",
        str(link),
        "--interval-s",
        "5",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):  # its pty appears within a moment
        if link.exists():  # noqa: ASYNC240 - a stat, once per 50 ms
            break
        await asyncio.sleep(0.05)
    return process


async def _hub(url: str, protocol: str, view: LiveView) -> None:
    options = HubOptions(url=url, client_id=f"citygw-demo-hub-{time.time_ns()}", protocol=protocol)
    async for event in events(options):
        view.show(event)


async def _stop_after(seconds: float | None, stop: asyncio.Event) -> None:
    if seconds is not None:
        await asyncio.sleep(seconds)
        stop.set()


async def _run_until_stopped(
    agent: Agent, others: list[Coroutine[Any, Any, None]], stop: asyncio.Event
) -> None:
    """The agent and the other tasks until `stop` is set; then the agent stops, and the others
    once the hub has printed its last messages."""
    agent_stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(c) for c in others]
        agent_task = group.create_task(agent.run(agent_stop))
        await stop.wait()
        agent_stop.set()
        await agent_task
        await asyncio.sleep(0.3)  # let the hub print the last messages
        for task in tasks:
            task.cancel()


async def _with_broker(
    workdir: Path, broker: tuple[str, str, str], seconds: float | None, stop: asyncio.Event
) -> int:
    """Run the sensors, the agent, the hub's view and the operator until `stop`; the number of
    readings the hub received."""
    from gateway.remote import signing  # remote config, as on a gateway: a provisioned key

    url, broker_name, protocol = broker
    ports = {"sds011": str(workdir / "ttyUSB0"), "pms5003": str(workdir / "ttyAMA0")}
    ports["canal"] = str(workdir / "ttyUSB1")
    sds_master, sds_port = open_pty(ports["sds011"])
    pms_master, pms_port = open_pty(ports["pms5003"])
    canal_master, _ = open_pty(ports["canal"])
    node = await _start_virtual_node(workdir / "ttyNODE")
    if node is not None:  # the real firmware in MicroPython, its UART on a pty
        ports["node"] = str(workdir / "ttyNODE")
    try:
        private_key, public_key = signing.generate(workdir / "keys", "ops")
        document = _demo_config(url, protocol, workdir, ports, public_key)
        push_after_s = 8.0 if seconds is None else min(8.0, seconds / 3)
        print(
            _opening(
                broker=f"{broker_name} at {url}",
                ports={"sds011": sds_port, "pms5003": pms_port},
                node_missing=nodesim.missing(),
                push_after_s=push_after_s,
                seconds=seconds,
            ),
            flush=True,
        )
        view = LiveView(color=sys.stdout.isatty())
        agent = Agent(
            parse_config(document), document=document, ble_scanner_factory=replay_scanner_factory
        )
        pushed = _pushed_config(document, ports)
        others = [
            SimulatedSds011(sds_master, device_id=0xA160, interval_s=1.0, seed=1).run(),
            SimulatedPms5003(pms_master, interval_s=1.0, seed=2).run(),
            SimulatedMaxbotix(canal_master, distances=_canal(), interval_s=1.0).run(),
            _hub(url, protocol, view),
            _stop_after(seconds, stop),
            _push_after(push_after_s, url, protocol, private_key, pushed, view),
        ]
        await _run_until_stopped(agent, others, stop)
    finally:
        if node is not None:
            node.terminate()
            await node.wait()
        close_pty(sds_master, ports["sds011"])
        close_pty(pms_master, ports["pms5003"])
        close_pty(canal_master, ports["canal"])
    return view.readings


def _canal() -> Iterator[float]:
    """Distances to a canal rising 20 mm/s, 30 mm under the alert level at the start."""
    return rising_water(
        mount_height_mm=DEMO_MOUNT_HEIGHT_MM,
        start_level_mm=DEMO_LEVEL_ALERT_MM - 30,
        rise_mm_per_s=20,
        interval_s=1.0,
    )


async def _demo(seconds: float | None) -> int:
    with tempfile.TemporaryDirectory(prefix="citygw-demo-") as tmp:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        workdir = Path(tmp)
        async with local_broker(workdir) as broker:
            readings = await _with_broker(workdir, broker, seconds, stop)
        print(f"citygw demo: stopped cleanly; the hub received {readings} readings.")
    return 0


def run_demo(*, seconds: float | None) -> int:
    """Run the demo until Ctrl-C, or for `seconds`; the exit code."""
    return asyncio.run(_demo(seconds))
