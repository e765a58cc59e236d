"""A simulated fleet: N real agents (no sensors) in one process, for fleet-push tests and the
fleet benchmark (`python -m gateway.devtools.sim_fleet --count 200 ...`).

Each is a full `Agent` with its own data directory, buffer, MQTT connection and remote config,
so a push exercises exactly what a gateway runs; only the sensors are missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.agent import Agent
from gateway.config import parse_config


def gateway_document(
    index: int, *, url: str, prefix: str, data_root: Path, trusted_key: str, group: str
) -> dict[str, Any]:
    """The config of gateway number `index`: no sources, its own data directory, in `group`."""
    return {
        "gateway": {
            "id": f"gw-{index:04d}",
            "data_dir": str(data_root / f"gw-{index:04d}"),
            "log_level": "warning",
        },
        "hub": {
            "url": url,
            "topic_prefix": prefix,
            "flush_interval_s": 5,
            "metrics_interval_s": 3600,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 5,
        },
        "remote_config": {"trusted_keys": [trusted_key], "groups": [group], "rollback_after_s": 30},
    }


async def run_fleet(documents: list[dict[str, Any]], stop: asyncio.Event) -> None:
    """Run one agent per document until `stop` is set."""
    agents = [Agent(parse_config(d), document=d) for d in documents]
    async with asyncio.TaskGroup() as group:
        for agent in agents:
            group.create_task(agent.run(stop))
        await asyncio.gather(*(a.uplink.reached.wait() for a in agents))
        print(f"fleet: {len(agents)} gateways connected", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fleet from the command line until SIGINT or SIGTERM; the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway.devtools.sim_fleet", description=__doc__
    )
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--topic-prefix", default="citygw/v1")
    parser.add_argument("--data-root", required=True, help="a data directory per gateway here")
    parser.add_argument("--trusted-key", required=True, help="public key file")
    parser.add_argument("--group", default="fleet")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    documents = [
        gateway_document(
            i,
            url=args.url,
            prefix=args.topic_prefix,
            data_root=Path(args.data_root),
            trusted_key=args.trusted_key,
            group=args.group,
        )
        for i in range(args.count)
    ]

    async def fleet() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_fleet(documents, stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(fleet())
    return 0


if __name__ == "__main__":
    sys.exit(main())
