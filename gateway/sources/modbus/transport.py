"""The RS-485 bus through pymodbus: the only module that imports it.

pymodbus sends the function 04 request and frames the answer (3.5-character silence, its own
CRC check); this module hands back the raw bytes that came for the request, whatever they were,
so the source decodes them with `drivers.eastron` and can tell a corrupt answer (CRC) from no
answer at all (pymodbus reports both as a timeout). Imported only when a `modbus` source is
configured: pymodbus costs the agent ~1.9 MB of RSS and ~25-80 ms of start-up
(BENCHMARKS.md, "Modbus meters").
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException

# pymodbus logs every unanswered request at ERROR; the source says it once per episode.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

__all__ = ["Bus", "BusGone", "BusSettings", "open_bus"]


class BusGone(Exception):
    """The adapter could not be opened or vanished (unplugged, its driver unloaded)."""


@dataclass(frozen=True, slots=True)
class BusSettings:
    """How the bus is wired: the adapter and the line settings every meter shares."""

    port: str
    baud: int
    parity: str
    stop_bits: int
    timeout_s: float


class Bus(Protocol):
    """One open RS-485 bus: a request at a time, each answered or timed out."""

    async def read_input_registers(self, slave: int, start_register: int, count: int) -> bytes:
        """The raw bytes that came back for the request (b"" for none; possibly corrupt or
        cut); BusGone if the adapter is gone."""
        ...

    def close(self) -> None:
        """Release the adapter (and its exclusive lock)."""
        ...


class _PymodbusBus:
    """pymodbus's serial client with a trace hook that keeps the bytes each request got."""

    def __init__(self, settings: BusSettings) -> None:
        self._settings = settings
        self._received = b""
        self.client = AsyncModbusSerialClient(
            settings.port,
            framer=FramerType.RTU,
            baudrate=settings.baud,
            bytesize=8,
            parity=settings.parity,
            stopbits=settings.stop_bits,
            timeout=settings.timeout_s,
            retries=0,  # the source retries and counts
            reconnect_delay=0,  # the source reopens, with its own backoff
            trace_packet=self._trace,
        )

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """Called with pymodbus's receive buffer each time bytes arrive (the whole buffer, which
        it empties after a frame or a CRC failure): keep everything that came."""
        if not sending:
            if data.startswith(self._received):
                self._received = data
            else:
                self._received += data
        return data

    async def read_input_registers(self, slave: int, start_register: int, count: int) -> bytes:
        if not self.client.connected:
            raise BusGone(f"{self._settings.port} closed")
        self._received = b""
        try:
            async with asyncio.timeout(self._settings.timeout_s + 1.0):  # pymodbus times out first
                await self.client.read_input_registers(start_register, count=count, device_id=slave)
        except (ModbusException, TimeoutError):
            if not self.client.connected:
                raise BusGone(f"{self._settings.port} vanished") from None
        return self._received[:512]  # an RTU frame is at most 256 bytes

    def close(self) -> None:
        self.client.close()


async def open_bus(settings: BusSettings) -> Bus:
    """The bus, open; BusGone if the adapter cannot be opened (bounded by the timeout)."""
    bus = _PymodbusBus(settings)
    try:
        async with asyncio.timeout(max(2.0, settings.timeout_s * 2)):
            connected = await bus.client.connect()
    except TimeoutError:
        connected = False
    if not connected:
        bus.close()
        raise BusGone(f"cannot open {settings.port}")
    return bus
