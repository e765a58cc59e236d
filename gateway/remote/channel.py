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
from gateway.remote.boot import Boot, load_trust, rotation_keys, runnable
from gateway.remote.policy import Changes, PolicyError, candidate_config, diff, pushed_document
from gateway.remote.report import Report
from gateway.remote.screen import Rejected, screen, stale_reason
from gateway.remote.store import InForce, Store, document_hash

log = logging.getLogger(__name__)

GROUP_TOPIC_ROOT = "_group"
"""Fleet topics: `<prefix>/_group/<name>/config/set` (gateway ids cannot start with `_`)."""
QUEUE_MAX = 64
"""Signed, fresh pushes waiting to be applied. Junk never waits here: `offer` screens it out."""
JUNK_REPORT_INTERVAL_S = 1.0
"""Junk is reported (counted, with the newest as a sample) at most once per this interval."""


class Applier(Protocol):
    """The agent as the remote config sees it."""

    config: Config

    async def apply(self, config: Config, changes: Changes) -> None:
        """Switch to `config` while running; only what `changes` names restarts."""

    async def hub_reached(self) -> None:
        """Returns once the uplink now running has connected to the hub."""

    def hub_last_error(self) -> str:
        """Why the hub was last unreachable (empty if it was not)."""


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
        junk_report_interval_s: float = JUNK_REPORT_INTERVAL_S,
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
        self._queue: asyncio.Queue[tuple[signing.Envelope, bool]] = asyncio.Queue(QUEUE_MAX)
        self._admitted = {"config": 0, "keys": 0}
        """Highest version let into the queue per floor: a replay of a push that waits (or is
        on probation) is stale at once, so the queue holds only strictly newer pushes."""
        self._log = RateLimitedLog(log, interval_s=60)
        self._outcomes = Report(self._store.report())
        self._junk_waiting = asyncio.Event()
        self._junk_interval_s = junk_report_interval_s
        self._publishing = asyncio.Lock()
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
        """Called for every message on a config topic; never blocks the MQTT reader. Junk is
        counted and dropped here, before anything waits or is written; a signed, fresh push
        is queued (if the queue is full, the oldest waiting push is dropped and reported)."""
        envelope = self._screened(payload, retained=retained)
        if envelope is None:
            return
        self._admit(envelope)
        if self._queue.full():
            dropped, _ = self._queue.get_nowait()
            self._outcomes.outcome(
                "rejected",
                push=dropped.digest,
                version=dropped.version,
                reason=f"dropped unapplied: more than {QUEUE_MAX} pushes were waiting",
            )
            self._log.log(logging.WARNING, "queue", "remote config: push queue full; dropped one")
            self._junk_waiting.set()  # publish the report soon
        self._queue.put_nowait((envelope, retained))

    def state_payload(self) -> bytes:
        """The retained `config/state` report as published."""
        return json.dumps(self._outcomes.as_json(self._head()), sort_keys=True).encode()

    @property
    def version(self) -> int:
        """The pushed config version in force (0: the local file alone)."""
        return self._in_force.version

    # --- the worker ------------------------------------------------------------------------

    async def run(self) -> None:
        """Handle pushes one at a time; first finish a probation interrupted by a restart."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._report_junk(), name="remote-config-junk-reports")
            if self._in_force.probation:
                await self._probation(self._store.last_good(), self._in_force, resumed=True)
            while True:
                envelope, retained = await self._queue.get()
                await self._process(envelope, retained=retained)

    async def handle(self, payload: bytes, *, retained: bool) -> None:
        """Screen, decide and report one push now (what `offer` and `run` do, without the
        queue); a refusal is logged and reported, never raised."""
        envelope = self._screened(payload, retained=retained)
        if envelope is not None:
            self._admit(envelope)
            await self._process(envelope, retained=retained)

    def _screened(self, payload: bytes, *, retained: bool) -> signing.Envelope | None:
        """The envelope if it is signed by a trusted key, addressed here and fresh; None for
        junk (counted) and for a retained push seen before."""
        try:
            return self._screen(payload, retained=retained)
        except Rejected as error:
            digest = hashlib.sha256(payload).hexdigest()
            if retained and self._outcomes.is_last_junk(digest):
                return None  # the same retained junk again after a reconnect
            self._outcomes.junk(error.kind, push=digest, reason=str(error))
            self._log_rejection(error)
            self._junk_waiting.set()
            return None

    def _screen(self, payload: bytes, *, retained: bool) -> signing.Envelope | None:
        remote = self._local.remote_config
        envelope = screen(
            payload,
            trusted=self._trust.accepted,
            max_payload_bytes=remote.max_payload_bytes,
            gateway_id=self._local.gateway.id,
            groups=remote.groups,
        )
        floor = max(self._floor(envelope), self._admitted[self._floor_name(envelope)])
        if envelope.version > floor:
            return envelope
        if retained:  # an older retained push (e.g. the group's) seen again: not news
            log.debug("remote config: retained version %d <= %d, ignored", envelope.version, floor)
            return None
        raise Rejected(stale_reason(envelope, floor), kind="stale")

    def _admit(self, envelope: signing.Envelope) -> None:
        name = self._floor_name(envelope)
        self._admitted[name] = max(self._admitted[name], envelope.version)

    @staticmethod
    def _floor_name(envelope: signing.Envelope) -> str:
        return "keys" if envelope.kind == "keys" else "config"

    def _floor(self, envelope: signing.Envelope) -> int:
        if envelope.kind == "keys":
            return self._trust.version
        return max(self._in_force.version, self._refused_version)

    def _log_rejection(self, error: Rejected) -> None:
        self._log.log(
            logging.WARNING,
            f"rejected:{error.kind}",
            "remote config: push rejected: %s",
            error,
            extra={"event": "config_rejected"},
        )

    async def _process(self, envelope: signing.Envelope, *, retained: bool) -> None:
        """Decide one screened push and report the outcome; a refusal is never raised."""
        try:
            await self._handle(envelope, retained=retained)
        except Rejected as error:
            self._log_rejection(error)
            await self._finish(
                "rejected", push=envelope.digest, version=envelope.version, reason=str(error)
            )
        except Exception as error:  # a bug must not take the worker down with no report
            log.exception("remote config: push version %d failed", envelope.version)
            await self._finish(
                "rejected",
                push=envelope.digest,
                version=envelope.version,
                reason=f"internal error ({type(error).__name__}); nothing was changed",
            )

    async def _handle(self, envelope: signing.Envelope, *, retained: bool) -> None:
        floor = self._floor(envelope)
        if envelope.version <= floor:  # another push was applied while this one waited
            raise Rejected(stale_reason(envelope, floor), kind="stale")
        if envelope.kind == "keys":
            await self._rotate_keys(envelope)
            return
        try:
            await self._apply(envelope, self._pushed_document(envelope))
        except Rejected:
            await self._refuse_version(envelope.version)
            raise

    async def _refuse_version(self, version: int) -> None:
        self._refused_version = max(self._refused_version, version)
        await asyncio.to_thread(self._store.save_refused_version, self._refused_version)

    def _pushed_document(self, envelope: signing.Envelope) -> dict[str, Any]:
        current = self._in_force.document or self._local_document
        try:
            return pushed_document(envelope.kind, envelope.body, self._in_force.version, current)
        except PolicyError as error:
            raise Rejected(str(error), kind="invalid_config") from None

    async def _apply(self, envelope: signing.Envelope, pushed: dict[str, Any]) -> None:
        try:
            document, candidate = candidate_config(pushed, self._local_document, self._local)
            self._trust.authorise(envelope.key_id, self._applier.config, candidate)
        except (PolicyError, ConfigError) as error:
            raise Rejected(f"invalid config: {error}", kind="invalid_config") from None
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
            await self._finish(
                "applied",
                push=envelope.digest,
                version=new.version,
                changes=changes.describe(),
            )

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
            await self._finish("applied", push=new.push, version=new.version, changes=described)
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
            "rolled_back",
            reason=reason,
            push=new.push,
            version=new.version,
            rolled_back_version=new.version,
        )

    async def _rotate_keys(self, envelope: signing.Envelope) -> None:
        texts = envelope.body.get("keys")
        try:
            self._trust.authorise(envelope.key_id)  # an owner's key never rotates keys
            keys = rotation_keys(texts)
        except PolicyError as error:
            raise Rejected(str(error), kind="invalid_keys") from None
        anchors = self._trust.anchors
        await asyncio.to_thread(
            self._store.save_trust, {"anchors": anchors, "version": envelope.version, "keys": texts}
        )
        self._trust = self._trust.rotated(keys, envelope.version)
        ids = sorted(self._trust.keys)
        log.info(
            "remote config: trusted keys rotated to %s",
            ", ".join(ids),
            extra={"event": "keys_rotated"},
        )
        await self._finish(
            "applied",
            push=envelope.digest,
            version=envelope.version,
            changes=[f"trusted keys: {ids}"],
        )

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

    async def _finish(self, result: str, *, push: str, version: int, **details: object) -> None:
        """Record a signed push's outcome, keep the report across restarts, publish it."""
        self._outcomes.outcome(result, push=push, version=version, **details)
        report = self._outcomes.as_json(self._head())
        try:
            await asyncio.to_thread(self._store.save_report, report)
        except OSError as error:
            self._log.log(
                logging.WARNING, "report", "remote config: cannot save the report: %s", error
            )
        await self.publish_state()

    async def _report_junk(self) -> None:
        """Publish the junk counters at most once per interval while junk arrives (no disk
        write: the next signed push's report carries them to state.json)."""
        while True:
            await self._junk_waiting.wait()
            self._junk_waiting.clear()
            await self.publish_state()
            await asyncio.sleep(self._junk_interval_s)

    async def publish_state(self) -> bool:
        """(Re)publish the report; False if the hub is not connected now."""
        async with self._publishing:  # one at a time, each with the report as it is then
            return await self._publish_state(self.state_payload())
