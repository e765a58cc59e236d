"""Reading a config: TOML or a pushed document to a validated Config; errors name the path."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from gateway.config import schema
from gateway.config.fields import ConfigError
from gateway.config.model import Config
from gateway.config.schema import SchemaError
from gateway.config.uplinks import HubSection, UplinkSection

DEFAULT_PATH = Path("/etc/citygw/gateway.toml")
"""Where an installed gateway keeps its config (deploy/install.sh)."""


def parse_config(document: dict[str, Any]) -> Config:
    """Validate a config document (from TOML or a remote push) into a Config."""
    try:
        config: Config = schema.convert(document, Config)
    except SchemaError as error:
        raise ConfigError(error.detail, path=error.path) from None
    return config


def load_document(path: str | Path) -> dict[str, Any]:
    """The TOML file as a document (not yet validated)."""
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", file=str(path)) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}", file=str(path)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file; raises ConfigError naming the file and the key."""
    try:
        return parse_config(load_document(path))
    except ConfigError as error:
        if error.file:
            raise
        raise ConfigError(str(error), file=str(path)) from None


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file, for editors (taplo, VS Code Even Better TOML)."""
    document = schema.json_schema(Config)
    document["title"] = "citygw gateway configuration"
    return document


def read_password(hub: HubSection | UplinkSection) -> str | None:
    """The password of the hub or an uplink, from the config or its file (never logged)."""
    if hub.password_file:
        return Path(hub.password_file).read_text(encoding="utf-8").strip()
    return hub.password or None
