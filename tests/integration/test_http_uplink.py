"""An HTTP uplink (the Destination protocol) against a real HTTP server on the loopback: its
owners' readings only, in order, retried from the buffer on 5xx and refusals (Retry-After
honoured) and while the server is down, nothing lost, each key once after dedupe.

The Destination here is a small one written for the test (the real formats, SensorThings and
sensor.community, have their own tests); it speaks HTTP/1.1 over asyncio streams."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from drivers.base import Measurement
from gateway.config import UplinkSection
from gateway.readings import Columns, SeriesIndex
from gateway.store.buffer import SqliteBuffer
from gateway.store.lanes import LaneSpec
from gateway.store.worker import AsyncBuffer
from gateway.uplinks.destination import DeliveryError, OutgoingReading
from gateway.uplinks.http import HttpUplink

pytestmark = pytest.mark.integration


class Server:
    """Stores what is POSTed to /readings (a list of readings); `answers` says what to answer
    the next requests (status, Retry-After), then 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answers: list[tuple[int, str | None]] = []
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests += 1
                status, retry_after = server.answers.pop(0) if server.answers else (200, None)
                if status == 200:
                    server.received.extend(json.loads(body))
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def keys(self) -> list[int]:
        return [r["seq"] for r in self.received]


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


class JsonDestination:
    """POST the batch as JSON; 2xx is acceptance, anything else a DeliveryError."""

    def __init__(self, port: int) -> None:
        self.name = "test"
        self.port = port

    async def deliver(self, batch: Sequence[OutgoingReading]) -> None:
        body = json.dumps([{"seq": r.seq, "owner": r.owner, "value": r.value} for r in batch])
        try:
            async with asyncio.timeout(5):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(
                    f"POST /readings HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                    f"Connection: close\r\n\r\n{body}".encode()
                )
                await writer.drain()
                head = (await reader.read()).decode()
                writer.close()
        except (OSError, TimeoutError) as error:
            raise DeliveryError(f"cannot reach the server: {error}") from error
        status = int(head.split()[1])
        if status // 100 != 2:
            retry = next(
                (
                    float(line.split(":")[1])
                    for line in head.split("\r\n")
                    if line.startswith("Retry-After")
                ),
                None,
            )
            raise DeliveryError(f"HTTP {status}", retry_after_s=retry, refused=status < 500)

    async def close(self) -> None:
        pass


def section(**overrides: Any) -> UplinkSection:
    settings: dict[str, Any] = {
        "name": "citizens",
        "owners": ["citizens"],
        "url": "http://127.0.0.1:1",
        "format": "sensorthings",
        "flush_interval_s": 0.1,
        "batch_max_readings": 7,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
    }
    return UplinkSection(**(settings | overrides))


def readings(first: int, count: int) -> Columns:
    out = Columns(SeriesIndex())
    for n in range(first, first + count):
        for owner in ("city", "citizens"):
            out.add(f"pm-{owner}", [Measurement("pm2_5", float(n), "ug/m3")], n, 0, owner)
    return out


async def open_buffer(tmp_path: Path) -> AsyncBuffer:
    lanes = [LaneSpec("hub", frozenset({"city"})), LaneSpec("citizens", frozenset({"citizens"}))]
    buffer = AsyncBuffer(
        lambda: SqliteBuffer(tmp_path / "buffer.db", max_readings=10_000, owner="city", lanes=lanes)
    )
    await buffer.open()
    return buffer


async def until(predicate: Any, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


async def test_an_http_uplink_delivers_its_owners_readings_in_order_through_failures(
    tmp_path: Path, server: Server
) -> None:
    buffer = await open_buffer(tmp_path)
    uplink = HttpUplink(
        section(), gateway_id="gw-1", buffer=buffer, destination=JsonDestination(server.port)
    )
    task = asyncio.create_task(uplink.run())
    try:
        await buffer.append(readings(0, 10))
        uplink.notify(20)
        await until(lambda: len(server.received) == 10)
        server.answers = [(503, "0.1"), (429, "0.2"), (500, None)]
        await buffer.append(readings(10, 10))
        uplink.notify(20)
        await until(lambda: len(server.received) == 20)
        assert server.requests >= 3 + 3, "every failure was retried"
        assert uplink.stats.refused == 1 and "HTTP" in uplink.stats.last_error
        assert {r["owner"] for r in server.received} == {"citizens"}
        assert [r["value"] for r in server.received] == [float(n) for n in range(20)]
        assert server.keys() == sorted(set(server.keys()))
        await until(lambda: uplink.stats.readings_out == 20)  # acknowledged once answered
        assert await buffer.backlog("citizens") == 0
        assert await buffer.backlog("hub") == 20, "the hub's readings are not this uplink's"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await buffer.close()


async def test_an_http_uplink_catches_up_after_the_server_was_down(
    tmp_path: Path, server: Server
) -> None:
    buffer = await open_buffer(tmp_path)
    down = Server()
    port = down.port
    down.stop()  # nothing listens there now
    uplink = HttpUplink(
        section(), gateway_id="gw-1", buffer=buffer, destination=JsonDestination(port)
    )
    task = asyncio.create_task(uplink.run())
    try:
        await buffer.append(readings(0, 30))
        uplink.notify(60)
        await until(lambda: uplink.stats.last_error.startswith("cannot reach"))
        assert uplink.stats.connected is False and await buffer.backlog("citizens") == 30
        uplink._destination = JsonDestination(server.port)  # the server is back (at a new port)
        await until(lambda: len(server.received) == 30)
        assert [r["value"] for r in server.received] == [float(n) for n in range(30)]
        # The server holds a batch before its answer reaches the uplink, which acks it then.
        await until(lambda: uplink.stats.readings_out == 30)
        assert uplink.stats.connected and await buffer.backlog("citizens") == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await buffer.close()
