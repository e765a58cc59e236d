"""Where the agent's idle RSS comes from: VmRSS after importing what it uses, step by step.

Run by bench/run.py as `python -m bench.imports`; prints one JSON object:
{"steps": [{"step": "...", "rss_kb": ..., "delta_kb": ..., "anon_kb": ..., "file_kb": ...}]}
(RssAnon: the process's own heap; RssFile: pages of mapped files such as shared libraries).
bench/run.py runs it with the agent's environment (-OO, compiled bytecode; bench/agent.py).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

STEPS: list[tuple[str, list[str]]] = [
    ("python interpreter", []),
    ("ssl (OpenSSL; asyncio and aiomqtt import it)", ["ssl"]),
    ("asyncio, logging, json", ["asyncio", "logging", "json"]),
    ("sqlite3", ["sqlite3"]),
    ("pyserial", ["serial"]),
    ("gateway.config (its schema checker)", ["gateway.config"]),
    ("msgpack", ["msgpack"]),
    (
        "aiomqtt + paho-mqtt (via gateway.uplinks.mqtt: urllib.request deferred)",
        ["gateway.uplinks.mqtt"],
    ),
    (
        "drivers: the registry and the SDS011 codec (the others load when a config names them)",
        ["drivers", "drivers.sds011"],
    ),
    ("rest of gateway (agent, cli)", ["gateway.agent", "gateway.cli"]),
]


def rss_kb(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    steps = []
    previous = 0
    for name, modules in STEPS:
        for module in modules:
            importlib.import_module(module)
        now = rss_kb()
        steps.append(
            {
                "step": name,
                "rss_kb": now,
                "delta_kb": now - previous,
                "anon_kb": rss_kb("RssAnon"),
                "file_kb": rss_kb("RssFile"),
            }
        )
        previous = now
    print(json.dumps({"steps": steps}), flush=True)


if __name__ == "__main__":
    main()
