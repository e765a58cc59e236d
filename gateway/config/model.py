"""The config as a whole: `[gateway]`, `[buffer]` and the root record that holds every section."""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Annotated, Literal

from gateway.config.alerts import AlertRule, check_rules
from gateway.config.fields import NAME, record
from gateway.config.remote import RemoteConfigSection
from gateway.config.schema import Range
from gateway.config.sources import SerialSourceConfig, SourceConfig
from gateway.config.uplinks import HubSection, UplinkSection


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
    """Who runs this gateway: the owner of every source that names none, and the owner the
    hub carries by default (docs/uplinks.md)."""

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.id):
            raise ValueError("id: expected 1-64 characters from A-Z a-z 0-9 _ . - (used in topics)")
        if not NAME.fullmatch(self.owner):
            raise ValueError("owner: expected 1-64 characters from A-Z a-z 0-9 _ . -")
        if not self.data_dir:
            raise ValueError("data_dir: expected a directory path")


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


def _parts(source: SourceConfig) -> list[str]:
    """What readings of a source may come from after "<name>/": its BLE devices or meters."""
    return [part.name for part in getattr(source, "devices", getattr(source, "meters", []))]


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
    alerts: list[AlertRule] = field(default_factory=list)
    """Edge alert rules, evaluated as readings arrive and sent at once (docs/alerts.md)."""
    uplinks: list[UplinkSection] = field(default_factory=list)
    """More destinations besides the hub, each for the owners it lists (docs/uplinks.md)."""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for index, source in enumerate(self.sources):
            if source.name in seen:
                raise ValueError(f"sources[{index}].name: {source.name!r} is used twice")
            seen.add(source.name)
        check_rules(
            self.alerts,
            {s.name: _parts(s) or None for s in self.sources},
            {
                s.name: s.aggregate_s
                for s in self.sources
                if isinstance(s, SerialSourceConfig) and s.aggregate_s is not None
            },
        )
        names: set[str] = set()
        for index, uplink in enumerate(self.uplinks):
            if uplink.name in names:
                raise ValueError(f"uplinks[{index}].name: {uplink.name!r} is used twice")
            names.add(uplink.name)
        carried = {owner for _, owners in self.routes() for owner in owners}
        for index, source in enumerate(self.sources):
            owner = self.owner_of(source)
            if owner not in carried:
                raise ValueError(
                    f"sources[{index}].owner: no uplink carries the readings of owner "
                    f"{owner!r} (list it in hub.owners or in an [[uplinks]] record's owners)"
                )

    def owner_of(self, source: SourceConfig) -> str:
        """A source's owner: its own, else the gateway's."""
        return source.owner or self.gateway.owner

    def hub_owners(self) -> list[str]:
        """The owners the hub carries: `hub.owners`, else the gateway's own."""
        return list(self.hub.owners) or [self.gateway.owner]

    def routes(self) -> list[tuple[str, list[str]]]:
        """(uplink name, owners it carries), the hub first (named `hub`)."""
        return [("hub", self.hub_owners())] + [(u.name, list(u.owners)) for u in self.uplinks]

    def source_owners(self) -> dict[str, str]:
        """Source name -> owner, for stamping readings as they are stored."""
        return {source.name: self.owner_of(source) for source in self.sources}

    @property
    def data_dir(self) -> Path:
        """`gateway.data_dir` as a path."""
        return Path(self.gateway.data_dir)
