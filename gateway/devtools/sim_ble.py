"""A replay BLE scanner for `citygw demo`: BTHome adverts of a kerbside climate sensor, repeats
of each advert (as real sensors send them), and a passing phone that is not on the allow-list.

The tests use bleak's real BlueZ backend (tests/integration/test_ble.py); this is only the demo.
"""

from __future__ import annotations

import asyncio
import random
import struct

from gateway.sources.ble.filter import BTHOME_UUID
from gateway.sources.ble.scanner import OnAdvert, Scanner

SENSOR_ADDRESS = "A4:C1:38:00:00:01"
PHONE_ADDRESS = "5E:11:22:33:44:55"  # never on the allow-list: must never leave the gateway


def bthome_climate(
    packet_id: int, temperature_c: float, humidity_pct: float, battery_pct: int
) -> bytes:
    """Unencrypted BTHome v2 service data: packet id, battery, temperature, humidity."""
    return bytes((0x40,)) + struct.pack(
        "<BBBBBhBH",
        0x00,
        packet_id & 0xFF,
        0x01,
        battery_pct,
        0x02,
        round(temperature_c * 100),
        0x03,
        round(humidity_pct * 100),
    )


class ReplayScanner:
    """A BLE scanner that replays a BTHome sensor's adverts and a passing phone's, for the demo."""

    def __init__(self, on_advert: OnAdvert, *, interval_s: float, seed: int) -> None:
        self._on_advert = on_advert
        self._interval_s = interval_s
        self._rng = random.Random(seed)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start advertising in a background task."""
        self._task = asyncio.create_task(self._advertise(), name="demo-ble-replay")

    async def stop(self) -> None:
        """Stop advertising and wait for the task to end."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def adapter_ready(self) -> bool:
        """Always True: the replayed adapter is always there."""
        return True

    async def _advertise(self) -> None:
        temperature, humidity, packet_id = 11.5, 78.0, 0
        while True:
            packet_id += 1
            temperature += self._rng.uniform(-0.1, 0.1)
            humidity = min(100.0, max(0.0, humidity + self._rng.uniform(-0.5, 0.5)))
            advert = {BTHOME_UUID: bthome_climate(packet_id, temperature, humidity, 87)}
            for _ in range(3):  # sensors repeat each advert; the source forwards it once
                self._on_advert(SENSOR_ADDRESS, advert, {})
                self._on_advert(PHONE_ADDRESS, {}, {0x004C: b"\x10\x05\x01\x18\x00\x00\x00"})
                await asyncio.sleep(self._interval_s / 3)


def replay_scanner_factory(on_advert: OnAdvert, *, adapter: str, passive: bool) -> Scanner:
    """A ReplayScanner as the BLE source's scanner, in place of BlueZ (adapter, passive unused)."""
    return ReplayScanner(on_advert, interval_s=2.0, seed=7)
