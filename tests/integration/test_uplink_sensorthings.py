"""The `sensorthings` uplink against a real SensorThings API 1.1 server, read back over its API.

The server is django-ogc-sensorthings 1.2.0 in a minimal Django project on SQLite
(tests/integration/sta_server), started per test. It ignores client @iot.ids, so exactly-once
rests on the destination's read-back; these tests re-send, overlap, kill -9 mid-batch, lose the
answer, lose the entities and stop the server, and count every reading's key on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sta_server.child import readings, section
from sta_server.fixture import HERE, StaServer, migrated_template

from gateway.uplinks.destination import DeliveryError, OutgoingReading
from gateway.uplinks.http_client import http_client
from gateway.uplinks.sensorthings import SensorThings, destination

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sta_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_template(tmp_path_factory.mktemp("sta-template"))


@pytest.fixture(scope="module")
def sta(tmp_path_factory: pytest.TempPathFactory, sta_template: Path) -> Iterator[StaServer]:
    """One server for the module (starting one costs seconds); each test is its own gateway."""
    server = StaServer(tmp_path_factory.mktemp("sta"), sta_template)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gw() -> str:
    """A gateway id of this test alone: its entities and keys are apart from the others'."""
    return f"gw-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def uplink(sta: StaServer, gw: str) -> AsyncIterator[SensorThings]:
    target = destination(
        section(sta.url), gateway_id=gw, locations={"pm-school": (52.0907, 5.1214)}
    )
    yield target
    await target.close()


def mine(sta: StaServer, collection: str, gw: str, **params: str) -> list[dict[str, Any]]:
    """The entities of `collection` named after gateway `gw` ("<gw>/...")."""
    return [e for e in sta.all(collection, **params) if e["name"].startswith(f"{gw}/")]


def stored_keys(sta: StaServer, gw: str) -> Counter[tuple[str, str, int]]:
    """(datastream name, quantity, seq) of every Observation of gateway `gw`, counted."""
    found: Counter[tuple[str, str, int]] = Counter()
    for stream in mine(sta, "/Datastreams", gw, **{"$select": "id,name"}):
        for observation in sta.observations(stream["@iot.id"]):  # each row once, by its id
            gateway, epoch, seq = observation["parameters"]["citygw_key"]
            assert (gateway, epoch) == (gw, 1)
            found[(stream["name"], stream["name"].rsplit("/", 1)[1], seq)] += 1
    return found


def expected_keys(gw: str, batch: list[OutgoingReading]) -> Counter[tuple[str, str, int]]:
    return Counter((f"{gw}/{r.source}/{r.quantity}", r.quantity, r.seq) for r in batch)


async def test_entities_and_observations_are_created_and_read_back_over_the_api(
    gw: str, sta: StaServer, uplink: SensorThings
) -> None:
    school = readings(gw, 40)
    street = readings(
        gw, 30, first_seq=100, source="ble/aa:bb", quantities=(("temperature_c", "Cel"),)
    )
    await uplink.deliver(school + street)

    things = {t["name"]: t for t in mine(sta, "/Things", gw, **{"$expand": "Locations"})}
    assert set(things) == {f"{gw}/pm-school", f"{gw}/ble/aa:bb"}
    school_thing = things[f"{gw}/pm-school"]
    assert school_thing["properties"] == {
        "gateway": gw,
        "source": "pm-school",
        "owner": "burgermeetnet",
    }
    assert school_thing["Locations"][0]["location"]["coordinates"] == [5.1214, 52.0907]
    streams = {
        s["name"]: s
        for s in mine(sta, "/Datastreams", gw, **{"$expand": "ObservedProperty,Thing,Sensor"})
    }
    assert set(streams) == {
        f"{gw}/pm-school/pm2_5_ugm3",
        f"{gw}/pm-school/pm10_ugm3",
        f"{gw}/ble/aa:bb/temperature_c",
    }
    pm25 = streams[f"{gw}/pm-school/pm2_5_ugm3"]
    assert pm25["unitOfMeasurement"] == {
        "name": "microgram per cubic metre",
        "symbol": "µg/m³",
        "definition": "http://www.opengis.net/def/uom/UCUM/0/ug%2Fm3",
    }
    assert pm25["ObservedProperty"]["name"] == "PM2.5"
    assert pm25["Thing"]["name"] == f"{gw}/pm-school"
    temperature = streams[f"{gw}/ble/aa:bb/temperature_c"]
    assert temperature["unitOfMeasurement"]["symbol"] == "°C"

    observations = sta.observations(pm25["@iot.id"])
    got = sorted((o["parameters"]["citygw_key"][2], o["result"]) for o in observations)
    want = sorted((r.seq, r.value) for r in school if r.quantity == "pm2_5_ugm3")
    assert got == want
    assert stored_keys(sta, gw) == expected_keys(gw, school + street)
    assert uplink.stats.requests == 1  # one CreateObservations for the whole batch


async def test_the_same_batch_again_and_an_overlapping_batch_store_each_reading_once(
    gw: str, sta: StaServer, uplink: SensorThings
) -> None:
    first = readings(gw, 100)
    await uplink.deliver(first)
    await uplink.deliver(first)  # the same batch again, same process
    assert stored_keys(sta, gw) == expected_keys(gw, first)

    overlapping = readings(gw, 100, first_seq=51)  # seq 51..150: half already there
    restarted = destination(section(sta.url), gateway_id=gw)  # a new process
    try:
        await restarted.deliver(overlapping)
        await restarted.deliver(overlapping)
    finally:
        await restarted.close()
    assert stored_keys(sta, gw) == expected_keys(gw, readings(gw, 150))
    assert restarted.stats.skipped_present == 50 + 100
    assert restarted.stats.posted == 50


async def test_after_a_restart_a_shorter_first_batch_still_skips_what_lies_beyond_it(
    gw: str, sta: StaServer, uplink: SensorThings
) -> None:
    """A lost attempt stored 100 readings; after the restart the loop sends them in batches of
    40 (batch_max_readings lowered): the read-back of the first batch must cover the rest."""
    stored = readings(gw, 100)
    await uplink.deliver(stored)  # stands for the attempt whose answer the crash lost
    restarted = destination(section(sta.url), gateway_id=gw)
    try:
        for start in range(0, 120, 40):
            await restarted.deliver(readings(gw, 40, first_seq=start + 1))
    finally:
        await restarted.close()
    assert stored_keys(sta, gw) == expected_keys(gw, readings(gw, 120))
    assert restarted.stats.read_backs == 2  # one per series, at the first batch only
    assert restarted.stats.skipped_present == 100


def _kill_child_at(sta: StaServer, gw: str, marker: str, n: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    child = subprocess.Popen(
        [sys.executable, "-m", "sta_server.child", sta.url, gw, str(n)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = child.stdout.readline().decode()
            lines.append(line)
            if line.startswith(marker) or not line:
                break
        assert lines[-1].startswith(marker), "".join(lines)
        if marker == "POSTED":
            assert lines[-1].split() == ["POSTED", "201"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


@pytest.mark.parametrize("marker", ["POSTED", "POSTING"])
async def test_kill_9_mid_batch_then_a_fresh_destination_sends_again_without_duplicates(
    gw: str, sta: StaServer, marker: str
) -> None:
    """POSTED: killed after the server stored the batch, before the delivery loop could ack;
    POSTING: killed while the request was on its way (stored or not: either is fine)."""
    n = 2000
    await asyncio.to_thread(_kill_child_at, sta, gw, marker, n)
    if marker == "POSTED":
        assert sum(stored_keys(sta, gw).values()) == n  # the crashed attempt did store them

    batch = readings(gw, n)
    fresh = destination(section(sta.url), gateway_id=gw)
    try:
        await fresh.deliver(batch + readings(gw, 10, first_seq=n + 1))
    finally:
        await fresh.close()
    assert stored_keys(sta, gw) == expected_keys(gw, readings(gw, n + 10))
    assert fresh.stats.read_backs == 2  # the first batch of each series after a start


class AnswerEater:
    """A TCP proxy to the server that, while `eat` is set, forwards requests but never the
    answers: a network that loses the reply after the server acted (stands in for a link
    dropping at the worst moment; the server and the client are real)."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.eat = False
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        eat = self.eat

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, drop: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if not drop:
                        dst.write(data)
                        await dst.drain()
            if not drop:
                dst.close()  # the server closed after its answer: so does the proxy

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, eat))

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_an_answer_lost_after_the_server_stored_the_batch_is_not_stored_twice(
    gw: str,
    sta: StaServer,
) -> None:
    proxy = AnswerEater(sta.port)
    await proxy.start()
    through = section(f"http://127.0.0.1:{proxy.port}/sensorthings/v1.1", timeout_s=3.0)
    target = destination(through, gateway_id=gw)
    try:
        await target.deliver(readings(gw, 20))  # entities exist, series sure
        proxy.eat = True
        second = readings(gw, 20, first_seq=21)
        with pytest.raises(DeliveryError):
            await target.deliver(second)
        assert sum(stored_keys(sta, gw).values()) == 40  # the server did store them
        proxy.eat = False
        await target.deliver(second)
    finally:
        await target.close()
        await proxy.close()
    assert stored_keys(sta, gw) == expected_keys(gw, readings(gw, 40))
    assert target.stats.skipped_present == 20


async def test_a_server_that_lost_its_datastreams_gets_them_again(
    gw: str, sta: StaServer, uplink: SensorThings
) -> None:
    await uplink.deliver(readings(gw, 10))
    for thing in mine(sta, "/Things", gw):  # an operator wiped the server
        status, _ = sta.request("DELETE", f"/Things('{thing['@iot.id']}')")
        assert status in (200, 204)
    assert mine(sta, "/Datastreams", gw) == []

    later = readings(gw, 10, first_seq=11)
    await uplink.deliver(later)  # the cached Datastream ids answer "error": found again
    assert stored_keys(sta, gw) == expected_keys(gw, later)
    assert uplink.stats.entity_losses == 1


async def test_a_server_that_is_down_raises_delivery_error_and_loses_nothing(
    gw: str, sta: StaServer, uplink: SensorThings
) -> None:
    await uplink.deliver(readings(gw, 10))
    sta.stop()
    batch = readings(gw, 10, first_seq=11)
    try:
        with pytest.raises(DeliveryError) as raised:
            await uplink.deliver(batch)
    finally:
        sta.start()  # the same port and database: the module's other tests use it too
    assert not raised.value.refused
    await uplink.deliver(batch)
    assert stored_keys(sta, gw) == expected_keys(gw, readings(gw, 20))


async def test_a_batch_over_the_row_limit_goes_in_several_requests(sta: StaServer, gw: str) -> None:
    """The limit is 10,000 rows (MAX_ROWS_PER_REQUEST, tests/unit); 1,000 here keeps it quick."""
    target = SensorThings(
        "sta", http_client(section(sta.url), user_agent="t"), gateway_id=gw, max_rows=1000
    )
    batch = readings(gw, 2500, quantities=(("pm10_ugm3", "ug/m3"),))
    try:
        await target.deliver(batch)
    finally:
        await target.close()
    assert target.stats.requests == 3
    assert stored_keys(sta, gw) == expected_keys(gw, batch)


async def test_not_finite_values_are_skipped_and_counted(
    gw: str, sta: StaServer, uplink: SensorThings
) -> None:
    batch = readings(gw, 4)
    broken = [*batch[:2], *(dataclasses.replace(r, value=float("nan")) for r in batch[2:])]
    await uplink.deliver(broken)
    assert stored_keys(sta, gw) == expected_keys(gw, batch[:2])
    assert uplink.stats.skipped_not_finite == 2
