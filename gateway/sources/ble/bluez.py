"""bleak's BlueZ backend behind the BLE source's small `Scanner` protocol: the one module that
imports bleak.

Passive scanning goes through BlueZ advertisement monitors, which want "or patterns": here one
for BTHome service data (AD type 0x16, UUID 0xFCD2 little-endian) and one for Ruuvi's
manufacturer data (AD type 0xFF, company 0x0499 little-endian). With those BlueZ itself drops
every other device before it reaches us. Active scanning has no such filter for manufacturer
data, so there the source's allow-list does the dropping.
"""

from __future__ import annotations

import logging
from typing import Final

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.bluezdbus import defs
from bleak.backends.bluezdbus.manager import get_global_bluez_manager
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from gateway.sources.ble.scanner import OnAdvert, Scanner

OR_PATTERNS: Final = [
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xd2\xfc"),
    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x99\x04"),
]


QUIET_LOGGERS: Final = ("bleak", "dbus_fast")
"""At debug level bleak logs every D-Bus signal, addresses of passers-by included; these stay at
WARNING whatever the gateway's log level (docs/privacy.md)."""


class BleakBlueZScanner:
    """One scan session on one adapter. Build a new one after `stop()` (or a failed `start()`)."""

    def __init__(self, on_advert: OnAdvert, *, adapter: str, passive: bool) -> None:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        self._on_advert = on_advert
        self._adapter = adapter
        self._passive = passive
        self._scanner: BleakScanner | None = None
        self._bus: MessageBus | None = None
        self._owner: str | None = None

    def _callback(self, device: BLEDevice, data: AdvertisementData) -> None:
        self._on_advert(device.address, data.service_data, data.manufacturer_data)

    async def start(self) -> None:
        self._bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        self._owner = await _bluez_owner(self._bus)
        bluez: BlueZScannerArgs = {"adapter": self._adapter}
        if self._passive:
            bluez["or_patterns"] = list(OR_PATTERNS)
        self._scanner = BleakScanner(
            self._callback, scanning_mode="passive" if self._passive else "active", bluez=bluez
        )
        await self._scanner.start()

    async def stop(self) -> None:
        scanner, self._scanner = self._scanner, None
        bus, self._bus = self._bus, None
        try:
            if scanner is not None:
                await scanner.stop()
        finally:
            if bus is not None:
                bus.disconnect()

    async def adapter_ready(self) -> bool:
        """Whether the bluetoothd we started scanning with still runs, and has the adapter
        powered. A restarted bluetoothd (new owner of `org.bluez`) knows nothing of our scan.
        bleak has no public call for the adapter; its BlueZ manager mirrors BlueZ's objects
        (kept current by D-Bus signals), so that part is a dictionary lookup."""
        if self._bus is None or not self._bus.connected:
            return False
        if self._owner is None or await _bluez_owner(self._bus) != self._owner:
            return False
        manager = await get_global_bluez_manager()
        adapter = manager._properties.get(f"/org/bluez/{self._adapter}", {})
        return bool(adapter.get(defs.ADAPTER_INTERFACE, {}).get("Powered", False))


async def _bluez_owner(bus: MessageBus) -> str | None:
    """The unique bus name of the running bluetoothd, None if there is none."""
    reply = await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="GetNameOwner",
            signature="s",
            body=["org.bluez"],
        )
    )
    if reply.message_type != MessageType.METHOD_RETURN or not reply.body:
        return None
    return str(reply.body[0])


def bleak_scanner(on_advert: OnAdvert, *, adapter: str, passive: bool) -> Scanner:
    """The default `ScannerFactory`: bleak on BlueZ."""
    return BleakBlueZScanner(on_advert, adapter=adapter, passive=passive)
