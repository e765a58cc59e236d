"""Driver options: the settings a codec needs besides the bytes, declared with their types.

Some frames do not say everything themselves: a radar line carries no unit (the gateway set it at
connect), a rangefinder's digits are cm or mm by model, a Modbus response means something only
with its request. A driver declares such settings as a tuple of `Option`s in its registry entry
(`drivers/__init__.py`); its codec takes them as keyword arguments (`decode(frame, **options)`,
`StreamDecoder(**options)`). `citygw decode NAME HEX --set KEY=VALUE` parses them with
`parse_settings`, and a serial source passes the config field of the same name, where one exists.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_TRUE = frozenset(("true", "yes", "on", "1"))
_FALSE = frozenset(("false", "no", "off", "0"))


@dataclass(frozen=True, slots=True)
class Option:
    """One setting of a driver: `kind` is bool, int, float or str (with `choices`, one of them);
    `low`/`high` bound a number; `required`: `citygw decode` and the config insist on it (the
    codec's own default only serves tests)."""

    name: str
    kind: type[bool] | type[int] | type[float] | type[str]
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    required: bool = False

    def parse(self, text: str) -> bool | int | float | str:
        """The value `text` gives; ValueError saying what was expected."""
        if self.kind is bool:
            word = text.strip().lower()
            if word in _TRUE or word in _FALSE:
                return word in _TRUE
            raise ValueError(f"{self.name}: expected true or false, got {text!r}")
        if self.kind is str:
            if self.choices and text not in self.choices:
                raise ValueError(
                    f"{self.name}: expected one of {', '.join(self.choices)}, got {text!r}"
                )
            return text
        number: int | float
        try:
            number = int(text, 0) if self.kind is int else float(text)
        except ValueError:
            raise ValueError(f"{self.name}: expected {self.describe()}, got {text!r}") from None
        if (
            not math.isfinite(number)
            or (self.low is not None and number < self.low)
            or (self.high is not None and number > self.high)
        ):
            raise ValueError(f"{self.name}: expected {self.describe()}, got {text!r}")
        return number

    def describe(self) -> str:
        """What the option takes, for help texts and errors (`an integer 1..247`)."""
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return " | ".join(self.choices) if self.choices else "text"
        word = "an integer" if self.kind is int else "a number"
        if self.low is None and self.high is None:
            return word
        low = "" if self.low is None else f"{self.low:g}"
        high = "" if self.high is None else f"{self.high:g}"
        return f"{word} {low}..{high}"


def parse_settings(
    options: Sequence[Option], pairs: Iterable[str], *, driver: str
) -> dict[str, bool | int | float | str]:
    """`KEY=VALUE` texts as the driver's option values; ValueError naming the key on any fault
    (an unknown key, a key given twice, a bad value, a required option left out)."""
    by_name = {option.name: option for option in options}
    settings: dict[str, bool | int | float | str] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE")
        option = by_name.get(key)
        if option is None:
            known = ", ".join(by_name) if by_name else "none"
            raise ValueError(f"--set {key}: not an option of {driver} (its options: {known})")
        if key in settings:
            raise ValueError(f"--set {key}: given twice")
        settings[key] = option.parse(text)
    missing = [option.name for option in options if option.required and option.name not in settings]
    if missing:
        raise ValueError(f"{driver} needs " + " ".join(f"--set {name}=..." for name in missing))
    return settings
