"""MaxSonar aggregation: wire bytes per hour with and without `aggregate_s`, and its CPU per report.

On its own: `.venv/bin/python bench/rangefinder.py [--hours N] [--csv DIR] [--json]`; part of
`make bench`.

The stream: one MB7389 (HRXL-MaxSonar-WR 5 m) over a canal at its free-run rate (6.67 reports a
second), 4,000 mm above the zero of the level: the water rises 50 mm an hour, the surface
ripples (a 2.5 s wave of +-15 mm and 4 mm of noise), 0.2 % of the reports see a bird or a
passing boat (0.5-2.5 m away), and at 0.5 % of them a run of 1-10 reports without an echo
starts (~3 % of all reports). Seeded.

Bytes: each report is decoded by the real stream decoder and emitted as the serial source
emits it (every report's readings at its own time; or the RangeAggregator's readings at each
interval's end), then batched, encoded and framed exactly as `citygw bench wire` does (its
`replay`: the hub's defaults, a 30 s flush and wire format 4, MQTT 5 PUBLISH framing with the
topic alias and a birth per daily connection; TCP/IP not counted; PINGREQs, 2 B per idle
minute at the default keepalive, apart). `--csv DIR` writes the emitted readings, so `citygw
bench wire --readings DIR/<case>.csv --flush-seconds 30 --format 4` gives the same bytes.

CPU: `RangeAggregator.take` per report as the source calls it (one report a slice, the flush at
each interval's end included), the fastest of 7 runs; the decoder's time per report beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from drivers import maxbotix
from drivers.base import Measurement
from drivers.maxbotix_models import MODELS
from gateway.devtools.wirebench import Row, replay
from gateway.sources.serial.rangefinder import RangeAggregator

MODEL = "MB7389"
MOUNT_MM = 4000
RATE_HZ = MODELS[MODEL].rate_hz
SOURCE = "canal"
FLUSH_S = 30.0
WIRE_FORMAT = 4
"""The hub's default `wire_format`."""
RUNS = 7
INTERVALS_S = (10, 60, 300)


def canal(*, hours: float, seed: int = 1) -> Iterator[float | None]:
    """Distances (mm; None: no echo) the sensor reports, one per 1 / RATE_HZ seconds."""
    rng = random.Random(seed)
    no_echo = 0
    for n in range(round(hours * 3600 * RATE_HZ)):
        t = n / RATE_HZ
        if no_echo:
            no_echo -= 1
            yield None
            continue
        if rng.random() < 0.005:
            no_echo = rng.randint(0, 9)
            yield None
            continue
        if rng.random() < 0.002:
            yield rng.uniform(500, 2500)  # a bird, a boat
            continue
        level = 1200 + 50 * t / 3600 + 15 * math.sin(2 * math.pi * t / 2.5) + rng.gauss(0, 4)
        yield MOUNT_MM - level


def lines(hours: float) -> list[bytes]:
    return [maxbotix.encode_distance(d, model=MODEL) for d in canal(hours=hours)]


def _rows(ts_s: float, measurements: list[Measurement]) -> list[Row]:
    return [Row(round(ts_s * 1000), SOURCE, m.quantity, float(m.value)) for m in measurements]


def emitted(stream: list[bytes], aggregate_s: float | None) -> list[Row]:
    """The readings the serial source emits for `stream`, with their times (s from 0)."""
    decoder = maxbotix.StreamDecoder(model=MODEL, mount_height_mm=MOUNT_MM)
    agg = None
    if aggregate_s is not None:
        agg = RangeAggregator(interval_s=aggregate_s, start_s=0.0, mount_height_mm=MOUNT_MM)
    rows: list[Row] = []
    for n, line in enumerate(stream):
        t = 1 / RATE_HZ * n
        frames = decoder.feed(line)
        if agg is None:
            rows += _rows(t, [m for frame in frames for m in frame.measurements])
            continue
        due_s = agg.due_s
        if t >= due_s:  # the source's flush task, at the interval's end
            rows += _rows(due_s, agg.flush(due_s))
        rows += _rows(t, agg.take(frames, t))
    if agg is not None:
        due_s = agg.due_s
        rows += _rows(due_s, agg.flush(due_s))
    return rows


def wire_case(
    rows: list[Row], hours: float, aggregate_s: float | None, wire_format: int
) -> dict[str, Any]:
    stats = replay(rows, flush_seconds=FLUSH_S, wire_format=wire_format)
    return {
        "case": "every report" if aggregate_s is None else f"aggregate_s = {aggregate_s}",
        "aggregate_s": aggregate_s,
        "readings_per_hour": round(stats.readings / hours),
        "messages_per_hour": round(stats.messages / hours),
        "bytes_per_hour": round(stats.bytes / hours),
        "bytes_per_hour_with_pings": round((stats.bytes + stats.ping_bytes) / hours),
        "bytes_per_reading": round(stats.bytes / max(stats.readings, 1), 2),
    }


def cpu_per_report(stream: list[bytes], aggregate_s: float) -> dict[str, float]:
    decoder = maxbotix.StreamDecoder(model=MODEL, mount_height_mm=MOUNT_MM)
    frames = [decoder.feed(line) for line in stream]
    times = [n / RATE_HZ for n in range(len(stream))]
    runs = []
    for _ in range(RUNS):
        agg = RangeAggregator(interval_s=aggregate_s, start_s=0.0, mount_height_mm=MOUNT_MM)
        start = time.perf_counter()
        for slice_frames, t in zip(frames, times, strict=True):
            if t >= agg.due_s:
                agg.flush(t)
            agg.take(slice_frames, t)
        runs.append(time.perf_counter() - start)
    decode_runs = []
    for _ in range(RUNS):
        decoder = maxbotix.StreamDecoder(model=MODEL, mount_height_mm=MOUNT_MM)
        start = time.perf_counter()
        for line in stream:
            decoder.feed(line)
        decode_runs.append(time.perf_counter() - start)
    return {
        "aggregate_us_per_report": round(min(runs) / len(stream) * 1e6, 3),
        "decode_us_per_report": round(min(decode_runs) / len(stream) * 1e6, 3),
    }


def write_csv(path: Path, rows: list[Row]) -> None:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["ts", "sensor_id", "quantity", "value"])
        for row in rows:
            out.writerow([f"{row.ts_ms / 1000:.3f}", row.sensor, row.quantity, row.value])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours of reports")
    parser.add_argument("--csv", type=Path, help="write each case's emitted readings here")
    parser.add_argument("--format", type=int, default=WIRE_FORMAT, choices=(1, 2, 3, 4))
    parser.add_argument("--json", action="store_true", help="one JSON object per case")
    args = parser.parse_args()
    stream = lines(args.hours)
    emitted_rows = {a: emitted(stream, a) for a in (None, *INTERVALS_S)}
    cases = [wire_case(rows, args.hours, a, args.format) for a, rows in emitted_rows.items()]
    cpu = cpu_per_report(stream, 60)
    if args.csv is not None:
        args.csv.mkdir(parents=True, exist_ok=True)
        for a, rows in emitted_rows.items():
            name = "every-report" if a is None else f"aggregate-{a}s"
            write_csv(args.csv / f"maxbotix-{name}.csv", rows)
    for case in cases:
        case["vs_every_report"] = round(case["bytes_per_hour"] / cases[0]["bytes_per_hour"], 4)
    if args.json:
        for case in cases:
            print(json.dumps(case))
        print(json.dumps({"case": "cpu, aggregate_s = 60", "reports": len(stream), **cpu}))
        return
    print(f"{len(stream):,} reports in {args.hours:g} h; flush {FLUSH_S:g} s, format {args.format}")
    print("| case | readings/h | messages/h | bytes/h | B/reading | vs every report | + PINGREQs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for c in cases:
        print(
            f"| {c['case']} | {c['readings_per_hour']:,} | {c['messages_per_hour']:,} | "
            f"{c['bytes_per_hour']:,} | {c['bytes_per_reading']} | {c['vs_every_report']} | "
            f"{c['bytes_per_hour_with_pings']:,} |"
        )
    print(
        f"CPU per report: aggregation {cpu['aggregate_us_per_report']} us "
        f"(decoding {cpu['decode_us_per_report']} us), fastest of {RUNS}"
    )


if __name__ == "__main__":
    main()
