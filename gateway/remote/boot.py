"""Which keys to trust and which config to start with, from the local file and what was pushed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.config import Config, ConfigError
from gateway.remote import signing
from gateway.remote.owners import check_owner_push
from gateway.remote.policy import PolicyError, candidate_config
from gateway.remote.store import InForce, Store

if TYPE_CHECKING:  # PyNaCl is reached through signing.py only
    from nacl.signing import VerifyKey

log = logging.getLogger(__name__)

MAX_KEYS = 16
"""Most keys a signed rotation may list."""


@dataclass(slots=True)
class Trust:
    """The keys whose signatures count, and what they derive from."""

    keys: dict[str, VerifyKey]
    """The operator's keys (full power), by key id."""
    version: int
    """Version of the signed rotation in force (0: the local keys themselves)."""
    anchors: list[str]
    """Key ids of the local provisioning a rotation was made from."""
    owner_keys: dict[str, tuple[str, VerifyKey]] = field(default_factory=dict)
    """Owners' keys from the local file (never rotated, never pushed): key id -> (owner, key)."""

    @property
    def accepted(self) -> dict[str, VerifyKey]:
        """Every key whose signature is checked: the owners' and the operator's."""
        return {**{kid: key for kid, (_, key) in self.owner_keys.items()}, **self.keys}

    def owner_of(self, key_id: str) -> str | None:
        """The owner whose key `key_id` is; None for the operator's (which wins a tie)."""
        return None if key_id in self.keys else self.owner_keys[key_id][0]

    def rotated(self, keys: list[VerifyKey], version: int) -> Trust:
        """The operator's keys replaced by a signed rotation; the owners' stay."""
        return Trust({signing.key_id(k): k for k in keys}, version, self.anchors, self.owner_keys)

    def authorise(
        self, key_id: str, before: Config | None = None, after: Config | None = None
    ) -> None:
        """PolicyError unless `key_id` may make this change: the operator's keys may make any;
        an owner's key only changes to its own part (`owners.py`), never a key rotation."""
        owner = self.owner_of(key_id)
        if owner is None:
            return
        if before is None or after is None:
            raise PolicyError(f"signed.keys: owner {owner!r}'s key may not rotate the trusted keys")
        check_owner_push(owner, before, after)


def rotation_keys(texts: object) -> list[VerifyKey]:
    """The keys a signed rotation lists; PolicyError unless 1 to MAX_KEYS base64 keys."""
    if (
        not isinstance(texts, list)
        or not 0 < len(texts) <= MAX_KEYS
        or not all(isinstance(text, str) for text in texts)
    ):
        raise PolicyError(f"signed.keys: expected 1 to {MAX_KEYS} base64 public keys")
    try:
        return [signing.public_from_b64(text) for text in texts]
    except signing.EnvelopeError as error:
        raise PolicyError(f"signed.keys: {error}") from None


def load_trust(config: Config, store: Store) -> Trust:
    """Trusted keys: the local provisioning, or a signed rotation made from that same
    provisioning (if the local keys change, the local keys win: physical access decides);
    and the owners' keys, from the local file only."""
    local = {
        signing.key_id(k): k
        for k in (signing.load_public(path) for path in config.remote_config.trusted_keys)
    }
    anchors = sorted(local)
    owners = {
        signing.key_id(key): (owner, key)
        for owner, paths in config.remote_config.owner_keys.items()
        for key in (signing.load_public(path) for path in paths)
    }
    rotated = store.trust()
    if rotated and rotated.get("anchors") == anchors:
        try:
            keys = [signing.public_from_b64(text) for text in rotated["keys"]]
            return Trust(local, 0, anchors, owners).rotated(keys, int(rotated["version"]))
        except (KeyError, TypeError, ValueError, signing.EnvelopeError):
            log.warning("remote config: ignoring a damaged key rotation record")
    return Trust(local, 0, anchors, owners)


@dataclass(slots=True)
class Boot:
    """The config to start with, the push it came from, and why others were passed over."""

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
