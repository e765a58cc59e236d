"""Integration fixtures: a real Mosquitto per test, a hub-like MQTT v5 subscriber, a wheelhouse.

- ``mosquitto``: a running Broker (``.host``, ``.port``, ``.url``, ``.stop()``, ``.start()``,
  ``.kill()``, ``.log_text()``, ``.wait_for_subscription(client_id)``) with persistence, so a
  stop/start keeps retained messages, sessions and their queued messages.
  ``make_broker(extra_config="")`` makes more.
- ``hub_subscriber``: ``sub = await hub_subscriber(broker, "citygw/v1/#")``, then
  ``await sub.wait_for(lambda msgs: len(msgs) >= 3, timeout=10)``.
- ``topic_prefix``: a topic prefix unique to the test.
- ``secure_broker``: a Broker with a TLS + password listener (secure_mqtt.py).
- ``wheelhouse``: this checkout's wheel and its runtime dependencies, built once per run
  (offline_install.py); read-only for the tests.

Helpers that test modules share live in plain modules here (offline_install.py, secure_mqtt.py,
spine_setup.py, skips.py, virtual_board.py); no test module imports another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import pytest_asyncio
from offline_install import build_wheelhouse, manifest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from secure_mqtt import SecureBroker, start_secure_broker
from skips import skip_or_fail

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def _mosquitto_binary() -> Path | None:
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    return next((Path(p) for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


def _free_port(host: str) -> int:
    """A free TCP port below the ephemeral range, so no client socket (e.g. an agent
    reconnecting while the broker is down) can take it and block a restart on the same port."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    candidates = [random.randrange(10000, low) for _ in range(50)] if low > 11000 else []
    for port in [*candidates, 0]:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free TCP port")


class Broker:
    """A Mosquitto process on 127.0.0.1 and a fixed port, with its config, persistence and
    log under ``workdir``. ``stop()`` + ``start()`` is a clean broker restart on the same port."""

    host = "127.0.0.1"

    def __init__(self, binary: Path, workdir: Path, *, extra_config: str = "") -> None:
        self.binary = binary
        self.port = _free_port(self.host)
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",
            "log_dest stderr",
            *(f"log_type {t}" for t in ("error", "warning", "notice", "information", "subscribe")),
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
        ]
        if os.geteuid() == 0:  # else it drops to user "mosquitto", who cannot write tmp_path
            lines.append("user root")
        self.config_path.write_text("\n".join(lines) + "\n" + extra_config + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, timeout_s: float = 10.0) -> None:
        """Starts the broker (again) on the same port; returns once it accepts connections."""
        assert not self.running, "broker already running"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited ({self.proc.returncode}):\n{self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise TimeoutError(f"mosquitto not listening:\n{self.log_text()}") from None
                time.sleep(0.02)

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """SIGTERM and wait: Mosquitto saves its persistence file on the way out."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: a crash; only what the last autosave (every second) wrote survives."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def wait_for_subscription(
        self, client_id: str, topic: str, *, timeout_s: float = 15.0
    ) -> None:
        """Until the broker has logged `client_id` subscribing to `topic`: a client in another
        process (``citygw hub tail``) does not say when it has subscribed, and what is published
        before that never reaches it."""
        logged = re.compile(rf"^[^ ]+: {re.escape(client_id)} \d {re.escape(topic)}$", re.M)
        deadline = time.monotonic() + timeout_s
        while not logged.search(self.log_text()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{client_id} did not subscribe within {timeout_s} s")
            await asyncio.sleep(0.05)


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Factory: ``make_broker(extra_config="") -> Broker`` (started); stopped at teardown."""
    binary = _mosquitto_binary()
    if binary is None:
        skip_or_fail("mosquitto not installed (Debian package 'mosquitto'; make deps as root)")
    assert binary is not None
    brokers: list[Broker] = []

    def make(*, extra_config: str = "") -> Broker:
        broker = Broker(binary, tmp_path / f"mosquitto-{len(brokers)}", extra_config=extra_config)
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(make_broker: Callable[..., Broker]) -> Broker:
    return make_broker()


@pytest.fixture
def secure_broker(tmp_path: Path, make_broker: Callable[..., Broker]) -> SecureBroker:
    """A broker with a TLS + password listener (secure_mqtt.py); ``.url`` is mqtts://."""
    return start_secure_broker(tmp_path, make_broker)


@pytest.fixture
def topic_prefix() -> str:
    return f"citygw-test/{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class HubMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


class HubSubscriber:
    """Subscribes at QoS 1 over MQTT v5 and collects every message into ``messages``.

    With ``persistent=True`` it keeps a broker session (clean start off, session expiry 1 h)
    under a fixed ``identifier``: messages published while it is away or the broker restarts
    are delivered when it reconnects, which it does by itself while running."""

    def __init__(
        self,
        broker: Broker,
        topic_filter: str,
        *,
        identifier: str | None = None,
        persistent: bool = False,
    ) -> None:
        self.broker = broker
        self.topic_filter = topic_filter
        self.identifier = identifier or f"test-hub-{uuid.uuid4().hex[:10]}"
        self.persistent = persistent
        self.messages: list[HubMessage] = []
        self.connects = 0
        self.last_error: Exception | None = None
        self._changed = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"hub-subscriber:{self.identifier}")

    async def _run(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call,unused-ignore]
        if self.persistent:
            properties.SessionExpiryInterval = 3600
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    identifier=self.identifier,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    clean_start=not self.persistent,
                    properties=properties,
                ) as client:
                    # Re-subscribing after a reconnect must not re-send retained messages.
                    options = SubscribeOptions(qos=1, retainHandling=1)
                    await client.subscribe(self.topic_filter, options=options)
                    self.connects += 1
                    self._connected.set()
                    self._changed.set()
                    async for msg in client.messages:
                        self.messages.append(
                            HubMessage(
                                topic=msg.topic.value,
                                payload=_payload_bytes(msg.payload),
                                qos=int(msg.qos),
                                retain=bool(msg.retain),
                            )
                        )
                        self._changed.set()
            except aiomqtt.MqttError as exc:
                self.last_error = exc
            self._connected.clear()
            self._changed.set()
            await asyncio.sleep(0.2)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def _wait_until(self, condition: Callable[[], bool], wait_s: float, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            self._changed.clear()
            if self._task is not None and self._task.done():
                self._task.result()  # raises what ended the loop
            if condition():
                return
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                shown = "\n".join(repr(m) for m in self.messages[-20:])
                raise TimeoutError(
                    f"{what} not met in {wait_s}s ({self.topic_filter!r} on {self.broker.url}, "
                    f"{self.connects} connects, last error {self.last_error!r}); "
                    f"{len(self.messages)} messages, last ones:\n{shown}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_connected(self, *, count: int = 1, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Waits until connected and subscribed, for the ``count``-th time in all (so
        ``count=sub.connects + 1`` waits for the reconnect after a broker restart)."""
        await self._wait_until(
            lambda: self.connected and self.connects >= count, timeout, f"connect #{count}"
        )

    async def wait_for(
        self,
        predicate: Callable[[list[HubMessage]], bool],
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[HubMessage]:
        """Waits until ``predicate(messages)`` holds; returns the messages received so far."""
        await self._wait_until(lambda: predicate(self.messages), timeout, "condition")
        return self.messages

    async def close(self) -> None:
        """Disconnects (a persistent session stays on the broker and queues for us)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._connected.clear()


@pytest_asyncio.fixture
async def hub_subscriber() -> AsyncIterator[Callable[..., Awaitable[HubSubscriber]]]:
    """Factory: ``await hub_subscriber(broker, topic_filter, identifier=None, persistent=False)``
    returns a connected, subscribed HubSubscriber; all are closed at teardown."""
    subscribers: list[HubSubscriber] = []

    async def make(
        broker: Broker,
        topic_filter: str,
        *,
        identifier: str | None = None,
        persistent: bool = False,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> HubSubscriber:
        sub = HubSubscriber(broker, topic_filter, identifier=identifier, persistent=persistent)
        subscribers.append(sub)
        sub.start()
        await sub.wait_connected(timeout=timeout)
        return sub

    yield make
    for sub in subscribers:
        await sub.close()


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The offline wheelhouse (offline_install.build_wheelhouse), built once per run and shared
    by the install, .deb and chroot tests. Read it, never write into it: a test that needs
    other wheels copies it first. Teardown fails if anything under it changed."""
    house = build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    before = manifest(house)
    yield house
    assert manifest(house) == before, f"a test changed the shared wheelhouse {house}"


@pytest.fixture
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster (pg_cluster.py), started; ``.dsn``; stopped and removed
    at teardown. It lives in its own directory under /tmp, not pytest's: pytest makes its own
    root 0700 again at every start, which would lock out user postgres mid-test."""
    import tempfile

    from pg_cluster import PgCluster, pg_bin

    if pg_bin() is None:
        skip_or_fail("PostgreSQL not installed (Debian package 'postgresql'; make deps as root)")
    root = Path(tempfile.mkdtemp(prefix="citygw-pg-"))
    cluster = PgCluster(root / "cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ingest_process(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Factory: ``ingest_process(*args)`` -> hub_setup.IngestProcess (not started); each is
    stopped at teardown."""
    from hub_setup import IngestProcess

    made: list[IngestProcess] = []

    def make(*args: str) -> IngestProcess:
        worker = IngestProcess(list(args), tmp_path / f"ingest-{len(made)}.log")
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop()
