"""The config's sections as typed records: each field's type, bounds and rules in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from gateway.config.schema import Range

# Patterns are applied with fullmatch: `$` would also match before a trailing newline.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
GATEWAY_ID = _ID
"""What a gateway id (and a source or group name) is, for `fullmatch`."""
_TOPIC_PREFIX = re.compile(r"[^#+\x00]{1,200}")
_ADAPTER = re.compile(r"hci[0-9]{1,3}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

MAX_PATH_CHARS = 1024
"""Longest device path a config may name (a serial port)."""
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")

PositiveSeconds = Annotated[float, Range(gt=0, le=86_400)]
_record = dataclass(frozen=True, kw_only=True, slots=True)


class ConfigError(ValueError):
    """A config that cannot be used; `path` says where (e.g. `hub.flush_interval_s`)."""

    what = "invalid config"

    def __init__(self, message: str, *, path: str = "", file: str = "") -> None:
        self.path = path
        self.file = file
        where = f"{file}: " if file else ""
        at = f"{path}: " if path else ""
        super().__init__(f"{where}{at}{message}")


@_record
class GatewaySection:
    """`[gateway]`: who this gateway is and where it keeps its data."""

    id: str
    """Gateway identity; appears in topics and in every reading's key. Letters, digits, `_.-`."""
    data_dir: str = "/var/lib/citygw"
    """Where the durable buffer (buffer.db) and the status socket live; not on tmpfs."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Least severe log messages written: debug, info, warning or error."""

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise ValueError("id: expected 1-64 characters from A-Z a-z 0-9 _ . - (used in topics)")
        if not self.data_dir:
            raise ValueError("data_dir: expected a directory path")


@_record
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


@_record
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


@_record
class DutyCycle:
    """Measure for on_s every period_s; the sensor sleeps in between (spares its laser)."""

    period_s: Annotated[float, Range(ge=10, le=86_400)]
    """Start a measurement every period_s."""
    on_s: Annotated[float, Range(ge=1, le=86_400)]
    """Keep the sensor awake this long each period (including warm-up)."""
    warmup_s: Annotated[float, Range(ge=0, le=3600)] = 15.0
    """Readings during the first warmup_s after wake-up are discarded (fan spin-up)."""

    def __post_init__(self) -> None:
        if self.on_s >= self.period_s:
            raise ValueError("on_s: expected less than period_s (else leave duty_cycle out)")
        if self.warmup_s >= self.on_s:
            raise ValueError("warmup_s: expected less than on_s")


@_record
class SerialSourceConfig:
    """One sensor on a serial port (UART, USB adapter), decoded by its driver."""

    TYPE: ClassVar[str] = "serial"
    name: str
    """Name the readings carry; unique on this gateway."""
    port: str
    """The device, e.g. /dev/ttyUSB0 (deploy/'s udev rules give adapters stable names)."""
    driver: Literal["sds011", "pms5003", "pms7003", "pms5003t", "node"]
    """The sensor's codec (PMS7003 speaks PMS5003's frames); `node`: a citygw sensor node
    (firmware/) on its UART link (docs/node-link.md)."""
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    """Line speed (the sensors' default: 9600; a citygw node: 115200)."""
    duty_cycle: DutyCycle | None = None
    """Wake the sensor for on_s every period_s and put it to sleep between (spares the laser)."""
    reopen_max_s: PositiveSeconds = 5.0
    """Longest wait between attempts to reopen a vanished port (an attempt is one open() call:
    cheap, so a replugged sensor is read again within seconds)."""
    node_interval_s: Annotated[int, Range(ge=5, le=86_400)] | None = None
    """`node` only: the measurement interval the gateway sets on the node at every connect
    (the node acknowledges it); unset: the node keeps the interval of its node.json."""

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.name):
            raise ValueError("name: expected 1-64 characters from A-Z a-z 0-9 _ . -")
        if not self.port or len(self.port) > MAX_PATH_CHARS or _CONTROL.search(self.port):
            raise ValueError(
                "port: expected a device path such as /dev/ttyUSB0 "
                f"(at most {MAX_PATH_CHARS} characters, no control characters)"
            )
        if self.driver == "node" and self.duty_cycle is not None:
            raise ValueError("duty_cycle: a node duty-cycles its own sensors (node.json)")
        if self.driver != "node" and self.node_interval_s is not None:
            raise ValueError('node_interval_s: only for driver = "node"')


_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{32}")


@_record
class BleDevice:
    """One allow-listed BLE sensor. Adverts from any other address are dropped unread."""

    name: str
    """Sent to the hub as `<source name>/<device name>`; the address never leaves the gateway."""
    address: str = ""
    """`AA:BB:CC:DD:EE:FF` as BlueZ reports it (public or static random address). May be left
    out for an encrypted BTHome device (allow-listed by its bind key, whatever its address)."""
    kind: Literal["bthome", "ruuvi"]
    """The advertisement format: BTHome v2 or RuuviTag data format 5."""
    bind_key: str = field(default="", repr=False)
    """BTHome only: 32 hex digits; when set, unencrypted adverts from the device are refused."""
    min_interval_s: Annotated[float, Range(ge=0, le=86_400)] = 0.0
    """Forward at most one advert per this many seconds (0: every new measurement)."""

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.name):
            raise ValueError("name: expected 1-64 characters from A-Z a-z 0-9 _ . -")
        if not self.address and not self.bind_key:
            raise ValueError(
                "address: expected a MAC address like AA:BB:CC:DD:EE:FF (or a "
                "bind_key for an encrypted BTHome device)"
            )
        if self.address and not _MAC.fullmatch(self.address):
            raise ValueError("address: expected a MAC address like AA:BB:CC:DD:EE:FF")
        if self.bind_key and self.kind != "bthome":
            raise ValueError("bind_key: only BTHome devices have a bind key")
        if self.bind_key and not _HEX_KEY.fullmatch(self.bind_key):
            raise ValueError("bind_key: expected 32 hex digits (a 16-byte AES key)")


@_record
class BleSourceConfig:
    """BLE advertisements of allow-listed BTHome v2 and RuuviTag sensors, via BlueZ."""

    TYPE: ClassVar[str] = "ble"
    name: str
    """Readings come from "<name>/<device name>"; unique on this gateway."""
    adapter: str = "hci0"
    """The BlueZ adapter that scans."""
    scanning: Literal["auto", "passive", "active"] = "auto"
    """`passive` needs BlueZ advertisement monitors (bluetoothd --experimental, kernel >= 5.10);
    `auto` tries passive and falls back to active scanning."""
    restart_max_s: PositiveSeconds = 30.0
    """Longest wait between attempts while the adapter is missing."""
    devices: list[BleDevice] = field(default_factory=list)
    """The allow-list: only these devices' adverts are decoded."""

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.name):
            raise ValueError("name: expected 1-64 characters from A-Z a-z 0-9 _ . -")
        if not _ADAPTER.fullmatch(self.adapter):
            raise ValueError("adapter: expected an adapter name such as hci0")
        names: set[str] = set()
        addresses: set[str] = set()
        for index, device in enumerate(self.devices):
            if device.name in names:
                raise ValueError(f"devices[{index}].name: {device.name!r} is used twice")
            if device.address and device.address.upper() in addresses:
                raise ValueError(f"devices[{index}].address: the address is listed twice")
            names.add(device.name)
            addresses.add(device.address.upper())


SourceConfig = SerialSourceConfig | BleSourceConfig


@_record
class RemoteConfigSection:
    """Signed config pushes over MQTT (docs/remote-config.md). Only the local file sets this
    section: a push can neither change it nor the trust it grants."""

    trusted_keys: list[str] = field(default_factory=list)
    """Ed25519 public keys (PEM files) whose signatures this gateway accepts; empty: remote
    config is off."""
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
            if not _ID.fullmatch(group):
                raise ValueError(
                    f"groups[{index}]: expected 1-64 characters from "
                    "A-Z a-z 0-9 _ . - (used in topics)"
                )
        for name, paths in (
            ("trusted_keys", self.trusted_keys),
            ("allowed_ports", self.allowed_ports),
        ):
            for index, path in enumerate(paths):
                if not path.startswith("/"):
                    raise ValueError(f"{name}[{index}]: expected an absolute path")

    @property
    def enabled(self) -> bool:
        """Remote config is on when at least one key is trusted."""
        return bool(self.trusted_keys)


@_record
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
