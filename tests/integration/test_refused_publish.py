"""A broker that refuses our publishes (its ACL) must not make readings vanish.

MQTT 5: Mosquitto answers a publish its ACL forbids with PUBACK reason code 0x87 "Not
authorized"; that is not an acknowledgement. MQTT 3.1.1 has no reason codes (the broker
acknowledges and drops): the gateway's echo check notices that its own data never comes back.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from spine_setup import config, frame, frame_numbers, readings, sources_open

pytestmark = pytest.mark.integration


def acl(prefix: str, *, data_allowed: bool) -> str:
    """Anonymous clients (the agent and the test's hub): read everything under the prefix,
    write the gateway's topics, its data topic only when `data_allowed`."""
    leaves = ["status", "metrics", "config/state", "register", "alert"]
    leaves += ["data"] if data_allowed else []
    return "\n".join(
        [f"topic read {prefix}/#", *(f"topic write {prefix}/gw-test/{leaf}" for leaf in leaves)]
    )


async def status_text(path: Path) -> str:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway.cli", "status", "--config", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


async def test_readings_refused_by_the_brokers_acl_stay_buffered_and_arrive_once_it_is_fixed(
    tmp_path: Path,
    make_broker: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    acl_path = tmp_path / "acl"
    acl_path.write_text(acl(topic_prefix, data_allowed=False))
    broker = make_broker(extra_config=f"acl_file {acl_path}")
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(broker, f"{topic_prefix}/#")
    path = write_config(config(tmp_path, broker, topic_prefix, {"pm": pty.link}))
    agent = agent_process(path)
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    for n in range(1, 801):
        await pty.write_async(frame(n))
        if n % 50 == 0:
            await asyncio.sleep(0.05)
    await agent.wait_for_log("refuses our publishes", timeout_s=10)
    await asyncio.sleep(2.0)  # several refused rounds, with backoff
    shown = await status_text(path)
    assert "REFUSED by the broker: Not authorized (0x87)" in shown, shown
    assert readings(sub.messages) == []

    acl_path.write_text(acl(topic_prefix, data_allowed=True))
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGHUP)  # Mosquitto reloads its ACL
    msgs = await sub.wait_for(lambda ms: len(set(frame_numbers(readings(ms)))) >= 800, timeout=30)

    assert sorted(set(frame_numbers(readings(msgs)))) == list(range(1, 801))
    log = agent.log_text()
    assert log.count(f"refuses our publishes on {topic_prefix}/gw-test/data") == 1, log[-3000:]
    assert "accepts our publishes on" in log
    assert "REFUSED" not in await status_text(path)


async def test_with_mqtt_3_1_1_data_the_broker_acknowledges_and_drops_is_reported(
    tmp_path: Path,
    make_broker: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    acl_path = tmp_path / "acl"
    acl_path.write_text(acl(topic_prefix, data_allowed=False))
    broker = make_broker(extra_config=f"acl_file {acl_path}")
    pty = make_pty("ttyUSB0")
    path = write_config(
        config(tmp_path, broker, topic_prefix, {"pm": pty.link}, protocol="3.1.1", timeout_s=2)
    )
    agent = agent_process(path)
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    await pty.write_async(frame(1))
    await agent.wait_for_log("never came back to us", timeout_s=15)
    assert "never came back" in await status_text(path)


async def test_with_mqtt_3_1_1_a_broker_that_delivers_passes_the_echo_check(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    path = write_config(
        config(tmp_path, mosquitto, topic_prefix, {"pm": pty.link}, protocol="3.1.1")
    )
    agent = agent_process(path)
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    for n in (1, 2):
        await pty.write_async(frame(n))
    await agent.wait_for_log("our first data message came back to us")
    await sub.wait_for(lambda ms: frame_numbers(readings(ms)) == [1, 2])
    assert "never came back" not in await status_text(path)
