"""The driver registry: config `driver` names mapped by hand to codecs, with no plugin discovery.

A driver is a pure codec. `decode_frame(frame)` decodes exactly one frame (for BLE drivers: one
advertisement's data) or raises `DecodeError`; `decode_one(frame)` gives its measurements (an empty
tuple for valid frames that carry none, such as command replies). Serial drivers also have
`new_stream()`, a fresh stream decoder for one port; BLE advertisement drivers have None there:
an advert arrives whole. A driver whose frames do not say everything themselves declares
`options` (drivers/options.py); its codec takes them as keyword arguments:
`decode_frame(frame, units="kmh")`, `new_stream(units="kmh")`.

A codec's module is imported when the driver is first used, not with the registry: a gateway
loads only the codecs its config names (all of them cost ~0.45 MB of RSS).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, cast

from drivers.base import DecodeError, Measurement, StreamStats
from drivers.maxbotix_models import MODELS as _MAXBOTIX_MODELS
from drivers.options import Option

__all__ = [
    "DRIVERS",
    "DecodeError",
    "Driver",
    "Frame",
    "Measurement",
    "Option",
    "StreamDecoderProtocol",
    "StreamStats",
    "get_driver",
    "modbus_drivers",
    "new_stream",
    "serial_drivers",
]


class Frame(Protocol):
    """What every decoded frame offers."""

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Everything the frame measured, each with its unit (none for replies and commands)."""
        ...


class StreamDecoderProtocol(Protocol):
    """A sans-IO stream decoder: buffers bytes, returns whole frames, never raises."""

    stats: StreamStats

    def feed(self, data: bytes) -> Sequence[Frame]:
        """Frames completed by `data` (any split of the stream); garbage is skipped and counted."""
        ...


@dataclass(frozen=True, slots=True)
class Driver:
    """A registered codec: its config name, what it reads, and how to decode it."""

    name: str
    description: str
    new_stream: Callable[..., StreamDecoderProtocol] | None
    """A fresh stream decoder; takes the driver's `options` as keyword arguments."""
    decode_frame: Callable[..., Frame]
    """`decode_frame(frame, **options)`: exactly one frame, or DecodeError."""
    options: tuple[Option, ...] = ()
    """The settings the codec needs besides the bytes (`citygw decode --set`, source config)."""
    modbus: bool = False
    """A Modbus RTU meter: read by a `modbus` source, not a serial stream."""

    def decode_one(self, frame: bytes, **options: object) -> Sequence[Measurement]:
        """The measurements of exactly one frame; DecodeError if it is not one."""
        return self.decode_frame(frame, **options).measurements


@dataclass(frozen=True, slots=True)
class _Lazy:
    """`drivers.<module>.<name>`, imported at the first call (with `model=` if given)."""

    module: str
    name: str
    model: str | None = None

    def _target(self) -> Callable[..., object]:
        target: Callable[..., object] = getattr(
            importlib.import_module(f"drivers.{self.module}"), self.name
        )
        return target if self.model is None else functools.partial(target, model=self.model)


class _LazyStream(_Lazy):
    """A lazily imported stream decoder class."""

    __slots__ = ()

    def __call__(self, **options: object) -> StreamDecoderProtocol:
        return cast(StreamDecoderProtocol, self._target()(**options))


class _LazyDecode(_Lazy):
    """A lazily imported one-frame decode function."""

    __slots__ = ()

    def __call__(self, frame: bytes, **options: object) -> Frame:
        return cast(Frame, self._target()(frame, **options))


_PMS = Driver(
    name="pms5003",
    description="Plantower PMS5003/PMS7003 (and PMS1003/PMSA003) PM and particle counts, "
    "UART 9600 8N1",
    new_stream=_LazyStream("pms5003", "StreamDecoder", "pms5003"),
    decode_frame=_LazyDecode("pms5003", "decode", "pms5003"),
)

_OPS243_OPTIONS = (
    Option(
        "units",
        str,
        "the unit the radar was set to at connect: speeds UM UK US UF UC (factory default "
        "mps), OPS243-C ranges uM uC uF uI uY",
        choices=("mps", "kmh", "mph", "fps", "cmps", "m", "cm", "ft", "in", "yd"),
    ),
    Option("json", bool, "the radar reports JSON (OJ); plain lines are read either way"),
    Option("magnitude", bool, "plain lines carry the magnitude before each speed (OM)"),
    Option("time", bool, "plain lines start with the sensor's time (OT)"),
)
_MAXBOTIX_OPTIONS = (
    Option(
        "model",
        str,
        "the MaxSonar model: cm or mm, digits, minimum and no-target value",
        choices=tuple(_MAXBOTIX_MODELS),
        required=True,
    ),
    Option(
        "mount_height_mm",
        int,
        "height of the sensor above the zero of the water level (level = height - distance)",
        low=1,
        high=100_000,
    ),
)

_MODBUS_OPTIONS = (
    Option("slave", int, "the meter's Modbus address the request went to", low=1, high=247),
    Option(
        "start_register", int, "the first input register the request asked for", low=0, high=65535
    ),
    Option("count", int, "how many registers the request asked for", low=1, high=125),
)

DRIVERS: dict[str, Driver] = {
    driver.name: driver
    for driver in (
        Driver(
            name="sds011",
            description="Nova Fitness SDS011 PM2.5/PM10 sensor, UART 9600 8N1",
            new_stream=_LazyStream("sds011", "StreamDecoder"),
            decode_frame=_LazyDecode("sds011", "decode"),
        ),
        _PMS,
        replace(_PMS, name="pms7003"),  # same frame and commands
        Driver(
            name="pms5003t",
            description="Plantower PMS5003T: PM, particle counts, temperature and humidity, "
            "UART 9600 8N1",
            new_stream=_LazyStream("pms5003", "StreamDecoder", "pms5003t"),
            decode_frame=_LazyDecode("pms5003", "decode", "pms5003t"),
        ),
        Driver(
            name="node",
            description="citygw sensor node (firmware/) UART link: COBS frames with CRC-16 "
            "carrying msgpack reports and command acks, 115200 8N1",
            new_stream=_LazyStream("node", "StreamDecoder"),
            decode_frame=_LazyDecode("node", "decode"),
        ),
        Driver(
            name="bthome",
            description="BTHome v2 BLE advertisement (service data 0xFCD2), plain or AES-CCM "
            "encrypted (decode_frame: plain only; bthome.decode takes MAC and bind key)",
            new_stream=None,
            decode_frame=_LazyDecode("bthome", "decode_plain"),
        ),
        Driver(
            name="ruuvi",
            description="RuuviTag data format 5 (RAWv2) BLE advertisement "
            "(manufacturer data 0x0499)",
            new_stream=None,
            decode_frame=_LazyDecode("ruuvi", "decode"),
        ),
        Driver(
            name="ops243",
            description="OmniPreSense OPS243 Doppler radar: speed and direction per detection, "
            "plain or JSON text lines (USB CDC or UART)",
            new_stream=_LazyStream("ops243", "StreamDecoder"),
            decode_frame=_LazyDecode("ops243", "decode"),
            options=_OPS243_OPTIONS,
        ),
        Driver(
            name="maxbotix",
            description="MaxBotix MaxSonar-WR (MB73xx HRXL in mm, MB7060 XL in cm) ultrasonic "
            "distance, 'R' + digits + CR, 9600 8N1; water level from the mounting height",
            new_stream=_LazyStream("maxbotix", "StreamDecoder"),
            decode_frame=_LazyDecode("maxbotix", "decode"),
            options=_MAXBOTIX_OPTIONS,
        ),
        Driver(
            name="sdm120",
            description="Eastron SDM120 single-phase energy meter, Modbus RTU over RS-485 "
            "(function 04 responses; a response needs its request: slave, start_register, count)",
            new_stream=None,
            decode_frame=_LazyDecode("eastron", "decode", "sdm120"),
            options=_MODBUS_OPTIONS,
            modbus=True,
        ),
        Driver(
            name="sdm630",
            description="Eastron SDM630 three-phase energy meter, Modbus RTU over RS-485 "
            "(function 04 responses; a response needs its request: slave, start_register, count)",
            new_stream=None,
            decode_frame=_LazyDecode("eastron", "decode", "sdm630"),
            options=_MODBUS_OPTIONS,
            modbus=True,
        ),
    )
}


def serial_drivers() -> dict[str, Driver]:
    """The drivers with a stream decoder: the ones a serial source can use."""
    return {name: driver for name, driver in DRIVERS.items() if driver.new_stream is not None}


def get_driver(name: str) -> Driver:
    """The driver registered as `name`; KeyError naming the known drivers otherwise."""
    try:
        return DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise KeyError(f"unknown driver {name!r}; known drivers: {known}") from None


def modbus_drivers() -> dict[str, Driver]:
    """The Modbus meters: the models a `modbus` source can read."""
    return {name: driver for name, driver in DRIVERS.items() if driver.modbus}


def new_stream(name: str, **options: object) -> StreamDecoderProtocol:
    """A fresh stream decoder of the serial driver `name`, with the driver's `options`;
    KeyError if there is none."""
    factory = get_driver(name).new_stream
    if factory is None:
        known = ", ".join(sorted(serial_drivers()))
        raise KeyError(
            f"driver {name!r} decodes BLE adverts, not a serial stream; serial drivers: {known}"
        )
    return factory(**options)
