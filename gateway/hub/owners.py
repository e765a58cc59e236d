"""The register message (JSON, retained, public) and the owner of each reading it implies.

The wire formats do not carry owners: a reading of source `name` or `name/device` belongs to
the owner of that source's register entry, else to the gateway's own owner, else ''.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from gateway.wire import WireError
from gateway.wire.codec import MAX_NAME_CHARS
from gateway.wire.messages import MAX_DEPTH, plain

MAX_REGISTER_BYTES = 256 * 1024
"""A register names each source once with a short record; more is refused."""


@dataclass(frozen=True, slots=True)
class Register:
    """A decoded register message: the gateway's owner and, per source, (owner, record JSON)."""

    owner: str
    sources: dict[str, tuple[str, str]]


def decode_register(payload: bytes) -> Register:
    """The register message (contract: `{"v": 1, "gateway", "owner", "ts", "sources": [...]}`);
    WireError unless it is that shape within MAX_REGISTER_BYTES."""
    if len(payload) > MAX_REGISTER_BYTES:
        raise WireError(f"register of {len(payload)} bytes is over the limit")
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        message = None
    if not isinstance(message, dict) or message.get("v") != 1:
        raise WireError('register: expected a JSON object with "v": 1')
    plain(message, MAX_DEPTH)
    sources = message.get("sources")
    if not isinstance(sources, list):
        raise WireError("register: sources must be a list")
    out: dict[str, tuple[str, str]] = {}
    for entry in sources:
        if not isinstance(entry, dict):
            raise WireError("register: a source entry is not an object")
        name = clean_text(entry.get("source"), "register: source")
        out[name] = (clean_text(entry.get("owner", ""), "register: owner"), json_text(entry))
    return Register(clean_text(message.get("owner", ""), "register: owner"), out)


def clean_text(value: object, what: str) -> str:
    """`value` if it is a string a database can store as text (no NUL, valid UTF-8) of at most
    MAX_NAME_CHARS; else WireError naming `what`."""
    if type(value) is not str or len(value) > MAX_NAME_CHARS or "\x00" in value:
        raise WireError(f"{what}: expected a string of at most {MAX_NAME_CHARS} characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise WireError(f"{what}: not valid UTF-8") from None
    return value


def json_text(value: Any) -> str:  # noqa: ANN401 (any decoded message)
    """`value` as JSON text PostgreSQL's jsonb takes: no NaN or infinity (null instead), no
    NUL (U+FFFD instead); WireError for text that is not valid UTF-8."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(value), ensure_ascii=False, allow_nan=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        raise WireError("not valid UTF-8 text") from None
    return text.replace("\\u0000", "\\ufffd")


def _finite(value: Any) -> Any:  # noqa: ANN401
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class Owners:
    """Each gateway's owners from its latest register, for at most `max_gateways` gateways
    (least recently used forgotten first: their readings get '' until the next register)."""

    def __init__(self, *, max_gateways: int = 20_000) -> None:
        self._known: OrderedDict[str, Register] = OrderedDict()
        self._max = max_gateways

    def put(self, gateway: str, register: Register) -> None:
        """Keep `register` as `gateway`'s."""
        self._known.pop(gateway, None)
        self._known[gateway] = register
        while len(self._known) > self._max:
            self._known.popitem(last=False)

    def owner(self, gateway: str, source: str) -> str:
        """The owner of a reading of `source` (`name` or `name/device`) from `gateway`."""
        register = self._known.get(gateway)
        if register is None:
            return ""
        entry = register.sources.get(source.split("/", 1)[0])
        return entry[0] if entry is not None and entry[0] else register.owner
