"""What a config push may change: from a pushed document to the config the gateway would run.

Pure functions, no I/O beyond resolving paths. The rules (docs/remote-config.md):
the local file owns the gateway's identity, its data directory and the remote-config section
(trust); files a push names must lie in the data directory or be files the local config already
names; a serial port must match remote_config.allowed_ports and, under /dev, have the shape
of a serial device (never a console); the hub cannot be made insecure unless the local
file allows it; no inline broker password travels in a (retained, widely readable) push.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import (
    Config,
    ConfigError,
    HubSection,
    ModbusSourceConfig,
    SerialSourceConfig,
    SourceConfig,
    UplinkSection,
    parse_config,
)

SERIAL_DEVICE = re.compile(
    r"/dev/tty(?:S|USB|ACM|AMA)[0-9]{1,3}"
    r"|/dev/serial/by-id/[A-Za-z0-9][A-Za-z0-9_.:+-]{0,199}"
    r"|/dev/citygw/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
)
"""The device paths under /dev a push may name: UARTs and USB/ACM serial adapters (the
kernel's names), udev's stable by-id links, and deploy/'s udev rules' /dev/citygw/ names."""
MAX_PORT_CHARS = 255
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9_.:+/-]{1,254}")
"""An absolute path of at most MAX_PORT_CHARS safe characters."""
PROTECTED = (("gateway", "id"), ("gateway", "data_dir"))
FILE_KEYS = ("ca_file", "cert_file", "key_file", "password_file")


Json = dict[str, "Json"] | list["Json"] | str | int | float | bool | None
"""A JSON (or TOML) value, as a config document holds."""


class PolicyError(ValueError):
    """A push the policy refuses; the message names the key and the rule."""


def merge_patch(target: Json, patch: Json) -> Json:
    """RFC 7396 JSON Merge Patch: objects merge recursively, null deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def pushed_document(
    kind: str, body: dict[str, Any], in_force_version: int, current: dict[str, Any]
) -> dict[str, Any]:
    """The document a signed body proposes: its `config`, or its `patch` merged into the
    document of the version in force (`current`), which must be its `base_version`."""
    if kind == "config":
        document = body.get("config")
        if not isinstance(document, dict):
            raise PolicyError("signed.config: expected a config document (object)")
        return document
    base = body.get("base_version")
    if base != in_force_version:
        raise PolicyError(
            f"patch against version {base}, but version {in_force_version} is in force"
        )
    patch = body.get("patch")
    if not isinstance(patch, dict):
        raise PolicyError("signed.patch: expected a JSON merge patch (object)")
    merged = merge_patch(current, patch)
    if not isinstance(merged, dict):  # an object patch always merges to an object
        raise PolicyError("signed.patch: the merged config is not an object")
    return merged


def pushable_port(port: str, patterns: list[str]) -> bool:
    """Whether a push may name this serial port: a plain path (safe characters, at most
    MAX_PORT_CHARS, no `..`) that matches one of `patterns` and, under /dev, has the shape of a
    serial device (SERIAL_DEVICE), so never a console (/dev/tty, /dev/tty0) whatever the
    patterns say."""
    if not _PLAIN_PATH.fullmatch(port) or os.path.normpath(port) != port:
        return False
    if port.startswith("/dev/") and not SERIAL_DEVICE.fullmatch(port):
        return False
    return any(fnmatch.fnmatchcase(port, pattern) for pattern in patterns)


def _inside(path: str, directory: str) -> bool:
    try:
        real_dir = os.path.realpath(directory)
        real = os.path.realpath(path)
    except (ValueError, OSError):  # a NUL, an unencodable name, a loop
        return False
    return os.path.commonpath([real, real_dir]) == real_dir


def _local_files(local: Config) -> set[str]:
    sections = [local.hub, *local.uplinks]
    return {os.path.normpath(p) for s in sections for p in (getattr(s, k) for k in FILE_KEYS) if p}


def effective_document(
    pushed: dict[str, Any], local_document: dict[str, Any], local: Config
) -> dict[str, Any]:
    """The document the gateway would run: the push, with the locally owned parts filled in
    from the local file. Raises PolicyError if the push tries to change them."""
    document = copy.deepcopy(pushed)
    if "remote_config" in document and document["remote_config"] != local_document.get(
        "remote_config", {}
    ):
        raise PolicyError(
            "remote_config: only the local file sets the remote-config section "
            "(trusted keys change by a signed key rotation)"
        )
    gateway = document.setdefault("gateway", {})
    if not isinstance(gateway, dict):
        raise PolicyError("gateway: expected a table")
    for section, key in PROTECTED:
        local_value = local_document.get(section, {}).get(key)
        if key in gateway and gateway[key] != local_value:
            raise PolicyError(
                f"{section}.{key}: a push may not change it (local file: {local_value!r})"
            )
        if local_value is not None:
            gateway[key] = local_value
    if "remote_config" in local_document:
        document["remote_config"] = copy.deepcopy(local_document["remote_config"])
    else:
        document.pop("remote_config", None)
    sections: list[tuple[str, Any]] = [("hub", document.get("hub"))]
    uplinks = document.get("uplinks")
    if isinstance(uplinks, list):
        sections += [(f"uplinks[{i}]", uplink) for i, uplink in enumerate(uplinks)]
    for where, section in sections:
        if isinstance(section, dict) and section.get("password"):
            raise PolicyError(
                f"{where}.password: a push is readable by whoever may subscribe to it; "
                f"put the password in a file and name it in {where}.password_file"
            )
    return document


def check(candidate: Config, local: Config) -> None:
    """Rules that need the validated candidate. Raises PolicyError."""
    data_dir = local.gateway.data_dir
    allowed_files = _local_files(local)
    sections: list[tuple[str, HubSection | UplinkSection]] = [("hub", candidate.hub)]
    sections += [(f"uplinks[{i}]", uplink) for i, uplink in enumerate(candidate.uplinks)]
    for (where, section), key in itertools.product(sections, FILE_KEYS):
        path = getattr(section, key)
        if not path:
            continue
        if not Path(path).is_absolute():
            raise PolicyError(f"{where}.{key}: expected an absolute path")
        if os.path.normpath(path) not in allowed_files and not _inside(path, data_dir):
            raise PolicyError(
                f"{where}.{key}: {path[:200]} is outside the data directory {data_dir} "
                "and not a file the local config names"
            )
    wired = SerialSourceConfig | ModbusSourceConfig  # sources that open a device by path
    local_ports = {s.port for s in local.sources if isinstance(s, wired)}
    patterns = local.remote_config.allowed_ports
    for index, source in enumerate(candidate.sources):
        if (
            isinstance(source, wired)
            and source.port not in local_ports
            and not pushable_port(source.port, patterns)
        ):
            raise PolicyError(
                f"sources[{index}].port: {source.port[:80]!r} is not a serial port a "
                f"push may name (a serial device's shape, and remote_config.allowed_ports: "
                f"{', '.join(patterns)})"
            )
    if not local.remote_config.allow_insecure_hub:
        if local.hub.tls and not candidate.hub.tls:
            raise PolicyError(
                "hub.url: a push may not switch from mqtts:// to mqtt:// "
                "(remote_config.allow_insecure_hub is false)"
            )
        if local.hub.tls_verify and not candidate.hub.tls_verify:
            raise PolicyError(
                "hub.tls_verify: a push may not turn TLS verification off "
                "(remote_config.allow_insecure_hub is false)"
            )


def candidate_config(
    pushed: dict[str, Any], local_document: dict[str, Any], local: Config
) -> tuple[dict[str, Any], Config]:
    """Policy, schema and policy again: the effective document and its Config, or PolicyError
    / ConfigError (with the exact path) saying why not."""
    document = effective_document(pushed, local_document, local)
    candidate = parse_config(document)
    check(candidate, local)
    return document, candidate


@dataclass(frozen=True, slots=True)
class Changes:
    """What differs between two configs, in the units the agent restarts."""

    sources_added: list[str] = field(default_factory=list)
    sources_removed: list[str] = field(default_factory=list)
    sources_changed: list[str] = field(default_factory=list)
    hub: bool = False
    uplinks: bool = False
    """`[[uplinks]]`, an owner of a source or the owners the hub carries changed."""
    buffer: bool = False
    log_level: bool = False

    def __bool__(self) -> bool:
        return bool(
            self.sources_added
            or self.sources_removed
            or self.sources_changed
            or self.hub
            or self.uplinks
            or self.buffer
            or self.log_level
        )

    def describe(self) -> list[str]:
        """One line a change, as `citygw config diff` and the state report show it."""
        lines = [f"source {name} added" for name in self.sources_added]
        lines += [f"source {name} removed" for name in self.sources_removed]
        lines += [f"source {name} changed (restarted)" for name in self.sources_changed]
        if self.hub:
            lines.append("hub changed (uplink restarted)")
        if self.uplinks:
            lines.append("uplinks or owners changed (the uplinks concerned restarted)")
        if self.buffer:
            lines.append("buffer changed (takes effect at the next restart)")
        if self.log_level:
            lines.append("log level changed")
        return lines


def diff(old: Config, new: Config) -> Changes:
    """What switching from `old` to `new` changes, by the part that must restart."""
    before: dict[str, SourceConfig] = {s.name: s for s in old.sources}
    after: dict[str, SourceConfig] = {s.name: s for s in new.sources}
    return Changes(
        sources_added=[n for n in after if n not in before],
        sources_removed=[n for n in before if n not in after],
        sources_changed=[n for n in after if n in before and after[n] != before[n]],
        hub=old.hub != new.hub,
        uplinks=(old.uplinks, old.routes(), old.gateway.owner)
        != (new.uplinks, new.routes(), new.gateway.owner),
        buffer=old.buffer != new.buffer,
        log_level=old.gateway.log_level != new.gateway.log_level,
    )


__all__ = ["Changes", "ConfigError", "PolicyError", "candidate_config", "diff", "merge_patch"]
