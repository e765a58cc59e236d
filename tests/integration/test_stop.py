"""An orderly stop always ends: SIGTERM while the hub disconnects at the same moment.

With remote config enabled (the uplink then reads the config topics too), the agent is stopped
with SIGTERM and Mosquitto 10-50 ms later, round after round: every agent exits 0 within the
bound, and every reading committed before the stop reaches the hub (from the buffer, on a later
start). A second SIGTERM forces a prompt exit whatever the stop is waiting for.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from spine_setup import buffer_next_seq, config, frame, readings, sources_open

from gateway.remote import signing

pytestmark = pytest.mark.integration

ROUNDS = 20
STOP_BOUND_S = 10.0


def remote_config_agent(tmp_path: Path, broker: Any, prefix: str, port: Path) -> dict[str, Any]:
    _, public = signing.generate(tmp_path / "keys", "ops")
    cfg = config(tmp_path, broker, prefix, {"pm": port})
    cfg["remote_config"] = {"trusted_keys": [str(public)], "allowed_ports": [str(port)]}
    return cfg


async def test_sigterm_while_the_broker_goes_away_always_ends_and_loses_nothing(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    rng = random.Random(16)
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(
        mosquitto, f"{topic_prefix}/+/data", identifier="stop-hub", persistent=True
    )
    agent = agent_process(
        write_config(remote_config_agent(tmp_path, mosquitto, topic_prefix, pty.link))
    )
    stop_times: list[float] = []
    sent = 0
    committed = 0  # readings the buffer accepted (its next sequence number, read after a stop)

    async def stream() -> None:  # readings keep arriving while the agent stops
        nonlocal sent
        while True:
            sent += 1
            await pty.write_async(frame(sent))
            await asyncio.sleep(0.005)

    for round_ in range(1, ROUNDS + 1):
        if not mosquitto.running:
            mosquitto.start()
        agent.start()
        await agent.wait_for_log("connected to hub", timeout_s=15)
        await sources_open(agent)
        writer = asyncio.create_task(stream())
        await asyncio.sleep(rng.uniform(0.3, 0.8))
        agent.terminate()
        started = time.monotonic()
        await asyncio.sleep(rng.uniform(0.010, 0.050))
        await asyncio.to_thread(mosquitto.stop)
        code = await asyncio.to_thread(agent.wait, STOP_BOUND_S)
        stop_times.append(time.monotonic() - started)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        assert code == 0, f"round {round_}: exit {code}\n{agent.log_text()[-3000:]}"
        committed = buffer_next_seq(tmp_path) - 1
        assert committed > 0

    mosquitto.start()
    agent.start()
    every = set(range(1, committed + 1))  # one buffer epoch: sequence numbers never repeat
    with contextlib.suppress(TimeoutError):
        await sub.wait_for(lambda ms: {r.seq for r in readings(ms)} >= every, timeout=30)
    missing = sorted(every - {r.seq for r in readings(sub.messages)})
    assert not missing, f"{len(missing)} lost: {missing[:50]}\n{agent.log_text()[-3000:]}"
    print(f"stop took at most {max(stop_times):.2f} s over {ROUNDS} rounds")


async def test_a_second_sigterm_ends_a_stop_at_once(
    tmp_path: Path,
    make_broker: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
) -> None:
    broker = make_broker()
    pty = make_pty("ttyUSB0")
    cfg = config(tmp_path, broker, topic_prefix, {"pm": pty.link}, timeout_s=30)
    agent = agent_process(write_config(cfg))
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    await pty.write_async(frame(1))
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGSTOP)  # a hung broker: the stop waits on its timeouts
    try:
        await asyncio.sleep(0.5)
        agent.terminate()
        await agent.wait_for_log("stopping")
        await asyncio.sleep(0.5)
        started = time.monotonic()
        agent.terminate()
        code = await asyncio.to_thread(agent.wait, 5.0)
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    assert time.monotonic() - started < 3.0
    assert code != 0, "forced: not an orderly stop"
    assert "second signal" in agent.log_text()
