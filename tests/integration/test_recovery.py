"""Recovery after a broker restart with the default reconnect settings (full jitter, 10 s cap).

Each round stops Mosquitto for `OUTAGE_S` (long enough for the backoff to reach its cap), writes
a frame meanwhile, starts Mosquitto again and times the first reading of that frame at the hub.
CITYGW_RECOVERY_ROUNDS=N runs more rounds (the figure in docs/operations.md is from 10); the
bound asserted is generous (a noisy 2-core machine): the cap, the connect timeout and slack.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from spine_setup import config, frame, frame_numbers, readings, sources_open

from gateway.config import HubSection

pytestmark = pytest.mark.integration

ROUNDS = int(os.environ.get("CITYGW_RECOVERY_ROUNDS", "2"))
OUTAGE_S = 15.0
DEFAULTS = HubSection(url="mqtt://127.0.0.1")


async def test_after_a_broker_restart_readings_flow_again_within_the_reconnect_cap(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(
        mosquitto, f"{topic_prefix}/+/data", identifier="recovery-hub", persistent=True
    )
    cfg = config(tmp_path, mosquitto, topic_prefix, {"pm": pty.link})
    for key in ("reconnect_min_s", "reconnect_max_s"):
        del cfg["hub"][key]  # the defaults are what this measures
    agent = agent_process(write_config(cfg))
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    recoveries: list[float] = []
    for n in range(1, ROUNDS + 1):
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.sleep(1.0)
        await pty.write_async(frame(n))
        await asyncio.sleep(OUTAGE_S - 1.0)
        await asyncio.to_thread(mosquitto.start)
        back = time.monotonic()
        await sub.wait_for(lambda ms, n=n: n in frame_numbers(readings(ms)), timeout=60)
        recoveries.append(time.monotonic() - back)
    print(
        f"first reading at the hub after a broker restart: max {max(recoveries):.1f} s, "
        f"all {', '.join(f'{r:.1f}' for r in recoveries)} s ({ROUNDS} rounds)"
    )
    assert max(recoveries) < DEFAULTS.reconnect_max_s + DEFAULTS.timeout_s + 5.0
