"""`[hub]` and `[[uplinks]]`: where readings go, and how they are batched on the way.

`[hub]` is the operator's MQTT uplink (status, metrics, remote config, and the readings of the
owners it lists); each `[[uplinks]]` record is one more destination for the owners it lists.
"""

from __future__ import annotations

import re
from dataclasses import field, fields
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from gateway.config.fields import NAME, PositiveSeconds, record
from gateway.config.schema import Range

_TOPIC_PREFIX = re.compile(r"[^#+\x00]{1,200}")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@record
class HubSection:
    """`[hub]`: the operator's MQTT broker, and how readings are batched to it."""

    url: str
    """`mqtt://host[:port]` or `mqtts://host[:port]` (TLS, verified)."""
    topic_prefix: str = "citygw/v1"
    """Topics are `<topic_prefix>/<gateway id>/{data,status,metrics,...}`."""
    flush_interval_s: PositiveSeconds = 30.0
    """Batch window: readings are published at the latest this long after they arrive."""
    batch_max_readings: Annotated[int, Range(ge=1, le=10_000)] = 1000
    """...or as soon as this many readings are waiting."""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT protocol version spoken to the broker."""
    wire_format: Literal[1, 2, 3, 4] = 4
    """1: self-describing msgpack maps; 2: compact msgpack; 3: bit-packed, for metered links;
    4 (default): v3 with a shorter header and cheaper rows. 2-4 name their series in the
    retained birth, which a hub can ask for again (docs/protocol.md)."""
    client_id: str = ""
    """MQTT client id; empty means "citygw-<gateway id>"."""
    username: str = ""
    """Broker user name; empty: connect without credentials."""
    password: str = field(default="", repr=False)
    """Broker password; prefer password_file (never logged)."""
    password_file: str = ""
    """File holding the broker password, readable only by the citygw user."""
    ca_file: str = ""
    """CA bundle that verifies the broker (empty: the system's CAs)."""
    cert_file: str = ""
    """Client certificate for mutual TLS (needs key_file too)."""
    key_file: str = ""
    """Private key of cert_file for mutual TLS."""
    tls_verify: bool = True
    """Verify the broker's certificate and host name; off only for a lab broker."""
    keepalive_s: Annotated[int, Range(ge=5, le=3600)] = 60
    """MQTT keep-alive: the broker drops the session after 1.5 times this silence."""
    timeout_s: PositiveSeconds = 10.0
    """Timeout for connecting and for each PUBACK."""
    reconnect_min_s: PositiveSeconds = 1.0
    """Reconnect backoff: full jitter between 0 and min(max, min * 2^attempt)."""
    reconnect_max_s: PositiveSeconds = 10.0
    """Longest wait between reconnect attempts (full jitter keeps a fleet from reconnecting at
    once; 10 s keeps recovery after an outage under ~15 s)."""
    max_inflight_batches: Annotated[int, Range(ge=1, le=64)] = 4
    """Batches published and not yet acknowledged at one time."""
    metrics_interval_s: PositiveSeconds = 60.0
    """How often the health message goes to `<prefix>/<id>/metrics`."""
    require_subscribers: bool = True
    """MQTT 5: data and alerts count as delivered only when someone subscribes to them. A
    PUBACK "no matching subscribers" (0x10: a hub restarting, or a broker back without its
    shared subscriptions) keeps the readings buffered, sent again on the same connection after
    a backoff. Off: the broker's acceptance is enough (nobody listening loses them)."""
    owners: list[str] = field(default_factory=list)
    """Owners whose readings the hub carries; empty: only the gateway's own owner
    (`gateway.owner`)."""

    def __post_init__(self) -> None:
        _check_url(self.url, ("mqtt", "mqtts"))
        _check_common(self)
        _check_owners(self.owners, allow_empty=True)

    def warnings(self) -> list[str]:
        """What makes this hub connection insecure, for the log at start and `citygw status`."""
        found = []
        if self.tls and not self.tls_verify:
            found.append(
                f"hub.tls_verify is false: the broker {self.host} is not authenticated "
                "(anyone on the path can read and change what is sent)"
            )
        local = self.host in _LOCAL_HOSTS or self.host.startswith("127.")
        if not self.tls and not local:
            found.append(
                f"hub.url is plain mqtt:// to {self.host}, not a local broker: readings, "
                "credentials and config pushes travel unencrypted (use mqtts://)"
            )
        return found

    @property
    def tls(self) -> bool:
        """Whether the url asks for TLS (mqtts://)."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        """The broker's host name from the url."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The broker's port: the url's, else 8883 with TLS and 1883 without."""
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


def _check_url(url: str, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        shapes = " or ".join(f"{scheme}://host[:port]" for scheme in schemes)
        raise ValueError(f"url: expected {shapes}, got {url!r}")
    if not parts.hostname:
        raise ValueError("url: expected a host name")
    if parts.username or parts.password:
        raise ValueError("url: put credentials in username and password_file, not in the URL")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"url: expected a port number 1-65535, got {url!r}") from None


def _check_common(section: HubSection | UplinkSection) -> None:
    if not _TOPIC_PREFIX.fullmatch(section.topic_prefix) or section.topic_prefix.endswith("/"):
        raise ValueError("topic_prefix: expected a topic without wildcards or trailing '/'")
    if section.password and section.password_file:
        raise ValueError("password: give password or password_file, not both")
    if bool(section.cert_file) != bool(section.key_file):
        raise ValueError("cert_file: a client certificate needs both cert_file and key_file")
    if section.reconnect_min_s > section.reconnect_max_s:
        raise ValueError("reconnect_min_s: expected at most reconnect_max_s")


def _check_owners(owners: list[str], *, allow_empty: bool) -> None:
    if not owners and not allow_empty:
        raise ValueError("owners: expected at least one owner")
    for index, owner in enumerate(owners):
        if not NAME.fullmatch(owner):
            raise ValueError(f"owners[{index}]: expected 1-64 characters from A-Z a-z 0-9 _ . -")
    if len(set(owners)) != len(owners):
        raise ValueError("owners: an owner is listed twice")


FORMAT_SCHEMES = {
    "citygw": ("mqtt", "mqtts"),
    "sensorthings": ("http", "https"),
    "sensor.community": ("http", "https"),
}
"""Which url schemes each `format` is carried over."""


@record
class UplinkSection:
    """`[[uplinks]]`: one more destination, for the readings of the owners it lists only."""

    name: str
    """Names this uplink in status, metrics and logs; unique, and not `hub`."""
    owners: list[str]
    """Owners whose readings this uplink carries (no other reading ever reaches it)."""
    url: str
    """`mqtt://` / `mqtts://` for format citygw; `http://` / `https://` for sensorthings and
    sensor.community (the endpoint's base URL)."""
    format: Literal["citygw", "sensorthings", "sensor.community"] = "citygw"
    """citygw: the wire formats of docs/protocol.md over MQTT; sensorthings: OGC SensorThings
    API 1.1; sensor.community: the airRohr push API."""
    username: str = ""
    """User name at the destination; empty: none."""
    password: str = field(default="", repr=False)
    """Password at the destination; prefer password_file (never logged)."""
    password_file: str = ""
    """File holding the password, readable only by the citygw user."""
    ca_file: str = ""
    """CA bundle that verifies the destination (empty: the system's CAs)."""
    cert_file: str = ""
    """Client certificate for mutual TLS (needs key_file too)."""
    key_file: str = ""
    """Private key of cert_file for mutual TLS."""
    tls_verify: bool = True
    """Verify the destination's certificate and host name; off only for a lab server."""
    timeout_s: PositiveSeconds = 10.0
    """Timeout for connecting and for each acknowledgement (PUBACK, HTTP response)."""
    flush_interval_s: PositiveSeconds = 30.0
    """Batch window: readings leave at the latest this long after they arrive."""
    batch_max_readings: Annotated[int, Range(ge=1, le=10_000)] = 1000
    """...or as soon as this many are waiting."""
    max_backlog_readings: Annotated[int, Range(ge=100, le=100_000_000)] = 2_000_000
    """Readings kept for this uplink while it is unreachable; past this `when_full` applies to
    this uplink only (its drops are counted as its own)."""
    when_full: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    """Which of its readings this uplink gives up when its backlog is full."""
    reconnect_min_s: PositiveSeconds = 1.0
    """Retry backoff: full jitter between 0 and min(max, min * 2^attempt)."""
    reconnect_max_s: PositiveSeconds = 10.0
    """Longest wait between attempts (a server's Retry-After is honoured up to an hour)."""
    topic_prefix: str = "citygw/v1"
    """MQTT only: topics are `<topic_prefix>/<gateway id>/{data,status}`."""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT only: the protocol version spoken to the broker."""
    wire_format: Literal[1, 2, 3, 4] = 4
    """MQTT only: 1, 2, 3 or 4 (default, as for the hub; docs/protocol.md); 2-4 name their
    series in the birth."""
    client_id: str = ""
    """MQTT only: client id; empty means "citygw-<gateway id>-<name>"."""
    require_subscribers: bool | None = None
    """MQTT only: as `hub.require_subscribers` (unset: true). False for a broker where nobody
    listening is normal (consumers without a persistent subscription): its PUBACK then counts
    as delivered even when no one subscribes."""
    sensor_id: str = ""
    """sensor.community only: the X-Sensor value, e.g. "raspi-0000001" or "esp8266-12345678"."""

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name) or self.name == "hub":
            raise ValueError("name: expected 1-64 characters from A-Z a-z 0-9 _ . -, not 'hub'")
        _check_owners(self.owners, allow_empty=False)
        _check_url(self.url, FORMAT_SCHEMES[self.format])
        _check_common(self)
        if self.format != "sensor.community" and self.sensor_id:
            raise ValueError('sensor_id: only for format = "sensor.community"')
        if self.format == "sensor.community" and not self.sensor_id:
            raise ValueError('sensor_id: format "sensor.community" needs the X-Sensor id')
        if self.format != "citygw":
            for name in _MQTT_ONLY:  # set (not its default) on an HTTP uplink: a mistake
                if getattr(self, name) != _UPLINK_DEFAULTS[name]:
                    raise ValueError(
                        f'{name}: only for format = "citygw" (MQTT), not {self.format!r}'
                    )

    @property
    def tls(self) -> bool:
        """Whether the url asks for TLS (mqtts://, https://)."""
        return urlsplit(self.url).scheme in ("mqtts", "https")

    def hub_settings(self, gateway_id: str) -> HubSection:
        """An MQTT (`citygw`) uplink as the settings the MQTT machinery takes."""
        settings: dict[str, Any] = {
            "client_id": self.client_id or f"citygw-{gateway_id}-{self.name}",
            "owners": list(self.owners),
        }
        for name in (
            *("url", "topic_prefix", "flush_interval_s", "batch_max_readings", "protocol"),
            *("wire_format", "username", "password", "password_file", "ca_file", "cert_file"),
            *("key_file", "tls_verify", "timeout_s", "reconnect_min_s", "reconnect_max_s"),
        ):
            settings[name] = getattr(self, name)
        if self.require_subscribers is not None:
            settings["require_subscribers"] = self.require_subscribers
        return HubSection(**settings)


_MQTT_ONLY = ("topic_prefix", "protocol", "wire_format", "client_id", "require_subscribers")
"""`[[uplinks]]` keys that mean something only to an MQTT (`citygw`) uplink."""
_UPLINK_DEFAULTS = {f.name: f.default for f in fields(UplinkSection)}  # type: ignore[arg-type]
