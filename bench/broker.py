"""Mosquitto for the bench, and a watcher of its $SYS byte counters.

As in tests/integration/conftest.py: 127.0.0.1 on a free port, `user root` when run as root.
No persistence: the bench measures the agent, not the broker's disk.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.procs import BenchError, Child, Children, Pinning

HOST = "127.0.0.1"
SYS_BYTES_RECEIVED = "$SYS/broker/bytes/received"
SYS_PUBLISH_BYTES_RECEIVED = "$SYS/broker/publish/bytes/received"


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
        None,
    )
    if found is None:
        raise BenchError("mosquitto not installed (Debian package 'mosquitto'; try 'make deps')")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on (bound and released: connections to it are refused)."""
    return free_port()


def wait_listening(child: Child, port: int, timeout_s: float) -> None:
    """Return once Mosquitto (`child`) accepts connections on `port`; BenchError with the tail
    of its log if it exits or is not listening within `timeout_s`."""
    end = time.monotonic() + timeout_s
    while True:
        if not child.running:
            raise BenchError(f"mosquitto exited{child.log_tail()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > end:
                raise BenchError(f"mosquitto not listening{child.log_tail()}") from None
            time.sleep(0.02)


class Broker:
    def __init__(self, children: Children, pinning: Pinning, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            "persistence false",
            "sys_interval 1",
            "max_queued_messages 1000000",
            "max_inflight_messages 100",
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:  # else it drops to user "mosquitto"
            lines.append("user root")
        self.config_path.write_text("\n".join(lines) + "\n")
        self._children = children
        self._pinning = pinning
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    def start(self, timeout_s: float = 10.0) -> None:
        argv = self._pinning.other([mosquitto_binary(), "-c", str(self.config_path)])
        self.child = self._children.start("mosquitto", argv, log_path=self.log_path)
        wait_listening(self.child, self.port, timeout_s)

    def stop(self) -> None:
        if self.child is not None:
            self._children.stop(self.child)


class SysCounters:
    """Follows the broker's cumulative $SYS byte counters (published every sys_interval)."""

    def __init__(self, broker: Broker) -> None:
        self._lock = threading.Condition()
        self._values: dict[str, int] = {}
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-sys-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.connect(HOST, broker.port, keepalive=600)
        self._client.loop_start()

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe([(SYS_BYTES_RECEIVED, 0), (SYS_PUBLISH_BYTES_RECEIVED, 0)])

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._values[msg.topic] = int(msg.payload)
            self._lock.notify_all()

    def fresh(
        self, topics: list[str], settle_s: float = 2.5, timeout_s: float = 10.0
    ) -> dict[str, int]:
        """The counters as they include every byte received before this call. Mosquitto
        publishes a $SYS value every sys_interval (1 s) when it changed, retained; so wait
        a little over two intervals and take the latest value of each."""
        time.sleep(settle_s)
        end = time.monotonic() + timeout_s
        with self._lock:
            while any(topic not in self._values for topic in topics):
                left = end - time.monotonic()
                if left <= 0:
                    raise BenchError(
                        f"no $SYS value from the broker in {timeout_s:.0f} s "
                        f"(wanted {topics}; is sys_interval set?)"
                    )
                self._lock.wait(left)
            return {topic: self._values[topic] for topic in topics}

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
