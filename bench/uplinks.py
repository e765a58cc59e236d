"""The throughput of one agent with three uplinks (issue 13): the hub, one more MQTT uplink
(`u0`) and one `format = "sensorthings"` uplink (`sta`) for the same owner. The MQTT uplinks
share one Mosquitto; the SensorThings one delivers to a real django-ogc-sensorthings server
(gateway/devtools/sta_server, started as `citygw demo` starts it: `demo_parts.sta_server`).

The server takes ~10,000 observations/s (bench/sta_delivery.py), far below the MQTT rate, so
readings/s is N divided by the time from the first frame written to the last reading received
by the slowest MQTT subscriber; what the SensorThings uplink delivered by then (`sent`) and had
left (`backlog`) is read from the agent's status right after. CPU and disk per reading as in the
throughput part (per reading stored), from the feed's start until the MQTT backlogs are empty
(the SensorThings uplink is working all along, so its share is in the figure). The server,
the subscribers and Mosquitto share the second core (bench/README.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.agent import AgentSettings, cpu_seconds, io_counters, memory_kb
from bench.broker import Broker
from bench.procs import BenchError

STA = "sta"
AFTER_S = 5.0
"""How long the SensorThings uplink's rate is sampled once the MQTT uplinks are done (the feed
over, the helper core quieter)."""


@contextlib.contextmanager
def sta_server(workdir: Path, core: int | None) -> Iterator[str]:
    """The demo's SensorThings server (migrate, runserver on a free port) run by an event loop
    in a thread pinned to `core`: its children inherit the thread's CPU affinity. Yields the
    service root; stops the server on exit."""
    from gateway.devtools.demo_parts import sta_missing
    from gateway.devtools.demo_parts import sta_server as demo_sta_server

    missing = sta_missing()
    if missing:
        raise BenchError(f"the SensorThings server cannot run here: {missing}")
    workdir.mkdir(parents=True, exist_ok=True)
    urls: queue.Queue[str | BaseException] = queue.Queue()
    stop = threading.Event()

    async def serve() -> None:
        try:
            async with demo_sta_server(workdir) as url:
                urls.put(url)
                await asyncio.to_thread(stop.wait)
        except BaseException as exc:  # handed to the waiting thread
            urls.put(exc)

    def thread_main() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})  # this thread only; inherited by its children
        asyncio.run(serve())

    thread = threading.Thread(target=thread_main, name="sta-server", daemon=True)
    thread.start()
    try:
        try:
            got = urls.get(timeout=150)
        except queue.Empty:
            raise BenchError("the SensorThings server did not start in 150 s") from None
        if isinstance(got, BaseException):
            raise BenchError(f"the SensorThings server failed to start: {got!r}") from got
        yield got
    finally:
        stop.set()
        thread.join(timeout=20)


def run_uplinks(bench: Any, readings: int, rate: float = 0.0) -> dict[str, Any]:
    """One trial: N readings through the hub, one more MQTT uplink and a SensorThings one."""
    from bench.run import _prefix, log, offered

    bench.runs += 1
    name = f"uplinks{bench.runs}"
    log(f"{name}: {readings:,} readings, hub + 1 MQTT + 1 SensorThings, offered {offered(rate)}")
    with bench.children.scope():
        broker = Broker(bench.children, bench.pinning, bench.tmp / f"{name}-broker")
        broker.start()
        core = bench.pinning.other_core if bench.pinning.active else None
        with sta_server(bench.tmp / f"{name}-sta", core) as sta_url:
            prefix = _prefix()
            links = bench.links(name, bench.sources)
            feeder = bench.start_feeder(
                name, links, "--readings", str(readings), "--rate", str(rate)
            )
            hubs = [
                bench.start_hub(f"{name}-hub", broker, prefix, readings),
                bench.start_hub(f"{name}-u0", broker, f"{prefix}/u0", readings),
            ]
            settings = AgentSettings(
                hub_url=broker.url,
                topic_prefix=prefix,
                ports=[str(p) for p in links],
                extra_uplinks=1,
                sta_url=sta_url,
            )
            agent = bench.agent(name, settings)
            agent.start()
            feeder.expect("attached", bench.deadline.cap(60, "waiting for the agent to open ports"))
            return _measure(bench, agent, feeder, hubs, readings, rate)


def _measure(
    bench: Any, agent: Any, feeder: Any, hubs: list[Any], readings: int, rate: float
) -> dict[str, Any]:
    from bench.run import _db_bytes

    agent.wait_status(
        "every uplink connected",
        lambda s: all(u["connected"] for u in s["uplinks"].values()),
        bench.deadline.cap(30, "connecting the agent"),
    )
    time.sleep(0.5)
    cpu0, io0 = cpu_seconds(agent.pid), io_counters(agent.pid)
    feeder.send("go")
    start_t = float(feeder.expect("start", bench.deadline.cap(10, "starting the feed"))["t"])
    wait_s = bench.deadline.cap(600, "delivering to every MQTT uplink")
    done = [hub.expect("done", wait_s) for hub in hubs]
    end_t = max(float(d["t"]) for d in done)
    at_end = agent.status()
    final = agent.wait_status(
        "every MQTT backlog drained",
        lambda s: all(u["backlog"] == 0 for n, u in s["uplinks"].items() if n != STA),
        bench.deadline.cap(30, "draining"),
        interval_s=0.02,
    )
    cpu_s, io1 = cpu_seconds(agent.pid) - cpu0, io_counters(agent.pid)
    if final["buffer"]["dropped"]:
        raise BenchError(f"the agent dropped readings: {final['buffer']}")
    sta = (at_end or final)["uplinks"][STA]
    after = _sta_rate_after(agent, final["uplinks"][STA]["sent"], AFTER_S)
    elapsed = end_t - start_t
    disk = io1["write_bytes"] - io0["write_bytes"]
    return {
        "readings": readings,
        "uplinks": 3,
        "offered_rate": rate,
        "seconds": round(elapsed, 3),
        "readings_per_s": round(readings / elapsed),
        "per_uplink_readings_per_s": [round(readings / (float(d["t"]) - start_t)) for d in done],
        "sta_sent": sta["sent"],
        "sta_backlog": sta["backlog"],
        "sta_readings_per_s": round(sta["sent"] / elapsed),
        "sta_last_error": sta["last_error"],
        "sta_readings_per_s_after": after,
        "cpu_us_per_reading": round(cpu_s / readings * 1e6, 2),
        "agent_core_utilisation": round(cpu_s / elapsed, 2),
        "disk_bytes_per_reading": round(disk / readings, 1),
        "db_bytes_after": _db_bytes(agent.data_dir),
        "peak_rss_mb": round(memory_kb(agent.pid)["VmHWM"] * 1024 / 1e6, 1),
        "sent": {n: u["sent"] for n, u in final["uplinks"].items()},
    }


def _sta_rate_after(agent: Any, sent0: int, seconds: float) -> int | None:
    """Readings/s the SensorThings uplink delivered over the next `seconds` (None if the
    status did not answer)."""
    t0 = time.monotonic()
    time.sleep(seconds)
    status = agent.status()
    if status is None:
        return None
    return round((status["uplinks"][STA]["sent"] - sent0) / (time.monotonic() - t0))
