"""What remote config keeps in `<data_dir>/remote-config/`: each file whole after a crash."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_DIR = "remote-config"


def document_hash(document: dict[str, Any]) -> str:
    """SHA-256 of the document's canonical JSON: the same config, the same hash."""
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
    tmp.replace(path)
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
        """The record as stored in active.json / last-good.json."""
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
        """The record from `as_json` output; KeyError/TypeError/ValueError if damaged."""
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
        """The pushed config in force, if any."""
        return self._in_force("active.json")

    def last_good(self) -> InForce | None:
        """The config that ran before the one in force (the rollback target)."""
        return self._in_force("last-good.json")

    def save_active(self, in_force: InForce, *, last_good: InForce | None) -> None:
        """Last-good first: a crash between the two renames leaves a consistent pair."""
        if last_good is not None:
            self._write("last-good.json", last_good.as_json())
        self._write("active.json", in_force.as_json())

    def trust(self) -> dict[str, Any] | None:
        """The signed key rotation in force, as stored."""
        return self._read("trust.json")

    def save_trust(self, data: dict[str, Any]) -> None:
        """Keep a key rotation (durably: it decides what is trusted)."""
        self._write("trust.json", data)

    def refused_version(self) -> int:
        """The highest version refused or rolled back (0 if none)."""
        data = self._read("refused.json") or {}
        version = data.get("version", 0)
        return version if isinstance(version, int) else 0

    def save_refused_version(self, version: int) -> None:
        """Remember a refused version, so its retained push is not tried again."""
        self._write("refused.json", {"version": version})

    def report(self) -> dict[str, Any] | None:
        """The last state report, to carry across a restart."""
        return self._read("state.json")

    def save_report(self, report: dict[str, Any]) -> None:
        """Not fsynced: the report is a courtesy after a restart; the config files decide."""
        self._write("state.json", report, durable=False)
