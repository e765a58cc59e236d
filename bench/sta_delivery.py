"""The `sensorthings` destination against the test SensorThings server: readings/s and CPU.

    .venv/bin/python bench/sta_delivery.py [--readings 50000] [--batch 10000]

Starts django-ogc-sensorthings (gateway/devtools/sta_server, through
tests/integration/sta_server; SQLite) on a free loopback port, delivers one small batch
(entities found or created, series read back), then the rest in batches of `--batch` (one
CreateObservations each), and prints readings/s end to end and the destination's CPU per
reading (time.process_time of this process: JSON rows and HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from sta_server.child import readings, section
from sta_server.fixture import StaServer, migrated_template

from gateway.uplinks.sensorthings import destination


async def deliver(url: str, total: int, size: int) -> None:
    target = destination(section(url), gateway_id="gw-bench")
    batch = readings("gw-bench", total)
    await target.deliver(batch[:10])
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(10, total, size):
        await target.deliver(batch[start : start + size])
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = total - 10
    print(
        f"{n:,} readings in {wall:.2f} s: {n / wall:,.0f} readings/s; "
        f"destination CPU {cpu / n * 1e6:.1f} us/reading; {target.stats.requests} requests"
    )
    await target.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        server = StaServer(work, migrated_template(work))
        server.start()
        try:
            asyncio.run(deliver(server.url, args.readings, args.batch))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
