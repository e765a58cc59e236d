"""`make bench`: throughput, CPU, memory, disk and wire bytes, cold start of the real agent.

Runs `python -m gateway.cli run --config X` as a process (pinned to one core; Mosquitto and the
bench's helpers on the other), feeds it real SDS011 frames through pseudo-terminals, counts what
reaches Mosquitto, and reads /proc. Prints every figure with its unit and, for a full run,
writes the results into BENCHMARKS.md. See bench/README.md.

    .venv/bin/python bench/run.py            # full run (1 M readings), updates BENCHMARKS.md
    .venv/bin/python bench/run.py --quick    # 100 k readings, prints only
    .venv/bin/python bench/run.py --json     # figures as JSON on stdout
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.agent import (
    Agent,
    AgentSettings,
    cpu_seconds,
    deployed_env,
    io_counters,
    memory_kb,
)
from bench.broker import (
    HOST,
    SYS_BYTES_RECEIVED,
    SYS_PUBLISH_BYTES_RECEIVED,
    Broker,
    SysCounters,
    closed_port,
    mosquitto_binary,
)
from bench.encodings import encode_all, publish_packet_bytes
from bench.procs import (
    REPO_ROOT,
    BenchError,
    Child,
    Children,
    Deadline,
    Pinning,
    install_signal_handlers,
)
from bench.profile import Profiler, hot_spots, py_spy_binary
from bench.report import (
    fmt,
    machine,
    offered,
    print_summary,
    render_markdown,
    verdicts,
    write_benchmarks,
)
from bench.tb_peer import TELEMETRY
from gateway.readings import Series, StoredReading

FULL_READINGS = 1_000_000
PACED_MEMORY_RATE = 20_000
"""The second memory run fills the buffer at this rate: 40 times what 50 sensors reporting
every 5 s send, yet without the burst of the unpaced run (whose decode objects in flight are
most of the growth over idle RSS)."""
QUICK_READINGS = 100_000
PUBACK_BYTES = 4  # MQTT 5 PUBACK, reason "success", no properties: what the hub subscriber sends
DISCONNECT_BYTES = 2


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Bench:
    children: Children
    pinning: Pinning
    deadline: Deadline
    tmp: Path
    sources: int
    python: str = sys.executable
    runs: int = 0
    notes: list[str] = field(default_factory=list)
    agent_env: dict[str, str] | None = None

    def py(self, *args: str) -> list[str]:
        return self.pinning.other([self.python, *args])

    def start_feeder(self, name: str, links: list[Path], *extra: str) -> Child:
        feeder = self.children.start(
            f"feeder-{name}",
            self.py("-m", "bench.feeder", *map(str, links), *extra),
            log_path=self.tmp / f"feeder-{name}.log",
            lines=True,
            stdin=True,
        )
        feeder.expect("ptys", self.deadline.cap(15, "creating ptys"))
        return feeder

    def start_hub(self, name: str, broker: Broker, prefix: str, readings: int) -> Child:
        hub = self.children.start(
            f"hub-{name}",
            self.py(
                "-m",
                "bench.hub",
                HOST,
                str(broker.port),
                f"{prefix}/+/data",
                "--readings",
                str(readings),
            ),
            log_path=self.tmp / f"hub-{name}.log",
            lines=True,
            stdin=True,
        )
        hub.expect("ready", self.deadline.cap(15, "subscribing the hub"))
        return hub

    def links(self, name: str, count: int) -> list[Path]:
        folder = self.tmp / name
        folder.mkdir(parents=True, exist_ok=True)
        return [folder / f"ttyPM{i}" for i in range(count)]

    def agent(self, name: str, settings: AgentSettings) -> Agent:
        if self.agent_env is None:
            self.agent_env = deployed_env(self.tmp / "pycache")
        return Agent(self.children, self.pinning, self.tmp / name, settings, self.agent_env)


def _prefix() -> str:
    return f"bench/{uuid.uuid4().hex[:8]}"


def _db_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("buffer.db*") if p.is_file())


def _wait_delivery(
    bench: Bench, feeder: Child, hub: Child, agent: Agent, readings: int, stall_s: float = 30.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Until every reading is at the hub, or (when the agent dropped some) until the feed is
    written and the agent's buffer is empty. Returns (hub figures, feeder's "written")."""
    last_out, last_change = -1, time.monotonic()
    written: dict[str, Any] | None = None
    status: dict[str, Any] | None = None
    while True:
        done = hub.poll_event("done")
        if written is None:
            written = feeder.poll_event("written")
        if done is not None:
            return done, written or feeder.expect("written", bench.deadline.cap(30, "feeding"))
        if not hub.running:
            raise BenchError(f"hub subscriber exited{hub.log_tail()}")
        agent.check_alive()
        status = agent.status() or status
        if status is not None:
            buffer, uplink = status["buffer"], status["uplink"]
            if buffer.get("write_errors"):
                raise BenchError(f"the agent could not write its buffer: {buffer}")
            out = int(uplink["readings_out"])
            if out != last_out:
                last_out, last_change = out, time.monotonic()
            if (
                written is not None
                and buffer["depth"] == 0
                and out + int(buffer["dropped"]) >= readings
            ):
                return _hub_report(bench, hub, out), written
        if time.monotonic() - last_change > stall_s:
            raise BenchError(
                f"no progress for {stall_s:.0f} s: the hub has not got all "
                f"{readings} readings; agent status: {json.dumps(status)[:2000]}"
                f"{agent.child.log_tail() if agent.child else ''}"
            )
        time.sleep(bench.deadline.cap(0.25, f"delivering {readings} readings"))


def _hub_report(bench: Bench, hub: Child, acknowledged: int) -> dict[str, Any]:
    """What the hub has so far, once it has caught up with what the agent saw acknowledged."""
    end = time.monotonic() + 5.0
    while True:
        try:
            hub.send("report")
        except OSError:  # it just got every reading, said "done" and exited
            return hub.expect("done", bench.deadline.cap(10, "hub report"))
        report = hub.expect(("report", "done"), bench.deadline.cap(10, "hub report"))
        if (
            report["event"] == "done"
            or report["readings"] >= acknowledged
            or time.monotonic() > end
        ):
            return report
        time.sleep(0.1)


# --- 1, 2, 4, 5: throughput, CPU, disk writes, wire bytes ---------------------------------


def run_throughput(
    bench: Bench, readings: int, rate: float = 0.0, max_trials: int = 6, refine: int = 2
) -> dict[str, Any]:
    """The highest offered load the agent carries without losing a reading.

    First as fast as the ptys drain (what a writer "as fast as the agent takes them" gives);
    if the agent drops readings there (`buffer.dropped` in its status: readings dropped from
    its in-memory staging when storing falls behind reading), the feed is paced below the rate
    it delivered and stepped down until nothing is lost, then bisected `refine` times between
    the highest lossless and the lowest lossy offered load.
    """
    trials: list[dict[str, Any]] = []
    lossy: float | None = None  # lowest offered load that lost readings (unpaced: what it did)
    lossless: dict[str, Any] | None = None  # the lossless trial at the highest offered load
    refined = 0
    while len(trials) < max_trials:
        trial = run_trial(bench, readings, rate)
        trials.append(trial)
        log(
            f"  trial: offered {offered(rate)}: {fmt(trial['readings_per_s'])} readings/s "
            f"delivered, {fmt(trial['dropped'])} dropped"
        )
        if trial["dropped"] == 0:
            if lossless is None or rate > lossless["offered_rate"]:
                lossless = trial
            if rate == 0 or lossy is None:
                break  # nothing lost at the highest load tried
        else:
            bound = trial["readings_per_s"] if rate == 0 else rate
            lossy = bound if lossy is None else min(lossy, bound)
        if lossless is None:  # step down below what it delivered
            rate = (
                round(
                    0.9 * trial["readings_per_s"]
                    if rate == 0
                    else min(0.85 * rate, 0.9 * trial["readings_per_s"]),
                    -3,
                )
                or 1000.0
            )
            continue
        assert lossy is not None
        rate = round((lossless["offered_rate"] + lossy) / 2, -3)
        if refined >= refine or not lossless["offered_rate"] < rate < lossy:
            break
        refined += 1
    if lossless is None:
        raise BenchError(
            f"the agent dropped readings in all {len(trials)} throughput trials: "
            + "; ".join(
                f"offered {offered(t['offered_rate'])}: {t['dropped']} dropped" for t in trials
            )
        )
    result = dict(lossless)
    result["trials"] = [
        {
            k: t[k]
            for k in (
                "offered_rate",
                "readings_per_s",
                "dropped",
                "delivered",
                "seconds",
                "cpu_us_per_reading",
            )
        }
        for t in trials
    ]
    overload = trials[0] if trials[0]["dropped"] else None
    if overload is not None:
        result["overload"] = {
            "offered_rate": overload["offered_rate"],
            "readings_per_s": overload["readings_per_s"],
            "dropped": overload["dropped"],
            "dropped_percent": round(100 * overload["dropped"] / readings, 1),
            "cpu_us_per_reading": overload["cpu_us_per_reading"],
        }
    return result


@dataclass
class _Measured:
    start_t: float
    end_t: float
    done: dict[str, Any]
    written: dict[str, Any]
    final: dict[str, Any]
    cpu_s: float
    io0: dict[str, int]
    io1: dict[str, int]
    broker_bytes: int
    broker_publish_bytes: int
    db_after: int
    raw_profile: str | None
    flush_interval_s: float
    peak_rss_kb: int


def run_trial(
    bench: Bench,
    readings: int,
    rate: float,
    *,
    profile: bool = False,
    sources: int | None = None,
    flush_interval_s: float = 1.0,
    label: str = "throughput",
    synchronous: str = "full",
    commit_interval_ms: int = 250,
) -> dict[str, Any]:
    """N readings from `sources` ptys through the agent to Mosquitto at an offered load."""
    bench.runs += 1
    name = f"{'profile' if profile else label}{bench.runs}"
    sources = sources or bench.sources
    log(
        f"{name}: {readings:,} readings from {sources} SDS011 port(s), offered "
        f"{offered(rate)}" + (", py-spy attached" if profile else "")
    )
    with bench.children.scope():
        broker = Broker(bench.children, bench.pinning, bench.tmp / f"{name}-broker")
        broker.start()
        counters = SysCounters(broker)
        try:
            measured = _measure(
                bench,
                name,
                broker,
                counters,
                readings,
                rate,
                profile,
                sources,
                flush_interval_s,
                synchronous,
                commit_interval_ms,
            )
        finally:
            counters.close()
    return _figures(readings, rate, sources, measured)


def _measure(
    bench: Bench,
    name: str,
    broker: Broker,
    counters: SysCounters,
    readings: int,
    rate: float,
    profile: bool,
    sources: int,
    flush_interval_s: float,
    synchronous: str,
    commit_interval_ms: int = 250,
) -> _Measured:
    prefix = _prefix()
    links = bench.links(name, sources)
    feeder = bench.start_feeder(name, links, "--readings", str(readings), "--rate", str(rate))
    hub = bench.start_hub(name, broker, prefix, readings)
    settings = AgentSettings(
        hub_url=broker.url,
        topic_prefix=prefix,
        ports=[str(p) for p in links],
        flush_interval_s=flush_interval_s,
        synchronous=synchronous,
        commit_interval_ms=commit_interval_ms,
    )
    agent = bench.agent(name, settings)
    agent.start()
    feeder.expect("attached", bench.deadline.cap(60, "waiting for the agent to open ports"))
    agent.wait_status(
        "uplink connected",
        lambda s: s["uplink"]["connected"],
        bench.deadline.cap(30, "connecting the agent"),
    )
    time.sleep(0.5)  # let the start-up settle (birth message, first empty flush)

    sys_topics = [SYS_BYTES_RECEIVED, SYS_PUBLISH_BYTES_RECEIVED]
    before = counters.fresh(sys_topics)
    cpu0 = cpu_seconds(agent.pid)
    io0 = io_counters(agent.pid)
    profiler = None
    if profile:
        profiler = Profiler(bench.children, bench.pinning, bench.tmp / f"{name}-py-spy.txt")
        profiler.start(agent.pid, max_duration_s=int(bench.deadline.remaining()) + 1)
        time.sleep(1.0)  # py-spy attaches

    feeder.send("go")
    start_t = float(feeder.expect("start", bench.deadline.cap(10, "starting the feed"))["t"])
    done, written = _wait_delivery(
        bench, feeder, hub, agent, readings, stall_s=max(30.0, 2 * flush_interval_s)
    )
    end_t = float(done["t"])
    raw_profile = profiler.stop() if profiler else ""
    final = agent.wait_status(
        "buffer drained",
        lambda s: (
            s["buffer"]["depth"] == 0
            and s["uplink"]["readings_out"] + s["buffer"]["dropped"] >= readings
        ),
        bench.deadline.cap(30, "draining the buffer"),
        interval_s=0.02,
        allow_drops=True,
    )
    cpu1 = cpu_seconds(agent.pid)
    io1 = io_counters(agent.pid)
    after = counters.fresh(sys_topics)
    db_after = _db_bytes(agent.data_dir)
    peak_rss_kb = memory_kb(agent.pid)["VmHWM"]
    return _Measured(
        start_t,
        end_t,
        done,
        written,
        final,
        cpu1 - cpu0,
        io0,
        io1,
        after[SYS_BYTES_RECEIVED] - before[SYS_BYTES_RECEIVED],
        after[SYS_PUBLISH_BYTES_RECEIVED] - before[SYS_PUBLISH_BYTES_RECEIVED],
        db_after,
        raw_profile if profile else None,
        flush_interval_s,
        peak_rss_kb,
    )


def _figures(readings: int, rate: float, sources: int, m: _Measured) -> dict[str, Any]:
    done, io0, io1 = m.done, m.io0, m.io1
    elapsed = m.end_t - m.start_t
    delivered = int(done["readings"])
    hub_bytes = PUBACK_BYTES * int(done["puback_messages"]) + DISCONNECT_BYTES
    wire_bytes = m.broker_bytes - hub_bytes
    buffer, uplink = m.final["buffer"], m.final["uplink"]
    disk = io1["write_bytes"] - io0["write_bytes"]
    result: dict[str, Any] = {
        "readings": readings,
        "offered_rate": rate,
        "delivered": delivered,
        "dropped": int(buffer["dropped"]),
        "sources": sources,
        "seconds": round(elapsed, 3),
        "readings_per_s": round(delivered / elapsed),
        "feed_seconds": round(float(m.written["t"]) - m.start_t, 3),
        "agent_cpu_s": round(m.cpu_s, 2),
        "cpu_us_per_reading": round(m.cpu_s / delivered * 1e6, 2),
        "agent_core_utilisation": round(m.cpu_s / elapsed, 2),
        "disk_write_bytes": disk,
        "disk_bytes_per_reading": round(disk / delivered, 1),
        "wchar_bytes_per_reading": round((io1["wchar"] - io0["wchar"]) / delivered, 1),
        "db_bytes_after": m.db_after,
        "messages": int(done["messages"]),
        "duplicate_messages": int(done["duplicate_messages"]),
        "uplink_messages_out": uplink["messages_out"],
        "payload_bytes": int(done["payload_bytes"]),
        "payload_bytes_per_reading": round(int(done["payload_bytes"]) / delivered, 2),
        "broker_bytes_received": m.broker_bytes,
        "broker_publish_bytes_received": m.broker_publish_bytes,
        "hub_bytes_subtracted": hub_bytes,
        "wire_bytes": wire_bytes,
        "wire_bytes_per_reading": round(wire_bytes / delivered, 2),
        "flush_interval_s": m.flush_interval_s,
        "peak_rss_mb": _mb(m.peak_rss_kb),
        **{k: done.get(k) for k in ("latency_ms_p50", "latency_ms_p99", "latency_ms_max")},
    }
    if m.raw_profile is not None:
        result["profile"] = hot_spots(m.raw_profile)
    return result


REAL_RATE_VARIANTS = [
    ("full", 250, 10.0),
    ("normal", 1000, 10.0),
    ("normal", 15_000, 10.0),
    ("full", 300_000, 300.0),
]
"""(synchronous, commit_interval_ms, flush_interval_s) of the real-rate runs: the bench's
setting, the default commit interval without fsync per commit, a commit every 15 s, and the
least SD-card wear: a commit (and a flush) every 5 minutes (docs/operations.md, SD-card wear;
BENCHMARKS.md, disk). Full runs only for flushes longer than 10 s."""

REAL_RATE_FLUSHES = 2
"""A real-rate run with a long flush interval is fed for this many flush intervals less 10 s:
that many whole commits (one per flush), as a gateway makes them day after day. Fed for exactly
that many intervals, the run would end just after a flush and add a commit of a few readings
that costs as many pages as a whole one."""


def run_real_rate(
    bench: Bench,
    seconds: int,
    synchronous: str = "full",
    commit_interval_ms: int = 250,
    flush_interval_s: float = 10.0,
) -> dict[str, Any]:
    """One SDS011 at its real rate (1 frame, 2 readings, per second), the other settings as in
    the throughput run: disk and wire bytes per reading as a streetlight gateway would see
    them (with a 250 ms commit interval each commit carries 2 readings)."""
    if flush_interval_s > seconds:
        seconds = round(REAL_RATE_FLUSHES * flush_interval_s) - 10
    result = run_trial(
        bench,
        2 * seconds,
        2.0,
        sources=1,
        flush_interval_s=flush_interval_s,
        label=f"real-rate-{synchronous}-{commit_interval_ms}",
        synchronous=synchronous,
        commit_interval_ms=commit_interval_ms,
    )
    result["synchronous"] = synchronous
    result["commit_interval_ms"] = commit_interval_ms
    result["disk_bytes_per_day"] = round(result["disk_write_bytes"] / result["seconds"] * 86400)
    return result


# --- 3: memory with 1 M readings buffered ----------------------------------------------------


def run_memory(bench: Bench, readings: int, rate: float, max_tries: int = 3) -> dict[str, Any]:
    """The hub unreachable (a closed port): every reading stays in the buffer. Fed at a rate
    the agent stores without loss (stepping down if it drops some)."""
    for _ in range(max_tries):
        result = _memory_once(bench, readings, rate)
        if result is not None:
            return result
        rate = round(0.7 * rate, -3) or 1000.0
    raise BenchError(f"the agent dropped readings in all {max_tries} memory runs")


def _mb(kib: int) -> float:
    """/proc's kB are KiB; MB here are 10^6 bytes (the stricter reading of a MB target)."""
    return round(kib * 1024 / 1e6, 1)


def import_breakdown(bench: Bench) -> list[dict[str, Any]]:
    """VmRSS of a fresh interpreter after each group of the agent's imports."""
    env = bench.agent_env or deployed_env(bench.tmp / "pycache")
    out = subprocess.run(
        bench.py("-m", "bench.imports"),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=bench.deadline.cap(60, "measuring imports"),
    )
    if out.returncode != 0:
        raise BenchError(f"bench.imports failed:\n{out.stderr[-2000:]}")
    steps: list[dict[str, Any]] = json.loads(out.stdout)["steps"]
    return steps


def _memory_once(bench: Bench, readings: int, rate: float) -> dict[str, Any] | None:
    bench.runs += 1
    name = f"memory{bench.runs}"
    log(f"{name}: {readings:,} readings into the buffer at {offered(rate)}, hub unreachable")
    links = bench.links(name, bench.sources)
    with bench.children.scope():
        feeder = bench.start_feeder(name, links, "--readings", str(readings), "--rate", str(rate))
        settings = AgentSettings(
            hub_url=f"mqtt://{HOST}:{closed_port()}",
            topic_prefix=_prefix(),
            ports=[str(p) for p in links],
            max_readings=max(2_000_000, 2 * readings),
        )
        agent = bench.agent(name, settings)
        agent.start()
        feeder.expect("attached", bench.deadline.cap(60, "waiting for the agent to open ports"))
        agent.wait_status("status answering", lambda s: True, bench.deadline.cap(30, "start"))
        time.sleep(1.0)
        idle = memory_kb(agent.pid)
        feeder.send("go")
        start_t = float(feeder.expect("start", bench.deadline.cap(10, "starting the feed"))["t"])
        status = agent.wait_status(
            f"{readings:,} readings buffered",
            lambda s: s["buffer"]["committed"] + s["buffer"]["dropped"] >= readings,
            bench.deadline.cap(max(120.0, readings / 5000), f"buffering {readings} readings"),
            interval_s=0.1,
            allow_drops=True,
        )
        filled_t = time.monotonic()
        full = memory_kb(agent.pid)
    if status["buffer"]["dropped"]:
        log(f"  {name}: the agent dropped {status['buffer']['dropped']} readings; slower")
        return None
    return {
        "readings": readings,
        "offered_rate": rate,
        "idle_rss_mb": _mb(idle["VmRSS"]),
        "rss_mb": _mb(full["VmRSS"]),
        "peak_rss_mb": _mb(full["VmHWM"]),
        "idle_pss_mb": _mb(idle.get("Pss", 0)),
        "pss_mb": _mb(full.get("Pss", 0)),
        "idle_anon_mb": _mb(idle.get("RssAnon", 0)),
        "idle_file_mb": _mb(idle.get("RssFile", 0)),
        "anon_mb": _mb(full.get("RssAnon", 0)),
        "file_mb": _mb(full.get("RssFile", 0)),
        "buffer_depth": status["buffer"]["depth"],
        "buffer_file_mb": round(status["buffer"]["bytes"] / 1e6, 1),
        "ingest_readings_per_s": round(readings / (filled_t - start_t)),
    }


# --- 6: cold start to first publish -----------------------------------------------------------


def run_cold_start(bench: Bench, runs: int) -> dict[str, Any]:
    """Process start -> first `data` message at the broker, a sensor frame waiting at port open.

    Opening a serial port flushes its input (pyserial), so the sensor's frame is written the
    moment the agent has the port open, as a sensor streaming in active mode would."""
    log(f"cold start: {runs} runs")
    totals, opens = [], []
    with bench.children.scope():
        broker = Broker(bench.children, bench.pinning, bench.tmp / "cold-broker")
        broker.start()
        for run in range(runs):
            name = f"cold{run}"
            prefix = _prefix()
            links = bench.links(name, 1)
            feeder = bench.start_feeder(name, links, "--mode", "first-frame")
            hub = bench.start_hub(name, broker, prefix, 1)
            settings = AgentSettings(
                hub_url=broker.url,
                topic_prefix=prefix,
                ports=[str(p) for p in links],
                flush_interval_s=0.05,
                commit_interval_ms=10,
            )
            agent = bench.agent(name, settings)
            agent.start()
            attached = feeder.expect("attached", bench.deadline.cap(60, "cold start: port open"))
            first = hub.expect("first", bench.deadline.cap(60, "cold start: first publish"))
            totals.append(float(first["t"]) - agent.started_s)
            opens.append(float(attached["t"]) - agent.started_s)
            for child in (agent.child, hub, feeder):
                if child is not None:
                    bench.children.stop(child)
    return {
        "runs": runs,
        "first_publish_ms": round(statistics.median(totals) * 1000),
        "first_publish_ms_min": round(min(totals) * 1000),
        "first_publish_ms_max": round(max(totals) * 1000),
        "port_open_ms": round(statistics.median(opens) * 1000),
        "settings": "flush_interval_s = 0.05, commit_interval_ms = 10",
    }


# --- 5b: wire bytes for one sensor and a 30 s flush, computed with the real encoder -----------


def sds011_batches(
    ports: int, per_message: int, messages: int, *, frame_period_ms: int, frames_per_ts: int = 1
) -> tuple[list[list[StoredReading]], dict[int, Series]]:
    """What the agent stores for `ports` SDS011s: per frame PM2.5 and PM10 (0.1 resolution,
    a random walk), `per_message` readings per flush. At full rate one timestamp covers a
    whole read of many frames (`frames_per_ts`)."""
    from gateway.devtools.sim_serial import pm_random_walk

    series = {}
    for port in range(ports):
        series[2 * port + 1] = Series(f"pm-{port}", "pm2_5_ugm3", "ug/m3")
        series[2 * port + 2] = Series(f"pm-{port}", "pm10_ugm3", "ug/m3")
    walks = [pm_random_walk(seed=1 + port) for port in range(ports)]
    t0, seq = 1_717_000_000_000, 123_456
    readings: list[StoredReading] = []
    frame = 0
    while len(readings) < per_message * messages:
        ts = t0 + (frame // frames_per_ts) * frame_period_ms
        for port, walk in enumerate(walks):
            pm2_5, pm10 = next(walk)
            readings.append((seq, ts, 2 * port + 1, round(pm2_5, 1), 0))
            readings.append((seq + 1, ts, 2 * port + 2, round(pm10, 1), 0))
            seq += 2
        frame += 1
    batches = [readings[i : i + per_message] for i in range(0, per_message * messages, per_message)]
    return batches, series


def encodings(tp: dict[str, Any] | None) -> list[dict[str, Any]]:
    """citygw's formats, ThingsBoard gateway JSON and Sparkplug B on the same readings: one
    SDS011 with a 30 s flush, and the throughput run's shape (4 ports at full rate)."""
    per_full = round(tp["delivered"] / max(tp["messages"], 1)) if tp else 3000
    cases = [
        (
            "one SDS011, flush_interval_s = 30 (60 readings/message)",
            sds011_batches(1, 60, 20, frame_period_ms=1000),
        ),
        (
            f"4 SDS011 ports at full rate ({fmt(per_full)} readings/message)",
            sds011_batches(4, per_full, 5, frame_period_ms=4, frames_per_ts=100),
        ),
    ]
    out = []
    for name, (batches, series) in cases:
        encoded = encode_all(batches, series)
        ours = encoded[0].bytes_per_reading
        out.append(
            {
                "case": name,
                "encodings": [
                    {
                        "name": e.name,
                        "messages": e.messages,
                        "bytes_per_reading": round(e.bytes_per_reading, 2),
                        "ratio_to_v1": round(e.bytes_per_reading / ours, 2),
                    }
                    for e in encoded
                ],
            }
        )
    return out


def realistic_wire() -> dict[str, Any]:
    """One SDS011 (2 readings/s), flush_interval_s = 30: 60 readings per message."""
    from gateway import wire
    from gateway.wire import v1

    gateway_id, prefix = "gw-0001", "citygw/v1"
    topic = wire.topic(prefix, gateway_id, wire.TOPIC_DATA)
    sizes, per_msg = [], 60
    batches, series = sds011_batches(1, per_msg, 10, frame_period_ms=1000)
    for batch in batches:  # ten consecutive 30 s windows, averaged
        payload = v1.encode_data(gateway_id, 1_234_567_890, batch, series.__getitem__)
        sizes.append((len(payload), publish_packet_bytes(topic, len(payload))))
    payload_avg = statistics.mean(s[0] for s in sizes)
    packet_avg = statistics.mean(s[1] for s in sizes)
    return {
        "readings_per_message": per_msg,
        "topic": topic,
        "payload_bytes": round(payload_avg, 1),
        "mqtt_bytes": round(packet_avg, 1),
        "bytes_per_reading": round(packet_avg / per_msg, 2),
        "bytes_per_reading_with_tcp_ip": round((packet_avg + 52) / per_msg, 2),
    }


# --- the peer: ThingsBoard IoT Gateway on the same workload -----------------------------------

TB_VENV = REPO_ROOT / "bench" / ".tb-venv"
TB_READINGS = 100_000


def _tb_config(workdir: Path, port: int) -> Path:
    """ThingsBoard gateway config: "ThingsBoard" and the MQTT-in source are the bench's
    Mosquitto; memory storage; statistics and remote configuration off; logs to stdout at
    WARNING (its own file handlers need a ./logs tree)."""
    config = workdir / "config"
    config.mkdir(parents=True, exist_ok=True)
    gateway = {
        "thingsboard": {
            "host": HOST,
            "port": port,
            "remoteShell": False,
            "remoteConfiguration": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False},
            "maxPayloadSizeBytes": 8196,
            "minPackSendDelayMS": 50,
            "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 3600,
            "handleDeviceRenaming": False,
            "security": {"type": "accessToken", "accessToken": "bench"},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": {
            "type": "memory",
            "read_records_count": 100,
            "max_records_count": 10 * TB_READINGS,
        },
        "grpc": {"enabled": False},
        "connectors": [{"type": "mqtt", "name": "MQTT in", "configuration": "mqtt.json"}],
    }
    timeseries = [
        {"type": "double", "key": key, "value": "${" + key + "}"}
        for key in ("pm2_5_ugm3", "pm10_ugm3")
    ]
    connector = {
        "broker": {
            "host": HOST,
            "port": port,
            "clientId": "tb-gateway-in",
            "version": 5,
            "maxMessageNumberPerWorker": 10,
            "maxNumberOfWorkers": 100,
            "cleanSession": True,
            "cleanStart": True,
            "sessionExpiryInterval": 0,
            "security": {"type": "anonymous"},
        },
        "mapping": [
            {
                "topicFilter": "sensor/+/data",
                "subscriptionQos": 1,
                "converter": {
                    "type": "json",
                    "deviceInfo": {
                        "deviceNameExpressionSource": "topic",
                        "deviceNameExpression": "(?<=sensor/)(.*?)(?=/data)",
                        "deviceProfileExpressionSource": "constant",
                        "deviceProfileExpression": "default",
                    },
                    "sendDataOnlyOnChange": False,
                    "timeout": 60000,
                    "attributes": [],
                    "timeseries": timeseries,
                },
            }
        ],
    }
    handler = {"class": "logging.StreamHandler", "level": "WARNING", "stream": "ext://sys.stdout"}
    logs = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": dict.fromkeys(
            (
                "consoleHandler",
                "databaseHandler",
                "serviceHandler",
                "connectorHandler",
                "converterHandler",
                "tb_connectionHandler",
                "storageHandler",
                "extensionHandler",
            ),
            handler,
        ),
        "loggers": {
            name: {"handlers": ["consoleHandler"], "level": "WARNING", "propagate": False}
            for name in (
                "database",
                "service",
                "connector",
                "converter",
                "tb_connection",
                "storage",
                "extension",
            )
        },
        "root": {"level": "WARNING", "handlers": ["consoleHandler"]},
    }
    for name, document in (
        ("tb_gateway.json", gateway),
        ("mqtt.json", connector),
        ("logs.json", logs),
    ):
        (config / name).write_text(json.dumps(document, indent=1))
    return config


def run_thingsboard(bench: Bench, readings: int) -> dict[str, Any]:
    """The same SDS011 readings through ThingsBoard IoT Gateway's MQTT-in path (its serial
    connector is an example to extend, not a product path) into the same Mosquitto, which
    plays ThingsBoard (bench/tb_peer.py answers the one RPC the gateway waits for)."""
    binary = TB_VENV / "bin" / "thingsboard-gateway"
    if not binary.exists():
        return {
            "skipped": f"{binary} is missing: `make bench` installs it (thingsboard-gateway "
            "from PyPI into bench/.tb-venv)"
        }
    log(f"thingsboard gateway: {readings:,} readings through its MQTT-in connector")
    workdir = bench.tmp / "thingsboard"
    with bench.children.scope():
        broker = Broker(bench.children, bench.pinning, workdir / "broker")
        broker.start()
        config = _tb_config(workdir, broker.port)
        peer = bench.children.start(
            "tb-peer",
            bench.py("-m", "bench.tb_peer", HOST, str(broker.port), "--readings", str(readings)),
            log_path=workdir / "tb-peer.log",
            lines=True,
            stdin=True,
        )
        peer.expect("ready", bench.deadline.cap(15, "fake ThingsBoard subscribing"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["TB_GW_CONFIG_DIR"] = str(config)
        gateway = bench.children.start(
            "thingsboard-gateway",
            bench.pinning.agent([str(binary)]),
            log_path=workdir / "thingsboard-gateway.log",
            env=env,
            cwd=workdir,
        )
        started = time.monotonic()
        peer.expect("limits", bench.deadline.cap(60, "ThingsBoard gateway asking its limits"))
        time.sleep(3.0)  # its MQTT connector subscribes after the session limits
        startup_s = time.monotonic() - started
        cpu0 = cpu_seconds(gateway.pid)
        peer.send("go")
        start_t = float(peer.expect("start", bench.deadline.cap(10, "starting the feed"))["t"])
        try:
            done = peer.expect(
                "done",
                bench.deadline.cap(max(30.0, readings / 200), "ThingsBoard gateway forwarding"),
            )
        except BenchError:
            peer.send("report")
            done = peer.expect("report", bench.deadline.cap(10, "peer report"))
        cpu1 = cpu_seconds(gateway.pid)
        memory = memory_kb(gateway.pid)
    delivered = int(done["readings"])
    elapsed = float(done["t"] or start_t) - start_t
    messages = max(int(done["messages"]), 1)
    payload = int(done["payload_bytes"])
    wire_bytes = payload + messages * (
        publish_packet_bytes(TELEMETRY, payload // messages) - payload // messages
    )
    return {
        "readings": readings,
        "delivered": delivered,
        "readings_per_s": round(delivered / elapsed) if elapsed > 0 else 0,
        "seconds": round(elapsed, 2),
        "cpu_us_per_reading": round((cpu1 - cpu0) / max(delivered, 1) * 1e6, 1),
        "peak_rss_mb": _mb(memory["VmHWM"]),
        "rss_mb": _mb(memory["VmRSS"]),
        "pss_mb": _mb(memory.get("Pss", 0)),
        "messages": messages,
        "wire_bytes_per_reading": round(wire_bytes / max(delivered, 1), 2),
        "startup_s": round(startup_s, 1),
    }


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_READINGS:,} readings instead of {FULL_READINGS:,}; 1 cold start;"
        " does not write BENCHMARKS.md unless --write",
    )
    p.add_argument("--readings", type=int, help="readings for the throughput run")
    p.add_argument(
        "--memory-readings",
        type=int,
        help=f"readings buffered for the RSS figure (default {FULL_READINGS:,})",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offered load of the first throughput trial, readings/s (0: as fast "
        "as the ptys drain)",
    )
    p.add_argument(
        "--memory-rate",
        type=float,
        help="offered load for the RSS run (default: the lossless throughput rate)",
    )
    p.add_argument("--sources", type=int, default=4, help="SDS011 ports fed in parallel")
    p.add_argument("--cold-runs", type=int, help="cold starts to take the median of (3)")
    p.add_argument(
        "--peer-readings",
        type=int,
        help=f"readings through ThingsBoard IoT Gateway ({TB_READINGS:,}; --quick 10,000)",
    )
    p.add_argument(
        "--only",
        action="append",
        choices=[
            *("throughput", "real-rate", "memory", "cold", "wire", "peer", "profile"),
            "uplinks",
        ],
        help="run only these parts (repeatable)",
    )
    p.add_argument(
        "--profile",
        choices=["auto", "always", "never"],
        default="auto",
        help="py-spy profile of a separate throughput run: auto = when a target is missed",
    )
    p.add_argument(
        "--profile-readings",
        type=int,
        help="readings for the profiled trial (default: as for throughput)",
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="whole run, seconds")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument(
        "--write",
        dest="write",
        action="store_true",
        default=None,
        help="write BENCHMARKS.md (default for a full run)",
    )
    p.add_argument("--no-write", dest="write", action="store_false")
    p.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    return p.parse_args(argv)


def run_all(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    parts = set(
        args.only
        or ["throughput", "real-rate", "memory", "cold", "wire", "peer", "profile", "uplinks"]
    )
    readings = args.readings or (QUICK_READINGS if args.quick else FULL_READINGS)
    mem_readings = args.memory_readings or (QUICK_READINGS if args.quick else FULL_READINGS)
    cold_runs = args.cold_runs or (1 if args.quick else 3)
    results: dict[str, Any] = {}
    if "wire" in parts:
        results["wire"] = realistic_wire()
    if "throughput" in parts:
        results["throughput"] = run_throughput(bench, readings, args.rate)
        tp = results["throughput"]
        log(
            f"throughput: {fmt(tp['readings_per_s'])} readings/s, "
            f"{tp['cpu_us_per_reading']:.1f} us CPU/reading, "
            f"{tp['disk_bytes_per_reading']:.1f} B disk/reading, "
            f"{tp['wire_bytes_per_reading']:.2f} B wire/reading"
        )
    if "uplinks" in parts:
        from bench.uplinks import run_uplinks

        results["uplinks"] = run_uplinks(bench, readings, args.rate)
        up = results["uplinks"]
        log(
            f"uplinks: {up['uplinks']} uplinks, {fmt(up['readings_per_s'])} readings/s end to "
            f"end (MQTT), {up['cpu_us_per_reading']:.1f} us CPU/reading, "
            f"{up['disk_bytes_per_reading']:.1f} B disk/reading; SensorThings by then "
            f"{fmt(up['sta_sent'])} sent ({fmt(up['sta_readings_per_s'])}/s), "
            f"backlog {fmt(up['sta_backlog'])}; then {fmt(up['sta_readings_per_s_after'] or 0)}/s"
        )
    if "real-rate" in parts:
        results["real_rate"] = run_real_rate(bench, 10 if args.quick else 30)
        rr = results["real_rate"]
        log(
            f"real rate: {rr['disk_bytes_per_reading']:.0f} B disk/reading, "
            f"{rr['wire_bytes_per_reading']:.2f} B wire/reading"
        )
        results["real_rate_variants"] = []
        for synchronous, commit_ms, flush_s in REAL_RATE_VARIANTS[1:]:
            if args.quick and flush_s > 10:
                continue
            variant = run_real_rate(
                bench, 10 if args.quick else 30, synchronous, commit_ms, flush_s
            )
            variant["least_wear"] = (synchronous, commit_ms, flush_s) == REAL_RATE_VARIANTS[-1]
            results["real_rate_variants"].append(variant)
            log(
                f"real rate, synchronous = {synchronous}, commit_interval_ms = {commit_ms}, "
                f"flush_interval_s = {flush_s:g}: "
                f"{variant['disk_bytes_per_reading']:.0f} B disk/reading"
            )
    if "memory" in parts:
        tp = results.get("throughput")
        mem_rate = (
            args.memory_rate
            if args.memory_rate is not None
            else (tp["offered_rate"] if tp else args.rate)
        )
        results["memory"] = run_memory(bench, mem_readings, mem_rate)
        results["memory"]["imports"] = import_breakdown(bench)
        mem = results["memory"]
        log(f"memory: peak RSS {mem['peak_rss_mb']:.1f} MB, idle {mem['idle_rss_mb']:.1f} MB")
        if args.memory_rate is None:  # the same buffer filled at a sustained, paced rate
            paced = results["memory_paced"] = run_memory(bench, mem_readings, PACED_MEMORY_RATE)
            log(
                f"memory at {fmt(PACED_MEMORY_RATE)} readings/s: peak RSS "
                f"{paced['peak_rss_mb']:.1f} MB"
            )
    if "wire" in parts:
        results["encodings"] = encodings(results.get("throughput"))
    if "peer" in parts:
        results["thingsboard"] = run_thingsboard(
            bench, args.peer_readings or (10_000 if args.quick else TB_READINGS)
        )
        tb = results["thingsboard"]
        log(
            "thingsboard gateway: "
            + (
                tb["skipped"]
                if "skipped" in tb
                else f"{fmt(tb['readings_per_s'])} readings/s, "
                f"{tb['cpu_us_per_reading']} us CPU/reading"
                f", peak RSS {tb['peak_rss_mb']} MB"
            )
        )
    if "cold" in parts:
        results["cold_start"] = run_cold_start(bench, cold_runs)
        log(f"cold start: {results['cold_start']['first_publish_ms']} ms")
    met = verdicts(results)
    missed = any(flag is False for flag in met.values())
    want_profile = "profile" in parts and (
        args.profile == "always" or (args.profile == "auto" and missed) or args.only
    )
    if want_profile and args.profile != "never":
        if py_spy_binary() is None:
            bench.notes.append(
                "A target is missed but py-spy is not installed, so there is no "
                "profile: `.venv/bin/pip install py-spy` and run again."
            )
        else:
            tp = results.get("throughput")
            rate = tp["offered_rate"] if tp else args.rate
            results["profile"] = run_trial(
                bench, args.profile_readings or readings, rate, profile=True
            )
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    pinning = Pinning(enabled=not args.no_pin)
    tmp = Path(tempfile.mkdtemp(prefix="citygw-bench-"))
    children = Children()
    deadline = Deadline(args.timeout)
    bench = Bench(children, pinning, deadline, tmp, sources=args.sources)

    def alarm(signum: int, frame: object) -> None:
        raise BenchError(f"the bench ran over --timeout {args.timeout:.0f} s (hard stop)")

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(int(args.timeout) + 60)
    ok = False
    try:
        log(f"temp dir {tmp}; {pinning.describe()}; budget {args.timeout:.0f} s")
        results = run_all(args, bench)
        ok = True
    except BenchError as error:
        log(f"FAILED: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        signal.alarm(0)
        children.close()
        if ok and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs and configs kept in {tmp}")

    command = "make bench" + (
        f" BENCH_ARGS={shlex.quote(' '.join(argv or sys.argv[1:]))}"
        if (argv or sys.argv[1:])
        else ""
    )
    results = {
        "machine": machine(mosquitto_binary()),
        "command": command,
        "command_line": shlex.join([".venv/bin/python", "bench/run.py", *(argv or sys.argv[1:])]),
        "pinning": pinning.describe(),
        **results,
        "notes": bench.notes,
    }
    write = args.write if args.write is not None else not (args.quick or args.only)
    if write:
        write_benchmarks(args.output, render_markdown(results))
        log(f"wrote {args.output}")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_summary(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
