"""The operator's side of remote config: build and sign pushes, publish them, watch the fleet.

`citygw config sign` and `citygw config push` (docs/remote-config.md). Gateways announce
themselves with their retained `config/state`, which names their groups, so a push to a group
knows which gateways must answer without a separate inventory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import aiomqtt
from nacl.signing import SigningKey

from gateway import wire
from gateway.config import GATEWAY_ID, Config, ConfigError, load_document, parse_config
from gateway.hub.client import HubOptions, hub_client
from gateway.remote import signing
from gateway.remote.channel import GROUP_TOPIC_ROOT
from gateway.remote.policy import Changes, diff
from gateway.remote.report import find_outcome

BrokerError = aiomqtt.MqttError
"""The broker is unreachable or refused us (the message says which)."""

SETTLE_S = 1.0
"""How long to collect the gateways' retained state reports before publishing."""


def read_document(path: str | Path) -> dict[str, Any]:
    """A config document from TOML, JSON, or the `config` of a signed payload."""
    path = Path(path)
    if path.suffix == ".toml":
        return load_document(path)
    try:
        document = json.loads(path.read_bytes())
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", file=str(path)) from None
    except ValueError:
        raise ConfigError("not valid JSON (or name it .toml)", file=str(path)) from None
    if isinstance(document, dict) and document.get("type") == signing.ENVELOPE_TYPE:
        body = json.loads(document.get("signed", "{}"))
        document = body.get("config")
    if not isinstance(document, dict):
        raise ConfigError("expected a config document (a table / object)", file=str(path))
    return document


def _as_pushed(document: dict[str, Any]) -> Config:
    """A pushed document as a Config: the gateway fills in its own id and data_dir."""
    gateway = {"id": "pushed", "data_dir": "/var/lib/citygw", **document.get("gateway", {})}
    return parse_config({**document, "gateway": gateway})


def validate_document(document: dict[str, Any], *, file: str = "") -> None:
    """Schema check before signing."""
    try:
        _as_pushed(document)
    except ConfigError as error:
        raise ConfigError(str(error), file=file) from None


def body(
    *, kind: str, version: int | None, target: dict[str, str], **content: object
) -> dict[str, Any]:
    """The signed body of a push: kind, version (default: now in Unix ms), issue time, target."""
    now_ms = int(time.time() * 1000)
    return {
        "kind": kind,
        "version": version or now_ms,
        "issued_ms": now_ms,
        "target": target,
        **content,
    }


def sign_config(
    private: SigningKey,
    document: dict[str, Any],
    *,
    version: int | None,
    target: dict[str, str],
    base_version: int | None = None,
) -> bytes:
    """A full config (or, with `base_version`, an RFC 7396 merge patch against that version)."""
    if base_version is None:
        return signing.sign(
            private, body(kind="config", version=version, target=target, config=document)
        )
    return signing.sign(
        private,
        body(
            kind="patch", version=version, target=target, patch=document, base_version=base_version
        ),
    )


def sign_rotation(
    private: SigningKey, public_files: list[str], *, version: int | None, target: dict[str, str]
) -> bytes:
    """A signed key rotation: the gateways then trust exactly the keys in `public_files`."""
    keys = [signing.public_raw_b64(signing.load_public(p)) for p in public_files]
    return signing.sign(private, body(kind="keys", version=version, target=target, keys=keys))


def describe_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Key-level differences, then what the gateway would restart."""
    lines = [f"{path}: {_show(a)} -> {_show(b)}" for path, a, b in _walk(old, new, "")]
    changes: Changes = diff(_as_pushed(old), _as_pushed(new))
    return lines + [f"=> {line}" for line in changes.describe()]


_MISSING = object()


def _show(value: object) -> str:
    return "(absent)" if value is _MISSING else json.dumps(value)


def _walk(old: object, new: object, path: str) -> list[tuple[str, object, object]]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _walk(
                old.get(key, _MISSING), new.get(key, _MISSING), f"{path}.{key}" if path else key
            )
        return found
    if _named_list(old) and _named_list(new):
        before = {item["name"]: item for item in old}
        after = {item["name"]: item for item in new}
        found = []
        for name in [*before, *(n for n in after if n not in before)]:
            found += _walk(before.get(name, _MISSING), after.get(name, _MISSING), f"{path}[{name}]")
        return found
    return [] if old == new else [(path, old, new)]


def _named_list(value: object) -> TypeGuard[list[dict[str, Any]]]:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


# --- push ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    """One gateway's report on a push: applied, refused or rolled back, and why."""

    gateway: str
    result: str
    detail: str = ""
    after_s: float = 0.0
    """Seconds from the publish to this report (0 for a push the gateway had already)."""


@dataclass(slots=True)
class PushOutcome:
    """The gateways a push expected, their answers, and which of them are offline."""

    expected: set[str]
    answers: dict[str, Answer] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)

    @property
    def missing(self) -> list[str]:
        """The expected gateways that have not answered, sorted."""
        return sorted(self.expected - set(self.answers))

    @property
    def ok(self) -> bool:
        """True if every expected gateway answered and all applied it."""
        return not self.missing and all(a.result == "applied" for a in self.answers.values())


def topic_for(prefix: str, target: dict[str, str]) -> str:
    """The config/set topic for a push to one gateway or to a group."""
    if "gateway" in target:
        return f"{prefix}/{target['gateway']}/config/set"
    return f"{prefix}/{GROUP_TOPIC_ROOT}/{target['group']}/config/set"


def _answer(
    gateway: str, report: dict[str, Any], outcome: dict[str, Any], after_s: float = 0.0
) -> Answer:
    result = str(outcome.get("result", "?"))
    if result == "applied":
        changes = outcome.get("changes") or ["no change"]
        version = outcome.get("version", report.get("version"))
        detail = f"version {version}: {'; '.join(map(str, changes))}"
    else:
        detail = str(outcome.get("reason", ""))
    return Answer(gateway, result, detail, after_s)


def _signed_version(payload: bytes) -> int | None:
    """The version a signed payload carries (None if it cannot be read: then unchecked)."""
    try:
        version = json.loads(json.loads(payload)["signed"]).get("version")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return version if isinstance(version, int) else None


@dataclass(slots=True)
class _Watch:
    """What a push sees on the broker: each gateway's last state report and online status, and
    the answers that name the payload (by its SHA-256) once it is published."""

    target: dict[str, str]
    digest: str
    version: int | None
    expect: int | None
    on_answer: Callable[[Answer], None]
    outcome: PushOutcome = field(default_factory=lambda: PushOutcome(expected=set()))
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    published_at: float | None = None

    def expected(self) -> set[str]:
        """The gateway named, or those whose last report puts them in the group."""
        if "gateway" in self.target:
            return {self.target["gateway"]}
        group = self.target["group"]
        return {gw for gw, report in self.states.items() if group in report.get("groups", [])}

    def check_done(self) -> None:
        """Set `done` once every expected gateway (and at least `expect` of them) answered."""
        outcome = self.outcome
        outcome.expected = self.expected()
        if not outcome.missing and (self.expect is None or len(outcome.answers) >= self.expect):
            self.done.set()

    def status(self, gateway: str, raw: bytes) -> None:
        """A gateway's retained status: note whether it is offline."""
        with contextlib.suppress(wire.WireError):
            if wire.decode_map(raw).get("state") == "offline":
                self.outcome.offline.add(gateway)
            else:
                self.outcome.offline.discard(gateway)

    def state(self, gateway: str, raw: bytes) -> None:
        """A gateway's config state report: kept, and an answer if it names the published push.

        Anyone the broker lets publish on `<prefix>/<gw>/config/state` can forge a report:
        only the broker's ACL (docs/remote-config.md) makes it the gateway's. What can be
        checked here is: the report names the gateway of its topic, gives an outcome for this
        push's digest, and an `applied` names the version that was pushed."""
        try:
            report = json.loads(raw)
        except ValueError:
            return
        if not isinstance(report, dict) or report.get("gateway") != gateway:
            return
        self.states[gateway] = report
        if self.published_at is None or gateway in self.outcome.answers:
            return
        outcome = self._outcome(report)
        if outcome is not None:
            self._answered(_answer(gateway, report, outcome, time.monotonic() - self.published_at))
            self.check_done()

    def _outcome(self, report: dict[str, Any]) -> dict[str, Any] | None:
        outcome = find_outcome(report, self.digest)
        if outcome is None:
            return None
        if outcome.get("result") == "applied" and self.version is not None:
            pushed = outcome.get("version", report.get("version"))
            if pushed != self.version:
                return None  # not what this push says: forged or garbled
        return outcome

    def answered_before(self) -> None:
        """Answers already in the retained reports: a push sent twice was applied before."""
        for gateway, report in self.states.items():
            outcome = self._outcome(report)
            if outcome is not None:
                self._answered(_answer(gateway, report, outcome))

    def _answered(self, answer: Answer) -> None:
        self.outcome.answers[answer.gateway] = answer
        self.on_answer(answer)


async def _read(client: aiomqtt.Client, watch: _Watch) -> None:
    async for message in client.messages:
        parts = str(message.topic).split("/")
        if len(parts) < 3 or not GATEWAY_ID.fullmatch(parts[-3 if parts[-1] == "state" else -2]):
            continue  # not a gateway's own topic (group topics start with `_`)
        raw = message.payload if isinstance(message.payload, bytes) else b""
        if parts[-1] == "status":
            watch.status(parts[-2], raw)
        elif parts[-2:] == ["config", "state"]:
            watch.state(parts[-3], raw)


async def push(
    options: HubOptions,
    payload: bytes,
    *,
    target: dict[str, str],
    timeout_s: float,
    expect: int | None = None,
    on_answer: Callable[[Answer], None] = lambda answer: None,
) -> PushOutcome:
    """Publish a signed payload (retained, so offline gateways get it when they return) and
    collect the state reports that name it (by the payload's SHA-256)."""
    watch = _Watch(
        target, hashlib.sha256(payload).hexdigest(), _signed_version(payload), expect, on_answer
    )
    prefix = options.topic_prefix
    async with hub_client(options) as client:
        await client.subscribe(f"{prefix}/+/config/state", qos=1)
        await client.subscribe(f"{prefix}/+/status", qos=1)
        reader = asyncio.create_task(_read(client, watch))
        try:
            await asyncio.sleep(SETTLE_S)  # the retained reports arrive first
            watch.answered_before()
            watch.published_at = time.monotonic()
            await client.publish(topic_for(prefix, target), payload, qos=1, retain=True)
            watch.check_done()
            if "group" in target and not watch.outcome.expected and expect is None:
                raise LookupError(
                    f"no gateway has reported being in group {target['group']!r} "
                    "(pass --expect N to wait for gateways not seen yet)"
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await watch.done.wait()
            watch.outcome.expected = watch.expected()
        finally:
            reader.cancel()
    return watch.outcome
