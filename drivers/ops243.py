"""OmniPreSense OPS243 radar: a sans-IO codec for its text lines (USB CDC-ACM or UART).

One report per line, ended by CR LF. A line starting with `{` is JSON (a report in OJ mode, or
a command's reply such as `{"Units":"km-per-hr"}`); anything else is a plain report:

    [ "unit", ] [ time, ] [ magnitude, ] speed [ , magnitude, speed ... ]   (OU, OT, OM, On)

The speed is signed: + inbound (towards the radar), - outbound. The line does not say its unit:
it is what the gateway set at connect (`units`), or what a `Units` reply or a JSON `unit` says.
Plain lines are ambiguous without knowing OT and OM (`137.4,3.6` is time,speed or
magnitude,speed), so `time` and `magnitude` say which; the gateway turns both off at connect.
A blank line, a space or a lone `0` is the radar's "nothing detected" filler (a Doppler radar
cannot see a speed of 0). FMCW range reports of the OPS243-C (`units` = m, cm, ft, in, yd) are
read the same way, without direction. drivers/README.md has the measurements and decisions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from drivers.base import DecodeError, Measurement
from drivers.lines import LineSplitter
from drivers.ops243_units import LABELS, UNITS, Unit

__all__ = [
    "CountReport",
    "Detection",
    "Frame",
    "NoDetection",
    "Reply",
    "Report",
    "StreamDecoder",
    "decode",
]

MAX_LINE: Final = 512
"""Longest line kept (O9 JSON with time, unit, magnitude and speed arrays fits in ~250 bytes)."""
INBOUND: Final = 1
OUTBOUND: Final = -1
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DIRECTIONS: Final = {"inbound": INBOUND, "outbound": OUTBOUND, "none": 0}
_REPORT_KEYS: Final = frozenset(("speed", "range", "DetectedObjectVelocity", "TimedSpeedCounts"))


@dataclass(frozen=True, slots=True)
class Detection:
    """One object in a report: `value` is a speed (>= 0, `direction` +1 inbound, -1 outbound,
    0 none) or a range (direction 0), in the report's unit."""

    value: float
    direction: int
    magnitude: float | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """A speed or range report (several objects with On > 1, strongest first)."""

    unit: str
    detections: tuple[Detection, ...]
    sensor_time_s: float | None
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True, slots=True)
class CountReport:
    """The radar's own count per interval and direction (`@O`, TimedSpeedCounts)."""

    unit: str
    direction: int
    count: int
    average_speed: float
    sensor_time_s: float | None
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """A command's reply (`{"Units":"km-per-hr"}`, `{"Version":"1.3.1"}`): not a reading.
    `units` is the unit a `Units` reply sets, else None."""

    key: str
    value: str
    units: str | None = None

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Empty: a reply carries no readings."""
        return ()


@dataclass(frozen=True, slots=True)
class NoDetection:
    """A filler line (BZ `0`, BL blank, BS space): nothing passed the filters."""

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Empty: nothing was detected."""
        return ()


Frame: TypeAlias = Report | CountReport | Reply | NoDetection
_DIRECTION_NAMES: Final = {INBOUND: "inbound", OUTBOUND: "outbound"}


_NAMES: Final = {key: f"{unit.quantity}_{unit.suffix}" for key, unit in UNITS.items()}


def _one(unit: Unit, value: float) -> Report:
    """The common line, one bare number: the fast path (drivers/README.md, bench/decoders.py)."""
    if unit.speed:
        direction = INBOUND if value > 0 else OUTBOUND
        speed = -value if value < 0 else value
        measurements: tuple[Measurement, ...] = (
            Measurement(_NAMES[unit.key], speed, unit.ucum),
            Measurement("direction", direction, "1"),
        )
        return Report(unit.key, (Detection(speed, direction),), None, measurements)
    found = (Detection(abs(value), 0),)
    return Report(unit.key, found, None, (Measurement(_NAMES[unit.key], abs(value), unit.ucum),))


def _measurements(unit: Unit, detections: tuple[Detection, ...]) -> tuple[Measurement, ...]:
    out: list[Measurement] = []
    many = len(detections) > 1
    for index, d in enumerate(detections, start=1):
        n = f"_{index}" if many else ""
        out.append(Measurement(f"{unit.quantity}{n}_{unit.suffix}", d.value, unit.ucum))
        if unit.speed:
            out.append(Measurement(f"direction{n}", d.direction, "1"))
        if d.magnitude is not None:
            out.append(Measurement(f"magnitude{n}", d.magnitude, "1"))
    return tuple(out)


def _report(unit: Unit, detections: list[Detection], time_s: float | None) -> Frame:
    """A report; all speeds 0 is the BZ filler (a Doppler radar cannot see a speed of 0)."""
    found = tuple(detections)
    if unit.speed and not any(d.value for d in found):
        return NoDetection()
    return Report(unit.key, found, time_s, _measurements(unit, found))


def _number(value: object, what: str) -> float:
    """A number the radar sent (JSON number or string, or a plain field); DecodeError if not."""
    text_ok = isinstance(value, str) and _NUMBER.fullmatch(value.strip())
    if text_ok or (isinstance(value, int | float) and not isinstance(value, bool)):
        number = float(value)  # type: ignore[arg-type]
    else:
        raise DecodeError(f"{what}: not a number: {str(value)[:40]!r}")
    if not math.isfinite(number):
        raise DecodeError(f"{what}: not a finite number")
    return number


def _detection(
    raw: float, unit: Unit, magnitude: float | None, direction: int | None = None
) -> Detection:
    if not unit.speed:
        return Detection(abs(raw), 0, magnitude)
    if direction is None:
        direction = INBOUND if raw > 0 else OUTBOUND if raw < 0 else 0
    return Detection(abs(raw), direction, magnitude)


def _unit(label: object, default: Unit) -> Unit:
    if label is None:
        return default
    key = LABELS.get(str(label).strip().lower())
    if key is None:
        raise DecodeError(f"unit: unknown unit label {str(label)[:20]!r}")
    return UNITS[key]


def _plain(text: str, unit: Unit, *, time: bool, magnitude: bool) -> Frame:
    if not (time or magnitude or "," in text):
        field = text.strip()
        if not field:
            return NoDetection()
        if not _NUMBER.fullmatch(field):
            raise DecodeError(f"field 1: not a number: {field[:40]!r}")
        value = float(field)
        return NoDetection() if value == 0 else _one(unit, value)
    fields = [field.strip() for field in text.split(",")]
    if len(fields) == 1 and (not fields[0] or _is_zero(fields[0])):
        return NoDetection()
    if fields[0].startswith('"'):  # OU: the unit label, quoted, first
        unit = _unit(fields.pop(0).strip('"'), unit)
    offsets = 0 if not time else 1
    numbers = [_number(field, f"field {i + 1}") for i, field in enumerate(fields)]
    time_s = numbers[0] if time and numbers else None
    values = numbers[offsets:]
    if not values or (magnitude and len(values) % 2):
        raise DecodeError(
            f"{len(fields)} fields do not fit the settings (OT {time}, OM {magnitude})"
        )
    if magnitude:
        found = [_detection(v, unit, m) for m, v in zip(values[::2], values[1::2], strict=True)]
    else:
        found = [_detection(v, unit, None) for v in values]
    return _report(unit, found, time_s)


def _is_zero(field: str) -> bool:
    return bool(_NUMBER.fullmatch(field)) and float(field) == 0.0


def _listed(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]


def _time(obj: dict[str, Any]) -> float | None:
    if "time" not in obj:
        return None
    time_s = _number(obj["time"], "time")
    if "tick" in obj:  # firmware 1.x: whole seconds in time, milliseconds in tick
        time_s += _number(obj["tick"], "tick") / 1000
    return time_s


def _counts(obj: object, unit: Unit) -> CountReport:
    if not isinstance(obj, dict):
        raise DecodeError("TimedSpeedCounts: not an object")
    unit = _unit(obj.get("units", obj.get("unit")), unit)
    direction = _DIRECTIONS.get(str(obj.get("direction", "")))
    if direction is None or direction == 0:
        raise DecodeError(f"TimedSpeedCounts: direction {str(obj.get('direction'))[:20]!r}")
    count = _number(obj.get("count"), "count")
    if count < 0 or count != int(count):
        raise DecodeError(f"TimedSpeedCounts: count {count} is not a number of vehicles")
    average = abs(_number(obj.get("average", 0), "average"))
    name = _DIRECTION_NAMES[direction]
    measurements = (
        Measurement(f"vehicles_{name}", count, "1"),
        Measurement(f"speed_avg_{name}_{unit.suffix}", average, unit.ucum),
    )
    return CountReport(unit.key, direction, int(count), average, _time(obj), measurements)


def _json(text: str, unit: Unit) -> Frame:
    try:
        obj = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise DecodeError(f"invalid json: {str(error)[:80]}") from None
    if not isinstance(obj, dict):
        raise DecodeError("json line is not an object")
    if "TimedSpeedCounts" in obj:
        return _counts(obj["TimedSpeedCounts"], unit)
    if not _REPORT_KEYS & obj.keys():
        if obj and all(isinstance(k, str) and k[:1].isupper() for k in obj):
            key, value = next(iter(obj.items()))
            units = LABELS.get(value.lower()) if key == "Units" and isinstance(value, str) else None
            return Reply(key, str(value)[:80], units)
        raise DecodeError("json object without speed, range or a reply key")
    unit = _unit(obj.get("unit", obj.get("units")), unit)
    key = next(k for k in ("speed", "DetectedObjectVelocity", "range") if k in obj)
    if key == "range" and unit.speed:
        unit = UNITS["m"]  # a range report whose unit was not said: the FMCW default
    elif key != "range" and not unit.speed:
        raise DecodeError(f"{key} in the range unit {unit.key!r}")
    values = [_number(v, key) for v in _listed(obj[key])]
    magnitudes: list[float | None] = (
        [_number(m, "magnitude") for m in _listed(obj["magnitude"])]
        if "magnitude" in obj
        else [None] * len(values)
    )
    if len(magnitudes) != len(values) or not values:
        raise DecodeError(f"{len(magnitudes)} magnitudes for {len(values)} {key} values")
    direction = _DIRECTIONS.get(str(obj["direction"])) if "direction" in obj else None
    found = [_detection(v, unit, m, direction) for v, m in zip(values, magnitudes, strict=True)]
    return _report(unit, found, _time(obj))


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def decode_line(line: bytes, unit: Unit, *, time: bool = False, magnitude: bool = False) -> Frame:
    """One line without its line ending; DecodeError if it is not a report, filler or reply."""
    if len(line) > MAX_LINE:
        raise DecodeError(f"line of {len(line)} bytes, longer than {MAX_LINE}", offset=MAX_LINE)
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError as error:
        raise DecodeError("not ASCII text", offset=error.start) from None
    if not text.isprintable():
        raise DecodeError("control character in the line")
    if text.lstrip().startswith("{"):
        return _json(text, unit)
    return _plain(text, unit, time=time, magnitude=magnitude)


def _settings_unit(units: str) -> Unit:
    try:
        return UNITS[units]
    except KeyError:
        raise ValueError(f"units: expected one of {', '.join(UNITS)}, got {units!r}") from None


def decode(
    frame: bytes,
    *,
    units: str = "mps",
    json: bool = False,
    magnitude: bool = False,
    time: bool = False,
) -> Frame:
    """Decode exactly one line (its CR LF may be left off); DecodeError if invalid. `json` is
    accepted for symmetry with the source: a JSON line is recognised by its `{`."""
    del json
    frame = bytes(frame)
    for ending in (b"\r\n", b"\n", b"\r"):
        if frame.endswith(ending):
            frame = frame[: -len(ending)]
            break
    for byte in (b"\r", b"\n"):
        if byte in frame:
            raise DecodeError("more than one line", offset=frame.index(byte))
    return decode_line(frame, _settings_unit(units), time=time, magnitude=magnitude)


class StreamDecoder:
    """Reports from a byte stream split anywhere, with noise. Never raises.

    Lines end at LF (a CR before it is dropped). Bytes that cannot be in a line (not printable
    ASCII) are skipped with everything before them on their line, so a report after noise is
    still read; a line longer than MAX_LINE is dropped to its end. A `Units` reply changes the
    unit of the plain lines that follow (the radar says what it was set to)."""

    __slots__ = ("_decode", "_lines", "stats", "unit")

    def __init__(
        self,
        *,
        units: str = "mps",
        json: bool = False,
        magnitude: bool = False,
        time: bool = False,
    ) -> None:
        del json
        self.unit = _settings_unit(units)
        self._lines = LineSplitter(MAX_LINE)
        self.stats = self._lines.stats
        self._decode: Callable[[bytes, Unit], Frame] = lambda line, unit: decode_line(
            line, unit, time=time, magnitude=magnitude
        )

    @property
    def pending(self) -> int:
        """Bytes of a line still waiting for its end."""
        return self._lines.pending

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by `data`; a line that is not a report is counted, never raised."""
        frames: list[Frame] = []
        for line in self._lines.feed(data):
            try:
                frame = self._decode(line[:-1] if line.endswith(b"\r") else line, self.unit)
            except DecodeError:
                self.stats.bad_frames += 1
                self.stats.skipped_bytes += len(line) + 1
                continue
            if isinstance(frame, Reply) and frame.units is not None:
                self.unit = UNITS[frame.units]
            self.stats.frames += 1
            frames.append(frame)
        return frames
