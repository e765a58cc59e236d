"""`[sources.register]`: a sensor's public register record (docs/register.md).

The fields follow the Dutch sensor registers (Amsterdam's reporting duty, Kadaster's SensRNet):
why the sensor measures, its theme, whether it processes personal data and on what legal
ground, where it is, until when, whether its data are open, and the privacy statement.
"""

from __future__ import annotations

import math
import re
from datetime import date
from urllib.parse import urlsplit

from gateway.config.fields import CONTROL, record

MAX_TEXT_CHARS = 500
"""Longest purpose or legal ground a record holds (a register shows it in a list)."""
MAX_URL_CHARS = 2000
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _check_text(name: str, text: str, *, limit: int = MAX_TEXT_CHARS) -> None:
    if len(text) > limit or CONTROL.search(text.replace("\n", " ")):
        raise ValueError(f"{name}: expected at most {limit} characters, no control characters")


def _check_location(location: list[float]) -> None:
    if len(location) != 2:
        raise ValueError(
            "location: expected [latitude, longitude] in WGS84 degrees, "
            f"got {len(location)} numbers"
        )
    for index, (value, name, bound) in enumerate(
        zip(location, ("latitude", "longitude"), (90, 180), strict=True)
    ):
        if not math.isfinite(value) or not -bound <= value <= bound:
            raise ValueError(
                f"location[{index}]: expected a {name} from -{bound} to {bound}, got {value!r}"
                + (" (the order is [latitude, longitude])" if index == 0 else "")
            )


def _check_https(url: str) -> None:
    if not url:
        return
    parts = urlsplit(url)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username
        or parts.password
        or len(url) > MAX_URL_CHARS
        or re.search(r"\s", url)
        or CONTROL.search(url)
    ):
        raise ValueError(
            "privacy_statement: expected an https:// URL without credentials or spaces "
            f"(at most {MAX_URL_CHARS} characters)"
        )


@record
class RegisterRecord:
    """The public register record of one sensor: published in the retained `register`
    message and exported by `citygw register export` (docs/register.md). No secrets here:
    everything in it is for citizens to read."""

    purpose: str
    """Why the sensor measures, in a sentence a citizen understands (Amsterdam: doel;
    SensRNet: the observation goal)."""
    theme: str = ""
    """What the measurement is about, e.g. "Air", "Sound", "Rail or Road Traffic" (SensRNet's
    themes; Amsterdam's registers use their own list)."""
    personal_data: bool = False
    """Whether the sensor processes personal data; true needs legal_ground and
    privacy_statement."""
    legal_ground: str = ""
    """The legal ground for processing personal data (GDPR art. 6), e.g. "public task"."""
    location: list[float] | None = None
    """[latitude, longitude] in WGS84 degrees; leave out when it is not to be mapped."""
    active_until: str = ""
    """The last day the sensor measures, as an ISO date (YYYY-MM-DD); empty: open-ended."""
    open_data: bool = False
    """Whether the readings are published as open data."""
    privacy_statement: str = ""
    """https:// URL of the owner's privacy statement for this sensor."""

    def __post_init__(self) -> None:
        if not self.purpose.strip():
            raise ValueError("purpose: expected a sentence saying why the sensor measures")
        _check_text("purpose", self.purpose)
        _check_text("theme", self.theme, limit=100)
        _check_text("legal_ground", self.legal_ground)
        if self.location is not None:
            _check_location(self.location)
        if self.active_until:
            try:
                if not _ISO_DATE.fullmatch(self.active_until):
                    raise ValueError
                date.fromisoformat(self.active_until)
            except ValueError:
                raise ValueError(
                    f"active_until: expected an ISO date YYYY-MM-DD, got {self.active_until!r}"
                ) from None
        _check_https(self.privacy_statement)
        if self.personal_data and not self.legal_ground.strip():
            raise ValueError("legal_ground: personal_data = true needs the legal ground")
        if self.personal_data and not self.privacy_statement:
            raise ValueError("privacy_statement: personal_data = true needs a privacy statement")

    @property
    def lat_lon(self) -> tuple[float, float] | None:
        """(latitude, longitude), or None without a location."""
        if self.location is None:
            return None
        return (self.location[0], self.location[1])
