"""docs/remote-config.md's example Mosquitto ACL, used exactly as written, works.

The ACL is taken from the document's text; Mosquitto runs with it and a password file for the
users it names plus two gateways. A gateway publishes data, status, metrics and config/state and
reads config/set; another gateway's user is refused (0x87) on this gateway's topics.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from spine_setup import frame, frame_numbers, sources_open

from gateway import wire
from gateway.config import HubSection
from gateway.hub.fleet import sign_config
from gateway.remote import signing
from gateway.uplinks.client import PublishRefused, connect

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "pole-secret"
PREFIX = "citygw/v1"  # the document's ACL is written for the default prefix


def doc_acl() -> str:
    text = (REPO / "docs" / "remote-config.md").read_text(encoding="utf-8")
    found = re.search(r"With Mosquitto, for example:\n\n```\n(.*?)```", text, re.DOTALL)
    assert found, "the example ACL is no longer where this test looks for it"
    return found.group(1)


def acl_broker(tmp_path: Path, make_broker: Any, gateways: list[str]) -> Any:
    acl = doc_acl()
    users = sorted({*re.findall(r"^user (\S+)$", acl, re.MULTILINE), *gateways})
    assert {"ops", "hub"} <= set(users)
    (tmp_path / "acl").write_text(acl)
    passwords = tmp_path / "passwords"
    passwords.write_text("")
    for user in users:
        subprocess.run(
            ["mosquitto_passwd", "-b", str(passwords), user, PASSWORD],
            check=True,
            capture_output=True,
        )
    lines = ["allow_anonymous false", f"password_file {passwords}", f"acl_file {tmp_path / 'acl'}"]
    return make_broker(extra_config="\n".join(lines))


async def collect(
    broker: Any, into: list[tuple[str, bytes]], ready: asyncio.Event, changed: asyncio.Event
) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, username="hub", password=PASSWORD, identifier="hub-reader"
    ) as client:
        await client.subscribe(f"{PREFIX}/#", qos=1)
        ready.set()
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            into.append((message.topic.value, message.payload))
            changed.set()


async def wait_until(changed: asyncio.Event, predicate: Any, timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            changed.clear()
            await changed.wait()


async def test_the_documented_acl_lets_a_gateway_use_its_topics_and_no_other_gateway(
    tmp_path: Path,
    make_broker: Any,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
) -> None:
    broker = acl_broker(tmp_path, make_broker, ["gw-test", "gw-other"])
    seen: list[tuple[str, bytes]] = []
    ready, changed = asyncio.Event(), asyncio.Event()
    reader = asyncio.create_task(collect(broker, seen, ready, changed))
    await asyncio.wait_for(ready.wait(), 10)
    key, public = signing.generate(tmp_path / "keys", "ops")
    pty = make_pty("ttyUSB0")
    (tmp_path / "hub-password").write_text(PASSWORD + "\n")
    local = {
        "gateway": {"id": "gw-test", "data_dir": str(tmp_path / "data")},
        "hub": {
            "url": broker.url,
            "username": "gw-test",
            "password_file": str(tmp_path / "hub-password"),
            "flush_interval_s": 0.2,
            "metrics_interval_s": 0.5,
            "wire_format": 1,  # decoded message by message
        },
        "buffer": {"commit_interval_ms": 50},
        "sources": [{"type": "serial", "name": "pm", "port": str(pty.link), "driver": "sds011"}],
        "remote_config": {"trusted_keys": [str(public)], "allowed_ports": [str(pty.link)]},
    }
    agent = agent_process(write_config(local))
    agent.start()
    try:
        await agent.wait_for_log("connected to hub")
        await sources_open(agent)
        for n in (1, 2, 3):
            await pty.write_async(frame(n))

        def data() -> list[int]:
            msgs = [p for t, p in seen if t == f"{PREFIX}/gw-test/data"]
            return frame_numbers([r for p in msgs for r in wire.decode_data(p)])

        await wait_until(changed, lambda: data() == [1, 2, 3])
        await wait_until(
            changed,
            lambda: (
                {t.removeprefix(f"{PREFIX}/gw-test/") for t, _ in seen}
                >= {"status", "metrics", "config/state", "data"}
            ),
        )

        pushed = {
            "gateway": {"log_level": "debug"},
            "hub": local["hub"],
            "buffer": local["buffer"],
            "sources": local["sources"],
        }
        envelope = sign_config(
            signing.load_private(key), pushed, version=7, target={"gateway": "gw-test"}
        )
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            username="ops",
            password=PASSWORD,
            identifier=f"ops-{uuid.uuid4().hex[:6]}",
        ) as ops:
            await ops.publish(f"{PREFIX}/gw-test/config/set", envelope, qos=1, retain=True)

        def applied() -> bool:
            reports = [json.loads(p) for t, p in seen if t == f"{PREFIX}/gw-test/config/state"]
            return any(r.get("version") == 7 for r in reports)

        await wait_until(changed, applied)
        assert "refuses our publishes" not in agent.log_text()
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)

    other = HubSection(url=broker.url, username="gw-other", password=PASSWORD, timeout_s=5)
    async with connect(
        other,
        gateway_id="gw-other",
        data_topic=f"{PREFIX}/gw-other/data",
        will_topic=f"{PREFIX}/gw-other/status",
        will_payload=b"offline",
    ) as session:
        await session.publish_data(b"its own data is fine")
        for leaf in ("data", "status", "metrics", "config/state", "config/set"):
            with pytest.raises(PublishRefused) as refused:
                await session.publish(f"{PREFIX}/gw-test/{leaf}", b"forged", retain=False)
            assert refused.value.code == 0x87
