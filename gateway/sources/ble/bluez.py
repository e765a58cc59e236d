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
        """Open our D-Bus connection, note which bluetoothd runs, and start bleak's scan."""
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
        """Stop the scan and close our D-Bus connection, even if stopping the scan fails."""
        scanner, self._scanner = self._scanner, None
        bus, self._bus = self._bus, None
        try:
            if scanner is not None:
                await scanner.stop()
        finally:
            if bus is not None:
                bus.disconnect()

    async def adapter_ready(self) -> bool:
        """Whether the bluetoothd we started scanning with still runs and has the adapter powered.

        A restarted bluetoothd (new owner of `org.bluez`) knows nothing of our scan. bleak 3.x
        has no public call for the adapter, so BlueZ itself is asked, on our own bus.
        """
        bus, owner = self._bus, self._owner
        if bus is None or not bus.connected or owner is None:
            return False
        if await _bluez_owner(bus) != owner:
            return False
        return await _adapter_powered(bus, owner, f"/org/bluez/{self._adapter}")


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


async def _adapter_powered(bus: MessageBus, owner: str, adapter_path: str) -> bool:
    """The adapter's `Powered` property; False if BlueZ has no such adapter (error reply)."""
    reply = await bus.call(
        Message(
            destination=owner,
            path=adapter_path,
            interface="org.freedesktop.DBus.Properties",
            member="Get",
            signature="ss",
            body=[defs.ADAPTER_INTERFACE, "Powered"],
        )
    )
    if reply.message_type != MessageType.METHOD_RETURN or not reply.body:
        return False
    return bool(reply.body[0].value)


def bleak_scanner(on_advert: OnAdvert, *, adapter: str, passive: bool) -> Scanner:
    """The default `ScannerFactory`: bleak on BlueZ."""
    return BleakBlueZScanner(on_advert, adapter=adapter, passive=passive)
