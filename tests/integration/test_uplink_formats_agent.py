"""The two HTTP formats end to end through the agent: a citizens' SDS011 to a real SensorThings
server and to (a stand-in for) sensor.community, the city's SDS011 to its hub only.

The agent runs as a process (`agent_process`) with `[[uplinks]]` records of format
"sensorthings" and "sensor.community" built by the factory table. The city's readings never
reach either HTTP server; the citizens' arrive, and after a kill -9 of the agent and a restart
every reading is on the SensorThings server exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from push_api import NODE, PATH, PushApi, serve_push_api
from spine_setup import PM10_MARK, config, frame, sources_open
from sta_server.fixture import StaServer, migrated_template

pytestmark = pytest.mark.integration

GATEWAY = "gw-test"
BURGERS = 5000  # the citizens' sensor numbers its frames from here


@pytest.fixture(scope="module")
def sta_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_template(tmp_path_factory.mktemp("sta-template"))


@pytest.fixture
def sta(tmp_path: Path, sta_template: Path) -> Iterator[StaServer]:
    server = StaServer(tmp_path, sta_template)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def push_api() -> Iterator[PushApi]:
    yield from serve_push_api()


def agent_config(
    tmp_path: Path, hub: Any, prefix: str, ports: dict[str, Path], sta: StaServer, api: PushApi
) -> dict[str, Any]:
    cfg = config(tmp_path, hub, prefix, ports)
    cfg["gateway"].update(id=GATEWAY, owner="gemeente")
    cfg["hub"]["require_subscribers"] = False  # no hub listens here: the formats are the point
    for source in cfg["sources"]:
        if source["name"] == "pm-burgers":
            source["owner"] = "burgermeetnet"
    fast = {"flush_interval_s": 0.2, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5}
    cfg["uplinks"] = [
        {
            "name": "burgers-sta",
            "owners": ["burgermeetnet"],
            "format": "sensorthings",
            "url": sta.url,
            **fast,
        },
        {
            "name": "burgers-sc",
            "owners": ["burgermeetnet"],
            "format": "sensor.community",
            "url": f"http://127.0.0.1:{api.port}{PATH}",
            "sensor_id": NODE,
            **fast,
        },
    ]
    return cfg


def sta_frames(sta: StaServer) -> Counter[int]:
    """Frame numbers of the PM2.5 Observations on the server (every row, duplicates kept)."""
    found: Counter[int] = Counter()
    for stream in sta.all("/Datastreams", **{"$select": "id,name"}):
        if stream["name"].endswith("/pm2_5_ugm3"):
            found.update(round(o["result"] * 10) for o in sta.observations(stream["@iot.id"]))
    return found


def pushed_frames(api: PushApi) -> Counter[int]:
    found: Counter[int] = Counter()
    for request in api.accepted:
        values = {v["value_type"]: v["value"] for v in request.json["sensordatavalues"]}
        assert values["P1"] == f"{PM10_MARK:.2f}"
        found[round(float(values["P2"]) * 10)] += 1
    return found


async def until(predicate: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise TimeoutError("not reached in time")
        await asyncio.sleep(0.3)


async def test_each_format_gets_its_owners_readings_once_across_a_kill_9(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    sta: StaServer,
    push_api: PushApi,
) -> None:
    city, burgers = make_pty("ttyCITY"), make_pty("ttyBURG")
    ports = {"pm-city": city.link, "pm-burgers": burgers.link}
    agent = agent_process(
        write_config(agent_config(tmp_path, mosquitto, topic_prefix, ports, sta, push_api))
    )
    agent.start()
    await agent.wait_for_log(f"connected to hub {mosquitto.url}", timeout_s=15)
    await sources_open(agent)
    first = range(BURGERS + 1, BURGERS + 21)
    for n in range(1, 21):
        await city.write_async(frame(n))
        await burgers.write_async(frame(BURGERS + n))
        await asyncio.sleep(0.02)
    await until(lambda: set(first) <= set(sta_frames(sta)))
    await until(lambda: set(first) <= set(pushed_frames(push_api)))

    things = {t["name"] for t in sta.all("/Things", **{"$select": "id,name"})}
    assert things == {f"{GATEWAY}/pm-burgers"}, "the city's source never reaches the citizens"
    assert all(request.headers["x-pin"] == "1" for request in push_api.accepted)
    assert set(pushed_frames(push_api)) == set(first)

    assert agent.kill9() == -9
    burgers.replug()
    city.replug()
    agent.start()
    await agent.wait_for_log(f"connected to hub {mosquitto.url}", timeout_s=15)
    await sources_open(agent)
    later = range(BURGERS + 21, BURGERS + 31)
    for n in later:
        await burgers.write_async(frame(n))
        await asyncio.sleep(0.02)
    everything = set(first) | set(later)
    await until(lambda: everything <= set(sta_frames(sta)))
    await until(lambda: everything <= set(pushed_frames(push_api)))
    assert sta_frames(sta) == Counter(everything), "each reading once on the SensorThings server"
    assert len(sta.all("/Datastreams")) == 2, "the restart found its Datastreams, made none"
