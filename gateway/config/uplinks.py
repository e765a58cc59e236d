"""`[hub]`: the operator's MQTT uplink and how readings are batched to it."""

from __future__ import annotations

import re
from dataclasses import field
from typing import Annotated, Literal
from urllib.parse import urlsplit

from gateway.config.fields import PositiveSeconds, record
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
    wire_format: Literal[1, 2, 3] = 3
    """1: self-describing msgpack maps; 2: compact msgpack; 3 (default): bit-packed, for metered
    links. 2 and 3 name their series in the retained birth, which a hub can ask for again
    (docs/protocol.md)."""
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

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(
                f"url: expected mqtt://host[:port] or mqtts://host[:port], got {self.url!r}"
            )
        if not parts.hostname:
            raise ValueError("url: expected a host name")
        if parts.username or parts.password:
            raise ValueError("url: put credentials in username and password_file, not in the URL")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError(f"url: expected a port number 1-65535, got {self.url!r}") from None
        if not _TOPIC_PREFIX.fullmatch(self.topic_prefix) or self.topic_prefix.endswith("/"):
            raise ValueError("topic_prefix: expected a topic without wildcards or trailing '/'")
        if self.password and self.password_file:
            raise ValueError("password: give password or password_file, not both")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file: a client certificate needs both cert_file and key_file")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s: expected at most reconnect_max_s")

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
