"""The bench's side of a ThingsBoard IoT Gateway run: the sensors and the fake ThingsBoard.

Run by bench/run.py (`python -m bench.tb_peer HOST PORT --readings N`) on the bench's core,
against the Mosquitto the gateway under test uses both as its MQTT-in source and as its
"ThingsBoard". It
- answers the gateway's `getSessionLimits` RPC (v1/devices/me/rpc/request/+) the way
  ThingsBoard does, without rate limits: without an answer the gateway never forwards;
- publishes the workload: the same SDS011 readings as the citygw run, one JSON message per
  frame (`{"pm2_5_ugm3": x, "pm10_ugm3": y}`) to `sensor/pm-<port>/data` at QoS 1, the shape
  ThingsBoard's MQTT connector is configured for (bench/tb_config.py);
- counts what the gateway publishes to `v1/gateway/telemetry` (QoS 1: the broker PUBACKs it).

Prints JSON lines: {"event": "ready"}, {"event": "limits"} when the gateway asked and got its
answer, {"event": "start", "t"} on "go" from stdin, {"event": "done", ...figures} when every
reading arrived, {"event": "report", ...} on "report" from stdin.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from bench.feeder import DISTINCT_VALUES

TELEMETRY = "v1/gateway/telemetry"
RPC_REQUEST = "v1/devices/me/rpc/request/"
RPC_RESPONSE = "v1/devices/me/rpc/response/"
NO_LIMITS = "0:0,"
SESSION_LIMITS = {
    "maxPayloadSize": 65536,
    "maxInflightMessages": 100,
    "rateLimits": {
        "messages": NO_LIMITS,
        "telemetryMessages": NO_LIMITS,
        "telemetryDataPoints": NO_LIMITS,
    },
    "gatewayRateLimits": {
        "messages": NO_LIMITS,
        "telemetryMessages": NO_LIMITS,
        "telemetryDataPoints": NO_LIMITS,
    },
}


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


T0_MS = 1_717_000_000_000


def frame_json(i: int) -> bytes:
    """Frame i of a port as the citygw feeder writes it (bench/feeder.py), as JSON, with the
    sensor's timestamp (one frame a second): without "ts" the gateway stamps the time of
    arrival in ms, and two frames of a device in one millisecond overwrite each other."""
    return json.dumps(
        {
            "ts": T0_MS + i * 1000,
            "pm2_5_ugm3": 5.0 + (i * 7 % DISTINCT_VALUES) / 10,
            "pm10_ugm3": 8.0 + (i * 13 % DISTINCT_VALUES) / 10,
        }
    ).encode()


class Peer:
    def __init__(self, target: int) -> None:
        self.target = target
        self.readings = 0
        self.messages = 0
        self.payload_bytes = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.done = False
        self.lock = threading.Lock()

    def on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith(RPC_REQUEST):
            request = json.loads(msg.payload)
            if request.get("method") == "getSessionLimits":
                client.publish(
                    RPC_RESPONSE + msg.topic.rsplit("/", 1)[1], json.dumps(SESSION_LIMITS), qos=1
                )
                say("limits")
            return
        if msg.topic != TELEMETRY:
            return
        now = time.monotonic()
        body = json.loads(msg.payload)
        count = sum(len(entry.get("values", {})) for entries in body.values() for entry in entries)
        with self.lock:
            self.first_t = self.first_t or now
            self.last_t = now
            self.messages += 1
            self.readings += count
            self.payload_bytes += len(msg.payload)
            if not self.done and self.readings >= self.target:
                self.done = True
                say("done", **self.figures())

    def figures(self) -> dict[str, Any]:
        return {
            "t": self.last_t,
            "first_t": self.first_t,
            "readings": self.readings,
            "messages": self.messages,
            "payload_bytes": self.payload_bytes,
        }


def publish_workload(client: mqtt.Client, readings: int, ports: int) -> float:
    """Every frame as a QoS 1 message, round robin over the ports; returns the start time."""
    start = time.monotonic()
    say("start", t=start)
    for i in range(readings // 2):
        while True:
            info = client.publish(f"sensor/pm-{i % ports}/data", frame_json(i // ports), qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                break
            time.sleep(0.001)  # the client's queue is full: let the loop drain it
    say("published", t=time.monotonic(), messages=readings // 2)
    return start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--readings", type=int, required=True)
    parser.add_argument("--ports", type=int, default=4)
    args = parser.parse_args()

    peer = Peer(args.readings)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        protocol=mqtt.MQTTv5,
        client_id=f"bench-tb-{uuid.uuid4().hex[:8]}",
    )
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(10_000)
    client.on_message = peer.on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(args.host, args.port, keepalive=600)
    client.subscribe(
        [(TELEMETRY, SubscribeOptions(qos=1)), (RPC_REQUEST + "+", SubscribeOptions(qos=1))]
    )
    client.loop_start()
    if not subscribed.wait(15):
        say("error", message="could not subscribe")
        return 1
    say("ready")
    for line in sys.stdin:
        command = line.strip()
        if command == "go":
            threading.Thread(
                target=publish_workload, args=(client, args.readings, args.ports), daemon=True
            ).start()
        elif command == "report":
            with peer.lock:
                say("report", **peer.figures())
    client.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
