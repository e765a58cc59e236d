"""Two owners, two brokers (test_owners.py): Mosquitto with a password file and an ACL per
broker, a reader with credentials and a persistent session, and the agent's config."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from spine_setup import config

from gateway import wire
from gateway.wire import messages

PASSWORD = "lamp-post-secret"
GATEWAY = "gw-test"


def acl_broker(make_broker: Any, workdir: Path, prefix: str, gateway_user: str) -> Any:
    """A broker where `gateway_user` may use this gateway's topics only and `reader` may read."""
    workdir.mkdir(parents=True, exist_ok=True)
    acl = workdir / "acl"
    acl.write_text(
        f"user {gateway_user}\ntopic readwrite {prefix}/{GATEWAY}/#\n\n"
        f"user reader\ntopic read {prefix}/#\n"
    )
    passwords = workdir / "passwords"
    passwords.write_text("")
    for user in (gateway_user, "reader"):
        subprocess.run(
            ["mosquitto_passwd", "-b", str(passwords), user, PASSWORD],
            check=True,
            capture_output=True,
        )
    lines = ["allow_anonymous false", f"password_file {passwords}", f"acl_file {acl}"]
    return make_broker(extra_config="\n".join(lines))


class Reader:
    """Everything published under the prefix on one broker, kept across broker restarts (a
    persistent session: what is published while it reconnects is queued for it)."""

    def __init__(self, broker: Any, prefix: str, name: str) -> None:
        self.broker = broker
        self.prefix = prefix
        self.name = name
        self.messages: list[tuple[str, bytes]] = []
        self.changed = asyncio.Event()
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call,unused-ignore]
        properties.SessionExpiryInterval = 3600
        while True:
            with contextlib.suppress(aiomqtt.MqttError):
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    username="reader",
                    password=PASSWORD,
                    identifier=f"reader-{self.name}",
                    protocol=aiomqtt.ProtocolVersion.V5,
                    clean_start=False,
                    properties=properties,
                ) as client:
                    await client.subscribe(f"{self.prefix}/#", qos=1)
                    self.ready.set()
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        self.messages.append((message.topic.value, message.payload))
                        self.changed.set()
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def readings(self) -> list[wire.HubReading]:
        """Every reading of the data messages, decoded with the last birth's series table."""
        table: dict[int, Any] = {}
        out: list[wire.HubReading] = []
        for topic, payload in self.messages:
            if topic.endswith("/status") and payload:
                birth = messages.decode_map(payload)
                if birth.get("state") == "online" and "series" in birth:
                    table = messages.series_table(birth)
            elif topic.endswith("/data"):
                tables = lambda epoch, t=dict(table): t  # noqa: E731
                out.extend(wire.decode_data(payload, gateway=GATEWAY, series_tables=tables))
        return out

    def frames(self) -> list[int]:
        """The frame numbers of the PM2.5 readings received (duplicates kept)."""
        return [round(r.value * 10) for r in self.readings() if r.quantity == "pm2_5_ugm3"]

    async def wait_for(self, predicate: Any, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def two_owner_config(
    tmp_path: Path, hub: Any, other: Any, prefix: str, ports: dict[str, Path], **uplink: Any
) -> dict[str, Any]:
    """The city's readings (`pm-city`) to the hub, the citizens' (`pm-burgers`) to `other`."""
    for name in ("hub", "burgers"):
        (tmp_path / f"{name}.pass").write_text(PASSWORD + "\n")
    cfg = config(tmp_path, hub, prefix, ports)
    cfg["gateway"]["id"] = GATEWAY
    cfg["gateway"]["owner"] = "gemeente"
    for source in cfg["sources"]:
        if source["name"] == "pm-burgers":
            source["owner"] = "burgermeetnet"
    cfg["hub"].update(username=GATEWAY, password_file=str(tmp_path / "hub.pass"))
    cfg["uplinks"] = [
        {
            "name": "burgers",
            "owners": ["burgermeetnet"],
            "url": other.url,
            "username": f"{GATEWAY}-b",
            "password_file": str(tmp_path / "burgers.pass"),
            "topic_prefix": prefix,
            "flush_interval_s": 0.2,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            "wire_format": 2,
            **uplink,
        }
    ]
    return cfg
