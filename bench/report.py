"""The bench's results as text: the terminal summary and the section of BENCHMARKS.md."""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.procs import REPO_ROOT

TARGET_READINGS_PER_S = 100_000  # issue 7 (issue 2 asked for 50,000)
TARGET_CPU_US = 10.0
TARGET_RSS_MB = 30.0
TARGET_DISK_B = 40.0
TARGET_LATENCY_EXTRA_MS = 100.0  # p99 frame -> PUBACK at most flush_interval_s + this
TARGET_COLD_START_MS = 1000.0
PUBLISHED = {  # from the issue; not measured here
    "name": "ThingsBoard IoT Gateway (the most used Python IoT gateway), published",
    "readings_per_s": "~2,000",
    "cpu_us_per_reading": "~350 us (0.35 ms)",
    "rss_mb": "63-84 MB",
}

MARK_BEGIN = "<!-- bench:results:begin (written by bench/run.py; edit outside the markers) -->"
MARK_END = "<!-- bench:results:end -->"


def machine(mosquitto: str) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    version = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
        out = subprocess.run([mosquitto, "-h"], capture_output=True, text=True, timeout=5)
        version = (out.stdout or out.stderr).splitlines()[0].strip()
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(REPO_ROOT)]
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "gateway", "drivers"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        if commit and dirty:
            commit += " + uncommitted changes in gateway/ or drivers/"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "kernel": platform.release(),
        "sqlite": sqlite3.sqlite_version,
        "mosquitto": version,
        "commit": commit,
    }


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def offered(rate: float) -> str:
    return "unpaced (as fast as the ptys drain)" if rate == 0 else f"{fmt(rate)} readings/s"


def verdicts(results: dict[str, Any]) -> dict[str, bool | None]:
    tp, mem = results.get("throughput"), results.get("memory")
    rr, cold = results.get("real_rate"), results.get("cold_start")
    paced = results.get("memory_paced")
    least = next((v for v in results.get("real_rate_variants", []) if v.get("least_wear")), None)

    def latency_met(run: dict[str, Any] | None) -> bool | None:
        if not run or run.get("latency_ms_p99") is None:
            return None
        return bool(
            run["latency_ms_p99"] <= run["flush_interval_s"] * 1000 + TARGET_LATENCY_EXTRA_MS
        )

    return {
        "throughput": None if tp is None else tp["readings_per_s"] >= TARGET_READINGS_PER_S,
        "cpu": None if tp is None else tp["cpu_us_per_reading"] <= TARGET_CPU_US,
        "rss": None if mem is None else mem["peak_rss_mb"] <= TARGET_RSS_MB,
        "rss_paced": None if paced is None else paced["peak_rss_mb"] <= TARGET_RSS_MB,
        "disk": None if tp is None else tp["disk_bytes_per_reading"] <= TARGET_DISK_B,
        "disk_real": None if rr is None else rr["disk_bytes_per_reading"] <= TARGET_DISK_B,
        "disk_least_wear": None
        if least is None
        else least["disk_bytes_per_reading"] <= TARGET_DISK_B,
        "latency": latency_met(rr),
        "cold": None if cold is None else cold["first_publish_ms"] < TARGET_COLD_START_MS,
    }


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, value with unit, target, met?) for each measured figure."""
    rows: list[tuple[str, str, str, str]] = []
    met = verdicts(results)

    def yes(flag: bool | None) -> str:
        return "" if flag is None else ("yes" if flag else "**NO**")

    tp = results.get("throughput")
    if tp:
        n = fmt(tp["readings"])
        rows.append(
            (
                f"1. End-to-end throughput without loss ({n} readings from "
                f"{tp['sources']} SDS011 ports, first frame written -> last reading "
                f"acknowledged; offered {offered(tp['offered_rate'])})",
                f"{fmt(tp['readings_per_s'])} readings/s",
                f">= {fmt(TARGET_READINGS_PER_S)} readings/s",
                yes(met["throughput"]),
            )
        )
        over = tp.get("overload")
        if over:
            load = (
                "feed unpaced"
                if over["offered_rate"] == 0
                else f"offered {fmt(over['offered_rate'])} readings/s"
            )
            rows.append(
                (
                    f"1b. Under overload ({load}): delivered, and lost by the agent",
                    f"{fmt(over['readings_per_s'])} readings/s, "
                    f"{over['dropped_percent']:.1f} % of readings dropped",
                    "",
                    "",
                )
            )
        rows += [
            (
                "2. Agent CPU per reading (utime + stime of all threads / readings), same run",
                f"{tp['cpu_us_per_reading']:.1f} us/reading",
                f"<= {TARGET_CPU_US:.0f} us",
                yes(met["cpu"]),
            ),
            (
                "4. Disk writes per reading at full rate (/proc/PID/io write_bytes: WAL, "
                "checkpoints; readings inserted and deleted after PUBACK), same run",
                f"{fmt(tp['disk_bytes_per_reading'], 1)} B/reading",
                f"<= {TARGET_DISK_B:.0f} B",
                yes(met["disk"]),
            ),
            (
                "3c. Peak RSS of the agent in this run (streaming to the hub, backlog drained; "
                "VmHWM)",
                f"{tp['peak_rss_mb']:.1f} MB" if "peak_rss_mb" in tp else "n/a",
                "",
                "",
            ),
            (
                f"5a. Bytes on the wire per reading at full rate (agent -> broker, MQTT framing "
                f"included; {fmt(tp['delivered'] / max(tp['messages'], 1))} readings/message)",
                f"{tp['wire_bytes_per_reading']:.2f} B/reading",
                "",
                "",
            ),
        ]
    rr = results.get("real_rate")
    if rr:
        rows += [
            (
                f"4b. Disk writes per reading at a real sensor's rate (1 SDS011, 1 frame = 2 "
                f"readings per second for {rr['seconds']:.0f} s, flush_interval_s = 10, "
                f"synchronous = full, commit_interval_ms = 250)",
                f"{fmt(rr['disk_bytes_per_reading'])} B/reading "
                f"(~{rr['disk_bytes_per_day'] / 1e6:,.0f} MB/day extrapolated)",
                f"<= {TARGET_DISK_B:.0f} B",
                yes(met["disk_real"]),
            ),
            *[
                (
                    f"4c. The same with synchronous = {v['synchronous']}, commit_interval_ms = "
                    f"{fmt(v['commit_interval_ms'])}"
                    + (
                        f", flush_interval_s = {v['flush_interval_s']:g} ({v['seconds']:.0f} s)"
                        if v["flush_interval_s"] != rr["flush_interval_s"]
                        else ""
                    ),
                    f"{fmt(v['disk_bytes_per_reading'])} B/reading "
                    f"(~{v['disk_bytes_per_day'] / 1e6:,.1f} MB/day)",
                    *(
                        (f"<= {TARGET_DISK_B:.0f} B", yes(met["disk_least_wear"]))
                        if v.get("least_wear")
                        else ("", "")
                    ),
                )
                for v in results.get("real_rate_variants", [])
            ],
            (
                "7. Latency per reading, frame decoded -> at the hub (the broker PUBACKs as it "
                "forwards), same run: p50 / p99 / max",
                f"{fmt(rr['latency_ms_p50'] or 0)} / {fmt(rr['latency_ms_p99'] or 0)} / "
                f"{fmt(rr['latency_ms_max'] or 0)} ms",
                f"p99 <= flush {fmt(rr['flush_interval_s'] * 1000)} + "
                f"{TARGET_LATENCY_EXTRA_MS:.0f} ms",
                yes(met["latency"]),
            ),
            (
                f"5c. Bytes on the wire per reading at that rate, measured "
                f"({fmt(rr['delivered'] / max(rr['messages'], 1))} readings/message)",
                f"{rr['wire_bytes_per_reading']:.2f} B/reading",
                "",
                "",
            ),
        ]
    wire = results.get("wire")
    if wire:
        rows.append(
            (
                f"5b. Bytes on the wire per reading, one SDS011 (2 readings/s), "
                f"flush_interval_s = 30: {wire['readings_per_message']} readings/message "
                "(computed with gateway.wire.encode_data + MQTT 5 PUBLISH header; "
                "TCP/IP not included)",
                f"{wire['bytes_per_reading']:.2f} B/reading",
                "",
                "",
            )
        )
    mem = results.get("memory")
    if mem:
        n = fmt(mem["readings"])
        rows += [
            (
                f"3. Peak RSS with {n} readings buffered (VmHWM)",
                f"{mem['peak_rss_mb']:.1f} MB",
                f"<= {TARGET_RSS_MB:.0f} MB",
                yes(met["rss"]),
            ),
            (f"3. RSS with {n} readings buffered (VmRSS)", f"{mem['rss_mb']:.1f} MB", "", ""),
            ("3. Idle RSS right after start (VmRSS)", f"{mem['idle_rss_mb']:.1f} MB", "", ""),
            *(
                [
                    (
                        f"3. Peak RSS with {n} readings buffered, filled at "
                        f"{fmt(results['memory_paced']['offered_rate'])} readings/s (VmHWM)",
                        f"{results['memory_paced']['peak_rss_mb']:.1f} MB",
                        f"<= {TARGET_RSS_MB:.0f} MB",
                        yes(met["rss_paced"]),
                    )
                ]
                if results.get("memory_paced")
                else []
            ),
            (
                f"3. PSS (shared pages divided among the processes that map them) idle / with "
                f"{n} readings buffered",
                f"{mem['idle_pss_mb']:.1f} / {mem['pss_mb']:.1f} MB",
                "",
                "",
            ),
        ]
    cold = results.get("cold_start")
    if cold:
        rows.append(
            (
                f"6. Cold start: process start -> first `data` message at the broker "
                f"(median of {cold['runs']}; {cold['settings']})",
                f"{fmt(cold['first_publish_ms'])} ms (min {fmt(cold['first_publish_ms_min'])}"
                f", max {fmt(cold['first_publish_ms_max'])})",
                f"< {fmt(TARGET_COLD_START_MS)} ms",
                yes(met["cold"]),
            )
        )
    return rows


def render_markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        MARK_BEGIN,
        "",
        f"## Results of {m['date']}",
        "",
        f"- Command: `{results['command']}` (that is, `{results['command_line']}`)",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, Linux {m['kernel']}, "
        f"SQLite {m['sqlite']}, {m['mosquitto']}",
        f"- Code: {m['commit'] or 'unknown commit'}",
        f"- Pinning: {results['pinning']}",
        "",
        "| figure | measured | target | met |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in summary_rows(results)]
    lines += [
        "",
        "Published figures, not measured here:",
        "",
        "| | readings/s | CPU per reading | RSS |",
        "| --- | --- | --- | --- |",
        f"| {PUBLISHED['name']} | {PUBLISHED['readings_per_s']} | "
        f"{PUBLISHED['cpu_us_per_reading']} | {PUBLISHED['rss_mb']} |",
        f"| targets for citygw | >= {fmt(TARGET_READINGS_PER_S)} | "
        f"<= {TARGET_CPU_US:.0f} us | <= {TARGET_RSS_MB:.0f} MB |",
        "",
    ]
    lines += _verdict_lines(results)
    lines += _throughput_lines(results.get("throughput"))
    lines += _real_rate_lines(results.get("real_rate"))
    lines += _memory_lines(results.get("memory"))
    lines += _wire_lines(results.get("wire"))
    lines += _cold_lines(results.get("cold_start"))
    lines += _peer_lines(results)
    lines += _encoding_lines(results.get("encodings"))
    if results.get("profile"):
        lines += profile_markdown(results["profile"])
    if results.get("notes"):
        lines += ["Notes:", ""] + [f"- {n}" for n in results["notes"]] + [""]
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def _verdict_lines(results: dict[str, Any]) -> list[str]:
    names = {
        "throughput": f"throughput >= {fmt(TARGET_READINGS_PER_S)} readings/s without loss",
        "cpu": f"CPU <= {TARGET_CPU_US:.0f} us/reading",
        "rss": f"peak RSS <= {TARGET_RSS_MB:.0f} MB with the buffer full (filled unpaced)",
        "rss_paced": f"peak RSS <= {TARGET_RSS_MB:.0f} MB with the buffer full (filled at "
        "a sustained paced rate)",
        "disk": f"disk <= {TARGET_DISK_B:.0f} B/reading at full rate",
        "disk_real": f"disk <= {TARGET_DISK_B:.0f} B/reading at a sensor's rate "
        "(synchronous = full, 250 ms commits)",
        "disk_least_wear": f"disk <= {TARGET_DISK_B:.0f} B/reading at a sensor's rate "
        "with the least-wear settings (4c, docs/operations.md)",
        "latency": f"p99 latency <= flush interval + {TARGET_LATENCY_EXTRA_MS:.0f} ms",
        "cold": f"cold start < {fmt(TARGET_COLD_START_MS)} ms",
    }
    met = verdicts(results)
    out = [
        f"- {names[k]}: " + ("**met**." if flag else "**not met**.")
        for k, flag in met.items()
        if flag is not None
    ]
    tp = results.get("throughput")
    if tp and tp.get("overload"):
        out.append(
            "- Under overload the agent loses readings instead of slowing its readers "
            f"({tp['overload']['dropped_percent']:.1f} % lost when offered "
            f"{offered(tp['overload']['offered_rate'])})."
        )
    return [*out, ""] if out else []


def _peer_lines(results: dict[str, Any]) -> list[str]:
    tb = results.get("thingsboard")
    if not tb:
        return []
    if "skipped" in tb:
        return ["### Side by side: ThingsBoard IoT Gateway", "", f"Not run: {tb['skipped']}", ""]
    tp, mem = results.get("throughput"), results.get("memory")
    lines = [
        "### Side by side: ThingsBoard IoT Gateway (measured in this run)",
        "",
        f"thingsboard-gateway from PyPI in its own venv (bench/.tb-venv), pinned to the "
        f"agent's core, its MQTT-in connector subscribed to the bench's Mosquitto, which "
        f"also plays ThingsBoard (bench/tb_peer.py answers its getSessionLimits RPC "
        f"without rate limits). Workload: {fmt(tb['readings'])} readings, the same SDS011 "
        f"values from 4 ports, one JSON message per frame with the sensor's timestamp, "
        f"published at QoS 1 as fast as the broker takes them; figure: first message "
        f"published -> last reading in `v1/gateway/telemetry` at the broker. Its input is "
        f"MQTT, not a serial line (its serial connector is an example to extend), so it "
        f"skips the decoding citygw does, and it keeps data in memory (no durable "
        f"buffer); startup to forwarding {tb['startup_s']:.1f} s.",
        "",
        "| | citygw (this run) | ThingsBoard gateway (this run) | ratio |",
        "| --- | --- | --- | --- |",
    ]

    def row(
        name: str,
        ours: float | None,
        theirs: float,
        unit: str,
        higher_better: bool,
        digits: int = 0,
    ) -> None:
        if ours is None:
            lines.append(f"| {name} | | {fmt(theirs, digits)} {unit} | |")
            return
        ratio = ours / theirs if higher_better else theirs / ours
        lines.append(
            f"| {name} | {fmt(ours, digits)} {unit} | {fmt(theirs, digits)} {unit} | "
            f"citygw {ratio:,.1f}x {'more' if higher_better else 'less'} |"
        )

    row(
        "readings/s without loss",
        tp and tp["readings_per_s"],
        tb["readings_per_s"],
        "readings/s",
        True,
    )
    row(
        "CPU per reading", tp and tp["cpu_us_per_reading"], tb["cpu_us_per_reading"], "us", False, 1
    )
    row(
        f"peak RSS (citygw: {fmt(mem['readings'] if mem else 0)} readings buffered; "
        "ThingsBoard: during its run)",
        mem and mem["peak_rss_mb"],
        tb["peak_rss_mb"],
        "MB",
        False,
        1,
    )
    row("PSS", mem and mem["pss_mb"], tb["pss_mb"], "MB", False, 1)
    row(
        "bytes on the wire per reading (MQTT framing included)",
        tp and tp["wire_bytes_per_reading"],
        tb["wire_bytes_per_reading"],
        "B",
        False,
        2,
    )
    lines.append("")
    return lines


def _encoding_lines(cases: list[dict[str, Any]] | None) -> list[str]:
    if not cases:
        return []
    lines = [
        "### The same readings in other encodings (bench/encodings.py)",
        "",
        "Computed, not measured on a socket: MQTT 5 PUBLISH framing (QoS 1) included, "
        "TCP/IP not. ThingsBoard JSON groups a device's readings of one timestamp as its "
        "gateway does; Sparkplug B sends one DDATA per device per flush with metric "
        "aliases from DBIRTH and double values (its most compact lossless form); "
        "citygw wire v2 leaves out its retained birth message (sent once per "
        "connection).",
        "",
    ]
    for case in cases:
        lines += [
            f"{case['case']}:",
            "",
            "| encoding | messages | B/reading | x citygw v1 |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {e['name']} | {fmt(e['messages'])} | {e['bytes_per_reading']:.2f} | "
            f"{e['ratio_to_v1']:.2f} |"
            for e in case["encodings"]
        ]
        lines.append("")
    return lines


def _throughput_lines(tp: dict[str, Any] | None) -> list[str]:
    if not tp:
        return []
    lines = [
        "### Throughput trials",
        "",
        "Each trial: a fresh agent, broker and buffer; N readings written into the ptys "
        "at the offered load; done when the hub subscriber has every reading (or, when "
        "the agent dropped some, when its buffer is empty).",
        "",
        "| offered load | delivered | dropped by the agent | time | CPU per reading |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines.extend(
        f"| {offered(t['offered_rate'])} | {fmt(t['readings_per_s'])} readings/s "
        f"| {fmt(t['dropped'])} | {t['seconds']:.1f} s | "
        f"{t['cpu_us_per_reading']:.1f} us |"
        for t in tp["trials"]
    )
    lines += [
        "",
        "Details of the lossless trial reported above:",
        "",
        "| detail | value |",
        "| --- | --- |",
    ]
    details = [
        ("readings fed / received by the hub", f"{fmt(tp['readings'])} / {fmt(tp['delivered'])}"),
        ("first frame written -> last reading at the hub", f"{tp['seconds']:.2f} s"),
        ("feed time (all frames accepted by the ptys)", f"{tp['feed_seconds']:.2f} s"),
        (
            "agent CPU time / share of its core",
            f"{tp['agent_cpu_s']:.2f} s / {tp['agent_core_utilisation']:.2f}",
        ),
        ("disk write_bytes in all", f"{fmt(tp['disk_write_bytes'])} B"),
        (
            "wchar (all write syscalls, sockets included) per reading",
            f"{tp['wchar_bytes_per_reading']:.1f} B",
        ),
        ("data messages (duplicates)", f"{tp['messages']} ({tp['duplicate_messages']})"),
        ("msgpack payload per reading", f"{tp['payload_bytes_per_reading']:.2f} B"),
        (
            "broker $SYS bytes received: all / PUBLISH payloads",
            f"{fmt(tp['broker_bytes_received'])} B / {fmt(tp['broker_publish_bytes_received'])} B",
        ),
        (
            "minus the hub subscriber's PUBACKs (4 B each) and DISCONNECT",
            f"{fmt(tp['hub_bytes_subtracted'])} B",
        ),
    ]
    lines += [f"| {a} | {b} |" for a, b in details]
    lines += [
        "",
        "Agent config: flush_interval_s = 1, batch_max_readings = 5000, "
        'commit_max_readings = 5000, commit_interval_ms = 250, synchronous = "full", '
        "MQTT 5, QoS 1, max_inflight_batches = 4 (default).",
        "",
    ]
    return lines


def _real_rate_lines(rr: dict[str, Any] | None) -> list[str]:
    if not rr:
        return []
    return [
        f"Real-rate run (4b, 5c, 7): {fmt(rr['readings'])} readings from one port, "
        f"{rr['seconds']:.1f} s from the first frame to the last reading at the hub; "
        f"disk write_bytes {fmt(rr['disk_write_bytes'])} B; agent CPU "
        f"{rr['agent_cpu_s']:.2f} s ({rr['cpu_us_per_reading']:.0f} us per reading, "
        f"idle work included); {rr['messages']} data messages.",
        "",
    ]


def _memory_lines(mem: dict[str, Any] | None) -> list[str]:
    if not mem:
        return []
    lines = [
        "### Memory",
        "",
        f"Hub unreachable (a closed port), {fmt(mem['readings'])} readings fed at "
        f"{offered(mem['offered_rate'])} and buffered; buffer file "
        f"{mem['buffer_file_mb']:.1f} MB; ingest-only rate (ptys -> SQLite, no uplink) "
        f"{fmt(mem['ingest_readings_per_s'])} readings/s. RSS split: idle "
        f"{mem['idle_anon_mb']:.1f} MB anonymous (heap) + {mem['idle_file_mb']:.1f} MB "
        f"file-backed (shared libraries, mapped code); with the buffer full "
        f"{mem['anon_mb']:.1f} MB + {mem['file_mb']:.1f} MB. MB = 10^6 bytes.",
        "",
    ]
    if mem.get("imports"):
        lines += [
            "Where the idle RSS comes from: a fresh interpreter's VmRSS after importing "
            "what the agent uses (bench/imports.py):",
            "",
            "| after importing | VmRSS | added | heap (RssAnon) | files (RssFile) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for s in mem["imports"]:
            lines.append(
                f"| {s['step']} | {s['rss_kb'] / 1000:.1f} MB | "
                f"+{s['delta_kb'] / 1000:.1f} MB | {s['anon_kb'] / 1000:.1f} MB | "
                f"{s['file_kb'] / 1000:.1f} MB |"
            )
        lines.append("")
    return lines


def _wire_lines(wire: dict[str, Any] | None) -> list[str]:
    if not wire:
        return []
    return [
        f"Realistic wire case (5b): topic `{wire['topic']}`, msgpack payload "
        f"{wire['payload_bytes']:.0f} B, MQTT PUBLISH {wire['mqtt_bytes']:.0f} B per "
        f"{wire['readings_per_message']} readings; counting one TCP/IPv4 segment "
        f"(52 B of headers) {wire['bytes_per_reading_with_tcp_ip']:.2f} B/reading.",
        "",
    ]


def _cold_lines(cold: dict[str, Any] | None) -> list[str]:
    if not cold:
        return []
    return [
        f"Cold start (6): the agent had its serial port open {fmt(cold['port_open_ms'])} ms "
        "after the process started (median); the sensor's frame is written then, because "
        "opening a serial port flushes its input.",
        "",
    ]


def profile_markdown(prof: dict[str, Any]) -> list[str]:
    spots = prof["profile"]
    lines = [
        "### Profile of a throughput run (py-spy)",
        "",
        f"`py-spy record --nonblocking --threads --rate {prof.get('profile_rate', 200)}` on the "
        f"agent during a separate "
        f"trial of {fmt(prof['readings'])} readings offered at {offered(prof['offered_rate'])} "
        f"({fmt(prof['readings_per_s'])} readings/s delivered with the profiler attached, "
        f"{fmt(prof['dropped'])} dropped); {fmt(spots['samples'])} samples of running threads. "
        "Share of samples per thread: "
        + ", ".join(f"{t} {p} %" for t, p in spots["threads"].items())
        + ".",
        "",
        "Top 10 by own time (the frame on top of the stack; time in C code such as SQLite, "
        "msgpack or a system call counts for the Python function that called it):",
        "",
        "| # | function | file:line (hottest line) | called mostly from | thread | % of samples |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i, s in enumerate(spots["self"], 1):
        lines.append(
            f"| {i} | `{s['function']}` | {s['file']}:{s['line']} | "
            f"`{s.get('caller', '')}` | {s['thread']} | {s['percent']:.1f} |"
        )
    lines += [
        "",
        "Top 10 of the project's own functions by inclusive time (itself and all it calls):",
        "",
        "| # | function | file | thread | % of samples |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i, s in enumerate(spots["inclusive"], 1):
        lines.append(
            f"| {i} | `{s['function']}` | {s['file']} | {s['thread']} | {s['percent']:.1f} |"
        )
    lines.append("")
    return lines


def write_benchmarks(path: Path, section: str) -> None:
    """Replace the section between the markers (or add it); text outside them is kept."""
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if MARK_BEGIN in text and MARK_END in text:
            head, rest = text.split(MARK_BEGIN, 1)
            tail = rest.split(MARK_END, 1)[1]
            path.write_text(head + section.rstrip("\n") + tail, encoding="utf-8")
            return
        path.write_text(text.rstrip("\n") + "\n\n" + section, encoding="utf-8")
        return
    path.write_text(
        "# Benchmarks\n\nMeasured by `make bench` (bench/run.py; see "
        "bench/README.md).\n\n" + section,
        encoding="utf-8",
    )


def print_summary(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(f"\ncitygw bench, {m['date']}: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}")
    print(f"command: {results['command_line']}\npinning: {results['pinning']}\n")
    for figure, value, target, met in summary_rows(results):
        extra = f"  [target {target}: {met.strip('*')}]" if target else ""
        print(f"  {figure}:\n      {value}{extra}")
    tp = results.get("throughput")
    if tp:
        print("\n  throughput trials:")
        for t in tp["trials"]:
            print(
                f"    offered {offered(t['offered_rate'])}: {fmt(t['readings_per_s'])} "
                f"readings/s delivered, {fmt(t['dropped'])} dropped"
            )
    prof = results.get("profile")
    if prof:
        print("\n  top hot spots (own time, % of samples):")
        for s in prof["profile"]["self"]:
            print(
                f"    {s['percent']:5.1f} %  {s['function']}  {s['file']}:{s['line']}  "
                f"[{s['thread']}]"
            )
    for note in results.get("notes", []):
        print(f"  note: {note}")
