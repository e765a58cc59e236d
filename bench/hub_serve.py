"""How long `citygw hub serve` takes to answer, over a PostgreSQL hub database of realistic size.

    .venv/bin/python bench/hub_serve.py [--gateways 250] [--readings 1000000] [--requests 50]

A throwaway PostgreSQL cluster (tests/integration/pg_cluster.py) with the hub's first schema
(gateway/hub/db/schema.py, migration 1) and two monthly partitions; per gateway an open source
(pm2_5, pm10) and a closed one (count), readings spread over both months, loaded by COPY. Then
`hub serve` as a process, and sequential requests timed from this process (one client:
latency, not capacity): the page rendered (every open Datastream's newest reading) and cached,
the catalog, pages of one Datastream's observations, a time window, a deep $skip, and the union
of every open Datastream.
The same again after each later migration, as `hub ingest` applies it (migration 2: the
serving indexes on (gateway_id, quantity, ts) and on ts). Prints a Markdown table; record it in
BENCHMARKS.md with the command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "integration")]  # bench, the cluster helper
START = datetime(2026, 11, 1, tzinfo=UTC)
SPAN_S = 60 * 86_400  # two months
MONTHS = [
    "CREATE TABLE observations_p202611 PARTITION OF observations"
    " FOR VALUES FROM ('2026-11-01 00:00Z') TO ('2026-12-01 00:00Z')",
    "CREATE TABLE observations_p202612 PARTITION OF observations"
    " FOR VALUES FROM ('2026-12-01 00:00Z') TO ('2027-01-01 00:00Z')",
]
PM = ["pm2_5", "pm10"]


def record(source: str, owner: str, quantities: list[str], *, open_data: bool) -> str:
    return json.dumps({
        "source": source, "owner": owner, "type": "serial", "driver": "sds011",
        "quantities": [{"quantity": q, "unit": "ug/m3"} for q in quantities],
        "register": {"purpose": "bench", "open_data": open_data, "location": [52.0, 5.0]},
    })  # fmt: skip


def fill(dsn: str, gateways: int, readings: int) -> None:
    import psycopg

    from gateway.hub.db.schema import MIGRATIONS

    series = [("pm", "pm2_5"), ("pm", "pm10"), ("counter", "count")]
    per_series = readings // (gateways * len(series))
    step_s = SPAN_S / per_series
    with psycopg.connect(dsn) as db:
        for statement in MIGRATIONS["postgresql"][0] + MONTHS:  # the first schema
            db.execute(statement)
        with db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO register (gateway_id, source, owner, record, updated_at)"
                " VALUES (%s, %s, %s, %s, now())",
                [row for g in range(gateways) for row in (
                    (f"gw-{g:04}", "pm", "net", record("pm", "net", PM, open_data=True)),
                    (f"gw-{g:04}", "counter", "city", record("counter", "city", ["count"],
                                                             open_data=False)),
                )],
            )  # fmt: skip
            columns = "gateway_id, epoch, seq, source, quantity, unit, owner, ts, value, flags"
            with cursor.copy(f"COPY observations ({columns}) FROM STDIN") as copy:
                for g in range(gateways):
                    seq = 0
                    for n in range(per_series):
                        ts = START + timedelta(seconds=n * step_s)
                        for source, quantity in series:
                            seq += 1
                            copy.write_row((f"gw-{g:04}", 1, seq, source, quantity, "ug/m3",
                                            "net", ts, random.random() * 50, 0))  # fmt: skip
        db.execute("ANALYZE")


@contextlib.contextmanager
def serving(dsn: str) -> Iterator[str]:
    from bench.broker import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "hub", "serve", "--db", dsn,
         "--listen", f"127.0.0.1:{port}", "--log-level", "warning"], cwd=REPO,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + "/v1.1", timeout=5).close()
                break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def timed(url: str) -> float:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as answer:
        answer.read()
    return (time.perf_counter() - began) * 1000


def measure(label: str, urls: Callable[[int], str], count: int) -> tuple[str, str]:
    times = sorted(timed(urls(i)) for i in range(count))
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    return label, f"{statistics.median(times):,.1f} / {p95:,.1f} ms (n={count})"


def run(url: str, requests: int) -> list[tuple[str, str]]:
    api = f"{url}/v1.1"
    with urllib.request.urlopen(f"{api}/Datastreams?$top=1000", timeout=60) as answer:
        streams = [d["@iot.id"] for d in json.load(answer)["value"]]

    def stream(query: str) -> Callable[[int], str]:
        return lambda i: f"{api}/Datastreams({streams[i % len(streams)]})/Observations?{query}"

    window = (
        "$filter=phenomenonTime%20ge%202026-12-10T00:00:00Z"
        "%20and%20phenomenonTime%20lt%202026-12-10T06:00:00Z"
    )
    first = f"{timed(url + '/'):,.0f} ms"
    return [
        ("page, first render (every open Datastream's newest reading)", first),
        measure("page, cached", lambda i: url + "/", requests),
        measure("Things?$top=100", lambda i: f"{api}/Things?$top=100", requests),
        measure("Datastreams(id)/Observations?$top=100", stream("$top=100"), requests),
        measure(
            "... $orderby=phenomenonTime desc&$top=1",
            stream("$top=1&$orderby=phenomenonTime%20desc"),
            requests,
        ),
        measure("... 6-hour $filter window", stream(window), requests),
        measure("... $skip=1000&$top=100", stream("$skip=1000&$top=100"), requests),
        measure("... $count=true&$top=0", stream("$count=true&$top=0"), requests),
        measure(
            "Observations?$top=100 (every open Datastream)",
            lambda i: f"{api}/Observations?$top=100",
            max(3, requests // 10),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateways", type=int, default=250)
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    import psycopg
    from pg_cluster import PgCluster

    from gateway.hub.db.schema import MIGRATIONS

    top = Path(tempfile.mkdtemp(prefix="citygw-bench-pg-", dir="/tmp"))
    cluster = PgCluster(top / "pg")
    try:
        cluster.start()
        began = time.perf_counter()
        fill(cluster.dsn, args.gateways, args.readings)
        print(f"loaded {args.readings:,} readings in {time.perf_counter() - began:.1f} s",
              file=sys.stderr)  # fmt: skip
        results: list[tuple[str, str, str]] = []
        for level, statements in enumerate(MIGRATIONS["postgresql"], start=1):
            if level > 1:  # as `hub ingest` migrates a database it finds at the level before
                with psycopg.connect(cluster.dsn, autocommit=True) as db:
                    for statement in statements:
                        db.execute(statement)
                    db.execute("ANALYZE observations")
            with serving(cluster.dsn) as url:
                results += [(f"version {level}", *row) for row in run(url, args.requests)]
        print("| schema | request | median / p95 |\n| --- | --- | --- |")
        for row in results:
            print("| " + " | ".join(row) + " |")
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
