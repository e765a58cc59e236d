"""A delivering process for the kill -9 test: `python -m sta_server.child URL GATEWAY N`.

Builds the `sensorthings` destination and delivers N readings (`readings()` below, the same
the test builds), printing "POSTING" when the CreateObservations request goes out and
"POSTED" when its answer came back; then it waits to be killed instead of returning, so the
delivery loop could never have acknowledged anything. The test kills it at one of the two
lines. `section` and `readings` are shared with the test module and bench/sta_delivery.py.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from gateway.config import UplinkSection
from gateway.uplinks.destination import OutgoingReading
from gateway.uplinks.sensorthings import destination
from gateway.uplinks.sensorthings_api import StaApi

T0_MS = 1_796_000_000_000


def section(url: str, **settings: Any) -> UplinkSection:
    """A `[[uplinks]]` record of format sensorthings for `url` (the config's own type)."""
    return UplinkSection(
        name="sta", owners=["burgermeetnet"], url=url, format="sensorthings", **settings
    )


def readings(
    gateway: str,
    n: int,
    *,
    first_seq: int = 1,
    source: str = "pm-school",
    quantities: tuple[tuple[str, str], ...] = (("pm2_5_ugm3", "ug/m3"), ("pm10_ugm3", "ug/m3")),
    owner: str = "burgermeetnet",
) -> list[OutgoingReading]:
    """n readings, one per second per quantity, keyed (gateway, 1, seq)."""
    out = []
    for i in range(n):
        quantity, unit = quantities[i % len(quantities)]
        seq = first_seq + i
        ts_ms = T0_MS + (seq // len(quantities)) * 1000
        out.append(
            OutgoingReading(gateway, 1, seq, ts_ms, source, quantity, unit, seq / 10, owner, 0)
        )
    return out


async def main(url: str, gateway: str, n: int) -> None:
    original = StaApi.post

    async def post(self: StaApi, path: str, body: object):  # type: ignore[no-untyped-def]
        if path == "/CreateObservations":
            print("POSTING", flush=True)
        response = await original(self, path, body)
        if path == "/CreateObservations":
            print("POSTED", response.status, flush=True)
            await asyncio.sleep(3600)
        return response

    StaApi.post = post  # type: ignore[method-assign]
    target = destination(section(url), gateway_id=gateway)
    await target.deliver(readings(gateway, n))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
