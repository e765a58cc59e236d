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

TARGET_READINGS_PER_S = 50_000
TARGET_RSS_MB = 30.0
PUBLISHED = {  # from the issue; not measured here
    "name": "ThingsBoard IoT Gateway (the most used Python IoT gateway)",
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
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "gateway", "drivers"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
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
    return {
        "throughput": None if tp is None else tp["readings_per_s"] >= TARGET_READINGS_PER_S,
        "rss": None if mem is None else mem["peak_rss_mb"] <= TARGET_RSS_MB,
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
        rows.append((f"1. End-to-end throughput without loss ({n} readings from "
                     f"{tp['sources']} SDS011 ports, first frame written -> last reading "
                     f"acknowledged; offered {offered(tp['offered_rate'])})",
                     f"{fmt(tp['readings_per_s'])} readings/s",
                     f">= {fmt(TARGET_READINGS_PER_S)} readings/s", yes(met["throughput"])))
        over = tp.get("overload")
        if over:
            load = ("feed unpaced" if over["offered_rate"] == 0
                    else f"offered {fmt(over['offered_rate'])} readings/s")
            rows.append((f"1b. Under overload ({load}): delivered, and lost by the agent",
                         f"{fmt(over['readings_per_s'])} readings/s, "
                         f"{over['dropped_percent']:.1f} % of readings dropped", "", ""))
        rows += [
            ("2. Agent CPU per reading (utime + stime of all threads / readings), same run",
             f"{tp['cpu_us_per_reading']:.1f} us/reading", "", ""),
            ("4. Disk writes per reading (/proc/PID/io write_bytes: WAL, checkpoints; "
             "readings inserted and deleted after PUBACK)",
             f"{fmt(tp['disk_bytes_per_reading'], 1)} B/reading", "", ""),
            (f"5a. Bytes on the wire per reading at full rate (agent -> broker, MQTT framing "
             f"included; {fmt(tp['delivered'] / max(tp['messages'], 1))} readings/message)",
             f"{tp['wire_bytes_per_reading']:.2f} B/reading", "", ""),
        ]
    rr = results.get("real_rate")
    if rr:
        rows += [
            (f"4b. Disk writes per reading at a real sensor's rate (1 SDS011, 1 frame = 2 "
             f"readings per second for {rr['seconds']:.0f} s, flush_interval_s = 10)",
             f"{fmt(rr['disk_bytes_per_reading'])} B/reading "
             f"(~{rr['disk_bytes_per_day'] / 1e6:,.0f} MB/day extrapolated)", "", ""),
            (f"5c. Bytes on the wire per reading at that rate, measured "
             f"({fmt(rr['delivered'] / max(rr['messages'], 1))} readings/message)",
             f"{rr['wire_bytes_per_reading']:.2f} B/reading", "", ""),
        ]
    wire = results.get("wire")
    if wire:
        rows.append((f"5b. Bytes on the wire per reading, one SDS011 (2 readings/s), "
                     f"flush_interval_s = 30: {wire['readings_per_message']} readings/message "
                     "(computed with gateway.wire.encode_data + MQTT 5 PUBLISH header; "
                     "TCP/IP not included)",
                     f"{wire['bytes_per_reading']:.2f} B/reading", "", ""))
    mem = results.get("memory")
    if mem:
        n = fmt(mem["readings"])
        rows += [
            (f"3. Peak RSS with {n} readings buffered (VmHWM)", f"{mem['peak_rss_mb']:.1f} MB",
             f"<= {TARGET_RSS_MB:.0f} MB", yes(met["rss"])),
            (f"3. RSS with {n} readings buffered (VmRSS)", f"{mem['rss_mb']:.1f} MB", "", ""),
            ("3. Idle RSS right after start (VmRSS)", f"{mem['idle_rss_mb']:.1f} MB", "", ""),
        ]
    cold = results.get("cold_start")
    if cold:
        rows.append((f"6. Cold start: process start -> first `data` message at the broker "
                     f"(median of {cold['runs']}; {cold['settings']})",
                     f"{fmt(cold['first_publish_ms'])} ms (min {fmt(cold['first_publish_ms_min'])}"
                     f", max {fmt(cold['first_publish_ms_max'])})", "", ""))
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
    lines += ["", "Published figures, not measured here:", "",
              "| | readings/s | CPU per reading | RSS |", "| --- | --- | --- | --- |",
              f"| {PUBLISHED['name']} | {PUBLISHED['readings_per_s']} | "
              f"{PUBLISHED['cpu_us_per_reading']} | {PUBLISHED['rss_mb']} |",
              f"| targets for citygw | >= {fmt(TARGET_READINGS_PER_S)} | | "
              f"<= {TARGET_RSS_MB:.0f} MB |", ""]
    lines += _verdict_lines(results)
    lines += _throughput_lines(results.get("throughput"))
    lines += _real_rate_lines(results.get("real_rate"))
    lines += _memory_lines(results.get("memory"))
    lines += _wire_lines(results.get("wire"))
    lines += _cold_lines(results.get("cold_start"))
    if results.get("profile"):
        lines += profile_markdown(results["profile"])
    if results.get("notes"):
        lines += ["Notes:", ""] + [f"- {n}" for n in results["notes"]] + [""]
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def _verdict_lines(results: dict[str, Any]) -> list[str]:
    met = verdicts(results)
    out = []
    if met["throughput"] is not None:
        out.append(f"- Throughput target (>= {fmt(TARGET_READINGS_PER_S)} readings/s without "
                   "loss): " + ("**met**." if met["throughput"] else "**not met**."))
    tp = results.get("throughput")
    if tp and tp.get("overload"):
        out.append("- Under overload the agent loses readings instead of slowing its readers "
                   f"({tp['overload']['dropped_percent']:.1f} % lost when offered "
                   f"{offered(tp['overload']['offered_rate'])}).")
    if met["rss"] is not None:
        out.append(f"- RSS target (<= {TARGET_RSS_MB:.0f} MB peak with "
                   f"{fmt(results['memory']['readings'])} readings buffered): "
                   + ("**met**." if met["rss"] else "**not met**."))
    return [*out, ""] if out else []


def _throughput_lines(tp: dict[str, Any] | None) -> list[str]:
    if not tp:
        return []
    lines = ["### Throughput trials", "",
             "Each trial: a fresh agent, broker and buffer; N readings written into the ptys "
             "at the offered load; done when the hub subscriber has every reading (or, when "
             "the agent dropped some, when its buffer is empty).", "",
             "| offered load | delivered | dropped by the agent | time | CPU per reading |",
             "| --- | --- | --- | --- | --- |"]
    for t in tp["trials"]:
        lines.append(f"| {offered(t['offered_rate'])} | {fmt(t['readings_per_s'])} readings/s "
                     f"| {fmt(t['dropped'])} | {t['seconds']:.1f} s | "
                     f"{t['cpu_us_per_reading']:.1f} us |")
    lines += ["", "Details of the lossless trial reported above:", "",
              "| detail | value |", "| --- | --- |"]
    details = [
        ("readings fed / received by the hub", f"{fmt(tp['readings'])} / "
         f"{fmt(tp['delivered'])}"),
        ("first frame written -> last reading at the hub", f"{tp['seconds']:.2f} s"),
        ("feed time (all frames accepted by the ptys)", f"{tp['feed_seconds']:.2f} s"),
        ("agent CPU time / share of its core", f"{tp['agent_cpu_s']:.2f} s / "
         f"{tp['agent_core_utilisation']:.2f}"),
        ("disk write_bytes in all", f"{fmt(tp['disk_write_bytes'])} B"),
        ("wchar (all write syscalls, sockets included) per reading",
         f"{tp['wchar_bytes_per_reading']:.1f} B"),
        ("data messages (duplicates)", f"{tp['messages']} ({tp['duplicate_messages']})"),
        ("msgpack payload per reading", f"{tp['payload_bytes_per_reading']:.2f} B"),
        ("broker $SYS bytes received: all / PUBLISH payloads",
         f"{fmt(tp['broker_bytes_received'])} B / "
         f"{fmt(tp['broker_publish_bytes_received'])} B"),
        ("minus the hub subscriber's PUBACKs (4 B each) and DISCONNECT",
         f"{fmt(tp['hub_bytes_subtracted'])} B"),
    ]
    lines += [f"| {a} | {b} |" for a, b in details]
    lines += ["", "Agent config: flush_interval_s = 1, batch_max_readings = 5000, "
              "commit_max_readings = 5000, commit_interval_ms = 250, synchronous = \"full\", "
              "MQTT 5, QoS 1, max_inflight_batches = 4 (default).", ""]
    return lines


def _real_rate_lines(rr: dict[str, Any] | None) -> list[str]:
    if not rr:
        return []
    return [f"Real-rate run (4b, 5c): {fmt(rr['readings'])} readings from one port, "
            f"{rr['seconds']:.1f} s from the first frame to the last reading at the hub; "
            f"disk write_bytes {fmt(rr['disk_write_bytes'])} B; agent CPU "
            f"{rr['agent_cpu_s']:.2f} s ({rr['cpu_us_per_reading']:.0f} us per reading, "
            f"idle work included); {rr['messages']} data messages.", ""]


def _memory_lines(mem: dict[str, Any] | None) -> list[str]:
    if not mem:
        return []
    lines = ["### Memory", "",
             f"Hub unreachable (a closed port), {fmt(mem['readings'])} readings fed at "
             f"{offered(mem['offered_rate'])} and buffered; buffer file "
             f"{mem['buffer_file_mb']:.1f} MB; ingest-only rate (ptys -> SQLite, no uplink) "
             f"{fmt(mem['ingest_readings_per_s'])} readings/s. RSS split: idle "
             f"{mem['idle_anon_mb']:.1f} MB anonymous (heap) + {mem['idle_file_mb']:.1f} MB "
             f"file-backed (shared libraries, mapped code); with the buffer full "
             f"{mem['anon_mb']:.1f} MB + {mem['file_mb']:.1f} MB. MB = 10^6 bytes.", ""]
    if mem.get("imports"):
        lines += ["Where the idle RSS comes from: a fresh interpreter's VmRSS after importing "
                  "what the agent uses (bench/imports.py):", "",
                  "| after importing | VmRSS | added | heap (RssAnon) | files (RssFile) |",
                  "| --- | --- | --- | --- | --- |"]
        for s in mem["imports"]:
            lines.append(f"| {s['step']} | {s['rss_kb'] / 1000:.1f} MB | "
                         f"+{s['delta_kb'] / 1000:.1f} MB | {s['anon_kb'] / 1000:.1f} MB | "
                         f"{s['file_kb'] / 1000:.1f} MB |")
        lines.append("")
    return lines


def _wire_lines(wire: dict[str, Any] | None) -> list[str]:
    if not wire:
        return []
    return [f"Realistic wire case (5b): topic `{wire['topic']}`, msgpack payload "
            f"{wire['payload_bytes']:.0f} B, MQTT PUBLISH {wire['mqtt_bytes']:.0f} B per "
            f"{wire['readings_per_message']} readings; counting one TCP/IPv4 segment "
            f"(52 B of headers) {wire['bytes_per_reading_with_tcp_ip']:.2f} B/reading.", ""]


def _cold_lines(cold: dict[str, Any] | None) -> list[str]:
    if not cold:
        return []
    return [f"Cold start (6): the agent had its serial port open {fmt(cold['port_open_ms'])} ms "
            "after the process started (median); the sensor's frame is written then, because "
            "opening a serial port flushes its input.", ""]


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
        + ", ".join(f"{t} {p} %" for t, p in spots["threads"].items()) + ".",
        "",
        "Top 10 by own time (the frame on top of the stack; time in C code such as SQLite, "
        "msgpack or a system call counts for the Python function that called it):",
        "",
        "| # | function | file:line (hottest line) | called mostly from | thread | % of samples |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i, s in enumerate(spots["self"], 1):
        lines.append(f"| {i} | `{s['function']}` | {s['file']}:{s['line']} | "
                     f"`{s.get('caller', '')}` | {s['thread']} | {s['percent']:.1f} |")
    lines += ["", "Top 10 of the project's own functions by inclusive time (itself and all it "
              "calls):", "", "| # | function | file | thread | % of samples |",
              "| --- | --- | --- | --- | --- |"]
    for i, s in enumerate(spots["inclusive"], 1):
        lines.append(f"| {i} | `{s['function']}` | {s['file']} | {s['thread']} | "
                     f"{s['percent']:.1f} |")
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
    path.write_text("# Benchmarks\n\nMeasured by `make bench` (bench/run.py; see "
                    "bench/README.md).\n\n" + section, encoding="utf-8")


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
            print(f"    offered {offered(t['offered_rate'])}: {fmt(t['readings_per_s'])} "
                  f"readings/s delivered, {fmt(t['dropped'])} dropped")
    prof = results.get("profile")
    if prof:
        print("\n  top hot spots (own time, % of samples):")
        for s in prof["profile"]["self"]:
            print(f"    {s['percent']:5.1f} %  {s['function']}  {s['file']}:{s['line']}  "
                  f"[{s['thread']}]")
    for note in results.get("notes", []):
        print(f"  note: {note}")
