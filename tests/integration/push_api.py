"""A local stand-in for sensor.community's push API (api.sensor.community cannot be reached
from here), shared by test_uplink_sensor_community.py and test_uplink_formats_agent.py.

`PushApi` checks what the real push endpoint checks (feinstaub-api: `NodeUidAuthentication`
needs a known X-Sensor, a node with several sensors needs the X-Pin of one of them,
`SensorDataSerializer` needs a non-empty `sensordatavalues` of value_type/value pairs) plus what
airRohr sends (Content-Type, the value_types of each pin), records every request byte for byte,
and answers 200, 4xx, 5xx or 429 when a test asks it to (`forced`). `serve_push_api()` runs it
on a free loopback port in a thread.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NODE = "esp8266-12345678"
PATH = "/v1/push-sensor-data/"
# What each pin of the registered node may carry (airRohr's value_types after the prefix
# is stripped: SDS_P1 -> P1, BME280_pressure -> pressure).
PIN_TYPES = {
    1: {"P0", "P1", "P2"},
    3: {"temperature", "pressure"},
    7: {"temperature", "humidity"},
    11: {"temperature", "humidity", "pressure"},
}


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class PushApi:
    """The stand-in for https://api.sensor.community/v1/push-sensor-data/."""

    nodes: set[str] = field(default_factory=lambda: {NODE})
    forced: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    def judge(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        if path != PATH:
            return 404, "Not found."
        node = headers.get("x-sensor", "")
        if node not in self.nodes:
            return 403, '{"detail":"Node not found in database."}'
        if not headers.get("content-type", "").startswith("application/json"):
            return 415, '{"detail":"Unsupported media type"}'
        pin = headers.get("x-pin", "")
        if not pin.isdigit() or int(pin) not in PIN_TYPES:
            return 400, '["sensor could not be selected."]'
        try:
            document = json.loads(body)
        except ValueError:
            return 400, '{"detail":"JSON parse error"}'
        values = document.get("sensordatavalues") if isinstance(document, dict) else None
        if not values:
            return 400, '["sensordatavalues was empty. Nothing to save."]'
        for value in values:
            if set(value) != {"value_type", "value"} or not isinstance(value["value"], str):
                return 400, '{"sensordatavalues":["value_type and value (a string)"]}'
            if value["value_type"] not in PIN_TYPES[int(pin)]:
                return 400, f'{{"value_type":["{value["value_type"]}" is not for pin {pin}]}}'
        if not isinstance(document.get("software_version", ""), str):
            return 400, '{"software_version":["Not a valid string."]}'
        return 201, '{"sensor":1}'


def _handler(api: PushApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API's front end

        def setup(self) -> None:
            super().setup()
            api.connections += 1

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if api.forced:
                status, extra = api.forced.pop(0)
                answer = '{"detail":"forced by the test"}'
            else:
                extra = {}
                status, answer = api.judge(self.path, headers, body)
            if status < 300:
                api.accepted.append(Received(headers, body))
            else:
                api.refused.append((status, answer))
            data = answer.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve_push_api() -> Iterator[PushApi]:
    """A running PushApi (its `port` set) until the generator is closed."""
    api = PushApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    api.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
