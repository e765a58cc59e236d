"""Remote config against hostile or careless input, without a broker: deep nesting, strings
no file system takes, ports that are consoles, floods of junk, bursts of real pushes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, ConfigError, RemoteConfigSection, parse_config
from gateway.hub.fleet import sign_config
from gateway.remote import signing, store
from gateway.remote.boot import config_at_boot
from gateway.remote.channel import RemoteConfig
from gateway.remote.policy import Changes, PolicyError, candidate_config, pushable_port
from gateway.remote.report import find_outcome


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Any, Path]:
    private, public = signing.generate(tmp_path / "keys", "ops")
    return signing.load_private(private), public


def local_document(tmp_path: Path, public: Path) -> dict[str, Any]:
    return {
        "gateway": {"id": "gw-1", "data_dir": str(tmp_path / "data")},
        "hub": {"url": "mqtts://hub.example.org"},
        "sources": [{"type": "serial", "name": "pm", "port": "/dev/ttyUSB0", "driver": "sds011"}],
        "remote_config": {"trusted_keys": [str(public)], "groups": ["north"]},
    }


class FakeAgent:
    """Applies instantly and always reaches the hub."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.applied: list[Changes] = []

    async def apply(self, config: Config, changes: Changes) -> None:
        self.config = config
        self.applied.append(changes)

    async def hub_reached(self) -> None:
        return None

    def hub_last_error(self) -> str:
        return ""


class Gateway:
    """A RemoteConfig with its worker running and every published report recorded."""

    def __init__(self, remote: RemoteConfig, agent: FakeAgent) -> None:
        self.remote, self.agent = remote, agent
        self.published: list[dict[str, Any]] = []

    async def until(self, condition: Callable[[], bool], timeout_s: float = 10) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():  # noqa: ASYNC110 - polls what the fake recorded
                await asyncio.sleep(0.01)

    def outcome(self, digest: str) -> dict[str, Any] | None:
        for report in reversed(self.published):
            found = find_outcome(report, digest)
            if found is not None:
                return found
        return None


@pytest.fixture
async def gateway(tmp_path: Path, keypair: Any) -> AsyncIterator[Gateway]:
    document = local_document(tmp_path, keypair[1])
    local = parse_config(document)
    agent = FakeAgent(local)
    holder: list[Gateway] = []

    async def publish(payload: bytes) -> bool:
        holder[0].published.append(json.loads(payload))
        return True

    remote = RemoteConfig(
        local_document=document,
        local=local,
        boot=config_at_boot(document, local),
        applier=agent,
        publish_state=publish,
        junk_report_interval_s=0.2,
    )
    holder.append(Gateway(remote, agent))
    task = asyncio.create_task(remote.run())
    yield holder[0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


# --- 1. nesting and strings ------------------------------------------------------------------


@pytest.mark.parametrize("depth", [600, 750, 900])
@pytest.mark.parametrize("kind", ["config", "patch"])
async def test_a_signed_push_nested_hundreds_deep_is_rejected_with_a_reason(
    gateway: Gateway, keypair: Any, depth: int, kind: str
) -> None:
    document = {"hub": {"url": "mqtts://h"}, "x": nested(depth)}
    base = 0 if kind == "patch" else None
    payload = sign_config(keypair[0], document, version=5, target={}, base_version=base)
    gateway.remote.offer(payload, retained=False)
    digest = hashlib.sha256(payload).hexdigest()
    await gateway.until(lambda: gateway.outcome(digest) is not None)
    outcome = gateway.outcome(digest)
    assert outcome is not None and outcome["result"] == "rejected"
    assert "nests objects or arrays more than 32 deep" in outcome["reason"]
    good = sign_config(keypair[0], {"hub": {"url": "mqtts://h"}}, version=6, target={})
    gateway.remote.offer(good, retained=False)
    await gateway.until(lambda: gateway.published[-1].get("version") == 6)  # the worker lives


@pytest.mark.parametrize(
    ("value", "shown"), [("/data/ca\x00.pem", "U+0000"), ("/data/ca\ud800.pem", "U+D800")]
)
async def test_a_file_name_with_a_nul_or_a_lone_surrogate_is_rejected_with_a_reason(
    gateway: Gateway, keypair: Any, value: str, shown: str
) -> None:
    payload = sign_config(
        keypair[0], {"hub": {"url": "mqtts://h", "ca_file": value}}, version=7, target={}
    )
    gateway.remote.offer(payload, retained=False)
    digest = hashlib.sha256(payload).hexdigest()
    await gateway.until(lambda: gateway.outcome(digest) is not None)
    outcome = gateway.outcome(digest)
    assert outcome is not None and outcome["result"] == "rejected"
    assert outcome["reason"].startswith("invalid config: hub.ca_file: expected text without NUL")
    assert shown in outcome["reason"]
    assert gateway.agent.applied == []


def test_nesting_is_measured_before_parsing_and_brackets_in_strings_do_not_count() -> None:
    assert signing.nesting_depth('{"a": "[[[{{{", "b": [1, {"c": "]]]\\"["}]}') == 3
    assert signing.nesting_depth("[" * 5000) == 5000


# --- 2. serial ports a push may name ---------------------------------------------------------

DEFAULT_PORTS = RemoteConfigSection().allowed_ports


@pytest.mark.parametrize(
    "port",
    [
        "/dev/ttyS0",
        "/dev/ttyUSB12",
        "/dev/ttyACM0",
        "/dev/ttyAMA0",
        "/dev/serial/by-id/usb-Silicon_Labs_CP2102_USB_to_UART-if00-port0",
        "/dev/citygw/pm-north",
    ],
)
def test_serial_devices_of_the_documented_shapes_may_be_pushed(port: str) -> None:
    assert pushable_port(port, DEFAULT_PORTS)


@pytest.mark.parametrize(
    "port",
    [
        "/dev/tty0",
        "/dev/tty",
        "/dev/tty1",
        "/dev/ttyprintk",
        "/dev/console",
        "/dev/ttyUSB0\x00",
        "/dev/ttyS" + "1" * 5000,
        "/dev/ttyUSB0/../tty0",
        "/dev/serial/by-id/../../tty0",
        "/dev/citygw/a\nb",
        "/dev/citygw/",
        "/etc/passwd",
    ],
)
def test_consoles_and_malformed_names_may_not_be_pushed_even_under_a_broad_pattern(
    port: str,
) -> None:
    assert not pushable_port(port, DEFAULT_PORTS)
    assert not pushable_port(port, ["/dev/*", "/dev/tty*"])


@pytest.mark.parametrize("port", ["/dev/tty0", "/dev/ttyUSB0\x00", "/dev/ttyS" + "1" * 5000])
def test_the_policy_refuses_a_pushed_console_or_malformed_port(
    tmp_path: Path, keypair: Any, port: str
) -> None:
    local_doc = local_document(tmp_path, keypair[1])
    source = {"type": "serial", "name": "x", "port": port, "driver": "sds011"}
    with pytest.raises((PolicyError, ConfigError)):
        candidate_config(
            {"hub": local_doc["hub"], "sources": [source]}, local_doc, parse_config(local_doc)
        )


# --- 6. identifiers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("gateway", "id", "gw-0001\n"),
        ("remote_config", "groups", ["north\n"]),
    ],
)
def test_an_identifier_ending_in_a_newline_is_refused(section: str, key: str, value: Any) -> None:
    document: dict[str, Any] = {
        "gateway": {"id": "gw-0001"},
        "hub": {"url": "mqtt://127.0.0.1"},
    }
    document.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        parse_config(document)


def test_a_ble_address_or_adapter_ending_in_a_newline_is_refused() -> None:
    base = {"gateway": {"id": "gw-1"}, "hub": {"url": "mqtt://127.0.0.1"}}
    for source, where in (
        ({"type": "ble", "name": "b", "adapter": "hci0\n"}, "adapter"),
        (
            {
                "type": "ble",
                "name": "b",
                "devices": [{"name": "d", "kind": "ruuvi", "address": "AA:BB:CC:DD:EE:FF\n"}],
            },
            "address",
        ),
    ):
        with pytest.raises(ConfigError, match=where):
            parse_config({**base, "sources": [source]})


def test_check_config_refuses_a_gateway_id_ending_in_a_newline(tmp_path: Path) -> None:
    from gateway.cli import main

    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw-0001\\n"\n\n[hub]\nurl = "mqtt://127.0.0.1"\n')
    assert main(["check-config", str(path)]) != 0


# --- 3. junk floods, 4. bursts ----------------------------------------------------------------


def junk(index: int, trusted_kid: str) -> bytes:
    """What anyone on the broker can send: five kinds, varied content (and key ids)."""
    kind = index % 5
    if kind == 0:
        return json.dumps({"type": signing.ENVELOPE_TYPE, "signed": f"{index}"}).encode()
    if kind == 1:
        return json.dumps(
            {"type": signing.ENVELOPE_TYPE, "key_id": os.urandom(8).hex(), "sig": "", "signed": ""}
        ).encode()
    if kind == 2:
        sig = "A" * 86 + "=="
        signed = json.dumps({"kind": "config", "version": 10**12 + index})
        return json.dumps(
            {"type": signing.ENVELOPE_TYPE, "key_id": trusted_kid, "sig": sig, "signed": signed}
        ).encode()
    if kind == 3:
        return b"\x93" + os.urandom(20)
    return b"{" + b" " * 70_000 + b"}"


async def test_a_valid_push_after_2000_junk_pushes_is_applied_and_junk_costs_no_disk_writes(
    gateway: Gateway, keypair: Any, monkeypatch: Any, caplog: Any
) -> None:
    writes: list[str] = []
    real_write = store.write_atomically

    def counting(path: Path, data: bytes, *, durable: bool = True) -> None:
        writes.append(path.name)
        real_write(path, data, durable=durable)

    monkeypatch.setattr(store, "write_atomically", counting)
    kid = signing.key_id(signing.load_public(keypair[1]))
    valid = sign_config(keypair[0], {"hub": {"url": "mqtts://h"}}, version=99, target={})
    caplog.set_level(logging.WARNING, logger="gateway.remote.channel")
    loop = asyncio.get_running_loop()
    started = loop.time()
    for index in range(2000):
        gateway.remote.offer(junk(index, kid), retained=False)
    gateway.remote.offer(valid, retained=False)
    assert loop.time() - started < 1.0, "2,000 junk pushes are screened within a second"
    digest = hashlib.sha256(valid).hexdigest()
    await gateway.until(lambda: gateway.outcome(digest) is not None)
    outcome = gateway.outcome(digest)
    assert outcome is not None and outcome["result"] == "applied"
    await asyncio.sleep(0.5)  # any coalesced junk report goes out
    report = gateway.published[-1]
    assert report["version"] == 99
    assert report["junk"]["count"] == 2000
    assert report["junk"]["by_kind"] == {
        "bad_signature": 400,
        "not_json": 400,
        "oversized": 400,
        "unsigned": 400,
        "untrusted_key": 400,
    }
    assert writes.count("state.json") <= 2, writes
    assert len(gateway.published) <= 10, "junk reports are coalesced"
    rejected = [r for r in caplog.records if "push rejected" in r.getMessage()]
    assert len(rejected) <= 5, "the log's rate limit keys on the kind, not on the key id"


async def test_a_burst_of_30_pushes_1_ms_apart_gets_an_outcome_for_each(
    gateway: Gateway, keypair: Any
) -> None:
    digests = []
    for n in range(30):
        level = ("info", "warning")[n % 2]
        payload = sign_config(
            keypair[0],
            {"hub": {"url": "mqtts://h"}, "gateway": {"log_level": level}},
            version=1000 + n,
            target={},
        )
        digests.append(hashlib.sha256(payload).hexdigest())
        gateway.remote.offer(payload, retained=False)
        await asyncio.sleep(0.001)
    await gateway.until(lambda: gateway.published and gateway.published[-1]["version"] == 1029)
    final = gateway.published[-1]
    outcomes = [find_outcome(final, d) for d in digests]
    assert all(o is not None and o["result"] == "applied" for o in outcomes), outcomes
    assert [o["version"] for o in outcomes if o] == list(range(1000, 1030))


async def test_replays_of_a_waiting_push_are_stale_at_once_and_cannot_crowd_the_queue(
    gateway: Gateway, keypair: Any
) -> None:
    payload = sign_config(keypair[0], {"hub": {"url": "mqtts://h"}}, version=5, target={})
    for _ in range(500):
        gateway.remote.offer(payload, retained=False)
    newer = sign_config(keypair[0], {"hub": {"url": "mqtts://h"}}, version=6, target={})
    gateway.remote.offer(newer, retained=False)
    await gateway.until(lambda: bool(gateway.published) and gateway.published[-1]["version"] == 6)
    await asyncio.sleep(0.3)
    assert gateway.published[-1]["junk"]["by_kind"] == {"stale": 499}


# --- 5. forged reports, insecure hubs -------------------------------------------------------


def _watch(digest: str, version: int) -> Any:
    from gateway.hub.fleet import _Watch

    watch = _Watch({"gateway": "gw-1"}, digest, version, None, lambda answer: None)
    watch.published_at = 0.0
    return watch


def _report(gateway: str, digest: str, version: int) -> bytes:
    outcome = {"result": "applied", "push": digest, "version": version, "at_ms": 1}
    return json.dumps({"gateway": gateway, "version": version, "last": outcome}).encode()


def test_config_push_ignores_a_report_that_names_another_gateway_or_another_version() -> None:
    watch = _watch("d" * 64, 42)
    watch.state("gw-1", _report("gw-2", "d" * 64, 42))  # copied from another gateway's topic
    watch.state("gw-1", _report("gw-1", "d" * 64, 41))  # not the pushed version
    watch.state("gw-1", _report("gw-1", "e" * 64, 42))  # another push
    assert watch.outcome.answers == {}
    watch.state("gw-1", _report("gw-1", "d" * 64, 42))
    assert watch.outcome.answers["gw-1"].result == "applied"


def test_config_push_finds_its_answer_in_the_recent_list_after_later_pushes() -> None:
    watch = _watch("d" * 64, 42)
    mine = {"result": "applied", "push": "d" * 64, "version": 42, "at_ms": 1}
    later = {"result": "applied", "push": "f" * 64, "version": 43, "at_ms": 2}
    report = {"gateway": "gw-1", "version": 43, "last": later, "recent": [mine, later]}
    watch.state("gw-1", json.dumps(report).encode())
    assert watch.outcome.answers["gw-1"].detail.startswith("version 42")


@pytest.mark.parametrize(
    ("hub", "warned"),
    [
        ({"url": "mqtts://hub.example.org"}, None),
        ({"url": "mqtt://127.0.0.1:1883"}, None),
        ({"url": "mqtt://localhost"}, None),
        ({"url": "mqtt://hub.example.org"}, "plain mqtt:// to hub.example.org"),
        ({"url": "mqtts://hub.example.org", "tls_verify": False}, "tls_verify is false"),
    ],
)
def test_an_unverified_or_plain_text_hub_is_warned_about(
    hub: dict[str, Any], warned: str | None
) -> None:
    config = parse_config({"gateway": {"id": "gw-1"}, "hub": hub})
    warnings = config.hub.warnings()
    assert (warnings == []) if warned is None else (warned in " ".join(warnings))


def test_citygw_status_shows_the_insecure_hub_warning(tmp_path: Path, capsys: Any) -> None:
    from gateway.cli import main

    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[gateway]\nid = "gw-1"\ndata_dir = "{tmp_path}"\n\n'
        '[hub]\nurl = "mqtts://hub.example.org"\ntls_verify = false\n'
    )
    assert main(["status", "--config", str(path)]) == 0
    assert "WARNING: hub.tls_verify is false" in capsys.readouterr().out
