"""What the config's sections share: the error type, names, paths and the record decorator."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from gateway.config.schema import Range

# Patterns are applied with fullmatch: `$` would also match before a trailing newline.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""What a gateway id, a source, owner, uplink or group name is, for `fullmatch`."""
GATEWAY_ID = NAME
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

MAX_PATH_CHARS = 1024
"""Longest device path a config may name (a serial port)."""

PositiveSeconds = Annotated[float, Range(gt=0, le=86_400)]
record = dataclass(frozen=True, kw_only=True, slots=True)
"""Every config section is a frozen, keyword-only, slotted dataclass."""


class ConfigError(ValueError):
    """A config that cannot be used; `path` says where (e.g. `hub.flush_interval_s`)."""

    what = "invalid config"

    def __init__(self, message: str, *, path: str = "", file: str = "") -> None:
        self.path = path
        self.file = file
        where = f"{file}: " if file else ""
        at = f"{path}: " if path else ""
        super().__init__(f"{where}{at}{message}")
