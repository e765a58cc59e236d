"""A seeded, structure-aware mutational fuzzer for the hub's decoders (issue 16).

Run: `make fuzz` (FUZZ_INPUTS per target, default 1,000,000) or
`.venv/bin/python tests/fuzz/hub_fuzz.py --inputs N --seed S --jobs J [--target NAME ...]`.

Per target (v1, v2, v3, v4 data, births, status, metrics, config state, alerts) it starts from
real encoded messages and mutates bytes, msgpack fields and lengths, v2 blobs, v3 and v4 bit
streams (and v4's flags) and JSON nodes; inputs that still decode join the pool, so mutations go
deeper. Every input goes through
`HubDecoder.decode` (the hub's own entry point), asserting per input: no exception (the decoders
may only say "invalid" with a reason), under `MAX_SECONDS`; a sample under tracemalloc under
`MAX_PEAK_BYTES`; the process's peak RSS at the end under `MAX_RSS_BYTES`. Deterministic for a
seed and job count.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import math
import multiprocessing
import random
import resource
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gateway import wire  # noqa: E402
from gateway.hub.decode import HubDecoder  # noqa: E402
from gateway.readings import Series, StoredReading  # noqa: E402
from gateway.wire import v1, v2, v3, v4  # noqa: E402

MAX_SECONDS = 1.0
MAX_PEAK_BYTES = 64 << 20
MAX_RSS_BYTES = 512 << 20
MAX_HANG_S = 30.0
MAX_AS_BYTES = 3 << 30
SAMPLE_EVERY = 997  # inputs between two measured under tracemalloc
POOL = 400
TARGETS = ("v1", "v2", "v3", "v4", "birth", "status", "metrics", "config", "alert")

NAMES = {
    1: Series("pm-north", "pm2_5_ugm3", "ug/m3"),
    2: Series("pm-north", "pm10_ugm3", "ug/m3"),
    3: Series("climate", "temperature_c", "Cel"),
    4: Series("climate", "humidity_pct", "%"),
    9: Series("ble", "battery_v", "V"),
}
T0 = 1_556_668_805_000
VALUES = [13.3, 28.83, 11.2, 99.9, 0.0, -4.5, 1e-9, 2.0**53, float("nan"), float("inf"), -0.0, 7.0]
INTERESTING: list[Any] = [
    0,
    1,
    -1,
    127,
    128,
    255,
    256,
    65535,
    2**31,
    2**32,
    2**53,
    2**63 - 1,
    2**64 - 1,
    -(2**63),
    -(2**31),
    10**18,
    float("inf"),
    float("-inf"),
    float("nan"),
    1e308,
    -0.0,
    1.5,
    True,
    False,
    None,
    "",
    "x" * 300,
    b"",
    b"\x00" * 20,
    [],
    {},
    [[]],
    [1, 2],
    {"a": 1},
    msgpack.ExtType(1, b"ab"),
]


def batches(rng: random.Random, count: int) -> list[list[StoredReading]]:
    """Varied realistic batches: gaps, flags, several series, raw floats."""
    out = []
    for _ in range(count):
        seq, ts, rows = rng.randrange(0, 10**6), T0 + rng.randrange(10**6), []
        for _ in range(rng.randrange(1, 24)):
            seq += 1 + (rng.random() < 0.1) * rng.randrange(1, 50)
            ts += rng.choice((0, 0, 1000, 60_000, 7))
            value = rng.choice(VALUES) if rng.random() < 0.3 else round(rng.uniform(-50, 500), 2)
            rows.append((seq, ts, rng.choice(list(NAMES)), value, int(rng.random() < 0.1)))
        out.append(rows)
    return out


def birth(epoch: int, wire_format: int) -> bytes:
    """A retained birth naming NAMES for `epoch`."""
    return wire.encode_status(
        "gw",
        state="online",
        version="0.1",
        started_ms=T0,
        series=NAMES,
        wire_format=wire_format,
        epoch=epoch,
    )


def seeds(target: str, rng: random.Random) -> list[bytes]:
    """Real encoded messages of `target` to start from."""
    data = batches(rng, 40)
    if target == "v1":
        return [v1.encode_data("gw", 7, b, NAMES.__getitem__) for b in data]
    if target == "v2":
        return [v2.encode_data(7, b) for b in data]
    if target == "v3":
        return [v3.encode_data(7, b, NAMES.__getitem__) for b in data]
    if target == "v4":
        return [v4.encode_data(7, b, NAMES.__getitem__) for b in data]
    if target == "birth":
        return [birth(e, f) for e in (7, 8, 2**40) for f in (2, 3, 4)]
    if target == "status":
        return [
            wire.encode_status("gw", state=s, version="0.1", started_ms=T0)
            for s in ("online", "offline")
        ]
    if target == "metrics":
        metrics = {
            "uptime_s": 12.5,
            "version": "0.1",
            "rss_bytes": 2**25,
            "clock_synced": True,
            "buffer": {"depth": 3, "oldest_unsent_age_s": None, "dropped": 0},
            "uplink": {"connected": True, "last_error": ""},
            "sources": {"pm": {"state": "ok", "readings": 10, "last_error": None}},
        }
        return [wire.encode_metrics("gw", metrics)]
    if target == "alert":
        return [alert(rng, raised) for raised in (True, False) for _ in range(4)]
    report = {
        "version": 3,
        "last": {"result": "applied", "version": 3, "reason": ""},
        "applied_ms": T0,
        "config_sha256": "ab" * 32,
    }
    return [json.dumps(report).encode(), json.dumps({"version": 1, "last": None}).encode()]


def alert(rng: random.Random, raised: bool) -> bytes:
    """An alert message as the gateway's alert lane sends it."""
    return wire.encode_alert(
        gateway_id="gw",
        rule=rng.choice(("pm-high", "water-rising")),
        raised=raised,
        source=rng.choice(("pm-north", "ble/kerbside")),
        quantity="pm2_5_ugm3",
        unit="ug/m3",
        value=rng.choice(VALUES),
        threshold=rng.choice((50.0, None)),
        rate_per_min=rng.choice((None, 6.5)),
        ts_ms=T0 + rng.randrange(10**6),
        epoch=7,
        seq=rng.randrange(1, 10**6),
        clock_synced=rng.random() < 0.9,
    )


def mutate_bytes(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """Byte-level: flips, interesting bytes, inserts, deletes, truncation, splices, repeats."""
    buf = bytearray(data)
    for _ in range(1 + int(rng.expovariate(1.0))):
        op = rng.randrange(8)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf and pos < len(buf):
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and pos < len(buf):
            buf[pos] = rng.choice(
                (0, 0xFF, 0x7F, 0x80, 0xC0, 0xC1, 0xCB, 0xCF, 0xD3, 0xDD, 0xDF, 3)
            )
        elif op == 2:
            buf[pos:pos] = rng.randbytes(rng.randrange(1, 9))
        elif op == 3:
            del buf[pos : pos + rng.randrange(1, 9)]
        elif op == 4:
            del buf[pos:]
        elif op == 5:
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            buf[pos:] = other[start:]
        elif op == 6 and buf:
            end = min(len(buf), pos + rng.randrange(1, 16))
            buf[pos:pos] = buf[pos:end] * rng.randrange(1, 40)
        elif op == 7:  # a varint continuation run (overlong / huge LEB128)
            buf[pos:pos] = b"\xff" * rng.randrange(1, 12) + bytes([rng.randrange(128)])
    return bytes(buf)


def mutate_value(value: Any, rng: random.Random, depth: int = 0) -> Any:
    """One random node of a decoded msgpack/JSON tree replaced, dropped, duplicated or nudged."""
    if isinstance(value, list) and value and rng.random() < 0.7:
        items = list(value)
        i = rng.randrange(len(items))
        op = rng.randrange(5)
        if op == 0:
            del items[i]
        elif op == 1:
            items.insert(i, items[i])
        elif op == 2:
            items *= rng.choice((2, 10, 100)) if len(items) < 1000 else 1
        else:
            items[i] = mutate_value(items[i], rng, depth + 1)
        return items
    if isinstance(value, dict) and value and rng.random() < 0.7:
        items = dict(value)
        key = rng.choice(list(items))
        if rng.random() < 0.15:
            del items[key]
        else:
            items[key] = mutate_value(items[key], rng, depth + 1)
        return items
    if isinstance(value, bool) or value is None:
        return rng.choice(INTERESTING)
    if isinstance(value, int):
        return rng.choice(
            (
                value + 1,
                value - 1,
                -value,
                value * 2 ** rng.randrange(1, 70),
                float(value),
                rng.choice(INTERESTING),
            )
        )
    if isinstance(value, float):
        return rng.choice(
            (
                math.inf,
                -math.inf,
                math.nan,
                int(value) if math.isfinite(value) else 0,
                value * 1e300,
                rng.choice(INTERESTING),
            )
        )
    if isinstance(value, str | bytes):
        longer = value * 50 if len(value) < 2000 else value
        return rng.choice((value[: len(value) // 2], longer, rng.choice(INTERESTING)))
    return rng.choice(INTERESTING)


def mutate_msgpack(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """Field-level: decode, change one node (or a v2 blob), encode again."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:  # the seed itself was mutated into something else
        return mutate_bytes(data, rng, pool)
    if (
        isinstance(obj, list)
        and len(obj) == 10
        and isinstance(obj[9], bytes)
        and rng.random() < 0.4
    ):
        obj = list(obj)
        body = zlib.decompress(obj[9], wbits=-15) if obj[8] == 1 else obj[9]
        body = mutate_bytes(body, rng, [body])
        obj[8] = int(rng.random() < 0.5)
        obj[9] = zlib.compress(body, 9, wbits=-15) if obj[8] == 1 else body
    else:
        for _ in range(1 + int(rng.expovariate(1.5))):
            obj = mutate_value(obj, rng)
    try:
        return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]
    except (OverflowError, ValueError, TypeError):
        return mutate_bytes(data, rng, pool)


def mutate_v3(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """Header varints set to edge values, or bits flipped in the stream."""
    if rng.random() < 0.5 or len(data) < 8:
        return mutate_bytes(data, rng, pool)
    buf = bytearray(data)
    if rng.random() < 0.4:  # the flags byte: alias width and presence bits
        buf[1] = rng.randrange(256)
    elif rng.random() < 0.5:  # a header varint replaced by an edge value
        edge = rng.choice((0, 1, 10_000, 10_001, 2**31, 2**63, 2**64 - 1, 2**69))
        pos = rng.randrange(2, min(len(buf), 14))
        buf[pos:pos] = wire.codec.uvarint_bytes(edge)
    else:
        for _ in range(rng.randrange(1, 6)):
            bit = rng.randrange(16, len(buf) * 8)
            buf[bit >> 3] ^= 0x80 >> (bit & 7)
    return bytes(buf)


def mutate_v4(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """The first byte's flags, header varints set to edge values, or bits flipped in the
    stream (count, alias width, tick and the readings)."""
    if rng.random() < 0.4 or len(data) < 8:
        return mutate_bytes(data, rng, pool)
    buf = bytearray(data)
    if rng.random() < 0.3:
        buf[0] = 0x40 | rng.randrange(32)
    elif rng.random() < 0.4:
        edge = rng.choice((0, 1, 10_000, 10_001, 2**31, 2**32, 2**63, 2**64 - 1, 2**69))
        pos = rng.randrange(1, min(len(buf), 12))
        buf[pos:pos] = wire.codec.uvarint_bytes(edge)
    else:
        for _ in range(rng.randrange(1, 6)):
            bit = rng.randrange(8, len(buf) * 8)
            buf[bit >> 3] ^= 0x80 >> (bit & 7)
    return bytes(buf)


def mutate_json(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """JSON-level: a node changed, deep nesting, or bytes."""
    roll = rng.random()
    if roll < 0.1:
        depth = rng.choice((10, 17, 1000, 20_000))
        return b'{"a":' * depth + b"1" + b"}" * depth
    if roll < 0.5:
        return mutate_bytes(data, rng, pool)
    try:
        obj = json.loads(data)
        return json.dumps(mutate_value(obj, rng), default=repr).encode()
    except (ValueError, RecursionError, TypeError):
        return mutate_bytes(data, rng, pool)


MUTATORS: dict[str, Callable[[bytes, random.Random, list[bytes]], bytes]] = {
    "v1": mutate_msgpack,
    "v2": mutate_msgpack,
    "v3": mutate_v3,
    "v4": mutate_v4,
    "birth": mutate_msgpack,
    "status": mutate_msgpack,
    "metrics": mutate_msgpack,
    "config": mutate_json,
    "alert": mutate_json,
}
LEAF = {
    "v1": "data",
    "v2": "data",
    "v3": "data",
    "v4": "data",
    "birth": "status",
    "status": "status",
    "metrics": "metrics",
    "config": "config/state",
    "alert": "alert",
}


@dataclass
class Report:
    """What one run of one target found."""

    target: str
    inputs: int = 0
    decoded: int = 0
    invalid: int = 0
    seconds: float = 0.0
    slowest_s: float = 0.0
    peak_sampled_bytes: int = 0
    findings: list[str] = field(default_factory=list)
    rss_bytes: int = 0


def fresh_decoder() -> HubDecoder:
    decoder = HubDecoder()
    for epoch in (7, 8):
        decoder.decode("citygw/v1/gw/status", birth(epoch, 3))
    return decoder


def check(decoder: HubDecoder, topic: str, payload: bytes, report: Report, sample: bool) -> bool:
    """One input through the hub's decoder; True if it decoded (not "invalid")."""
    if sample:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        event = decoder.decode(topic, payload)
    except BaseException as error:  # the finding: anything but an "invalid" event
        if isinstance(error, KeyboardInterrupt):
            raise
        report.findings.append(
            f"{type(error).__name__}: {error!s:.200} input={payload[:200].hex()}"
        )
        return False
    finally:
        elapsed = time.perf_counter() - start
        if sample:
            report.peak_sampled_bytes = max(
                report.peak_sampled_bytes, tracemalloc.get_traced_memory()[1]
            )
            tracemalloc.stop()
    report.slowest_s = max(report.slowest_s, elapsed)
    if elapsed > MAX_SECONDS:
        report.findings.append(f"slow {elapsed:.2f}s input={payload[:200].hex()}")
    if event.kind == "invalid":
        if not event.error:
            report.findings.append(f"invalid without a reason: {payload[:200].hex()}")
        report.invalid += 1
        return False
    report.decoded += 1
    return True


def run(target: str, inputs: int, seed: int) -> Report:
    """Fuzz one target with `inputs` inputs; deterministic for `seed`."""
    rng = random.Random(f"{target}:{seed}")
    pool = seeds(target, rng)
    report = Report(target)
    mutate, topic = MUTATORS[target], f"citygw/v1/gw/{LEAF[target]}"
    decoder = fresh_decoder()
    start = time.perf_counter()
    for n in range(inputs):
        if n % 50_000 == 0:  # a hub restarts now and then: its state starts again
            decoder = fresh_decoder()
        if n % 256 == 0:
            faulthandler.dump_traceback_later(MAX_HANG_S, exit=True)
        parent = rng.choice(pool)
        try:
            payload = mutate(parent, rng, pool)
        except (OverflowError, ValueError, TypeError, RecursionError, MemoryError):  # mutator's own
            payload = mutate_bytes(parent, rng, pool)
        if check(decoder, topic, payload, report, n % SAMPLE_EVERY == 0) and len(payload) < 4096:
            if len(pool) < POOL:
                pool.append(payload)
            else:
                pool[rng.randrange(len(pool))] = payload
        if target == "birth" and n % 7 == 0:  # births then data: a table fuzzed births made
            probe = Report("probe")
            for data_probe in (v3_probe, v4_probe):
                check(decoder, "citygw/v1/gw/data", data_probe, probe, False)
            report.findings += probe.findings
    faulthandler.cancel_dump_traceback_later()
    report.inputs = inputs
    report.seconds = time.perf_counter() - start
    report.rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if report.rss_bytes > MAX_RSS_BYTES:
        report.findings.append(f"peak RSS {report.rss_bytes} over {MAX_RSS_BYTES}")
    if report.peak_sampled_bytes > MAX_PEAK_BYTES:
        report.findings.append(f"sampled peak {report.peak_sampled_bytes} over {MAX_PEAK_BYTES}")
    return report


v3_probe = v3.encode_data(7, [(1, T0, 1, 1.5, 0), (2, T0, 2, 2.5, 1)], NAMES.__getitem__)
v4_probe = v4.encode_data(7, [(1, T0, 1, 1.5, 0), (2, T0, 2, 2.5, 1)], NAMES.__getitem__)


def _job(args: tuple[str, int, int]) -> Report:
    # A worker never takes more than MAX_AS_BYTES (a memory bomb is a MemoryError, a finding),
    # and one stuck MAX_HANG_S in one window of inputs dumps its stack and exits (C code that
    # never returns, e.g. 10**huge, cannot be interrupted otherwise): the pool reports it.
    resource.setrlimit(resource.RLIMIT_AS, (MAX_AS_BYTES, MAX_AS_BYTES))
    return run(*args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000, help="per target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=multiprocessing.cpu_count())
    parser.add_argument("--target", action="append", choices=TARGETS)
    args = parser.parse_args(argv)
    targets = args.target or list(TARGETS)
    chunks = max(1, args.jobs)  # each target split into chunks with their own seeds
    work = [
        (t, args.inputs // chunks + (i < args.inputs % chunks), args.seed * 1000 + i)
        for t in targets
        for i in range(chunks)
    ]
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(args.jobs, mp_context=context, max_tasks_per_child=1) as pool:
            reports = list(pool.map(_job, work))
    except BrokenProcessPool:
        print("a worker died: a hang or a crash (its stack is above)", file=sys.stderr)
        return 1
    failed = False
    print(
        f"{'target':8} {'inputs':>10} {'decoded':>9} {'invalid':>10} {'cpu s':>7} "
        f"{'slowest ms':>10} {'peak MB':>8} {'RSS MB':>7} findings"
    )
    for target in targets:
        mine = [r for r in reports if r.target == target]
        findings = [f for r in mine for f in r.findings]
        failed |= bool(findings)
        print(
            f"{target:8} {sum(r.inputs for r in mine):>10,} {sum(r.decoded for r in mine):>9,} "
            f"{sum(r.invalid for r in mine):>10,} {sum(r.seconds for r in mine):>7.1f} "
            f"{max(r.slowest_s for r in mine) * 1000:>10.1f} "
            f"{max(r.peak_sampled_bytes for r in mine) / 1e6:>8.1f} "
            f"{max(r.rss_bytes for r in mine) / 1e6:>7.1f} {len(findings)}"
        )
        for finding in findings[:10]:
            print(f"  {finding}")
    print(f"seed {args.seed}, {args.jobs} jobs, wall {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
