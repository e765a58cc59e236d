"""OPS243 units and the commands that set the radar up (data and pure functions only).

Sources: OmniPreSense UM-003-A OPS243-A user manual p.8 (U* speed units, F* decimals), p.12
(OJ, OM, OT, OU and their lower-case "off" forms); OPS243-C range units u*; unit labels of the
JSON `unit` key from omnipresense/Matlab@bf980b51 `OPS243_Speed_250516.m`; the `Units` replies
from shared/vectors/PROTOCOLS.md section 6.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit the radar reports in: `command` sets it; readings are `<quantity>_<suffix>` in
    `ucum`; `speed` False for the OPS243-C's FMCW range units."""

    key: str
    command: bytes
    ucum: str
    suffix: str
    reply: str
    speed: bool = True
    decimals: int = 1
    si: float = 1.0
    """One of this unit in m/s (speeds) or m (ranges)."""

    @property
    def quantity(self) -> str:
        """`speed` or `range`."""
        return "speed" if self.speed else "range"


UNITS: Final[dict[str, Unit]] = {
    unit.key: unit
    for unit in (
        Unit("mps", b"UM", "m/s", "mps", "m-per-sec", decimals=2),
        Unit("kmh", b"UK", "km/h", "kmh", "km-per-hr", si=1 / 3.6),
        Unit("mph", b"US", "[mi_i]/h", "mph", "mph", si=0.44704),
        Unit("fps", b"UF", "[ft_i]/s", "fps", "ft-per-sec", si=0.3048),
        Unit("cmps", b"UC", "cm/s", "cmps", "cm-per-sec", decimals=0, si=0.01),
        Unit("m", b"uM", "m", "m", "m", speed=False, decimals=2),
        Unit("cm", b"uC", "cm", "cm", "cm", speed=False, decimals=0, si=0.01),
        Unit("ft", b"uF", "[ft_i]", "ft", "ft", speed=False, decimals=2, si=0.3048),
        Unit("in", b"uI", "[in_i]", "in", "in", speed=False, decimals=1, si=0.0254),
        Unit("yd", b"uY", "[yd_i]", "yd", "yd", speed=False, decimals=2, si=0.9144),
    )
}
"""By the `units` option's value (config and `citygw decode --set units=`)."""

LABELS: Final[dict[str, str]] = {
    **{unit.key: unit.key for unit in UNITS.values()},
    **{unit.reply: unit.key for unit in UNITS.values()},
    "kph": "kmh",
    "km/h": "kmh",
    "m/s": "mps",
    "cm/s": "cmps",
    "ft/s": "fps",
    "meters": "m",
    "feet": "ft",
}
"""Lower-case unit labels seen in JSON `unit` keys and `Units` replies -> UNITS key."""

CANCEL: Final = b"\x03"
"""Ctrl-C: drops a half-typed command left in the radar's input."""


def start_commands(*, units: str, json: bool) -> tuple[bytes, ...]:
    """What the gateway sends at every connect, one command per write: cancel, the unit, the
    decimals, JSON on or off, the unit label in JSON reports only (`OU`; plain lines stay bare
    numbers, `Ou`), magnitude and time off (`Om`, `Ot`): every line is then parseable knowing
    only `units` and `json`."""
    unit = UNITS[units]
    return (
        CANCEL,
        unit.command,
        b"F%d" % unit.decimals,
        b"OJ" if json else b"Oj",
        b"OU" if json else b"Ou",
        b"Om",
        b"Ot",
    )
