"""The driver registry: config `driver` names mapped by hand to codecs, with no plugin discovery.

A driver is a pure codec. `new_stream()` gives a fresh stream decoder for one serial port;
`decode_frame(frame)` decodes exactly one frame or raises `DecodeError`; `decode_one(frame)` gives
its measurements (an empty tuple for valid frames that carry none, such as command replies).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from drivers import pms5003, sds011
from drivers.base import DecodeError, Measurement, StreamStats

__all__ = [
    "DRIVERS",
    "DecodeError",
    "Driver",
    "Frame",
    "Measurement",
    "StreamDecoderProtocol",
    "StreamStats",
    "get_driver",
]


class Frame(Protocol):
    """What every decoded frame offers."""

    @property
    def measurements(self) -> tuple[Measurement, ...]: ...


class StreamDecoderProtocol(Protocol):
    """A sans-IO stream decoder: buffers bytes, returns whole frames, never raises."""

    stats: StreamStats

    def feed(self, data: bytes) -> Sequence[Frame]: ...


@dataclass(frozen=True, slots=True)
class Driver:
    name: str
    description: str
    new_stream: Callable[[], StreamDecoderProtocol]
    decode_frame: Callable[[bytes], Frame]

    def decode_one(self, frame: bytes) -> Sequence[Measurement]:
        """The measurements of exactly one frame; DecodeError if it is not one."""
        return self.decode_frame(frame).measurements


def _pms5003_frame(frame: bytes) -> Frame:
    return pms5003.decode(frame, model="pms5003")


def _pms5003t_frame(frame: bytes) -> Frame:
    return pms5003.decode(frame, model="pms5003t")


def _pms5003_stream() -> StreamDecoderProtocol:
    return pms5003.StreamDecoder(model="pms5003")


def _pms5003t_stream() -> StreamDecoderProtocol:
    return pms5003.StreamDecoder(model="pms5003t")


_PMS = Driver(
    name="pms5003",
    description="Plantower PMS5003/PMS7003 (and PMS1003/PMSA003) PM and particle counts, "
    "UART 9600 8N1",
    new_stream=_pms5003_stream,
    decode_frame=_pms5003_frame,
)

# BLE ("bthome", "ruuvi") and MicroPython node ("node") drivers join this table when they exist.
DRIVERS: dict[str, Driver] = {
    driver.name: driver
    for driver in (
        Driver(
            name="sds011",
            description="Nova Fitness SDS011 PM2.5/PM10 sensor, UART 9600 8N1",
            new_stream=sds011.StreamDecoder,
            decode_frame=sds011.decode,
        ),
        _PMS,
        replace(_PMS, name="pms7003"),  # same frame and commands
        Driver(
            name="pms5003t",
            description="Plantower PMS5003T: PM, particle counts, temperature and humidity, "
            "UART 9600 8N1",
            new_stream=_pms5003t_stream,
            decode_frame=_pms5003t_frame,
        ),
    )
}


def get_driver(name: str) -> Driver:
    """The driver registered as `name`; KeyError naming the known drivers otherwise."""
    try:
        return DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise KeyError(f"unknown driver {name!r}; known drivers: {known}") from None
