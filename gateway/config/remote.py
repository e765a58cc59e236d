"""`[remote_config]`: who may push a config to this gateway, and what a push may change."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated

from gateway.config.fields import NAME, record
from gateway.config.schema import Range


@record
class RemoteConfigSection:
    """Signed config pushes over MQTT (docs/remote-config.md). Only the local file sets this
    section: a push can neither change it nor the trust it grants."""

    trusted_keys: list[str] = field(default_factory=list)
    """Ed25519 public keys (PEM files) whose signatures this gateway accepts; empty: remote
    config is off."""
    owner_keys: dict[str, list[str]] = field(default_factory=dict)
    """Owner -> Ed25519 public keys (PEM files) of that owner: a push signed with one may
    change only that owner's sources and uplinks (docs/remote-config.md, owners' keys)."""
    groups: list[str] = field(default_factory=list)
    """Fleet groups this gateway belongs to; it also obeys pushes on each group's topic."""
    rollback_after_s: Annotated[float, Range(ge=5, le=3600)] = 60.0
    """A push that changed the hub settings is rolled back if the hub is not reached again
    within this time."""
    max_payload_bytes: Annotated[int, Range(ge=1024, le=1_048_576)] = 65_536
    """Bigger pushes are rejected before they are parsed."""
    allow_insecure_hub: bool = False
    """Whether a push may switch the hub from mqtts:// to mqtt:// or turn tls_verify off."""
    allowed_ports: list[str] = field(
        default_factory=lambda: [
            "/dev/ttyS*",
            "/dev/ttyUSB*",
            "/dev/ttyACM*",
            "/dev/ttyAMA*",
            "/dev/serial/by-id/*",
            "/dev/citygw/*",
        ]
    )
    """Serial ports a push may name (shell patterns); ports the local file names are allowed.
    Under /dev a pushed port must also have a serial device's shape (ttyS, ttyUSB, ttyACM,
    ttyAMA and a number, or a name in /dev/serial/by-id/ or /dev/citygw/), whatever the
    patterns say: never a console such as /dev/tty0 or /dev/tty."""

    def __post_init__(self) -> None:
        for index, group in enumerate(self.groups):
            if not NAME.fullmatch(group):
                raise ValueError(
                    f"groups[{index}]: expected 1-64 characters from "
                    "A-Z a-z 0-9 _ . - (used in topics)"
                )
        for owner in self.owner_keys:
            if not NAME.fullmatch(owner):
                raise ValueError(
                    f"owner_keys: {owner[:80]!r} is not an owner name "
                    "(1-64 characters from A-Z a-z 0-9 _ . -)"
                )
        for name, paths in (
            ("trusted_keys", self.trusted_keys),
            ("allowed_ports", self.allowed_ports),
            *((f"owner_keys.{o}", keys) for o, keys in self.owner_keys.items()),
        ):
            for index, path in enumerate(paths):
                if not path.startswith("/"):
                    raise ValueError(f"{name}[{index}]: expected an absolute path")

    @property
    def enabled(self) -> bool:
        """Remote config is on when at least one key is trusted (an operator's or an
        owner's)."""
        return bool(self.trusted_keys) or any(self.owner_keys.values())
