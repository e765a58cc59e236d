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
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gateway.backoff import RateLimitedLog
from gateway.config import Config, ConfigError
from gateway.remote import signing
from gateway.remote.boot import Boot, Trust, load_trust, runnable
from gateway.remote.policy import Changes, PolicyError, candidate_config, diff, merge_patch
from gateway.remote.store import InForce, Store, document_hash

log = logging.getLogger(__name__)

GROUP_TOPIC_ROOT = "_group"
"""Fleet topics: `<prefix>/_group/<name>/config/set` (gateway ids cannot start with `_`)."""
MAX_KEYS = 16


class Applier(Protocol):
    """The agent as the remote config sees it."""

    config: Config

    async def apply(self, config: Config, changes: Changes) -> None:
        """Switch to `config` while running; only what `changes` names restarts."""

    async def hub_reached(self) -> None:
        """Returns once the uplink now running has connected to the hub."""

    def hub_last_error(self) -> str:
        """Why the hub was last unreachable (empty if it was not)."""


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
        """The config/set topics to subscribe: the gateway's own and its groups'."""
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
        """The retained `config/state` report as published."""
        return json.dumps(self._report, sort_keys=True).encode()

    @property
    def version(self) -> int:
        """The pushed config version in force (0: the local file alone)."""
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
        """Decide one push and report the outcome; a refusal is logged, never raised."""
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
        merged = merge_patch(current, patch)
        if not isinstance(merged, dict):  # an object patch always merges to an object
            raise Rejected("signed.patch: the merged config is not an object")
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
        **extra: object,
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
        """(Re)publish the report; False if the hub is not connected now."""
        return await self._publish_state(self.state_payload())
