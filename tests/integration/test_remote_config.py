"""Remote config end to end: signed pushes through a real Mosquitto to a running agent process.

What a city's operations team does: push a new sensor list, push something wrong (or hostile),
push a broken broker address, lose power mid-apply, push to a group of gateways at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from relay import Relay
from spine_setup import buffer_next_seq, sources_open

from drivers import sds011
from gateway import wire
from gateway.hub.fleet import sign_config, sign_rotation
from gateway.remote import signing
from gateway.remote.report import find_outcome

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def frame(n: int) -> bytes:
    return sds011.encode_data(n / 10, 77.7, device_id=0xA160)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Any]:
    ops_key, ops_pub = signing.generate(tmp_path / "keys", "ops")
    rogue_key, _ = signing.generate(tmp_path / "rogue", "rogue")
    return {
        "private": signing.load_private(ops_key),
        "pub": ops_pub,
        "private_path": ops_key,
        "rogue": signing.load_private(rogue_key),
    }


def local_config(
    tmp_path: Path,
    broker: Any,
    prefix: str,
    keys: dict[str, Any],
    sources: dict[str, Path],
    **remote: Any,
) -> dict[str, Any]:
    return {
        "gateway": {"id": "gw-test", "data_dir": str(tmp_path / "data")},
        "hub": {
            "url": broker.url,
            "topic_prefix": prefix,
            "flush_interval_s": 0.2,
            "metrics_interval_s": 30,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            "wire_format": 1,  # decoded message by message
        },
        "buffer": {"commit_interval_ms": 50},
        "sources": [
            {"type": "serial", "name": n, "port": str(p), "driver": "sds011", "reopen_max_s": 0.5}
            for n, p in sources.items()
        ],
        "remote_config": {
            "trusted_keys": [str(keys["pub"])],
            "groups": ["north"],
            "max_payload_bytes": 4096,
            "allowed_ports": [str(tmp_path / "tty*"), "/dev/tty*"],
            **remote,
        },
    }


def pushed(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What an operator pushes: the document without the parts only the local file owns."""
    out = {k: v for k, v in json.loads(json.dumps(document)).items() if k != "remote_config"}
    out["gateway"] = {k: v for k, v in out["gateway"].items() if k not in ("id", "data_dir")}
    out.update(changes)
    return out


class ConfigChannel:
    """The hub's side of one gateway's config topics."""

    def __init__(self, broker: Any, prefix: str, sub: Any) -> None:
        self.broker, self.prefix, self.sub = broker, prefix, sub

    async def publish(self, payload: bytes, *, topic: str | None = None) -> str:
        async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
            await client.publish(
                topic or f"{self.prefix}/gw-test/config/set", payload, qos=1, retain=True
            )
        return hashlib.sha256(payload).hexdigest()

    def reports(self) -> list[dict[str, Any]]:
        return [
            json.loads(m.payload) for m in self.sub.messages if m.topic.endswith("/config/state")
        ]

    async def report_for(
        self,
        digest: str,
        *,
        result: str | None = None,
        timeout: float = 15,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        def matches(report: dict[str, Any]) -> bool:
            outcome = find_outcome(report, digest)
            return outcome is not None and (result is None or outcome["result"] == result)

        await self.sub.wait_for(lambda _: any(map(matches, self.reports())), timeout=timeout)
        report = next(r for r in reversed(self.reports()) if matches(r))
        return {**report, "last": find_outcome(report, digest)}


def readings(sub: Any) -> list[wire.HubReading]:
    out: list[wire.HubReading] = []
    for m in sub.messages:
        if m.topic.endswith("/data"):
            out.extend(wire.decode_data(m.payload))
    return out


def pm25_by_source(sub: Any) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for r in readings(sub):
        if r.quantity == "pm2_5_ugm3":
            seen.setdefault(r.source, []).append(round(r.value * 10))
    return seen


async def start(agent: Any, sub: Any) -> None:
    """Starts the agent and returns once this run has connected and its sources are open."""
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sub.wait_for(lambda ms: any(m.topic.endswith("/config/state") for m in ms))
    await sources_open(agent)


async def test_a_signed_push_adds_and_removes_sources_live_and_readings_keep_flowing(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
    keys: dict[str, Any],
) -> None:
    old_port, new_port = make_pty("ttyOLD"), make_pty("ttyNEW")
    local = local_config(tmp_path, mosquitto, topic_prefix, keys, {"pm-old": old_port.link})
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    channel = ConfigChannel(mosquitto, topic_prefix, sub)
    agent = agent_process(write_config(local))
    await start(agent, sub)
    first = channel.reports()[-1]
    assert first["version"] == 0 and first["groups"] == ["north"]
    for n in range(1, 6):
        await old_port.write_async(frame(n))
    await sub.wait_for(lambda _: len(pm25_by_source(sub).get("pm-old", [])) == 5)

    new = pushed(
        local,
        sources=[
            {
                "type": "serial",
                "name": "pm-new",
                "port": str(new_port.link),
                "driver": "sds011",
                "reopen_max_s": 0.5,
            }
        ],
    )
    digest = await channel.publish(
        sign_config(keys["private"], new, version=1000, target={"gateway": "gw-test"})
    )
    report = await channel.report_for(digest)
    assert report["last"]["result"] == "applied", report
    assert report["version"] == 1000
    assert report["last"]["changes"] == ["source pm-new added", "source pm-old removed"]
    await sources_open(agent, "pm-new")
    for n in range(6, 11):
        await new_port.write_async(frame(n))
    await sub.wait_for(lambda _: len(pm25_by_source(sub).get("pm-new", [])) == 5)
    assert pm25_by_source(sub) == {"pm-old": [1, 2, 3, 4, 5], "pm-new": [6, 7, 8, 9, 10]}
    keys_seen = [r.key for r in readings(sub)]
    assert len(keys_seen) == len(set(keys_seen)), "nothing sent twice by the change"
    assert agent.starts == 1 and agent.running, "applied live, no restart"

    # A merge patch against the version in force changes one setting and keeps the rest; it
    # restarts the uplink while readings stream: none lost, none sent twice.
    async def stream() -> None:
        for n in range(11, 211):
            await new_port.write_async(frame(n))
            await asyncio.sleep(0.005)

    streaming = asyncio.create_task(stream())
    await asyncio.sleep(0.4)
    patch = sign_config(
        keys["private"],
        {"hub": {"flush_interval_s": 0.05}},
        version=1001,
        target={},
        base_version=1000,
    )
    report = await channel.report_for(await channel.publish(patch))
    await streaming
    assert report["last"]["result"] == "applied", report
    assert report["last"]["changes"] == ["hub changed (uplink restarted)"]
    await sub.wait_for(lambda _: len(set(pm25_by_source(sub)["pm-new"])) == 205, timeout=15)
    assert pm25_by_source(sub)["pm-new"] == list(range(6, 211))
    keys_seen = [r.key for r in readings(sub)]
    assert len(keys_seen) == len(set(keys_seen)), "the uplink restart sent nothing twice"

    # The push survives a restart: the agent boots into version 1001 with pm-new.
    agent.terminate()
    assert agent.wait() == 0
    agent.start()
    await agent.wait_for_log("remote config version 1001")
    await sources_open(agent)
    for n in range(211, 213):
        await new_port.write_async(frame(n))
    await sub.wait_for(lambda _: pm25_by_source(sub)["pm-new"][-2:] == [211, 212])


def _body_with(keys: dict[str, Any], document: dict[str, Any], version: int) -> bytes:
    return sign_config(keys["private"], document, version=version, target={})


async def test_bad_pushes_are_rejected_with_the_reason_and_change_nothing(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
    keys: dict[str, Any],
) -> None:
    port = make_pty("ttyPM")
    local = local_config(tmp_path, mosquitto, topic_prefix, keys, {"pm": port.link})
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    channel = ConfigChannel(mosquitto, topic_prefix, sub)
    agent = agent_process(write_config(local))
    await start(agent, sub)
    good = pushed(local)
    v1 = _body_with(keys, good, 10)
    await channel.report_for(await channel.publish(v1), result="applied")
    v2 = _body_with(keys, pushed(local, hub={**good["hub"], "flush_interval_s": 0.25}), 20)
    in_force = await channel.report_for(await channel.publish(v2), result="applied")

    envelope = json.loads(v2)
    tampered_body = envelope["signed"].replace('"flush_interval_s":0.25', '"flush_interval_s":9')
    assert tampered_body != envelope["signed"]
    data_dir = Path(local["gateway"]["data_dir"])
    hostile_hub = {**good["hub"], "ca_file": str(data_dir / ".." / ".." / "etc" / "shadow")}
    cases: list[tuple[str, bytes, str]] = [
        (
            "unsigned",
            json.dumps({"type": signing.ENVELOPE_TYPE, "signed": envelope["signed"]}).encode(),
            "unsigned",
        ),
        (
            "wrongly signed",
            sign_config(keys["rogue"], good, version=30, target={}),
            "does not trust",
        ),
        ("tampered", json.dumps({**envelope, "signed": tampered_body}).encode(), "bad signature"),
        ("replayed", v1, "version 10 is not newer than 20"),
        ("oversized", b"{" + b" " * 5000 + b"}", "exceeds max_payload_bytes 4096"),
        ("malformed", b"\x93\x01\x02{not json", "not valid JSON"),
        (
            "schema-invalid",
            _body_with(keys, pushed(local, hub={**good["hub"], "flush_interval_s": "soon"}), 31),
            "hub.flush_interval_s: expected a number",
        ),
        (
            "path-escaping",
            _body_with(keys, pushed(local, hub=hostile_hub), 32),
            "outside the data directory",
        ),
        (
            "port outside /dev",
            _body_with(
                keys,
                pushed(
                    local,
                    sources=[
                        {"type": "serial", "name": "x", "port": "/etc/passwd", "driver": "sds011"}
                    ],
                ),
                33,
            ),
            "is not a serial port a push may name",
        ),
        (
            "tls off",
            _body_with(keys, pushed(local, hub={**good["hub"], "tls_verify": False}), 34),
            "may not turn TLS verification off",
        ),
        (
            "identity",
            _body_with(keys, {**good, "gateway": {"id": "gw-evil"}}, 35),
            "gateway.id: a push may not change it",
        ),
        (
            "trust",
            _body_with(keys, {**good, "remote_config": {"trusted_keys": ["/tmp/x.pub"]}}, 36),
            "only the local file sets the remote-config section",
        ),
        (
            "someone else's",
            sign_config(keys["private"], good, version=37, target={"gateway": "gw-other"}),
            "addressed to gateway",
        ),
        (
            "inline password",
            _body_with(keys, pushed(local, hub={**good["hub"], "password": "hunter2"}), 38),
            "put the password in a file",
        ),
    ]
    for name, payload, reason in cases:
        report = await channel.report_for(await channel.publish(payload), result="rejected")
        assert reason in report["last"]["reason"], (name, report["last"]["reason"])
        assert (report["version"], report["hash"]) == (in_force["version"], in_force["hash"]), name
    assert "hunter2" not in agent.log_text()
    assert agent.running and agent.starts == 1
    await port.write_async(frame(42))
    await sub.wait_for(lambda _: pm25_by_source(sub).get("pm") == [42])


async def test_a_push_that_breaks_the_uplink_is_rolled_back_and_reported(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
    keys: dict[str, Any],
) -> None:
    port = make_pty("ttyPM")
    local = local_config(
        tmp_path, mosquitto, topic_prefix, keys, {"pm": port.link}, rollback_after_s=5
    )
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    channel = ConfigChannel(mosquitto, topic_prefix, sub)
    agent = agent_process(write_config(local))
    await start(agent, sub)
    good = pushed(local)
    wrong_port = {**good["hub"], "url": f"mqtt://127.0.0.1:{_closed_port()}"}
    digest = await channel.publish(_body_with(keys, pushed(local, hub=wrong_port), 500))
    await asyncio.sleep(1)
    for n in range(1, 4):  # readings taken while the gateway cannot reach the hub
        await port.write_async(frame(n))
    report = await channel.report_for(digest, result="rolled_back", timeout=20)
    assert "hub not reached within 5 s with version 500" in report["last"]["reason"]
    assert report["version"] == 0
    await sub.wait_for(lambda _: pm25_by_source(sub).get("pm") == [1, 2, 3])
    # The failed push stays retained on the broker; it must not be tried again and again.
    await asyncio.sleep(6)
    assert agent.log_text().count("rolled back to version 0") == 1
    assert agent.running and agent.starts == 1


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_kill_9_during_an_apply_boots_into_a_consistent_config_and_loses_nothing(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
    keys: dict[str, Any],
) -> None:
    port = make_pty("ttyPM")
    local = local_config(tmp_path, mosquitto, topic_prefix, keys, {"pm": port.link})
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/+/data", persistent=True)
    states = await hub_subscriber(mosquitto, f"{topic_prefix}/+/config/state")
    channel = ConfigChannel(mosquitto, topic_prefix, states)
    agent = agent_process(write_config(local))
    n = 0
    versions = []
    for round_, delay_s in enumerate([0.0, 0.005, 0.02, 0.05]):
        await start(agent, states)
        for _ in range(20):
            n += 1
            await port.write_async(frame(n))
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)  # committed: from here on the buffer must keep them
        flush = 0.2 + 0.01 * (round_ + 1)
        version = 100 + round_
        versions.append(version)
        await channel.publish(
            _body_with(
                keys, pushed(local, hub={**local["hub"], "flush_interval_s": flush}), version
            )
        )
        await asyncio.sleep(delay_s)
        agent.kill9()
        port.replug()
        remote = tmp_path / "data" / "remote-config"
        active = (
            json.loads((remote / "active.json").read_text())
            if (remote / "active.json").exists()
            else {"version": 0}
        )
        assert active["version"] in (0, *versions), active
    await start(agent, states)
    # After the last restart the retained push is in force: version and settings agree.
    await states.wait_for(lambda _: channel.reports()[-1]["version"] == versions[-1], timeout=15)
    status = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "status",
            "--json",
            "--config",
            str(agent.config_path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert json.loads(status.stdout)["config_version"] == versions[-1]
    agent.terminate()  # an orderly stop publishes what waits; the buffer file is free to read
    assert agent.wait() == 0
    stored = buffer_next_seq(tmp_path) - 1
    await sub.wait_for(lambda ms: len({r.key for r in readings(sub)}) >= stored, timeout=20)
    seqs = sorted({r.seq for r in readings(sub)})
    assert seqs == list(range(1, stored + 1)), "every accepted reading arrives"
    assert stored == n * 2, "every frame committed before a kill was kept"


async def test_a_key_rotation_signed_by_a_trusted_key_replaces_the_trust(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
    keys: dict[str, Any],
) -> None:
    local = local_config(tmp_path, mosquitto, topic_prefix, keys, {})
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    channel = ConfigChannel(mosquitto, topic_prefix, sub)
    agent = agent_process(write_config(local))
    await start(agent, sub)
    new_key, new_pub = signing.generate(tmp_path / "keys2", "ops2")
    rogue_rotation = sign_rotation(keys["rogue"], [str(new_pub)], version=5, target={})
    report = await channel.report_for(await channel.publish(rogue_rotation), result="rejected")
    assert "does not trust" in report["last"]["reason"]
    rotation = sign_rotation(keys["private"], [str(new_pub)], version=5, target={})
    report = await channel.report_for(await channel.publish(rotation), result="applied")
    new_id = signing.key_id(signing.load_public(new_pub))
    assert report["trusted_keys"] == [new_id]
    old_signed = _body_with(keys, pushed(local), 50)
    report = await channel.report_for(await channel.publish(old_signed), result="rejected")
    assert "does not trust" in report["last"]["reason"]
    new_signed = sign_config(signing.load_private(new_key), pushed(local), version=51, target={})
    report = await channel.report_for(await channel.publish(new_signed), result="applied")
    assert report["version"] == 51 and report["key_id"] == new_id


async def test_a_fleet_push_to_a_group_of_50_gateways_converges_and_the_cli_reports_each(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    keys: dict[str, Any],
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    fleet = subprocess.Popen(  # noqa: ASYNC220 - started once, read from a thread
        [
            sys.executable,
            "-m",
            "gateway.devtools.sim_fleet",
            "--count",
            "50",
            "--url",
            mosquitto.url,
            "--topic-prefix",
            topic_prefix,
            "--data-root",
            str(tmp_path / "fleet"),
            "--trusted-key",
            str(keys["pub"]),
            "--group",
            "north",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        assert fleet.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(fleet.stdout.readline), 60)
        assert "50 gateways connected" in line, line
        document = tmp_path / "fleet.toml"
        document.write_text(
            f'[hub]\nurl = "{mosquitto.url}"\ntopic_prefix = "{topic_prefix}"\n'
            "flush_interval_s = 10\nmetrics_interval_s = 3600\nreconnect_min_s = 0.2\n"
            'reconnect_max_s = 5\n\n[gateway]\nlog_level = "warning"\n'
        )
        push = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "config",
                "push",
                "--url",
                mosquitto.url,
                "--topic-prefix",
                topic_prefix,
                "--group",
                "north",
                "--key",
                str(keys["private_path"]),
                "--timeout",
                "60",
                str(document),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
        )
        assert push.returncode == 0, push.stdout + push.stderr
        lines = push.stdout.splitlines()
        answered = {line.split()[1] for line in lines[:-1] if " applied " in line}
        assert answered == {f"gw-{i:04d}" for i in range(50)}
        assert lines[-1].startswith("50 of 50 gateways applied it")

        # Every gateway now runs it: a second push of a patch needs version 1 in force.
        bad = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "config",
                "push",
                "--url",
                mosquitto.url,
                "--topic-prefix",
                topic_prefix,
                "--group",
                "north",
                "--key",
                str(keys["private_path"]),
                "--timeout",
                "30",
                "--base-version",
                "1",
                str(_write(tmp_path / "patch.json", {"hub": {"flush_interval_s": 20}})),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
        )
        assert bad.returncode == 1
        assert bad.stdout.count("rejected") == 50 and "patch against version 1" in bad.stdout

        nobody = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "config",
                "push",
                "--url",
                mosquitto.url,
                "--topic-prefix",
                topic_prefix,
                "--gateway",
                "gw-9999",
                "--key",
                str(keys["private_path"]),
                "--timeout",
                "2",
                str(document),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
        )
        assert nobody.returncode == 1
        assert "gw-9999" in nobody.stdout and "no answer within 2 s" in nobody.stdout
    finally:
        fleet.terminate()
        fleet.wait(timeout=30)
        if fleet.stdout is not None:
            fleet.stdout.close()  # else a ResourceWarning, whenever the GC gets to it


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document))
    return path


async def test_an_uplink_change_waits_for_batches_in_flight_so_nothing_is_sent_twice(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
    keys: dict[str, Any],
) -> None:
    async with Relay(mosquitto, delay_s=0.3) as link:
        port = make_pty("ttyPM")
        local = local_config(tmp_path, mosquitto, topic_prefix, keys, {"pm": port.link})
        local["hub"].update(
            url=link.url, flush_interval_s=0.05, batch_max_readings=20, max_inflight_batches=8
        )
        sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
        channel = ConfigChannel(mosquitto, topic_prefix, sub)
        agent = agent_process(write_config(local))
        await start(agent, sub)

        async def stream() -> None:
            for n in range(1, 401):
                await port.write_async(frame(n))
                await asyncio.sleep(0.004)

        streaming = asyncio.create_task(stream())
        await asyncio.sleep(0.8)  # batches are in flight, their PUBACKs 0.3 s away
        changed = pushed(local, hub={**local["hub"], "flush_interval_s": 0.06})
        report = await channel.report_for(await channel.publish(_body_with(keys, changed, 7)))
        await streaming
        assert report["last"]["result"] == "applied", report
        await sub.wait_for(lambda _: len(set(pm25_by_source(sub).get("pm", []))) == 400, timeout=20)
        keys_seen = [r.key for r in readings(sub)]
        assert len(keys_seen) == len(set(keys_seen)) == 800, "nothing sent twice by the switch"
