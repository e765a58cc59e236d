"""Bench: `citygw hub ingest` into PostgreSQL, exactly once, with 1 and 2 workers.

1,000 simulated gateways (`--gateways`) each publish their retained v3 birth, then v3 data
messages of `--per-message` readings (8 series, one reading a second each, values as an air
quality station gives them) until `--readings` in all. The messages are queued on a real
Mosquitto first (the workers' sessions exist, so it holds them), then the workers start: the
figure is readings stored / time from the workers' start to the last reading committed (every
reading counted in the database, once). CPU per reading is the workers' utime + stime over the
same span (/proc/PID/stat); "per worker core" is readings / worker CPU-seconds. DB bytes per
reading: the observations partitions' total size (heap + unique index + TOAST) / readings.

    .venv/bin/python bench/hub_ingest.py [--readings 1000000] [--workers 1 2] [--json]

Needs Mosquitto and PostgreSQL 15 (Debian packages `mosquitto`, `postgresql`; `make deps`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "integration")]

from pg_cluster import PgCluster  # noqa: E402

from bench.broker import free_port, mosquitto_binary  # noqa: E402
from gateway import wire  # noqa: E402
from gateway.readings import Series  # noqa: E402

PREFIX = "citygw/v1"
QUANTITIES = [
    ("pm2_5", "ug/m3", 8.0, 1),
    ("pm10", "ug/m3", 14.0, 1),
    ("temperature", "C", 6.5, 1),
    ("humidity", "%", 81.0, 0),
    ("pressure", "hPa", 1012.0, 1),
    ("no2", "ug/m3", 21.0, 1),
    ("noise", "dB", 48.0, 1),
    ("wind", "m/s", 3.2, 1),
]
SERIES = {i: Series("station", q, u) for i, (q, u, _, _) in enumerate(QUANTITIES)}


def messages(gateways: int, total: int, per_message: int) -> list[tuple[str, bytes, bool]]:
    """Births (retained) then data messages, round robin over the gateways."""
    rng = random.Random(1)
    out = []
    for g in range(gateways):
        birth = wire.encode_status(
            f"gw-{g:04d}", state="online", version="bench", started_ms=0,
            series=SERIES, wire_format=3, epoch=g + 1,
        )  # fmt: skip
        out.append((f"{PREFIX}/gw-{g:04d}/status", birth, True))
    level = [[base for _, _, base, _ in QUANTITIES] for _ in range(gateways)]
    seq = [1] * gateways
    t0 = int(time.time() * 1000) - 3_600_000
    made, g = 0, 0
    while made < total:
        batch, n = [], min(per_message, total - made)
        for i in range(n):
            sid = i % len(QUANTITIES)
            digits = QUANTITIES[sid][3]
            level[g][sid] += rng.randint(-4, 4) * 10**-digits
            ts = t0 + (seq[g] // len(QUANTITIES)) * 1000
            batch.append((seq[g], ts, sid, round(level[g][sid], digits), 0))
            seq[g] += 1
        payload = wire.encode_data(
            3, gateway_id=f"gw-{g:04d}", epoch=g + 1, batch=batch, series_of=SERIES.__getitem__
        )
        out.append((f"{PREFIX}/gw-{g:04d}/data", payload, False))
        made += n
        g = (g + 1) % gateways
    return out


def start_mosquitto(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = work / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "max_queued_messages 0"]
    lines += ["max_queued_bytes 0", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    binary = mosquitto_binary()
    log = (work / "mosquitto.log").open("ab")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto not listening")


def publish_all(port: int, items: list[tuple[str, bytes, bool]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [
        client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in items
    ]
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_argv(port: int, dsn: str, n: int) -> list[str]:
    level = os.environ.get("BENCH_LOG_LEVEL", "warning")  # debug: a line per batch
    return [
        sys.executable, "-m", "gateway.cli", "hub", "ingest", "--url", f"mqtt://127.0.0.1:{port}",
        "--db", dsn, "--share", "bench", "--client-id", f"bench-ingest-{n}", "--log-level", level,
    ]  # fmt: skip


def run_case(
    cluster: PgCluster, work: Path, workers: int, items: list[Any], total: int
) -> dict[str, Any]:
    """One measured run on a fresh database: sessions made, messages queued, workers timed."""
    name = f"bench{workers}"
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    dsn = cluster.dsn.rsplit("/", 1)[0] + f"/{name}"
    broker, port = start_mosquitto(work)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(workers):  # make the sessions and subscriptions, then leave
            p = subprocess.Popen(worker_argv(port, dsn, n), env=env, cwd=REPO)
            time.sleep(2.0)
            p.send_signal(signal.SIGTERM)
            p.wait(20)
        publish_all(port, items)
        start = time.monotonic()
        procs = [
            subprocess.Popen(worker_argv(port, dsn, n), env=env, cwd=REPO) for n in range(workers)
        ]
        cpu0 = [cpu_s(p.pid) for p in procs]
        with psycopg.connect(dsn, autocommit=True) as conn:
            while True:
                cpu1 = [cpu_s(p.pid) for p in procs]
                count = conn.execute("SELECT count(*) FROM observations").fetchone()[0]  # type: ignore[index]
                if count >= total:
                    break
                if time.monotonic() - start > 600:
                    raise RuntimeError(f"only {count} of {total} stored after 600 s")
                time.sleep(0.1)
            elapsed = time.monotonic() - start
            size = conn.execute(
                "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                "WHERE inhparent = 'observations'::regclass"
            ).fetchone()[0]  # type: ignore[index]
            distinct = conn.execute(
                "SELECT count(*) FROM (SELECT DISTINCT gateway_id, epoch, seq FROM observations) k"
            ).fetchone()[0]  # type: ignore[index]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)
        broker.terminate()
        broker.wait(10)
    worker_cpu = sum(b - a for a, b in zip(cpu0, cpu1, strict=True))
    return {
        "workers": workers,
        "readings": total,
        "stored_once": count == distinct == total,
        "seconds": round(elapsed, 2),
        "readings_per_s": round(total / elapsed),
        "worker_cpu_s": round(worker_cpu, 2),
        "cpu_us_per_reading": round(worker_cpu / total * 1e6, 2),
        "readings_per_worker_cpu_s": round(total / worker_cpu) if worker_cpu else None,
        "db_bytes_per_reading": round(int(size) / total, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--per-message", type=int, default=240)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    items = messages(args.gateways, args.readings, args.per_message)
    data = [len(p) for t, p, _ in items if t.endswith("/data")]
    print(
        f"hub ingest bench: {args.readings} readings from {args.gateways} gateways in "
        f"{len(data)} v3 messages ({sum(data) / args.readings:.2f} payload bytes a reading)",
        file=sys.stderr,
    )
    root = Path(tempfile.mkdtemp(prefix="citygw-bench-hub-"))
    cluster = PgCluster(root / "pg")
    cluster.start()
    results = []
    try:
        for workers in args.workers:
            result = run_case(cluster, root, workers, items, args.readings)
            results.append(result)
            print(json.dumps(result) if args.json else _line(result), flush=True)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(r["stored_once"] for r in results) else 1


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['workers']} worker(s): {r['readings_per_s']:,} readings/s into PostgreSQL "
        f"({r['readings']:,} in {r['seconds']} s, each stored once: {r['stored_once']}); "
        f"{r['cpu_us_per_reading']} us worker CPU a reading = "
        f"{r['readings_per_worker_cpu_s']:,} readings per worker CPU-second; "
        f"{r['db_bytes_per_reading']} DB bytes a reading"
    )


if __name__ == "__main__":
    sys.exit(main())
