"""Remote config: signed pushes from `config/set`, applied live, rolled back, reported.

The flow for one push (docs/remote-config.md): size check before parsing, signature against
the trusted keys, addressee, version newer than the one in force, policy and schema, then the
change is persisted (write, fsync, rename) and applied live by the agent. A push that changed
the hub settings is on probation until the hub is reached again; if it is not, within
`rollback_after_s`, the last-known-good config comes back. Every outcome lands in the retained
`config/state` report. The agent keeps running whatever arrives.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nacl.signing import VerifyKey

from gateway.backoff import RateLimitedLog
from gateway.config import Config, ConfigError
from gateway.remote import signing
from gateway.remote.policy import Changes, PolicyError, candidate_config, diff, merge_patch

log = logging.getLogger(__name__)

STATE_DIR = "remote-config"
GROUP_TOPIC_ROOT = "_group"
"""Fleet topics: `<prefix>/_group/<name>/config/set` (gateway ids cannot start with `_`)."""
MAX_KEYS = 16


class Applier(Protocol):
    """The agent as the remote config sees it."""

    config: Config

    async def apply(self, config: Config, changes: Changes) -> None: ...

    async def hub_reached(self) -> None:
        """Returns once the uplink now running has connected to the hub."""

    def hub_last_error(self) -> str: ...


def document_hash(document: dict[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write a temporary file, fsync it, rename it over `path`, fsync the directory: after a
    crash or power cut the file is either the old or the new one, whole. `durable=False`
    skips the fsyncs: still whole after a crash, but a power cut may bring the old one back."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(slots=True)
class InForce:
    """A pushed config the gateway runs (version 0: the local file alone)."""

    version: int = 0
    document: dict[str, Any] | None = None
    key_id: str = ""
    push: str = ""
    probation: bool = False
    applied_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "document": self.document,
            "key_id": self.key_id,
            "push": self.push,
            "probation": self.probation,
            "applied_ms": self.applied_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InForce:
        return cls(
            version=int(data["version"]),
            document=data["document"],
            key_id=str(data.get("key_id", "")),
            push=str(data.get("push", "")),
            probation=bool(data.get("probation", False)),
            applied_ms=int(data.get("applied_ms", 0)),
        )


class Store:
    """The remote-config files in `<data_dir>/remote-config/`: the config in force, the last
    known good one, the rotated trust, the last report. Each written atomically."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / STATE_DIR
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.dir / name).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            log.warning("remote config: ignoring unreadable %s: %s", self.dir / name, error)
            return None
        return data if isinstance(data, dict) else None

    def _write(self, name: str, data: dict[str, Any], *, durable: bool = True) -> None:
        write_atomically(
            self.dir / name, json.dumps(data, sort_keys=True).encode(), durable=durable
        )

    def _in_force(self, name: str) -> InForce | None:
        data = self._read(name)
        try:
            return InForce.from_json(data) if data else None
        except (KeyError, TypeError, ValueError):
            return None

    def active(self) -> InForce | None:
        return self._in_force("active.json")

    def last_good(self) -> InForce | None:
        return self._in_force("last-good.json")

    def save_active(self, in_force: InForce, *, last_good: InForce | None) -> None:
        """Last-good first: a crash between the two renames leaves a consistent pair."""
        if last_good is not None:
            self._write("last-good.json", last_good.as_json())
        self._write("active.json", in_force.as_json())

    def trust(self) -> dict[str, Any] | None:
        return self._read("trust.json")

    def save_trust(self, data: dict[str, Any]) -> None:
        self._write("trust.json", data)

    def refused_version(self) -> int:
        data = self._read("refused.json") or {}
        version = data.get("version", 0)
        return version if isinstance(version, int) else 0

    def save_refused_version(self, version: int) -> None:
        self._write("refused.json", {"version": version})

    def report(self) -> dict[str, Any] | None:
        return self._read("state.json")

    def save_report(self, report: dict[str, Any]) -> None:
        """Not fsynced: the report is a courtesy after a restart; the config files decide."""
        self._write("state.json", report, durable=False)


@dataclass(slots=True)
class Trust:
    """The keys whose signatures count, and what they derive from."""

    keys: dict[str, VerifyKey]
    version: int
    """Version of the signed rotation in force (0: the local keys themselves)."""
    anchors: list[str]
    """Key ids of the local provisioning a rotation was made from."""


def load_trust(config: Config, store: Store) -> Trust:
    """Trusted keys: the local provisioning, or a signed rotation made from that same
    provisioning (if the local keys change, the local keys win: physical access decides)."""
    local = {
        signing.key_id(k): k
        for k in (signing.load_public(path) for path in config.remote_config.trusted_keys)
    }
    anchors = sorted(local)
    rotated = store.trust()
    if rotated and rotated.get("anchors") == anchors:
        try:
            keys = [signing.public_from_b64(text) for text in rotated["keys"]]
            return Trust({signing.key_id(k): k for k in keys}, int(rotated["version"]), anchors)
        except (KeyError, TypeError, ValueError, signing.EnvelopeError):
            log.warning("remote config: ignoring a damaged key rotation record")
    return Trust(local, 0, anchors)


@dataclass(slots=True)
class Boot:
    config: Config
    in_force: InForce
    notes: list[str] = field(default_factory=list)


def runnable(in_force: InForce, local_document: dict[str, Any], local: Config) -> Config:
    """The config a pushed version gives with this local file and this software; the local
    file itself for version 0. PolicyError / ConfigError if it no longer passes."""
    if in_force.document is None:
        return local
    return candidate_config(in_force.document, local_document, local)[1]


def config_at_boot(local_document: dict[str, Any], local: Config) -> Boot:
    """The config to start with: the push in force if it still passes policy and schema with
    this local file and this software version, else the last known good one, else the file."""
    if not local.remote_config.enabled:
        return Boot(local, InForce())
    store = Store(local.data_dir)
    notes = []
    for which, in_force in (("in force", store.active()), ("last known good", store.last_good())):
        if in_force is None or in_force.document is None:
            continue
        try:
            config = runnable(in_force, local_document, local)
        except (PolicyError, ConfigError) as error:
            notes.append(
                f"pushed config version {in_force.version} ({which}) no longer applies: {error}"
            )
            continue
        return Boot(config, in_force, notes)
    return Boot(local, InForce(), notes)


class Rejected(Exception):
    """A push refused; the message is the reason in the state report."""


class RemoteConfig:
    """Receives pushes (from the uplink's subscription), decides, applies, reports."""

    def __init__(
        self,
        *,
        local_document: dict[str, Any],
        local: Config,
        boot: Boot,
        applier: Applier,
        publish_state: Callable[[bytes], Awaitable[bool]],
    ) -> None:
        self._local_document = local_document
        self._local = local
        self._applier = applier
        self._publish_state = publish_state
        self._store = Store(local.data_dir)
        self._in_force = boot.in_force
        self._refused_version = self._store.refused_version()
        """The highest version refused or rolled back: a push must be newer than it too, or
        a retained push that failed would be tried again at every reconnect."""
        self._trust = load_trust(local, self._store)
        self._queue: asyncio.Queue[tuple[bytes, bool]] = asyncio.Queue(maxsize=16)
        self._log = RateLimitedLog(log, interval_s=60)
        self._report: dict[str, Any] = self._store.report() or {}
        self._report.update(self._head())
        for note in boot.notes:
            log.warning("remote config: %s", note)

    # --- what the uplink calls -----------------------------------------------------------

    def topics(self, topic_prefix: str, gateway_id: str) -> list[str]:
        return [
            f"{topic_prefix}/{gateway_id}/config/set",
            *(
                f"{topic_prefix}/{GROUP_TOPIC_ROOT}/{g}/config/set"
                for g in self._local.remote_config.groups
            ),
        ]

    def offer(self, payload: bytes, *, retained: bool) -> None:
        """Called for every message on a config topic; never blocks the MQTT reader."""
        try:
            self._queue.put_nowait((payload, retained))
        except asyncio.QueueFull:
            self._log.log(
                logging.WARNING,
                "queue",
                "remote config: pushes arrive faster than "
                "they are applied; dropping one (%d bytes)",
                len(payload),
            )

    def state_payload(self) -> bytes:
        return json.dumps(self._report, sort_keys=True).encode()

    @property
    def version(self) -> int:
        return self._in_force.version

    # --- the worker ------------------------------------------------------------------------

    async def run(self) -> None:
        """Handle pushes one at a time; first finish a probation interrupted by a restart."""
        if self._in_force.probation:
            await self._probation(self._store.last_good(), self._in_force, resumed=True)
        while True:
            payload, retained = await self._queue.get()
            await self.handle(payload, retained=retained)

    async def handle(self, payload: bytes, *, retained: bool) -> None:
        try:
            await self._handle(payload, retained=retained)
        except Rejected as error:
            digest = hashlib.sha256(payload).hexdigest()
            if retained and self._report.get("last", {}).get("push") == digest:
                return  # the same retained push again after a reconnect: reported already
            self._log.log(
                logging.WARNING,
                str(error)[:40],
                "remote config: push rejected: %s",
                error,
                extra={"event": "config_rejected"},
            )
            await self._finish("rejected", reason=str(error), push=digest)

    async def _handle(self, payload: bytes, *, retained: bool) -> None:
        limit = self._local.remote_config.max_payload_bytes
        if len(payload) > limit:
            raise Rejected(f"payload of {len(payload)} bytes exceeds max_payload_bytes {limit}")
        try:
            envelope = signing.verify(payload, self._trust.keys)
        except signing.EnvelopeError as error:
            raise Rejected(str(error)) from None
        self._check_target(envelope)
        if envelope.kind == "keys":
            await self._rotate_keys(envelope, retained=retained)
            return
        floor = max(self._in_force.version, self._refused_version)
        if envelope.version <= floor:
            if retained:  # an older retained push (e.g. the group's) seen again: not news
                log.debug(
                    "remote config: retained version %d <= %d, ignored", envelope.version, floor
                )
                return
            raise Rejected(
                f"version {envelope.version} is not newer than {floor} (the version "
                "in force or last refused): stale or replayed"
            )
        try:
            await self._apply(envelope, self._pushed_document(envelope))
        except Rejected:
            await self._refuse_version(envelope.version)
            raise

    async def _refuse_version(self, version: int) -> None:
        self._refused_version = max(self._refused_version, version)
        await asyncio.to_thread(self._store.save_refused_version, self._refused_version)

    def _check_target(self, envelope: signing.Envelope) -> None:
        target = envelope.target
        gateway_id = self._local.gateway.id
        if "gateway" in target and target["gateway"] != gateway_id:
            raise Rejected(f"addressed to gateway {target['gateway']!r}, this is {gateway_id!r}")
        if "group" in target and target["group"] not in self._local.remote_config.groups:
            raise Rejected(f"addressed to group {target['group']!r}, which this gateway is not in")

    def _pushed_document(self, envelope: signing.Envelope) -> dict[str, Any]:
        body = envelope.body
        if envelope.kind == "config":
            document = body.get("config")
            if not isinstance(document, dict):
                raise Rejected("signed.config: expected a config document (object)")
            return document
        base = body.get("base_version")
        if base != self._in_force.version:
            raise Rejected(
                f"patch against version {base}, but version {self._in_force.version} is in force"
            )
        patch = body.get("patch")
        if not isinstance(patch, dict):
            raise Rejected("signed.patch: expected a JSON merge patch (object)")
        current = self._in_force.document or self._local_document
        merged: dict[str, Any] = merge_patch(current, patch)
        return merged

    async def _apply(self, envelope: signing.Envelope, pushed: dict[str, Any]) -> None:
        try:
            document, candidate = candidate_config(pushed, self._local_document, self._local)
        except (PolicyError, ConfigError) as error:
            raise Rejected(f"invalid config: {error}") from None
        previous = self._in_force
        changes = diff(self._applier.config, candidate)
        new = InForce(
            version=envelope.version,
            document=document,
            key_id=envelope.key_id,
            push=envelope.digest,
            probation=changes.hub,
            applied_ms=int(time.time() * 1000),
        )
        await asyncio.to_thread(self._store.save_active, new, last_good=previous)
        await self._applier.apply(candidate, changes)
        self._in_force = new
        log.info(
            "remote config: version %d applied: %s",
            new.version,
            "; ".join(changes.describe()) or "no change",
            extra={"event": "config_applied", "config_version": new.version},
        )
        if changes.hub:
            await self._probation(previous, new, changes=changes)
        else:
            await self._finish("applied", push=envelope.digest, changes=changes.describe())

    async def _probation(
        self,
        previous: InForce | None,
        new: InForce,
        *,
        changes: Changes | None = None,
        resumed: bool = False,
    ) -> None:
        """Keep the new hub settings only if the hub is reached with them in time."""
        limit_s = self._local.remote_config.rollback_after_s
        try:
            async with asyncio.timeout(limit_s):
                await self._applier.hub_reached()
            reached = True
        except TimeoutError:
            reached = False
        described = changes.describe() if changes else []
        if reached:
            new.probation = False
            await asyncio.to_thread(self._store.save_active, new, last_good=None)
            await self._finish("applied", push=new.push, changes=described)
            return
        error = self._applier.hub_last_error() or "no connection"
        reason = (
            f"hub not reached within {limit_s:g} s with version {new.version}"
            f"{' (after a restart)' if resumed else ''}: {error}; rolled back"
        )
        back = previous if previous is not None else InForce()
        try:
            config = runnable(back, self._local_document, self._local)
        except (PolicyError, ConfigError) as error:  # e.g. the local file changed since
            log.warning(
                "remote config: version %d no longer applies (%s); back to the local file",
                back.version,
                error,
            )
            back, config = InForce(), self._local
        back.probation = False
        await asyncio.to_thread(self._store.save_active, back, last_good=None)
        await self._refuse_version(new.version)
        await self._applier.apply(config, diff(self._applier.config, config))
        self._in_force = back
        log.warning(
            "remote config: %s to version %d",
            reason,
            back.version,
            extra={"event": "config_rolled_back", "config_version": back.version},
        )
        await self._finish(
            "rolled_back", reason=reason, push=new.push, rolled_back_version=new.version
        )

    async def _rotate_keys(self, envelope: signing.Envelope, *, retained: bool) -> None:
        if envelope.version <= self._trust.version:
            if retained:
                return
            raise Rejected(
                f"key rotation version {envelope.version} is not newer than "
                f"{self._trust.version} (stale or replayed)"
            )
        texts = envelope.body.get("keys")
        if not isinstance(texts, list) or not 0 < len(texts) <= MAX_KEYS:
            raise Rejected(f"signed.keys: expected 1 to {MAX_KEYS} base64 public keys")
        try:
            keys = [signing.public_from_b64(text) for text in texts]
        except signing.EnvelopeError as error:
            raise Rejected(f"signed.keys: {error}") from None
        anchors = self._trust.anchors
        await asyncio.to_thread(
            self._store.save_trust, {"anchors": anchors, "version": envelope.version, "keys": texts}
        )
        self._trust = Trust({signing.key_id(k): k for k in keys}, envelope.version, anchors)
        ids = sorted(self._trust.keys)
        log.info(
            "remote config: trusted keys rotated to %s",
            ", ".join(ids),
            extra={"event": "keys_rotated"},
        )
        await self._finish("applied", push=envelope.digest, changes=[f"trusted keys: {ids}"])

    # --- reporting -------------------------------------------------------------------------

    def _head(self) -> dict[str, Any]:
        in_force = self._in_force
        document = in_force.document or self._local_document
        return {
            "gateway": self._local.gateway.id,
            "groups": self._local.remote_config.groups,
            "version": in_force.version,
            "hash": document_hash(document),
            "key_id": in_force.key_id,
            "trusted_keys": sorted(self._trust.keys),
        }

    async def _finish(
        self,
        result: str,
        *,
        push: str,
        reason: str = "",
        changes: list[str] | None = None,
        **extra: Any,
    ) -> None:
        last: dict[str, Any] = {"result": result, "push": push, "at_ms": int(time.time() * 1000)}
        if reason:
            last["reason"] = reason
        if changes is not None:
            last["changes"] = changes
        last.update(extra)
        self._report = {**self._head(), "last": last}
        try:
            self._store.save_report(self._report)
        except OSError as error:
            self._log.log(
                logging.WARNING, "report", "remote config: cannot save the report: %s", error
            )
        await self.publish_state()

    async def publish_state(self) -> bool:
        return await self._publish_state(self.state_payload())
