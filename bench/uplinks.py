"""The throughput of one agent with several uplinks (issue 13): the hub and `extra` more MQTT
uplinks for the same owner, each reading carried by every one of them, all on one Mosquitto.

Readings/s is N divided by the time from the first frame written to the last reading received
by the slowest uplink's subscriber; CPU and disk per reading as in the throughput part (per
reading stored, whatever the number of uplinks). The subscribers and Mosquitto share the
second core (bench/README.md), so with three of them that core may bound the figure."""

from __future__ import annotations

import time
from typing import Any

from bench.agent import AgentSettings, cpu_seconds, io_counters, memory_kb
from bench.broker import Broker
from bench.procs import BenchError


def run_uplinks(bench: Any, readings: int, rate: float = 0.0, extra: int = 2) -> dict[str, Any]:
    """One trial: N readings through the hub and `extra` more uplinks."""
    from bench.run import _db_bytes, _prefix, log, offered

    bench.runs += 1
    name = f"uplinks{bench.runs}"
    log(f"{name}: {readings:,} readings, hub + {extra} uplinks, offered {offered(rate)}")
    with bench.children.scope():
        broker = Broker(bench.children, bench.pinning, bench.tmp / f"{name}-broker")
        broker.start()
        prefix = _prefix()
        links = bench.links(name, bench.sources)
        feeder = bench.start_feeder(name, links, "--readings", str(readings), "--rate", str(rate))
        hubs = [bench.start_hub(f"{name}-hub", broker, prefix, readings)]
        hubs += [
            bench.start_hub(f"{name}-u{i}", broker, f"{prefix}/u{i}", readings)
            for i in range(extra)
        ]
        settings = AgentSettings(
            hub_url=broker.url,
            topic_prefix=prefix,
            ports=[str(p) for p in links],
            extra_uplinks=extra,
        )
        agent = bench.agent(name, settings)
        agent.start()
        feeder.expect("attached", bench.deadline.cap(60, "waiting for the agent to open ports"))
        agent.wait_status(
            "every uplink connected",
            lambda s: all(u["connected"] for u in s["uplinks"].values()),
            bench.deadline.cap(30, "connecting the agent"),
        )
        time.sleep(0.5)
        cpu0, io0 = cpu_seconds(agent.pid), io_counters(agent.pid)
        feeder.send("go")
        start_t = float(feeder.expect("start", bench.deadline.cap(10, "starting the feed"))["t"])
        wait_s = bench.deadline.cap(600, "delivering to every uplink")
        done = [hub.expect("done", wait_s) for hub in hubs]
        end_t = max(float(d["t"]) for d in done)
        final = agent.wait_status(
            "every backlog drained",
            lambda s: all(u["backlog"] == 0 for u in s["uplinks"].values()),
            bench.deadline.cap(30, "draining"),
            interval_s=0.02,
        )
        cpu_s, io1 = cpu_seconds(agent.pid) - cpu0, io_counters(agent.pid)
        if final["buffer"]["dropped"]:
            raise BenchError(f"the agent dropped readings: {final['buffer']}")
        elapsed = end_t - start_t
        disk = io1["write_bytes"] - io0["write_bytes"]
        return {
            "readings": readings,
            "uplinks": 1 + extra,
            "offered_rate": rate,
            "seconds": round(elapsed, 3),
            "readings_per_s": round(readings / elapsed),
            "per_uplink_readings_per_s": [
                round(readings / (float(d["t"]) - start_t)) for d in done
            ],
            "cpu_us_per_reading": round(cpu_s / readings * 1e6, 2),
            "agent_core_utilisation": round(cpu_s / elapsed, 2),
            "disk_bytes_per_reading": round(disk / readings, 1),
            "db_bytes_after": _db_bytes(agent.data_dir),
            "peak_rss_mb": round(memory_kb(agent.pid)["VmHWM"] * 1024 / 1e6, 1),
            "sent": {n: u["sent"] for n, u in final["uplinks"].items()},
        }
