"""`citygw demo`: the whole system on one machine, on simulated hardware, for two owners.

Two local brokers (Debian's Mosquitto, or the embedded amqtt broker when Mosquitto is absent):
the municipality's hub and a citizen group's own broker; a SensorThings API server
(django-ogc-sensorthings) for the citizens too, when installed. Simulated sensors speak their
real protocols on pseudo-terminals (SDS011, PMS5003, an OPS243 radar with passing cars, a
MaxBotix over a rising canal that raises an edge alert), BLE adverts come from a replay scanner,
and the agent runs as `citygw run` runs it. A few seconds in, the operator signs and pushes a
config that adds the citizens' PMS5003: its readings go to their broker and server, never to the
hub. The live view shows what each broker receives, the public register, the observations on
the SensorThings server and the gateway's health. Parts: demo_parts.py; configs and opening
lines: demo_config.py; what is printed: demo_view.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

from gateway import wire
from gateway.agent import Agent
from gateway.config import parse_config
from gateway.devtools import demo_config as cfg
from gateway.devtools import sim_node as nodesim
from gateway.devtools.demo_parts import (
    local_broker,
    sta_missing,
    sta_observations,
    sta_server,
    start_virtual_node,
)
from gateway.devtools.demo_view import BOLD, LiveView
from gateway.devtools.sim_ble import replay_scanner_factory
from gateway.devtools.sim_lines import (
    DEMO_LEVEL_ALERT_MM,
    DEMO_MOUNT_HEIGHT_MM,
    SimulatedMaxbotix,
    SimulatedOps243,
    passing_cars,
    rising_water,
)
from gateway.devtools.sim_serial import SimulatedPms5003, SimulatedSds011, close_pty, open_pty
from gateway.hub.tail import HubDecoder, HubOptions, events, hub_client

GATEWAY_ID = cfg.GATEWAY_ID


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
            f"-- operator: signed config push to {GATEWAY_ID} (adds pm-south, a PMS5003 of "
            f"{cfg.CITIZENS})",
            BOLD,
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


async def _hub(url: str, protocol: str, view: LiveView) -> None:
    options = HubOptions(url=url, client_id=f"citygw-demo-{time.time_ns()}", protocol=protocol)
    async for event in events(options):
        view.show(event)


async def _register(url: str, protocol: str, view: LiveView) -> None:
    """The public register the gateway publishes (retained) on the hub's broker, as a citizen's
    app would read it: `<prefix>/<gateway>/register` (docs/register.md)."""
    options = HubOptions(url=url, client_id=f"citygw-demo-reg-{time.time_ns()}", protocol=protocol)
    decoder = HubDecoder()
    async with hub_client(options) as client:
        await client.subscribe(f"{options.topic_prefix}/+/{wire.TOPIC_REGISTER}", qos=1)
        async for message in client.messages:
            if isinstance(message.payload, bytes | bytearray):
                view.show(decoder.decode(str(message.topic), bytes(message.payload)))


async def _sta_count(url: str, when: str = "") -> str:
    """The observations on the SensorThings server, read back over its HTTP API."""
    try:
        count = await asyncio.to_thread(sta_observations, url)
    except (OSError, ValueError, KeyError) as error:
        return f"== sensorthings ({cfg.CITIZENS}): not readable now ({error})"
    return f"== sensorthings ({cfg.CITIZENS}): {count} observations on the server{when}"


async def _watch_sta(url: str | None, view: LiveView, stop: asyncio.Event) -> None:
    """The server's observation count now and then (with the health), until the end (which
    prints its own)."""
    while url is not None:
        await asyncio.sleep(cfg.METRICS_INTERVAL_S)
        count = await _sta_count(url)
        if not stop.is_set():
            print(view.style(count, BOLD), flush=True)


async def _stop_after(seconds: float | None, stop: asyncio.Event) -> None:
    if seconds is not None:
        await asyncio.sleep(seconds)
        stop.set()


async def _run_until_stopped(
    agent: Agent, others: list[Coroutine[Any, Any, None]], stop: asyncio.Event
) -> None:
    """The agent and the other tasks until `stop` is set; then the agent stops, and the others
    once the brokers' views have printed their last messages."""
    agent_stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(c) for c in others]
        agent_task = group.create_task(agent.run(agent_stop))
        await stop.wait()
        agent_stop.set()
        await agent_task
        await asyncio.sleep(0.3)  # let the views print the last messages
        for task in tasks:
            task.cancel()


class _Ptys:
    """The simulated serial sensors' pseudo-terminals: `ports` (the links the gateway opens)
    and `masters` (the simulators' ends), by sensor."""

    def __init__(self, workdir: Path) -> None:
        links = {"sds011": "ttyUSB0", "pms5003": "ttyAMA0", "canal": "ttyUSB1", "radar": "ttyS1"}
        self.ports = {name: str(workdir / link) for name, link in links.items()}
        self.shown: dict[str, str] = {}
        self.masters: dict[str, int] = {}
        for name, port in self.ports.items():
            self.masters[name], self.shown[name] = open_pty(port)

    def simulators(self) -> list[Coroutine[Any, Any, None]]:
        """The sensors, each on its pty."""
        return [
            SimulatedSds011(self.masters["sds011"], device_id=0xA160, interval_s=1.0, seed=1).run(),
            SimulatedPms5003(self.masters["pms5003"], interval_s=1.0, seed=2).run(),
            SimulatedMaxbotix(self.masters["canal"], distances=_canal(), interval_s=1.0).run(),
            SimulatedOps243(
                self.masters["radar"], cars=passing_cars(seed=3, gap_s=(2.0, 4.0)), interval_s=0.5
            ).run(),
        ]

    def close(self) -> None:
        for name, master in self.masters.items():
            close_pty(master, self.ports[name])


class _Stop:
    """When the demo stops: `event` (Ctrl-C, SIGTERM, or after `seconds`)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.event = asyncio.Event()


async def _with_parts(
    workdir: Path, brokers: list[tuple[str, str, str]], sta: tuple[str | None, str], stop: _Stop
) -> tuple[LiveView, LiveView, dict[str, Any]]:
    """Run the sensors, the agent, the brokers' views, the SensorThings count and the operator
    until `stop`; the views and the config pushed."""
    from gateway.remote import signing  # remote config, as on a gateway: a provisioned key

    (hub_url, hub_name, hub_protocol), (our_url, our_name, our_protocol) = brokers
    ptys = _Ptys(workdir)
    ports = dict(ptys.ports)
    node = await start_virtual_node(workdir / "ttyNODE")
    if node is not None:  # the real firmware in MicroPython, its UART on a pty
        ports["node"] = str(workdir / "ttyNODE")
    try:
        private_key, public_key = signing.generate(workdir / "keys", "ops")
        document = cfg.local_config(
            (hub_url, hub_protocol), (our_url, our_protocol), sta[0], workdir, ports, public_key
        )
        push_after_s = 8.0 if stop.seconds is None else min(8.0, stop.seconds / 3)
        print(
            cfg.opening(
                brokers=(f"{hub_name} at {hub_url}", f"{our_name} at {our_url}"),
                ports=ptys.shown,
                node_missing=nodesim.missing(),
                sta=sta[1],
                push_after_s=push_after_s,
                seconds=stop.seconds,
            ),
            flush=True,
        )
        color = sys.stdout.isatty()
        views = LiveView(color=color), LiveView(color=color, label="citizens")
        agent = Agent(
            parse_config(document), document=document, ble_scanner_factory=replay_scanner_factory
        )
        pushed = cfg.pushed_config(document, ports)
        others = [
            *ptys.simulators(),
            _hub(hub_url, hub_protocol, views[0]),
            _hub(our_url, our_protocol, views[1]),
            _register(hub_url, hub_protocol, views[0]),
            _watch_sta(sta[0], views[0], stop.event),
            _stop_after(stop.seconds, stop.event),
            _push_after(push_after_s, hub_url, hub_protocol, private_key, pushed, views[0]),
        ]
        await _run_until_stopped(agent, others, stop.event)
    finally:
        if node is not None:
            node.terminate()
            await node.wait()
        ptys.close()
    return views[0], views[1], {**document, **pushed, "gateway": document["gateway"]}


def _canal() -> Iterator[float]:
    """Distances to a canal rising 20 mm/s, 30 mm under the alert level at the start."""
    return rising_water(
        mount_height_mm=DEMO_MOUNT_HEIGHT_MM,
        start_level_mm=DEMO_LEVEL_ALERT_MM - 30,
        rise_mm_per_s=20,
        interval_s=1.0,
    )


@contextlib.asynccontextmanager
async def _sta(workdir: Path) -> AsyncIterator[tuple[str | None, str]]:
    """(the SensorThings server's URL or None, what the opening says of it)."""
    missing = sta_missing()
    if missing is not None:
        yield None, f"none, so no SensorThings uplink: {missing}"
        return
    try:
        async with sta_server(workdir) as url:
            yield url, f"django-ogc-sensorthings at {url}"
    except (OSError, RuntimeError, TimeoutError) as error:
        yield None, f"none, so no SensorThings uplink: it did not start ({error})"


def _register_export(pushed: dict[str, Any]) -> str:
    """What `citygw register export --format geojson` makes of the config in force."""
    import json

    from gateway.hub.register_export import export

    result = export([parse_config(pushed)], "geojson")
    features = json.loads(result.text).get("features", [])
    owners = sorted({str(f.get("properties", {}).get("owner")) for f in features})
    return (
        f"== register export (geojson): {len(features)} features, owners {' and '.join(owners)}; "
        f"{len(result.notes)} left out (no record)"
    )


async def _demo(seconds: float | None) -> int:
    with tempfile.TemporaryDirectory(prefix="citygw-demo-") as tmp:
        stop = _Stop(seconds)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.event.set)
        workdir = Path(tmp)
        for part in ("hub", "citizens"):
            (workdir / part).mkdir()
        async with (
            local_broker(workdir / "hub") as hub,
            local_broker(workdir / "citizens") as citizens,
            _sta(workdir) as sta,
        ):
            hub_view, our_view, pushed = await _with_parts(workdir, [hub, citizens], sta, stop)
            if sta[0] is not None:
                print(await _sta_count(sta[0], " at the end"), flush=True)
        print(_register_export(pushed), flush=True)
        print(
            f"citygw demo: stopped cleanly; the hub received {hub_view.readings} readings, "
            f"the citizens' broker {our_view.readings} readings."
        )
    return 0


def run_demo(*, seconds: float | None) -> int:
    """Run the demo until Ctrl-C, or for `seconds`; the exit code."""
    return asyncio.run(_demo(seconds))
