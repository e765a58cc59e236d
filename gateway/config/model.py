"""The config as a whole: `[gateway]`, `[buffer]` and the root record that holds every section."""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Annotated, Literal

from gateway.config.fields import NAME, record
from gateway.config.remote import RemoteConfigSection
from gateway.config.schema import Range
from gateway.config.sources import SourceConfig
from gateway.config.uplinks import HubSection


@record
class GatewaySection:
    """`[gateway]`: who this gateway is and where it keeps its data."""

    id: str
    """Gateway identity; appears in topics and in every reading's key. Letters, digits, `_.-`."""
    data_dir: str = "/var/lib/citygw"
    """Where the durable buffer (buffer.db) and the status socket live; not on tmpfs."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Least severe log messages written: debug, info, warning or error."""
    owner: str = "operator"
    """The operator: owns the hub uplink, status, metrics and remote config, and every
    source that names no owner."""

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.id):
            raise ValueError("id: expected 1-64 characters from A-Z a-z 0-9 _ . - (used in topics)")
        if not self.data_dir:
            raise ValueError("data_dir: expected a directory path")
        if not NAME.fullmatch(self.owner):
            raise ValueError("owner: expected 1-64 characters from A-Z a-z 0-9 _ . -")


@record
class BufferSection:
    """`[buffer]`: the durable buffer that keeps readings until the hub acknowledged them."""

    max_readings: Annotated[int, Range(ge=100, le=100_000_000)] = 2_000_000
    """Readings kept while the hub is unreachable (about 40 bytes each on disk)."""
    when_full: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    """Which readings a full buffer drops (every drop is counted and reported)."""
    commit_interval_ms: Annotated[int, Range(ge=10, le=3_600_000)] = 1000
    """Staged readings are committed at least this often, and before each flush."""
    commit_max_readings: Annotated[int, Range(ge=1, le=100_000)] = 5000
    """...or as soon as this many are staged."""
    synchronous: Literal["full", "normal"] = "full"
    """`full`: a committed reading survives a power cut. `normal`: it survives a crash, and
    a power cut may lose the commits since the last checkpoint (fewer SD-card writes)."""


@record
class Config:
    """A gateway's config file: the same schema for the local file and signed pushes."""

    gateway: GatewaySection
    """This gateway's identity and local storage."""
    hub: HubSection
    """The operator's MQTT uplink."""
    buffer: BufferSection = field(default_factory=BufferSection)
    """The durable buffer between the sources and the uplink."""
    sources: list[SourceConfig] = field(default_factory=list)
    """The sensors: serial ports and BLE scanners."""
    remote_config: RemoteConfigSection = field(default_factory=RemoteConfigSection)
    """Signed config pushes over MQTT; off while trusted_keys is empty."""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for index, source in enumerate(self.sources):
            if source.name in seen:
                raise ValueError(f"sources[{index}].name: {source.name!r} is used twice")
            seen.add(source.name)

    @property
    def data_dir(self) -> Path:
        """`gateway.data_dir` as a path."""
        return Path(self.gateway.data_dir)
