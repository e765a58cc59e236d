"""The parts `citygw demo` starts and stops: local MQTT brokers (Mosquitto, or the embedded
amqtt broker when Mosquitto is absent), the SensorThings API server (django-ogc-sensorthings in
a child process, gateway/devtools/sta_server) and the virtual node.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.devtools import sim_node as nodesim

STA_API = "/sensorthings/v1.1"
STA_SETTINGS = "gateway.devtools.sta_server.settings"


def _mosquitto() -> str | None:
    if os.environ.get("CITYGW_DEMO_BROKER") == "embedded":
        return None
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def local_broker(workdir: Path) -> AsyncIterator[tuple[str, str, str]]:
    """Yields (url, what runs it, MQTT protocol). Mosquitto if installed, else amqtt here."""
    port = _free_port()
    mosquitto = _mosquitto()
    if mosquitto:
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
        )
        process = await asyncio.create_subprocess_exec(
            mosquitto, "-c", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            await _wait_for_port(port)
            yield f"mqtt://127.0.0.1:{port}", f"Mosquitto ({mosquitto})", "5"
        finally:
            process.terminate()
            await process.wait()
        return
    try:
        from amqtt.broker import Broker  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise SystemExit(
            "citygw demo: no MQTT broker: install Debian's mosquitto "
            "(apt-get install mosquitto) or `pip install amqtt`"
        ) from None
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)  # it logs cancelled tasks at shutdown
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(
        lambda lp, context: (
            None
            if isinstance(context.get("exception"), asyncio.CancelledError)
            else lp.default_exception_handler(context)
        )
    )
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield f"mqtt://127.0.0.1:{port}", "embedded amqtt broker (MQTT 3.1.1)", "3.1.1"
    finally:
        await broker.shutdown()


async def _wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def sta_missing() -> str | None:
    """Why the SensorThings server cannot run here, or None."""
    if importlib.util.find_spec("sensorthings") is None:
        return "django-ogc-sensorthings is not installed (pip install -e '.[test]')"
    return None


@contextlib.asynccontextmanager
async def sta_server(workdir: Path) -> AsyncIterator[str]:
    """Yields the service root of a fresh SensorThings API 1.1 server on a free port (its
    SQLite database in `workdir`); stops it on exit."""
    port = _free_port()
    root = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE=STA_SETTINGS,
        STA_DB=str(workdir / "sta.sqlite3"),
        STA_SERVICE_URL=root + "/sensorthings",
    )
    quiet = subprocess.DEVNULL
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "django", "migrate", "-v0", stdout=quiet, stderr=quiet, env=env
    )
    if await asyncio.wait_for(migrate.wait(), 120) != 0:
        raise RuntimeError("the SensorThings server's database could not be created")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "django",
        "runserver",
        "--noreload",
        f"127.0.0.1:{port}",
        stdout=quiet,
        stderr=quiet,
        env=env,
    )
    try:
        await _wait_for_port(port, timeout_s=30)
        yield root + STA_API
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


def sta_observations(url: str) -> int:
    """How many Observations the server at `url` holds (`$count` over its HTTP API)."""
    query = f"{url}/Observations?$top=0&$count=true"
    with urllib.request.urlopen(query, timeout=10) as response:
        return int(json.loads(response.read())["@iot.count"])


async def start_virtual_node(link: Path) -> asyncio.subprocess.Process | None:
    """`citygw node simulate` with its pty at `link`, once its pty is there; None if it cannot
    run here (nodesim.missing() says why)."""
    if nodesim.missing() is not None:
        return None
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "node",
        "simulate",
        "--port",
        str(link),
        "--interval-s",
        "5",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):  # its pty appears within a moment
        if link.exists():  # noqa: ASYNC240 - a stat, once per 50 ms
            break
        await asyncio.sleep(0.05)
    return process
