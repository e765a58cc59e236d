"""Owners' own keys: what a push signed by an owner (not the operator) may change.

An owner's key, trusted for that owner only in the local file (`[remote_config] owner_keys`),
may change that owner's part and nothing else: its sources (owned by it before and after the
change) and the uplinks that carry only its readings (`owners` exactly [it]). Everything else
(gateway, hub, buffer, remote config, alerts, another owner's sources or uplinks, giving a
source away, taking one over, reading another owner's port or BLE device) is refused with the
path it touched. Pure: two configs in, PolicyError or nothing out (docs/remote-config.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from gateway.config import BleSourceConfig, Config, SerialSourceConfig, SourceConfig
from gateway.config.uplinks import UplinkSection
from gateway.remote.policy import PolicyError

PARTS = ("sources", "uplinks")
"""The Config fields an owner has a part of; every other field is the operator's."""
FILES = ("ca_file", "cert_file", "key_file", "password_file")
"""An uplink's fields that name a file the agent reads."""


def _difference(path: str, before: object, after: object) -> str:
    """The first path where two config values differ (into sections, not into lists)."""
    if dataclasses.is_dataclass(before) and type(before) is type(after):
        for field in dataclasses.fields(before):
            old, new = getattr(before, field.name), getattr(after, field.name)
            if old != new:
                return _difference(f"{path}.{field.name}", old, new)
    return path


def _owner(source: SourceConfig, config: Config) -> str:
    return source.owner or config.gateway.owner


def _claims(source: SourceConfig) -> list[tuple[str, str]]:
    """What a source reads that no other owner's source may read: (path suffix, value)."""
    if isinstance(source, SerialSourceConfig):
        return [("port", source.port)]
    if isinstance(source, BleSourceConfig):
        claims = []
        for index, device in enumerate(source.devices):
            if device.address:
                claims.append((f"devices[{index}].address", device.address.upper()))
            if device.bind_key:
                claims.append((f"devices[{index}].bind_key", device.bind_key.lower()))
        return claims
    return []


def _refuse(path: str, owner: str, why: str) -> PolicyError:
    return PolicyError(
        f"{path}: {why}; a push signed by owner {owner!r}'s key may change only "
        f"{owner!r}'s sources and uplinks"
    )


def _check_sources(owner: str, before: Config, after: Config) -> None:
    old = {s.name: (i, s) for i, s in enumerate(before.sources)}
    new = {s.name: (i, s) for i, s in enumerate(after.sources)}
    for name, (index, source) in old.items():
        was = _owner(source, before)
        if name not in new and was != owner:
            raise _refuse(f"sources[{index}]", owner, f"removes source {name!r} of owner {was!r}")
    others: dict[str, tuple[str, str]] = {}
    for config in (before, after):
        for source in config.sources:
            if _owner(source, config) != owner:
                others |= {
                    value: (source.name, _owner(source, config)) for _, value in _claims(source)
                }
    for name, (index, source) in new.items():
        now = _owner(source, after)
        if name in old and old[name][1] == source:
            continue
        was = _owner(old[name][1], before) if name in old else owner
        if was != owner:
            raise _refuse(f"sources[{index}]", owner, f"source {name!r} belongs to {was!r}")
        if now != owner:
            why = f"gives source {name!r} to" if name in old else f"adds source {name!r} for"
            raise _refuse(f"sources[{index}].owner", owner, f"{why} {now!r}")
        for suffix, value in _claims(source):
            if value in others:
                holder, their = others[value]
                raise _refuse(
                    f"sources[{index}].{suffix}", owner, f"source {holder!r} of {their!r} reads it"
                )


def _check_uplinks(owner: str, before: list[UplinkSection], after: list[UplinkSection]) -> None:
    """`[[uplinks]]` by name: each one touched must carry exactly [owner], before and after,
    and name only files (credentials, CAs) that the owner's uplinks name already: the operator
    installs them, so a push cannot send the operator's or another owner's secret elsewhere."""
    old = {u.name: (i, u) for i, u in enumerate(before)}
    new = {u.name: (i, u) for i, u in enumerate(after)}
    own_files = {
        getattr(u, key) for _, u in old.values() if list(u.owners) == [owner] for key in FILES
    }
    for name in [*old, *(n for n in new if n not in old)]:
        index, uplink = new.get(name) or old[name]
        if name in old and name in new and old[name][1] == uplink:
            continue
        for which in (old.get(name), new.get(name)):
            if which is not None and list(which[1].owners) != [owner]:
                raise _refuse(
                    f"uplinks[{index}]",
                    owner,
                    f"uplink {name!r} carries {list(which[1].owners)!r}, not only {owner!r}",
                )
        for key in FILES if name in new else ():
            path = getattr(uplink, key)
            if path and path not in own_files:
                raise _refuse(
                    f"uplinks[{index}].{key}", owner, "names a file its uplinks do not use now"
                )


def check_owner_push(owner: str, before: Config, after: Config) -> None:
    """PolicyError naming the path unless `after` differs from `before` only in `owner`'s part."""
    for field in dataclasses.fields(cast(Any, before)):
        if field.name in PARTS:
            continue
        old, new = getattr(before, field.name), getattr(after, field.name)
        if old != new:
            path = _difference(field.name, old, new)
            raise _refuse(path, owner, "the operator's part")
    _check_sources(owner, before, after)
    _check_uplinks(owner, before.uplinks, after.uplinks)
