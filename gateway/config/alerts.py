"""`[[alerts]]`: edge alert rules, evaluated on the gateway as readings arrive (docs/alerts.md).

A rule watches one quantity of one source: above and/or below a level, optionally a rate of
change, held for `for_s`, cleared past the level minus/plus `hysteresis`, and never more than
one transition per `min_interval_s` (the engine, `gateway.agent.alerts`, counts what it held back).
"""

from __future__ import annotations

import math
from typing import Annotated

from gateway.config.fields import NAME, record
from gateway.config.schema import Range

MAX_RULES = 256
"""Rules a config may hold (each keeps a little state per source it watches)."""

Threshold = Annotated[float, Range(ge=-1e12, le=1e12)]


@record
class AlertRule:
    """One alert rule. Its alerts and clears are readings of series
    (source, "alert/<name>", "1"), value 1 on raise and 0 on clear, sent at once."""

    name: str
    """Unique among the rules; in the alert's quantity, `alert/<name>`. A-Z a-z 0-9 _ . -"""
    source: str
    """A configured source's name, or `<ble source>/<device>` for one BLE device; a BLE source's
    name alone watches each of its devices on its own."""
    quantity: str
    """The quantity as the readings carry it (`citygw decode` shows them), e.g. `pm2_5_ugm3`."""
    above: Threshold | None = None
    """Raise when the value is above this level."""
    below: Threshold | None = None
    """Raise when the value is below this level (with `above`: outside [below, above])."""
    rate_per_min: Threshold | None = None
    """Raise when the value changes by at least this much a minute over `rate_window_s` (rising;
    a negative number: falling at least that fast). With a level: both must hold."""
    rate_window_s: Annotated[float, Range(ge=1, le=86_400)] = 60.0
    """The window over which the rate of change is measured (oldest to newest reading in it)."""
    for_s: Annotated[float, Range(ge=0, le=86_400)] = 0.0
    """How long the condition must hold (on every reading) before the alert is raised; 0: at the
    first reading past the level."""
    hysteresis: Annotated[float, Range(ge=0, le=1e12)] = 0.0
    """Clear only once the value is back past the level by this much (below `above - hysteresis`,
    above `below + hysteresis`), so a value hovering at the level does not flap."""
    min_interval_s: Annotated[float, Range(ge=0, le=86_400)] = 60.0
    """At least this long between two transitions (raise, clear) of one alert; a transition due
    sooner waits, and one undone meanwhile is suppressed and counted."""

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError("name: expected 1-64 characters from A-Z a-z 0-9 _ . -")
        source_name, slash, device = self.source.partition("/")
        if not NAME.fullmatch(source_name) or (slash and not NAME.fullmatch(device)):
            raise ValueError("source: expected a source name, or <ble source>/<device>")
        if not NAME.fullmatch(self.quantity):
            raise ValueError("quantity: expected 1-64 characters from A-Z a-z 0-9 _ . -")
        if self.above is None and self.below is None and self.rate_per_min is None:
            raise ValueError("above: a rule needs above, below or rate_per_min")
        if self.above is not None and self.below is not None and self.below >= self.above:
            raise ValueError("below: expected less than above (the alert is outside the band)")
        if self.rate_per_min is not None and self.rate_per_min == 0:
            raise ValueError("rate_per_min: expected a rise (> 0) or a fall (< 0), not 0")
        for name in ("above", "below", "rate_per_min", "hysteresis"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite number")


def check_rules(
    rules: list[AlertRule],
    sources: dict[str, list[str] | None],
    aggregate_s: dict[str, float] | None = None,
) -> None:
    """Rule names unique, each rule's source configured, a rate window that sees enough of an
    aggregating source's readings. `sources`: source name -> its BLE device names (None for a
    source without devices); `aggregate_s`: source name -> its interval, for the sources that
    send one set of readings per interval. ValueError naming `alerts[i].key`."""
    if len(rules) > MAX_RULES:
        raise ValueError(f"alerts: expected at most {MAX_RULES} rules")
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        if rule.name in seen:
            raise ValueError(f"alerts[{index}].name: {rule.name!r} is used twice")
        seen.add(rule.name)
        source_name, slash, device = rule.source.partition("/")
        if source_name not in sources:
            known = ", ".join(sorted(sources)) or "none configured"
            raise ValueError(
                f"alerts[{index}].source: no source {source_name!r} (sources: {known})"
            )
        devices = sources[source_name]
        if slash and (devices is None or device not in devices):
            raise ValueError(
                f"alerts[{index}].source: {source_name!r} has no device {device!r} "
                "(only a BLE source's devices or a modbus source's meters)"
            )
        interval_s = (aggregate_s or {}).get(source_name)
        if rule.rate_per_min is not None and interval_s and rule.rate_window_s < 3 * interval_s:
            # the engine keeps readings younger than the window and needs them to span half of
            # it: with one reading per interval, below 1x never and near 2x only by chance
            raise ValueError(
                f"alerts[{index}].rate_window_s: {source_name!r} sends one reading per "
                f"aggregate_s = {interval_s:g} s; expected at least {3 * interval_s:g} s "
                "(3 of its readings)"
            )
