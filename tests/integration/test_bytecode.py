"""The agent as the systemd unit runs it (-OO, PYTHONPYCACHEPREFIX, nothing written at run
time) finds every standard library module it imports compiled by `gateway.system.bytecode`,
the step deploy/install.sh runs: a module compiled from source at every start costs ~6 MB of
RSS that stays (BENCHMARKS.md, "Bytecode"). The run covers start, a reading, an alert, the
hub, the status socket and an orderly stop; `python -v` says where each module's code came
from."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from spine_setup import config, frame, sources_open

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FROM_SOURCE = re.compile(r"^# code object from (/\S+\.py)$", re.MULTILINE)
"""`python -v`: code compiled from a .py now (from a cached .pyc, the path is quoted)."""


def compile_like_install(cache: Path) -> None:
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(cache), PYTHONPATH=str(REPO))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-OO", "-m", "gateway.system.bytecode"],
        env=env,
        cwd=REPO,
        check=True,
        timeout=120,
    )


async def test_the_deployed_agent_compiles_no_standard_library_module_at_run_time(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    cache = tmp_path / "pycache"
    compile_like_install(cache)
    pty = make_pty("ttyUSB0")
    document = config(tmp_path, mosquitto, topic_prefix, {"pm": pty.link}, wire_format=4)
    document["alerts"] = [
        {"name": "pm-high", "source": "pm", "quantity": "pm2_5_ugm3", "above": 50.0}
    ]
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    path = write_config(document)
    agent = agent_process(
        path,
        python_args=("-OO", "-v"),
        env={"PYTHONPYCACHEPREFIX": str(cache), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    agent.start()
    await agent.wait_for_log("connected to hub", timeout_s=20)
    await sources_open(agent)
    for n in (100, 600, 100):  # PM2.5 10, 60 (the alert), 10 ug/m3
        await pty.write_async(frame(n))
    await sub.wait_for(lambda ms: any(m.topic.endswith("/alert") for m in ms), timeout=20)
    await sub.wait_for(lambda ms: any(m.topic.endswith("/data") for m in ms), timeout=20)
    status = await asyncio.to_thread(  # the status socket, as `citygw status` reads it
        subprocess.run,
        [sys.executable, "-m", "gateway.cli", "status", "--config", str(path)],
        capture_output=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    agent.terminate()
    assert agent.wait() == 0

    stdlib = sysconfig.get_path("stdlib")
    compiled = [p for p in FROM_SOURCE.findall(agent.log_text()) if p.startswith(stdlib)]
    assert compiled == [], f"compiled from source at every start: {compiled}"
    assert f"code object from '{cache}" in agent.log_text(), "the cache was not used at all"
