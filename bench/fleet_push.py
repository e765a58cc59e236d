"""Fleet push benchmark: how long a signed config push takes to converge on N gateways.

N real agents (gateway.devtools.sim_fleet: full Agent objects, no sensors) in one process on
one broker; `gateway.hub.fleet.push` publishes a signed push to their group and waits for every
`config/state` report. Times are from the publish to each gateway's report. One process
simulates the whole fleet on one core, so the figure is an upper bound: real gateways each have
their own CPU.

    .venv/bin/python bench/fleet_push.py --count 200          # prints figures
    .venv/bin/python bench/fleet_push.py --count 200 --write  # also updates BENCHMARKS.md
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import tempfile
import time
from typing import Any

from bench.broker import Broker
from bench.procs import REPO_ROOT, Children, Pinning, python_env
from gateway.hub.fleet import push, sign_config
from gateway.hub.tail import HubOptions
from gateway.remote import signing

GROUP = "bench-fleet"
PREFIX = "citygw/bench-fleet"
BEGIN, END = "<!-- fleet-push:begin -->", "<!-- fleet-push:end -->"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _push_round(
    url: str, private: Any, count: int, document: dict[str, Any], version: int
) -> dict[str, Any]:
    payload = sign_config(private, document, version=version, target={"group": GROUP})
    options = HubOptions(
        url=url, topic_prefix=PREFIX, client_id=f"bench-push-{version}", persistent=False
    )
    started = time.monotonic()
    outcome = await push(options, payload, target={"group": GROUP}, timeout_s=300, expect=count)
    wall_s = time.monotonic() - started
    times = [a.after_s for a in outcome.answers.values()]
    results = sorted({a.result for a in outcome.answers.values()})
    return {
        "gateways": len(outcome.answers),
        "results": results,
        "converged_s": round(max(times), 3),
        "p50_s": round(statistics.median(times), 3),
        "p95_s": round(_percentile(times, 0.95), 3),
        "cli_wall_s": round(wall_s, 3),
        "payload_bytes": len(payload),
    }


def run(count: int) -> dict[str, Any]:
    children = Children()
    with tempfile.TemporaryDirectory(prefix="citygw-fleet-") as tmp, children.scope():
        work = Path(tmp)
        private_path, public_path = signing.generate(work / "keys", "ops")
        private = signing.load_private(private_path)
        broker = Broker(children, Pinning(enabled=False), work / "broker")
        broker.start()
        started = time.monotonic()
        fleet = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.devtools.sim_fleet",
                "--count",
                str(count),
                "--url",
                broker.url,
                "--topic-prefix",
                PREFIX,
                "--data-root",
                str(work / "fleet"),
                "--trusted-key",
                str(public_path),
                "--group",
                GROUP,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO_ROOT,
            env=python_env(),
        )
        try:
            assert fleet.stdout is not None
            line = fleet.stdout.readline()
            if "connected" not in line:
                raise RuntimeError(f"fleet did not come up: {line!r}")
            boot_s = time.monotonic() - started
            hub = {
                "url": broker.url,
                "topic_prefix": PREFIX,
                "metrics_interval_s": 3600,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 5,
            }
            rounds = {
                "hub change (every uplink reconnects)": asyncio.run(
                    _push_round(
                        broker.url,
                        private,
                        count,
                        {
                            "hub": {**hub, "flush_interval_s": 10},
                            "gateway": {"log_level": "warning"},
                        },
                        1,
                    )
                ),
                "log level only (nothing restarts)": asyncio.run(
                    _push_round(
                        broker.url,
                        private,
                        count,
                        {"hub": {**hub, "flush_interval_s": 10}, "gateway": {"log_level": "error"}},
                        2,
                    )
                ),
            }
        finally:
            fleet.terminate()
            fleet.wait(timeout=60)
    return {
        "gateways": count,
        "fleet_boot_s": round(boot_s, 2),
        "rounds": rounds,
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        BEGIN,
        "",
        f"`.venv/bin/python bench/fleet_push.py --count {result['gateways']}` "
        f"({result['gateways']} simulated gateways in one process, one Mosquitto, "
        f"{result['machine']}; fleet up in {result['fleet_boot_s']} s)",
        "",
        "| push | gateways applied | converged (all) | p50 | p95 | payload |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["rounds"].items():
        lines.append(
            f"| {name} | {r['gateways']} ({', '.join(r['results'])}) | "
            f"{r['converged_s']} s | {r['p50_s']} s | {r['p95_s']} s | "
            f"{r['payload_bytes']} B |"
        )
    lines += ["", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args(argv)
    result = run(args.count)
    print(json.dumps(result, indent=2))
    if args.write:
        path = REPO_ROOT / "BENCHMARKS.md"
        text = path.read_text()
        block = render(result)
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
        else:
            text += "\n## Fleet push (remote config, issue 5)\n\n" + block + "\n"
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
