"""Owners' own keys: a push signed with one may change only that owner's sources and uplinks;
every other change is refused with the path it touched, and the config in force stays. The
operator's keys keep full power. Pure policy first, then the channel with a stand-in agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, parse_config
from gateway.hub.fleet import sign_config, sign_rotation
from gateway.remote import signing
from gateway.remote.boot import config_at_boot
from gateway.remote.channel import RemoteConfig
from gateway.remote.owners import check_owner_push
from gateway.remote.policy import Changes, PolicyError

MAC_GEMEENTE = "A4:C1:38:12:34:56"
KEY_GEMEENTE = "231d39c1d7cc1ab1aee224cd096db932"


def document(tmp_path: Path, **remote: Any) -> dict[str, Any]:
    return {
        "gateway": {"id": "gw-1", "data_dir": str(tmp_path / "data"), "owner": "gemeente"},
        "hub": {"url": "mqtts://hub.example.org", "owners": ["gemeente", "burgers"]},
        "sources": [
            {
                "type": "serial",
                "name": "pm-school",
                "owner": "burgers",
                "port": "/dev/ttyUSB0",
                "driver": "sds011",
                "register": {"purpose": "Fijnstof bij de school"},
            },
            {"type": "serial", "name": "pm-city", "port": "/dev/ttyUSB1", "driver": "pms5003"},
            {
                "type": "ble",
                "name": "ble-city",
                "devices": [
                    {"name": "kerb", "address": MAC_GEMEENTE, "kind": "bthome"},
                    {"name": "lamp", "kind": "bthome", "bind_key": KEY_GEMEENTE},
                ],
            },
        ],
        "remote_config": remote,
    }


def edited(tmp_path: Path, edit: Any) -> Config:
    changed = document(tmp_path)
    edit(changed)
    return parse_config(changed)


def _set(path: str, value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value

    return edit


def _append(source: dict[str, Any]) -> Any:
    return lambda doc: doc["sources"].append(source)


def _remove(index: int) -> Any:
    return lambda doc: doc["sources"].pop(index)


OWN_BLE = {
    "type": "ble",
    "name": "ble-burgers",
    "owner": "burgers",
    "devices": [{"name": "tag", "address": "F4:A5:74:89:16:57", "kind": "ruuvi"}],
}


@pytest.mark.parametrize(
    "edit",
    [
        _set("sources.0.driver", "pms5003"),
        _set("sources.0.port", "/dev/ttyUSB7"),
        _set("sources.0.register", {"purpose": "Anders", "location": [52.1, 5.1]}),
        _append({**OWN_BLE}),
        _remove(0),
        lambda doc: doc["sources"].reverse(),  # the order of the list is nobody's part
        lambda doc: None,
    ],
    ids=["driver", "port", "record", "add-own", "remove-own", "reorder", "nothing"],
)
def test_an_owner_may_change_its_own_sources(tmp_path: Path, edit: Any) -> None:
    check_owner_push("burgers", parse_config(document(tmp_path)), edited(tmp_path, edit))


@pytest.mark.parametrize(
    ("edit", "path", "why"),
    [
        (_set("hub.url", "mqtts://other.example.org"), "hub.url", "the operator's part"),
        (_set("gateway.log_level", "debug"), "gateway.log_level", "the operator's part"),
        (_set("gateway.owner", "burgers"), "gateway.owner", "the operator's part"),
        (_set("buffer", {"max_readings": 1000}), "buffer.max_readings", "the operator's part"),
        (_set("sources.1.driver", "sds011"), "sources[1]", "belongs to 'gemeente'"),
        (_set("sources.1.owner", "burgers"), "sources[1]", "belongs to 'gemeente'"),
        (_remove(1), "sources[1]", "removes source 'pm-city' of owner 'gemeente'"),
        (_set("sources.0.owner", "gemeente"), "sources[0].owner", "gives source 'pm-school'"),
        (_set("sources.0.owner", ""), "sources[0].owner", "to 'gemeente'"),
        (
            _append({"type": "serial", "name": "x", "port": "/dev/ttyUSB9", "driver": "sds011"}),
            "sources[3].owner",
            "adds source 'x' for 'gemeente'",
        ),
        (
            _append(
                {
                    **OWN_BLE,
                    "devices": [{"name": "t", "address": MAC_GEMEENTE.lower(), "kind": "bthome"}],
                }
            ),
            "sources[3].devices[0].address",
            "source 'ble-city' of 'gemeente' reads it",
        ),
        (
            _append(
                {**OWN_BLE, "devices": [{"name": "t", "kind": "bthome", "bind_key": KEY_GEMEENTE}]}
            ),
            "sources[3].devices[0].bind_key",
            "source 'ble-city' of 'gemeente' reads it",
        ),
        (_set("sources.0.port", "/dev/ttyUSB1"), "sources[0].port", "'pm-city' of 'gemeente'"),
    ],
    ids=[
        "hub",
        "log-level",
        "gateway-owner",
        "buffer",
        "other-source",
        "take-over",
        "remove-other",
        "give-away",
        "give-to-default",
        "add-for-other",
        "other-ble-address",
        "other-bind-key",
        "other-port",
    ],
)
def test_everything_else_is_refused_naming_the_path(
    tmp_path: Path, edit: Any, path: str, why: str
) -> None:
    with pytest.raises(PolicyError) as error:
        check_owner_push("burgers", parse_config(document(tmp_path)), edited(tmp_path, edit))
    assert str(error.value).startswith(f"{path}: ")
    assert why in str(error.value)
    assert "owner 'burgers'" in str(error.value)


def uplink(name: str, owners: list[str], url: str = "mqtt://broker.example:1883") -> Any:
    return {"name": name, "owners": owners, "url": url}


@pytest.mark.parametrize(
    ("before", "after", "refused"),
    [
        ([uplink("b", ["burgers"])], [uplink("b", ["burgers"], "mqtt://new.example")], None),
        ([], [uplink("b", ["burgers"])], None),
        ([uplink("b", ["burgers"])], [], None),
        (
            [uplink("g", ["gemeente"])],
            [uplink("g", ["gemeente"], "mqtt://x.example")],
            "uplinks[0]",
        ),
        ([uplink("g", ["gemeente"])], [], "uplinks[0]"),
        ([uplink("s", ["burgers", "gemeente"])], [uplink("s", ["burgers"])], "uplinks[0]"),
        ([uplink("b", ["burgers"])], [uplink("b", ["burgers", "gemeente"])], "uplinks[0]"),
        ([], [uplink("x", ["gemeente"])], "uplinks[0]"),
    ],
)
def test_uplinks_of_only_that_owner_are_its_own(
    tmp_path: Path, before: list[Any], after: list[Any], refused: str | None
) -> None:
    old = edited(tmp_path, _set("uplinks", before))
    new = edited(tmp_path, _set("uplinks", after))
    if refused is None:
        check_owner_push("burgers", old, new)
        return
    with pytest.raises(PolicyError) as error:
        check_owner_push("burgers", old, new)
    assert str(error.value).startswith(f"{refused}: ")


@pytest.mark.parametrize(
    ("before_file", "after_file", "refused"),
    [
        ("/etc/citygw/burgers.pass", "/etc/citygw/burgers.pass", None),
        ("/etc/citygw/burgers.pass", "", None),
        ("", "/etc/citygw/hub.pass", "uplinks[0].password_file"),
        ("/etc/citygw/burgers.pass", "/etc/citygw/hub.pass", "uplinks[0].password_file"),
    ],
)
def test_an_owner_names_only_credential_files_its_uplinks_use(
    tmp_path: Path, before_file: str, after_file: str, refused: str | None
) -> None:
    def with_file(path: str, url: str) -> Any:
        return _set("uplinks", [{**uplink("b", ["burgers"], url), "password_file": path}])

    old = edited(tmp_path, with_file(before_file, "mqtt://burgers.example"))
    new = edited(tmp_path, with_file(after_file, "mqtt://elsewhere.example"))
    if refused is None:
        check_owner_push("burgers", old, new)
        return
    with pytest.raises(PolicyError, match=r"names a file its uplinks do not use now") as error:
        check_owner_push("burgers", old, new)
    assert str(error.value).startswith(f"{refused}: ")


def test_the_hub_owners_are_the_operators(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"^hub\.owners: the operator's part"):
        check_owner_push(
            "burgers",
            parse_config(document(tmp_path)),
            edited(tmp_path, _set("hub.owners", ["gemeente", "burgers", "x"])),
        )


# --- through the channel: signed pushes, the agent as a stand-in ----------------------------


class FakeAgent:
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


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Any]:
    found = {}
    for name in ("ops", "burgers"):
        private, public = signing.generate(tmp_path / "keys", name)
        found[name] = (signing.load_private(private), public)
    return found


def channel(tmp_path: Path, keys: dict[str, Any]) -> tuple[RemoteConfig, FakeAgent, list[Any]]:
    local_doc = document(
        tmp_path,
        trusted_keys=[str(keys["ops"][1])],
        owner_keys={"burgers": [str(keys["burgers"][1])]},
    )
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
    return remote, agent, published


def sources_with(tmp_path: Path, edit: Any) -> dict[str, Any]:
    changed = document(tmp_path)
    edit(changed)
    return {"sources": changed["sources"]}


async def test_an_owner_push_applies_to_its_own_source_and_is_refused_for_another(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    remote, agent, published = channel(tmp_path, keys)
    burgers = keys["burgers"][0]
    own = sources_with(tmp_path, _set("sources.0.driver", "pms5003"))
    await remote.handle(
        sign_config(burgers, own, version=2, target={"gateway": "gw-1"}, base_version=0),
        retained=False,
    )
    assert published[-1]["last"]["result"] == "applied", published[-1]
    assert agent.applied[-1].sources_changed == ["pm-school"]
    in_force = agent.config
    other = sources_with(tmp_path, _set("sources.1.driver", "sds011"))
    other["sources"][0]["driver"] = "pms5003"
    await remote.handle(
        sign_config(burgers, other, version=3, target={"gateway": "gw-1"}, base_version=2),
        retained=False,
    )
    last = published[-1]["last"]
    assert last["result"] == "rejected"
    assert "sources[1]: source 'pm-city' belongs to 'gemeente'" in last["reason"]
    assert agent.config == in_force and len(agent.applied) == 1


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"hub": {"url": "mqtts://elsewhere.example.org"}}, "hub.url"),
        ({"remote_config": {"trusted_keys": []}}, "remote_config"),
        ({"remote_config": {"owner_keys": {"burgers": []}}}, "remote_config"),
        ({"gateway": {"data_dir": "/tmp/x"}}, "gateway.data_dir"),
    ],
)
async def test_an_owner_cannot_touch_the_operator_or_the_trust(
    tmp_path: Path, keys: dict[str, Any], patch: dict[str, Any], path: str
) -> None:
    remote, agent, published = channel(tmp_path, keys)
    payload = sign_config(keys["burgers"][0], patch, version=5, target={}, base_version=0)
    await remote.handle(payload, retained=False)
    assert published[-1]["last"]["result"] == "rejected"
    assert f"{path}: " in published[-1]["last"]["reason"]
    assert agent.applied == []


async def test_the_operator_keeps_full_power_and_owners_cannot_rotate_keys(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    remote, agent, published = channel(tmp_path, keys)
    change = sources_with(tmp_path, _set("sources.1.driver", "sds011"))
    change["gateway"] = {"log_level": "debug"}
    await remote.handle(
        sign_config(keys["ops"][0], change, version=2, target={}, base_version=0), retained=False
    )
    assert published[-1]["last"]["result"] == "applied"
    assert agent.config.gateway.log_level == "debug"
    rotation = sign_rotation(keys["burgers"][0], [str(keys["burgers"][1])], version=9, target={})
    await remote.handle(rotation, retained=False)
    assert published[-1]["last"]["result"] == "rejected"
    assert "owner 'burgers''s key may not rotate" in published[-1]["last"]["reason"]
    assert published[-1]["trusted_keys"] == [signing.key_id(signing.load_public(keys["ops"][1]))]


async def test_an_operator_rotation_keeps_the_owners_keys(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    remote, agent, published = channel(tmp_path, keys)
    _, public = signing.generate(tmp_path / "keys", "ops2")
    await remote.handle(
        sign_rotation(keys["ops"][0], [str(public)], version=4, target={}), retained=False
    )
    assert published[-1]["last"]["result"] == "applied"
    own = sources_with(tmp_path, _set("sources.0.driver", "pms7003"))
    await remote.handle(
        sign_config(keys["burgers"][0], own, version=2, target={}, base_version=0),
        retained=False,
    )
    assert published[-1]["last"]["result"] == "applied"
    assert agent.config.sources[0].driver == "pms7003"  # type: ignore[union-attr]
    assert published[-1]["trusted_keys"] == [signing.key_id(signing.load_public(public))]


async def test_an_owner_signs_with_the_same_cli_as_the_operator(
    tmp_path: Path, keys: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    remote, agent, published = channel(tmp_path, keys)
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps(sources_with(tmp_path, _set("sources.0.driver", "pms5003t"))))
    key = tmp_path / "keys" / "burgers.key"
    out = tmp_path / "push.json"
    signing_args = ["--key", str(key), "--base-version", "0", "--version", "7"]
    code = main(["config", "sign", *signing_args, "--gateway", "gw-1", "-o", str(out), str(patch)])
    assert code == 0
    await remote.handle(out.read_bytes(), retained=False)
    assert published[-1]["last"]["result"] == "applied", published[-1]
    assert published[-1]["key_id"] == signing.key_id(signing.load_public(keys["burgers"][1]))
    assert agent.config.sources[0].driver == "pms5003t"  # type: ignore[union-attr]
