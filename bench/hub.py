"""A hub-like subscriber: counts the readings that reach the broker, decoded with gateway.wire.

Run by bench/run.py as `python -m bench.hub HOST PORT TOPIC_FILTER --readings N`. MQTT v5,
QoS 1 (it sends one 4-byte PUBACK per data message; the bench subtracts those from the broker's
byte counter). JSON lines on stdout:

    {"event": "ready"}                               subscribed
    {"event": "first", "t": ...}                     first data message (time.monotonic())
    {"event": "done", "t": ..., "readings": ...}     N distinct readings received
    {"event": "report", ...}                         the same so far, on "report" from stdin
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.wire import decode_data


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def latency_figures(latencies_ms: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of the readings' latencies (nearest rank), ms."""
    if not latencies_ms:
        return {"latency_ms_p50": None, "latency_ms_p99": None, "latency_ms_max": None}
    ordered = sorted(latencies_ms)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)], 1)

    return {
        "latency_ms_p50": rank(0.50),
        "latency_ms_p99": rank(0.99),
        "latency_ms_max": round(ordered[-1], 1),
    }


class Counter:
    def __init__(self, target: int) -> None:
        self.target = target
        self.readings = 0
        self.messages = 0
        self.duplicate_messages = 0
        self.payload_bytes = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.done = False
        self._seen: set[tuple[str, int, int]] = set()
        self.latencies_ms: list[float] = []

    def on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        now_ms = time.time() * 1000
        readings = list(decode_data(bytes(msg.payload)))
        if not readings:
            return
        key = readings[0].key
        if key in self._seen:  # a re-sent batch (QoS 1 is at least once)
            self.duplicate_messages += 1
            return
        self._seen.add(key)
        if self.first_t is None:
            self.first_t = now
            say("first", t=now, readings=len(readings))
        self.messages += 1
        self.last_t = now
        # Latency of each reading: its timestamp (the agent's clock when it decoded the frame,
        # a fraction of a millisecond after the frame was written to the pty) -> here. The
        # broker sends the agent's PUBACK as it forwards the message: on one machine the same
        # moment to within a millisecond.
        self.latencies_ms.extend(now_ms - r.ts_ms for r in readings)
        self.readings += len(readings)
        self.payload_bytes += len(msg.payload)
        if not self.done and self.readings >= self.target:
            self.done = True
            say("done", **self.figures())
            client.disconnect()

    def figures(self) -> dict[str, Any]:
        return {
            "t": self.last_t,
            "first_t": self.first_t,
            "readings": self.readings,
            "messages": self.messages,
            "duplicate_messages": self.duplicate_messages,
            "payload_bytes": self.payload_bytes,
            "puback_messages": self.messages + self.duplicate_messages,
            **latency_figures(self.latencies_ms),
        }

    def answer_reports(self) -> None:
        """On "report" from stdin: what arrived so far (for runs where the agent dropped some
        readings, so the target is never reached)."""
        for line in sys.stdin:
            if line.strip() == "report":
                say("report", **self.figures())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("topic_filter")
    parser.add_argument("--readings", type=int, required=True)
    args = parser.parse_args()

    counter = Counter(args.readings)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-hub-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.on_message = counter.on_message

    def on_connect(
        c: mqtt.Client, userdata: object, flags: object, reason: Any, properties: object
    ) -> None:
        if reason.is_failure:
            say("error", message=f"connect refused: {reason}")
            c.disconnect()
            return
        c.subscribe(args.topic_filter, options=SubscribeOptions(qos=1))

    def on_subscribe(
        c: mqtt.Client, userdata: object, mid: int, reasons: Any, properties: object
    ) -> None:
        say("ready")

    client.on_connect = on_connect
    threading.Thread(target=counter.answer_reports, daemon=True).start()
    client.on_subscribe = on_subscribe
    client.connect(args.host, args.port, keepalive=600)
    client.loop_forever()
    return 0 if counter.done else 1


if __name__ == "__main__":
    sys.exit(main())
