"""MaxBotix MaxSonar-WR models the `maxbotix` driver knows: unit, digits, limits (data only).

The line (`R` + digits + CR) does not say its unit: by model it is mm (HRXL, 4 digits) or cm
(XL, 3 digits). Sources: HRXL-MaxSonar-WR/WRC datasheet PD11500Y p.8-10 (300 mm minimum; 5000 or
9999 = no target for 5 m / 10 m models; refresh rates), I2CXL-MaxSonar-WR/WRC datasheet PD11502h
p.1 (XL-WR: 20-765 cm), matthewwall/weewx-maxbotix@cf426525 `bin/user/maxbotix.py`,
esphome/esphome@a78be865 `components/hrxl_maxsonar_wr` (mm vs cm by family).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Model:
    """One model family. Raw values are in the wire unit (`mm_per_unit` 1 = mm, 10 = cm)."""

    family: str
    digits: int
    mm_per_unit: int
    min_raw: int
    """The smallest value sent: anything closer reads as this."""
    max_raw: int
    """The largest value that is a distance."""
    no_target_raw: int | None
    """Sent when no echo came back (not a distance); None if the family has no such value."""
    max_means_beyond: bool
    """`max_raw` means "nothing nearer" (the XL's 765 cm), a bound rather than a distance."""
    rate_hz: float
    """Free-run refresh rate (the simulator's pace)."""


_HRXL_5M = "HRXL-MaxSonar-WR 5 m"
_HRXL_10M = "HRXL-MaxSonar-WR 10 m"

MODELS: Final[dict[str, Model]] = {
    **{
        name: Model(_HRXL_5M, 4, 1, 300, 4999, 5000, False, rate_hz)
        for name, rate_hz in (
            ("MB7360", 7.5),
            ("MB7367", 7.5),
            ("MB7369", 6.67),
            ("MB7380", 7.5),
            ("MB7387", 7.5),
            ("MB7389", 6.67),
        )
    },
    **{
        name: Model(_HRXL_10M, 4, 1, 300, 9998, 9999, False, 6.0)
        for name in ("MB7363", "MB7366", "MB7383", "MB7386")
    },
    "MB7060": Model("XL-MaxSonar-WR", 3, 10, 20, 765, None, True, 10.0),
}
"""Model name -> its family's format. MB7066 (XL-WRL, 4 digits in cm) and MB7368/7388,
MB7375/7395 are left out: their limits and no-target values are not confirmed by a source here."""
