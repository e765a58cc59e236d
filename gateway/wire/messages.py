"""The messages besides data, in every wire version: topics, status (birth, will), metrics.

They are msgpack maps with `"v": 1` whatever the data format (docs/protocol.md).
"""

from __future__ import annotations

from typing import Any

import msgpack

from gateway.readings import Series
from gateway.wire.codec import MAX_SERIES, WireError, check_size, wire_int, wire_name

VERSION = 1
TOPIC_DATA = "data"
TOPIC_STATUS = "status"
TOPIC_METRICS = "metrics"
TOPIC_CONFIG_STATE = "config/state"
TOPIC_ALERT = "alert"
"""An alert or its clear, sent at once (`gateway.wire.alert`, docs/alerts.md)."""
TOPIC_REGISTER = "register"
"""The retained, public sensor register (JSON; `gateway.wire.register` builds it)."""
MAX_ALIAS = 2**31 - 1
"""The largest series alias (wire v3 sends aliases in at most 31 bits)."""


def topic(prefix: str, gateway_id: str, leaf: str) -> str:
    """`<prefix>/<gateway_id>/<leaf>`, e.g. `citygw/v1/gw-0001/data`."""
    return f"{prefix}/{gateway_id}/{leaf}"


def encode_status(
    gateway_id: str,
    *,
    state: str,
    version: str,
    started_ms: int,
    series: dict[int, Series] | None = None,
    wire_format: int = 2,
    epoch: int | None = None,
) -> bytes:
    """Birth/will. With `series` (wire v2, v3) it carries the alias table their data messages
    use, `wire` says which of the two the data messages are, and `ep` names the buffer epoch
    the aliases belong to (a new buffer numbers its series again)."""
    message: dict[str, Any] = {
        "v": VERSION,
        "gw": gateway_id,
        "state": state,
        "version": version,
        "started_ms": started_ms,
    }
    if series is not None:
        message["wire"] = wire_format
        if epoch is not None:
            message["ep"] = epoch
        message["series"] = [[alias, *s] for alias, s in sorted(series.items())]
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def encode_metrics(gateway_id: str, metrics: dict[str, Any]) -> bytes:
    """A health snapshot as the `metrics` message."""
    return msgpack.packb(  # type: ignore[no-any-return]
        {"v": VERSION, "gw": gateway_id, **metrics}, use_bin_type=True
    )


def unpack_map(payload: bytes) -> dict[str, Any]:
    """A msgpack map of wire version 1 (every status, metrics and v1 data message)."""
    check_size(payload)
    try:
        message = msgpack.unpackb(payload, raw=False, strict_map_key=True, max_bin_len=0)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as error:
        raise WireError(f"not msgpack: {error}") from None
    if not isinstance(message, dict):
        raise WireError("expected a msgpack map")
    if message.get("v") != VERSION or type(message.get("v")) is not int:
        raise WireError(f"unknown wire version {_shown(message.get('v'))}")
    return message


MAX_DEPTH = 16
"""How deeply a status or metrics map may nest (the agent's metrics nest three deep)."""


def decode_map(payload: bytes) -> dict[str, Any]:
    """A status or metrics message as a plain dict (see `plain`)."""
    message = unpack_map(payload)
    plain(message, MAX_DEPTH)
    return message


def plain(message: object, max_depth: int) -> None:
    """WireError unless `message` holds only maps with string keys, lists, strings, numbers,
    booleans and nil, at most `max_depth` deep (so it prints as JSON)."""
    todo: list[tuple[object, int]] = [(message, 0)]
    while todo:
        item, depth = todo.pop()
        if depth > max_depth:
            raise WireError(f"map nested deeper than {max_depth}")
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise WireError("a map key is not a string")
            todo.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list):
            todo.extend((value, depth + 1) for value in item)
        elif item is not None and not isinstance(item, str | int | float):
            raise WireError(f"unexpected {type(item).__name__} in a map")


def series_table(birth: dict[str, Any]) -> dict[int, Series]:
    """Alias table from a decoded birth message (empty for a v1 birth); WireError unless
    `series` is a list of at most MAX_SERIES `[alias, source, quantity, unit]` entries."""
    entries = birth.get("series", [])
    if not isinstance(entries, list) or len(entries) > MAX_SERIES:
        raise WireError(f"birth: series must be a list of at most {MAX_SERIES} entries")
    table: dict[int, Series] = {}
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 4:
            raise WireError(f"malformed series entry in birth: {_shown(entry)}")
        alias = wire_int(entry[0], "birth: series alias", 0, MAX_ALIAS)
        table[alias] = Series(*(wire_name(part, "birth: series name") for part in entry[1:]))
    return table


def birth_epoch(birth: dict[str, Any]) -> int | None:
    """The buffer epoch a birth's series table belongs to (None: an older birth without)."""
    epoch = birth.get("ep")
    return None if epoch is None else wire_int(epoch, "birth: ep")


def _shown(value: object) -> str:
    """A short repr for an error message (never the whole of a large payload)."""
    if isinstance(value, list | dict):
        return f"a {type(value).__name__} of {len(value)}"
    text = repr(value) if not isinstance(value, int) or value.bit_length() <= 64 else "a big int"
    return text if len(text) <= 80 else text[:77] + "..."
