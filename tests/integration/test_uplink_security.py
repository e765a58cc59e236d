"""mqtts:// with verification on, a password from a file, and a broker that refuses us.

Mosquitto with a second listener: TLS (a throwaway CA made with openssl) and password auth
(the ``secure_broker`` fixture, tests/integration/secure_mqtt.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from secure_mqtt import PASSWORD, SecureBroker, agent_config
from spine_setup import sources_open

from drivers import sds011

pytestmark = pytest.mark.integration


async def status(config_path: Path) -> dict[str, Any]:
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway.cli", "status", "--config", str(config_path), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(run.stdout)
    return result


async def wait_status(config_path: Path, predicate: Any, timeout_s: float = 15) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            current = await status(config_path)
            if current.get("agent") == "running" and predicate(current):
                return current
            await asyncio.sleep(0.3)


async def test_mqtts_with_the_city_ca_and_a_password_file_delivers_readings(
    tmp_path: Path,
    secure_broker: SecureBroker,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    path = write_config(
        agent_config(tmp_path, secure_broker, pty.link, ca_file=str(secure_broker.pki / "ca.crt"))
    )
    agent = agent_process(path)
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)
    tail = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "hub",
        "tail",
        "--url",
        secure_broker.url,
        "--json",
        "--ca-file",
        str(secure_broker.pki / "ca.crt"),
        "--username",
        "gw-sec",
        "--client-id",
        "hub-sec",
        env={**os.environ, "CITYGW_HUB_PASSWORD": PASSWORD},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert tail.stdout is not None
    try:
        await secure_broker.broker.wait_for_subscription("hub-sec", "citygw/v1/+/data")
        await pty.write_async(sds011.encode_data(12.3, 45.6, device_id=1))
        line = json.loads(await asyncio.wait_for(tail.stdout.readline(), 15))
        assert (line["gateway"], line["quantity"], line["value"]) == ("gw-sec", "pm2_5_ugm3", 12.3)
    finally:
        tail.terminate()
        await tail.wait()
    assert PASSWORD not in agent.log_text()


async def test_a_broker_certificate_the_gateway_cannot_verify_is_refused(
    tmp_path: Path,
    secure_broker: SecureBroker,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    path = write_config(agent_config(tmp_path, secure_broker, pty.link))  # system CAs only
    agent = agent_process(path)
    agent.start()
    await sources_open(agent)
    await pty.write_async(sds011.encode_data(1.0, 2.0, device_id=1))
    current = await wait_status(
        path,
        lambda s: (
            "CERTIFICATE_VERIFY_FAILED" in s["uplink"]["last_error"] and s["buffer"]["depth"] == 2
        ),
    )
    assert current["uplink"]["connected"] is False
    assert agent.running


async def test_a_wrong_password_is_refused_logged_once_and_readings_stay_buffered(
    tmp_path: Path,
    secure_broker: SecureBroker,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    path = write_config(
        agent_config(
            tmp_path,
            secure_broker,
            pty.link,
            password="wrong-pw",
            ca_file=str(secure_broker.pki / "ca.crt"),
        )
    )
    agent = agent_process(path)
    agent.start()
    await sources_open(agent)
    await pty.write_async(sds011.encode_data(1.0, 2.0, device_id=1))
    current = await wait_status(
        path, lambda s: s["buffer"]["depth"] == 2 and s["uplink"]["last_error"]
    )
    assert "authori" in current["uplink"]["last_error"].lower()
    await asyncio.sleep(2.0)  # several more refused attempts
    log = agent.log_text()
    assert log.count("refused us (check username and password)") == 1, log
    assert "wrong-pw" not in log
    assert agent.running
