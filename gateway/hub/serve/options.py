"""The OData query options the read API understands, parsed into bounded values.

`$top` (default 100, at most 1000), `$skip`, `$count`, `$orderby` (phenomenonTime or resultTime,
asc or desc) and `$filter` on phenomenonTime/resultTime with ge, le, gt, lt, eq joined by `and`,
times as ISO 8601 with a zone (`phenomenonTime ge 2026-12-07T05:00:00Z`). Anything else that
starts with `$` is refused with an `OptionError` whose message says what is accepted: a client
that asked for something this server cannot do gets a 400, never a silently different answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

DEFAULT_TOP = 100
MAX_TOP = 1000
MAX_SKIP = 1_000_000
"""Deeper pages cost the database a scan of everything before them: narrow with $filter."""
MAX_FILTER_TERMS = 8
MAX_QUERY_FIELDS = 20
TIME_FIELDS = ("phenomenontime", "resulttime")  # one stored time: both are the reading's ts
OPERATORS = {"ge": ">=", "le": "<=", "gt": ">", "lt": "<", "eq": "="}
KNOWN = ("$top", "$skip", "$count", "$orderby", "$filter")


class OptionError(ValueError):
    """A query option this API does not accept; the message is shown to the client."""


@dataclass(frozen=True, slots=True)
class TimeBound:
    """`ts <sql_op> when`."""

    sql_op: str
    when: datetime


@dataclass(frozen=True, slots=True)
class Options:
    """What a collection request asked for."""

    top: int = DEFAULT_TOP
    skip: int = 0
    count: bool = False
    descending: bool = False
    bounds: tuple[TimeBound, ...] = ()
    raw: tuple[tuple[str, str], ...] = ()  # the options as given, for @iot.nextLink


def parse(query_string: str, *, time_options: bool) -> Options:
    """The options of `query_string`; `time_options` allows $filter and $orderby on time."""
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError as exc:
        raise OptionError(f"bad query string: {exc}") from exc
    given: dict[str, str] = {}
    for key, value in pairs:
        if not key.startswith("$"):
            continue  # not a query option (OData ignores custom parameters)
        if key not in KNOWN:
            raise OptionError(f"{key} is not supported; this API accepts {', '.join(KNOWN)}")
        if key in given:
            raise OptionError(f"{key} is given twice")
        given[key] = value
    if not time_options and ({"$filter", "$orderby"} & given.keys()):
        raise OptionError("$filter and $orderby are supported on Observations only")
    return Options(
        top=_integer(given, "$top", DEFAULT_TOP, MAX_TOP),
        skip=_integer(given, "$skip", 0, MAX_SKIP),
        count=_boolean(given.get("$count", "false")),
        descending=_descending(given.get("$orderby", "")),
        bounds=_bounds(given.get("$filter", "")),
        raw=tuple(given.items()),
    )


def _integer(given: dict[str, str], key: str, default: int, maximum: int) -> int:
    text = given.get(key)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", text.strip()):
        raise OptionError(f"{key} must be a whole number from 0 to {maximum}, not {text[:40]!r}")
    value = int(text)
    if value > maximum:
        raise OptionError(f"{key} must be at most {maximum}")
    return value


def _boolean(text: str) -> bool:
    if text.strip().lower() not in ("true", "false"):
        raise OptionError(f"$count must be true or false, not {text[:40]!r}")
    return text.strip().lower() == "true"


def _descending(text: str) -> bool:
    words = text.split()
    if not words:
        return False
    if words[0].lower() not in TIME_FIELDS or len(words) > 2:
        raise OptionError("$orderby accepts phenomenonTime or resultTime, then asc or desc")
    direction = words[1].lower() if len(words) == 2 else "asc"
    if direction not in ("asc", "desc"):
        raise OptionError(f"$orderby direction must be asc or desc, not {words[1][:20]!r}")
    return direction == "desc"


def _bounds(text: str) -> tuple[TimeBound, ...]:
    if not text.strip():
        return ()
    terms = re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE)
    if len(terms) > MAX_FILTER_TERMS:
        raise OptionError(f"$filter takes at most {MAX_FILTER_TERMS} terms joined by and")
    return tuple(_term(term) for term in terms)


def _term(term: str) -> TimeBound:
    words = term.strip().removeprefix("(").removesuffix(")").split()
    if len(words) != 3 or words[0].lower() not in TIME_FIELDS:
        raise OptionError(
            "$filter accepts terms like 'phenomenonTime ge 2026-12-07T05:00:00Z' joined by "
            f"'and'; cannot read {term[:60]!r}"
        )
    op = OPERATORS.get(words[1].lower())
    if op is None:
        raise OptionError(f"$filter operator must be one of {', '.join(OPERATORS)}")
    return TimeBound(op, _instant(words[2].strip("'")))


def _instant(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise OptionError(
            f"$filter time must be ISO 8601 with a zone (2026-12-07T05:00:00Z), not {text[:40]!r}"
        )
    try:
        return when.astimezone(UTC)
    except OverflowError as exc:
        raise OptionError(f"$filter time out of range: {text[:40]!r}") from exc
