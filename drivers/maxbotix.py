"""MaxBotix MaxSonar-WR ultrasonic rangefinders: a sans-IO codec for their serial lines (9600 8N1).

One frame: `R`, then 3 (XL, cm) or 4 (HRXL, mm) ASCII digits, then CR (0x0D); no checksum, no
LF. The model (drivers/maxbotix_models.py) gives the unit, the digit count, the minimum (closer
objects read as it) and the no-target value. After power-up an HRXL sends six banner lines
(`HRXL-MaxSonar-WRL`, `PN:MB7386`, ...); some units send stray 0xFF bytes. Both are skipped.

Measurements per frame: `range_status` (unit `1`: 0 a distance, 1 at the minimum, 2 at the
maximum, 3 no target), then, unless there is no target, `distance_mm` (`mm`, cm readings x 10)
and, with `mount_height_mm`, `water_level_mm` = mount height - distance (`mm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from drivers import framing
from drivers.base import DecodeError, Measurement, StreamStats
from drivers.maxbotix_models import MODELS, Model

HEAD: Final = ord("R")
CR: Final = 0x0D
DEFAULT_MODEL: Final = "MB7389"

IN_RANGE: Final = 0
AT_MIN: Final = 1
AT_MAX: Final = 2
NO_TARGET: Final = 3
_HEAD_BYTES: Final = b"R"
_DIGITS: Final = frozenset(b"0123456789")
_TEXT: Final = frozenset(range(0x20, 0x7F))


@dataclass(frozen=True, slots=True)
class RangeFrame:
    """One range report: `distance_mm` is None when there was no target."""

    model: str
    raw: int
    status: int
    distance_mm: int | None
    water_level_mm: int | None
    measurements: tuple[Measurement, ...]


def _model(model: str) -> Model:
    try:
        return MODELS[model]
    except KeyError:
        raise ValueError(f"model: expected one of {', '.join(MODELS)}, got {model!r}") from None


def _frame(raw: int, model_name: str, model: Model, mount_height_mm: int | None) -> RangeFrame:
    if raw == model.no_target_raw:
        status, distance = NO_TARGET, None
    else:
        if raw > model.max_raw:
            raise DecodeError(
                f"value {raw} is above {model.family}'s maximum {model.max_raw}", offset=1
            )
        distance = raw * model.mm_per_unit
        status = (
            AT_MIN
            if raw <= model.min_raw
            else AT_MAX
            if raw == model.max_raw and model.max_means_beyond
            else IN_RANGE
        )
    measurements = [Measurement("range_status", status, "1")]
    level = None
    if distance is not None:
        measurements.append(Measurement("distance_mm", distance, "mm"))
        if mount_height_mm is not None:
            level = mount_height_mm - distance
            measurements.append(Measurement("water_level_mm", level, "mm"))
    return RangeFrame(model_name, raw, status, distance, level, tuple(measurements))


def decode(
    frame: bytes, *, model: str = DEFAULT_MODEL, mount_height_mm: int | None = None
) -> RangeFrame:
    """Decode exactly one line (`R1234\\r`; the CR may be left off); DecodeError if invalid."""
    spec = _model(model)
    frame = bytes(frame)
    body = frame[:-1] if frame.endswith(b"\r") else frame
    if not body:
        raise DecodeError("empty line, expected R and digits", offset=0)
    if body[0] != HEAD:
        if set(body[1:]) <= _DIGITS:
            raise DecodeError(f"header is 0x{body[0]:02x}, expected 'R'", offset=0)
        if set(body) <= _TEXT:
            raise DecodeError("a power-up banner line, not a range reading", offset=0)
        raise DecodeError(f"header is 0x{body[0]:02x}, expected 'R'", offset=0)
    for index, byte in enumerate(body[1:], start=1):
        if byte not in _DIGITS:
            raise DecodeError(f"0x{byte:02x} in the range digits", offset=index)
    if len(body) - 1 != spec.digits:
        raise DecodeError(
            f"{len(body) - 1} digits: wrong length, {model} ({spec.family}) sends {spec.digits}",
            offset=min(len(body), spec.digits + 1),
        )
    return _frame(int(body[1:]), model, spec, mount_height_mm)


class StreamDecoder:
    """Range frames from a byte stream split anywhere, with banners and noise. Never raises.

    At most one frame minus one byte (5 bytes) stays pending; `stats` counts frames, frame-shaped
    runs that failed (`bad_frames`: digits not followed by CR, a value past the maximum) and
    skipped bytes."""

    __slots__ = ("_buf", "_length", "_model", "_mount_height_mm", "_spec", "stats")

    def __init__(self, *, model: str = DEFAULT_MODEL, mount_height_mm: int | None = None) -> None:
        self._spec = _model(model)
        self._model = model
        self._mount_height_mm = mount_height_mm
        self._length = self._spec.digits + 2
        self._buf = b""
        self.stats = StreamStats()

    @property
    def pending(self) -> int:
        """Bytes buffered while waiting for the rest of a frame."""
        return len(self._buf)

    def _probe(self, buf: bytes, i: int) -> int:
        digits = buf[i + 1 : i + self._length - 1]
        if digits and not digits.isdigit():  # bytes.isdigit: ASCII 0-9 only
            return framing.NOT_A_FRAME
        return framing.NEED_MORE if len(buf) - i < self._length else self._length

    def _decode_at(self, buf: bytes, i: int) -> RangeFrame:
        end = i + self._length - 1
        if buf[end] != CR:
            raise DecodeError(f"0x{buf[end]:02x} after the digits, expected CR", offset=end - i)
        return _frame(int(buf[i + 1 : end]), self._model, self._spec, self._mount_height_mm)

    def feed(self, data: bytes) -> list[RangeFrame]:
        """Frames completed by `data`; anything else is skipped and counted, never raised."""
        buf = self._buf + data
        frames, used = framing.scan(buf, _HEAD_BYTES, self._probe, self._decode_at, self.stats)
        self._buf = buf[used:]
        return frames


def encode(raw: int, *, model: str = DEFAULT_MODEL) -> bytes:
    """The line a `model` sends for the wire value `raw` (mm or cm); ValueError if it cannot."""
    spec = _model(model)
    if not 0 <= raw < 10**spec.digits:
        raise ValueError(f"raw: {model} sends {spec.digits} digits, got {raw}")
    return b"R" + str(raw).zfill(spec.digits).encode() + b"\r"


def encode_distance(distance_mm: float | None, *, model: str = DEFAULT_MODEL) -> bytes:
    """What a `model` sends for an object at `distance_mm` (None: nothing in range): clamped to
    its minimum, the no-target value past its maximum (or the maximum, for the XL)."""
    spec = _model(model)
    top = spec.no_target_raw if spec.no_target_raw is not None else spec.max_raw
    if distance_mm is None:
        return encode(top, model=model)
    raw = round(distance_mm / spec.mm_per_unit)
    return encode(top if raw > spec.max_raw else max(raw, spec.min_raw), model=model)
