"""The gateway's one typed config schema: from TOML, validated; errors name the exact path."""

from __future__ import annotations

import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOPIC_PREFIX = re.compile(r"^[^#+\x00]{1,200}$")

PositiveSeconds = Annotated[float, msgspec.Meta(gt=0, le=86_400)]


class ConfigError(ValueError):
    """A config that cannot be used; `path` says where (e.g. `hub.flush_interval_s`)."""

    def __init__(self, message: str, *, path: str = "", file: str = "") -> None:
        self.path = path
        self.file = file
        where = f"{file}: " if file else ""
        at = f"{path}: " if path else ""
        super().__init__(f"{where}{at}{message}")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class GatewaySection(_Strict, frozen=True):
    id: str
    """Gateway identity; appears in topics and in every reading's key. Letters, digits, `_.-`."""
    data_dir: str = "/var/lib/citygw"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError("id: expected 1-64 characters from A-Z a-z 0-9 _ . - (used in topics)")
        if not self.data_dir:
            raise ValueError("data_dir: expected a directory path")


class HubSection(_Strict, frozen=True):
    url: str
    """`mqtt://host[:port]` or `mqtts://host[:port]` (TLS, verified)."""
    topic_prefix: str = "citygw/v1"
    flush_interval_s: PositiveSeconds = 30.0
    batch_max_readings: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str = ""
    username: str = ""
    password: str = ""
    password_file: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    tls_verify: bool = True
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 60
    timeout_s: PositiveSeconds = 10.0
    reconnect_min_s: PositiveSeconds = 1.0
    reconnect_max_s: PositiveSeconds = 60.0
    max_inflight_batches: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    metrics_interval_s: PositiveSeconds = 60.0

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
        if not _TOPIC_PREFIX.match(self.topic_prefix) or self.topic_prefix.endswith("/"):
            raise ValueError("topic_prefix: expected a topic without wildcards or trailing '/'")
        if self.password and self.password_file:
            raise ValueError("password: give password or password_file, not both")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file: a client certificate needs both cert_file and key_file")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s: expected at most reconnect_max_s")

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    def __repr__(self) -> str:  # never show secrets
        return f"HubSection(url={self.url!r}, username={self.username!r}, password=***)"


class BufferSection(_Strict, frozen=True):
    max_readings: Annotated[int, msgspec.Meta(ge=100, le=100_000_000)] = 2_000_000
    when_full: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    commit_interval_ms: Annotated[int, msgspec.Meta(ge=10, le=60_000)] = 1000
    commit_max_readings: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 5000
    synchronous: Literal["full", "normal"] = "full"
    """`full`: a committed reading survives a power cut. `normal`: it survives a crash, and
    a power cut may lose the commits since the last checkpoint (fewer SD-card writes)."""


class DutyCycle(_Strict, frozen=True):
    period_s: Annotated[float, msgspec.Meta(ge=10, le=86_400)]
    """Start a measurement every period_s."""
    on_s: Annotated[float, msgspec.Meta(ge=1, le=86_400)]
    """Keep the sensor awake this long each period (including warm-up)."""
    warmup_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 15.0
    """Readings during the first warmup_s after wake-up are discarded (fan spin-up)."""

    def __post_init__(self) -> None:
        if self.on_s >= self.period_s:
            raise ValueError("on_s: expected less than period_s (else leave duty_cycle out)")
        if self.warmup_s >= self.on_s:
            raise ValueError("warmup_s: expected less than on_s")


class SerialSource(_Strict, frozen=True, tag_field="type", tag="serial"):
    name: str
    port: str
    driver: Literal["sds011", "pms5003", "pms7003", "pms5003t"]
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    duty_cycle: DutyCycle | None = None
    reopen_max_s: PositiveSeconds = 30.0

    def __post_init__(self) -> None:
        if not _ID.match(self.name):
            raise ValueError("name: expected 1-64 characters from A-Z a-z 0-9 _ . -")
        if not self.port:
            raise ValueError("port: expected a device path such as /dev/ttyUSB0")


Source = SerialSource


class Config(_Strict, frozen=True):
    gateway: GatewaySection
    hub: HubSection
    buffer: BufferSection = BufferSection()
    sources: list[Source] = []

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for index, source in enumerate(self.sources):
            if source.name in seen:
                raise ValueError(f"sources[{index}].name: {source.name!r} is used twice")
            seen.add(source.name)

    @property
    def data_dir(self) -> Path:
        return Path(self.gateway.data_dir)


_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def _explain(error: msgspec.ValidationError) -> ConfigError:
    match = _MSGSPEC_PATH.match(str(error))
    assert match is not None
    message, path = match.group("msg"), (match.group("path") or "").lstrip(".")
    # Errors raised in __post_init__ read "field: what was expected"; fold the field into the path.
    field, sep, rest = message.partition(": ")
    if sep and re.fullmatch(r"[a-z_0-9\[\]\.]+", field):
        path = f"{path}.{field}" if path else field
        message = rest
    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", message)
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        message = "unknown key (see config/gateway.example.toml for the keys there are)"
    missing = re.fullmatch(r"Object missing required field `(.+)`", message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
        message = "missing required key"
    if message.startswith(("Invalid enum value", "Invalid value")):
        choices = _choices_at(path)
        if choices:
            message = f"{message}; expected one of: {', '.join(map(repr, choices))}"
    return ConfigError(message, path=path)


def _choices_at(path: str) -> tuple[object, ...]:
    """The allowed literal values of the key at a path like `sources[0].driver`."""
    current: Any = Config
    for name in re.sub(r"\[\d+\]", "", path).split("."):
        hints = typing.get_type_hints(current, include_extras=False)
        if name == "type" and hasattr(current, "__struct_config__"):
            return tuple(s.__struct_config__.tag for s in _source_types())
        current = hints.get(name)
        while typing.get_origin(current) in (list, types.UnionType, typing.Union):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[0]
    if typing.get_origin(current) is Literal:
        return typing.get_args(current)
    return ()


def _source_types() -> tuple[type[msgspec.Struct], ...]:
    args = typing.get_args(Source)
    return args if args else (Source,)


def parse_config(document: dict[str, Any]) -> Config:
    """Validate a config document (from TOML or a remote push) into a Config."""
    try:
        return msgspec.convert(document, Config)
    except msgspec.ValidationError as error:
        raise _explain(error) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file; raises ConfigError naming the file and the key."""
    file = str(path)
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", file=file) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}", file=file) from None
    try:
        return parse_config(document)
    except ConfigError as error:
        raise ConfigError(str(error), file=file) from None


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file, for editors (taplo, VS Code Even Better TOML)."""
    schema: dict[str, Any] = msgspec.json.schema(Config)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "citygw gateway configuration"
    return schema


def read_password(hub: HubSection) -> str | None:
    """The broker password from the config or its file (kept out of logs and reprs)."""
    if hub.password_file:
        return Path(hub.password_file).read_text(encoding="utf-8").strip()
    return hub.password or None
