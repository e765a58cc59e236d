"""Remote config without a broker: envelopes, the push policy, merge patches, persistence,
the apply/rollback decisions (against a recording stand-in for the agent) and the CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.config import Config, ConfigError, parse_config
from gateway.hub.fleet import describe_diff, sign_config
from gateway.remote import signing
from gateway.remote.boot import config_at_boot
from gateway.remote.channel import RemoteConfig
from gateway.remote.policy import Changes, PolicyError, candidate_config, diff, merge_patch
from gateway.remote.store import Store, write_atomically


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Any, Path]:
    private, public = signing.generate(tmp_path / "keys", "ops")
    return signing.load_private(private), public


def local_document(tmp_path: Path, public: Path, **remote: Any) -> dict[str, Any]:
    return {
        "gateway": {"id": "gw-1", "data_dir": str(tmp_path / "data")},
        "hub": {"url": "mqtts://hub.example.org", "password_file": "/etc/citygw/hub.password"},
        "sources": [{"type": "serial", "name": "pm", "port": "/dev/ttyUSB0", "driver": "sds011"}],
        "remote_config": {"trusted_keys": [str(public)], "groups": ["north"], **remote},
    }


# --- envelopes -------------------------------------------------------------------------------


def test_a_signed_envelope_verifies_and_any_change_to_it_does_not(keypair: Any) -> None:
    private, public = keypair
    trusted = {signing.key_id(signing.load_public(public)): signing.load_public(public)}
    payload = signing.sign(
        private,
        {"kind": "config", "version": 7, "issued_ms": 1, "config": {"hub": {"url": "mqtt://h"}}},
    )
    envelope = signing.verify(payload, trusted)
    assert (envelope.kind, envelope.version, envelope.body["config"]) == (
        "config",
        7,
        {"hub": {"url": "mqtt://h"}},
    )
    document = json.loads(payload)
    for tampered in (
        {**document, "signed": document["signed"].replace('"version":7', '"version":8')},
        {**document, "sig": base64.b64encode(b"\0" * 64).decode()},
        {**document, "sig": "not base64!"},
        {**document, "key_id": "0" * 16},
    ):
        with pytest.raises(signing.EnvelopeError):
            signing.verify(json.dumps(tampered).encode(), trusted)


def test_a_signature_made_without_the_citygw_context_does_not_verify(keypair: Any) -> None:
    private, public = keypair
    key = signing.load_public(public)
    signed = json.dumps({"kind": "config", "version": 1, "issued_ms": 1, "config": {}})
    raw_signature = private.sign(signed.encode()).signature  # e.g. from another tool
    payload = json.dumps(
        {
            "type": signing.ENVELOPE_TYPE,
            "key_id": signing.key_id(key),
            "sig": base64.b64encode(raw_signature).decode(),
            "signed": signed,
        }
    )
    with pytest.raises(signing.EnvelopeError, match="bad signature"):
        signing.verify(payload.encode(), {signing.key_id(key): key})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kind": "shell", "version": 1, "issued_ms": 1}, "signed.kind"),
        ({"kind": "config", "version": 0, "issued_ms": 1}, "signed.version"),
        ({"kind": "config", "version": True, "issued_ms": 1}, "signed.version"),
        ({"kind": "config", "version": 1}, "signed.issued_ms"),
        (
            {"kind": "config", "version": 1, "issued_ms": 1, "target": {"host": "x"}},
            "signed.target",
        ),
    ],
)
def test_signed_bodies_of_the_wrong_shape_are_refused(
    keypair: Any, body: dict[str, Any], reason: str
) -> None:
    private, public = keypair
    key = signing.load_public(public)
    with pytest.raises(signing.EnvelopeError, match=reason):
        signing.verify(signing.sign(private, body), {signing.key_id(key): key})


def test_key_files_are_pem_as_openssl_writes_them_and_bad_ones_are_named(
    tmp_path: Path, keypair: Any
) -> None:
    _, public = keypair
    assert (tmp_path / "keys" / "ops.key").stat().st_mode & 0o777 == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA")
    with pytest.raises(FileExistsError):
        signing.generate(tmp_path / "keys", "ops")
    rsa_like = tmp_path / "rsa.pub"
    rsa_like.write_text(
        "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAA==\n"
        "-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(signing.KeyFileError, match="not an Ed25519 key"):
        signing.load_public(rsa_like)
    with pytest.raises(signing.KeyFileError, match="cannot read"):
        signing.load_public(tmp_path / "missing.pub")
    with pytest.raises(signing.KeyFileError, match="expected a PEM PUBLIC KEY"):
        signing.load_public(tmp_path / "keys" / "ops.key")


# --- merge patch (RFC 7396, appendix A) ------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7396(target: Any, patch: Any, result: Any) -> None:
    before = json.dumps(target)
    assert merge_patch(target, patch) == result
    assert json.dumps(target) == before, "the target is not modified"


# --- policy ----------------------------------------------------------------------------------


def _push(tmp_path: Path, public: Path, **changes: Any) -> tuple[dict[str, Any], Config]:
    local_doc = local_document(tmp_path, public)
    pushed = {k: v for k, v in local_doc.items() if k not in ("gateway", "remote_config")}
    pushed.update(changes)
    return candidate_config(pushed, local_doc, parse_config(local_doc))


def test_the_local_file_supplies_identity_data_dir_and_trust(tmp_path: Path, keypair: Any) -> None:
    document, config = _push(tmp_path, keypair[1], hub={"url": "mqtts://other.example.org"})
    assert config.gateway.id == "gw-1"
    assert config.gateway.data_dir == str(tmp_path / "data")
    assert document["remote_config"]["trusted_keys"] == [str(keypair[1])]
    assert config.hub.host == "other.example.org"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"gateway": {"id": "gw-2"}}, "gateway.id: a push may not change it"),
        ({"gateway": {"data_dir": "/"}}, "gateway.data_dir: a push may not change it"),
        ({"remote_config": {"trusted_keys": []}}, "only the local file sets"),
        ({"hub": {"url": "mqtt://hub.example.org"}}, "from mqtts:// to mqtt://"),
        ({"hub": {"url": "mqtts://h", "tls_verify": False}}, "turn TLS verification off"),
        ({"hub": {"url": "mqtts://h", "password": "x"}}, "hub.password"),
        ({"hub": {"url": "mqtts://h", "ca_file": "/etc/ssl/private/key.pem"}}, "outside the data"),
        ({"hub": {"url": "mqtts://h", "ca_file": "data/ca.pem"}}, "absolute path"),
        (
            {
                "sources": [
                    {
                        "type": "serial",
                        "name": "x",
                        "port": "/dev/ttyUSB0/../../etc/shadow",
                        "driver": "sds011",
                    }
                ]
            },
            "not a serial port a push may name",
        ),
        (
            {
                "sources": [
                    {"type": "serial", "name": "x", "port": "/proc/self/mem", "driver": "sds011"}
                ]
            },
            "not a serial port a push may name",
        ),
    ],
)
def test_the_policy_refuses_what_a_push_may_not_do(
    tmp_path: Path, keypair: Any, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(PolicyError, match=reason.replace("(", r"\(")):
        _push(tmp_path, keypair[1], **changes)


def test_files_in_the_data_dir_or_named_locally_are_allowed_but_not_via_symlinks_out(
    tmp_path: Path, keypair: Any
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _, config = _push(
        tmp_path,
        keypair[1],
        hub={
            "url": "mqtts://h",
            "ca_file": str(data / "certs" / "ca.pem"),
            "password_file": "/etc/citygw/hub.password",
        },
    )
    assert config.hub.ca_file == str(data / "certs" / "ca.pem")
    (data / "escape").symlink_to("/etc")
    with pytest.raises(PolicyError, match="outside the data directory"):
        _push(
            tmp_path,
            keypair[1],
            hub={"url": "mqtts://h", "ca_file": str(data / "escape" / "shadow")},
        )


def test_schema_errors_in_a_push_name_the_exact_path(tmp_path: Path, keypair: Any) -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\]\.baud"):
        _push(
            tmp_path,
            keypair[1],
            sources=[
                {"type": "serial", "name": "x", "port": "/dev/ttyS0", "driver": "sds011", "baud": 7}
            ],
        )


def test_diff_names_what_restarts(tmp_path: Path, keypair: Any) -> None:
    local = parse_config(local_document(tmp_path, keypair[1]))
    _, new = _push(
        tmp_path,
        keypair[1],
        hub={
            "url": "mqtts://hub.example.org",
            "password_file": "/etc/citygw/hub.password",
            "flush_interval_s": 5,
        },
        sources=[
            {"type": "serial", "name": "pm", "port": "/dev/ttyUSB1", "driver": "sds011"},
            {"type": "serial", "name": "pm2", "port": "/dev/ttyUSB2", "driver": "pms5003"},
        ],
    )
    changes = diff(local, new)
    assert changes == Changes(sources_added=["pm2"], sources_changed=["pm"], hub=True)
    assert changes.describe() == [
        "source pm2 added",
        "source pm changed (restarted)",
        "hub changed (uplink restarted)",
    ]
    assert not diff(local, local)


def test_describe_diff_shows_keys_and_named_sources(tmp_path: Path, keypair: Any) -> None:
    old = local_document(tmp_path, keypair[1])
    new = json.loads(json.dumps(old))
    new["hub"]["flush_interval_s"] = 5
    new["sources"].append(
        {"type": "serial", "name": "b", "port": "/dev/ttyS1", "driver": "pms5003"}
    )
    assert describe_diff(old, new) == [
        "hub.flush_interval_s: (absent) -> 5",
        'sources[b]: (absent) -> {"type": "serial", "name": "b", "port": "/dev/ttyS1", '
        '"driver": "pms5003"}',
        "=> source b added",
        "=> hub changed (uplink restarted)",
    ]


# --- persistence -----------------------------------------------------------------------------


def test_atomic_writes_leave_the_old_or_the_new_file_whole(
    tmp_path: Path, monkeypatch: Any
) -> None:
    path = tmp_path / "active.json"
    write_atomically(path, b'{"version": 1}')

    def power_cut(*_: Any) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError):
        write_atomically(path, b'{"version": 2}')
    assert json.loads(path.read_bytes()) == {"version": 1}


def test_boot_falls_back_from_a_push_that_no_longer_applies(tmp_path: Path, keypair: Any) -> None:
    local_doc = local_document(tmp_path, keypair[1])
    local = parse_config(local_doc)
    store = Store(local.data_dir)
    from gateway.remote.store import InForce

    good = {k: v for k, v in local_doc.items() if k != "remote_config"}
    good = {**good, "hub": {**good["hub"], "flush_interval_s": 7}}
    store.save_active(
        InForce(version=5, document={**good, "hub": {"url": "ftp://x"}}),
        last_good=InForce(version=4, document=good),
    )
    boot = config_at_boot(local_doc, local)
    assert boot.in_force.version == 4 and boot.config.hub.flush_interval_s == 7
    assert "version 5 (in force) no longer applies: hub.url" in boot.notes[0]
    (store.dir / "last-good.json").write_text("{damaged")
    boot = config_at_boot(local_doc, local)
    assert boot.in_force.version == 0 and boot.config == local


# --- decisions, against a stand-in for the agent ---------------------------------------------


class FakeAgent:
    """Records what the remote config asks of the agent; `reachable` decides the health check."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.applied: list[Changes] = []
        self.reachable = True
        self.reached = asyncio.Event()

    async def apply(self, config: Config, changes: Changes) -> None:
        self.config = config
        self.applied.append(changes)
        if self.reachable:
            self.reached.set()

    async def hub_reached(self) -> None:
        await self.reached.wait()

    def hub_last_error(self) -> str:
        return "[Errno 111] Connection refused"


async def test_a_hub_change_that_cannot_connect_rolls_back_and_stays_rolled_back(
    tmp_path: Path, keypair: Any
) -> None:
    private, public = keypair
    local_doc = local_document(tmp_path, public, rollback_after_s=5)
    local = parse_config(local_doc)
    agent = FakeAgent(local)
    published: list[dict[str, Any]] = []

    async def publish(payload: bytes) -> bool:
        published.append(json.loads(payload))
        return True

    remote = RemoteConfig(
        local_document=local_doc,
        local=local,
        boot=config_at_boot(local_doc, local),
        applier=agent,
        publish_state=publish,
    )
    agent.reachable = False
    bad = sign_config(
        private, {"hub": {"url": "mqtts://nowhere.example.org"}}, version=9, target={}
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    await remote.handle(bad, retained=False)
    assert loop.time() - started >= 5
    assert published[-1]["last"]["result"] == "rolled_back"
    assert "Connection refused" in published[-1]["last"]["reason"]
    assert published[-1]["version"] == 0 and agent.config == local
    assert [c.hub for c in agent.applied] == [True, True]
    await remote.handle(bad, retained=True)  # the broker hands it out again on reconnect
    assert len(agent.applied) == 2 and len(published) == 1


def test_cli_keys_sign_and_diff(tmp_path: Path, capsys: Any) -> None:
    assert main(["keys", "generate", "--out", str(tmp_path / "k")]) == 0
    assert "key id:" in capsys.readouterr().out
    config = tmp_path / "new.toml"
    config.write_text('[hub]\nurl = "mqtts://hub.example.org"\nflush_interval_s = 5\n')
    out = tmp_path / "push.json"
    assert (
        main(
            [
                "config",
                "sign",
                "--key",
                str(tmp_path / "k" / "ops.key"),
                "--version",
                "42",
                "--group",
                "north",
                str(config),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    key = signing.load_public(tmp_path / "k" / "ops.pub")
    envelope = signing.verify(out.read_bytes(), {signing.key_id(key): key})
    assert envelope.version == 42 and envelope.target == {"group": "north"}
    assert envelope.body["config"]["hub"]["flush_interval_s"] == 5
    bad = tmp_path / "bad.toml"
    bad.write_text('[hub]\nurl = "mqtts://hub.example.org"\nflush_interval_s = "soon"\n')
    assert main(["config", "sign", "--key", str(tmp_path / "k" / "ops.key"), str(bad)]) == 2
    assert "hub.flush_interval_s" in capsys.readouterr().err
    assert main(["config", "sign", "--key", str(tmp_path / "nokey"), str(config)]) == 2
    assert "citygw: key:" in capsys.readouterr().err
    assert main(["config", "diff", str(config), str(out)]) == 0
    assert capsys.readouterr().out == "no difference\n"


def test_cli_push_to_an_unreachable_broker_says_so_and_fails(tmp_path: Path, capsys: Any) -> None:
    import socket

    assert main(["keys", "generate", "--out", str(tmp_path / "k")]) == 0
    config = tmp_path / "new.toml"
    config.write_text('[hub]\nurl = "mqtts://hub.example.org"\n')
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"mqtt://127.0.0.1:{sock.getsockname()[1]}"
        code = main(
            [
                "config",
                "push",
                "--url",
                url,
                "--gateway",
                "gw-1",
                "--key",
                str(tmp_path / "k" / "ops.key"),
                str(config),
            ]
        )
    assert code == 1
    assert f"citygw config push: broker {url}: " in capsys.readouterr().err


def test_the_hub_decoder_reads_config_state_reports() -> None:
    from gateway.hub.tail import HubDecoder

    decoder = HubDecoder()
    event = decoder.decode(
        "citygw/v1/gw-7/config/state", b'{"version": 3, "last": {"result": "applied"}}'
    )
    assert (event.kind, event.gateway, event.fields) == (
        "config",
        "gw-7",
        {"version": 3, "last": {"result": "applied"}},
    )
    bad = decoder.decode("citygw/v1/gw-7/config/state", b"\x93\x01")
    assert (bad.kind, bad.gateway) == ("invalid", "gw-7")


def _uplink(**settings: Any) -> dict[str, Any]:
    return {"name": "citizens", "owners": ["operator"], "url": "mqtts://b.example", **settings}


@pytest.mark.parametrize(
    ("uplink", "reason"),
    [
        (_uplink(password="x"), r"uplinks\[0\].password: a push is readable"),
        (_uplink(password_file="/etc/shadow"), r"uplinks\[0\].password_file: .* outside the data"),
        (_uplink(ca_file="relative.pem"), r"uplinks\[0\].ca_file: expected an absolute path"),
    ],
)
def test_a_pushed_uplink_follows_the_hubs_rules_for_secrets_and_files(
    tmp_path: Path, keypair: Any, uplink: dict[str, Any], reason: str
) -> None:
    """Else a push could make the gateway send a file of its choosing, as a password, to a
    broker of its choosing."""
    with pytest.raises(PolicyError, match=reason):
        _push(tmp_path, keypair[1], uplinks=[uplink])


def test_a_pushed_uplink_is_a_change_of_uplinks(tmp_path: Path, keypair: Any) -> None:
    local = parse_config(local_document(tmp_path, keypair[1]))
    _, new = _push(tmp_path, keypair[1], uplinks=[_uplink()])
    changes = diff(local, new)
    assert changes.uplinks and not changes.hub
    assert "uplinks or owners changed (the uplinks concerned restarted)" in changes.describe()
