"""The BLE source: allow-listed BTHome v2 and RuuviTag sensors, read from their advertisements.

Privacy first (docs/privacy.md): the scanner's callback looks the sender's address up in the
allow-list and drops every other advert on the spot, counted but not kept, logged or decoded.
Allow-listed adverts go into a bounded queue (full: dropped and counted); the source's own loop
decodes them and drops repeats (`ble_filter`). Readings carry `<source>/<device name>`, never
an address.

The scan is supervised: when the adapter vanishes or is powered off (USB dongle pulled,
`hciconfig reset`, bluetoothd restarted) the source says so once, waits with capped backoff,
and scans again when the adapter is back, without a process restart. `scanning = "auto"` tries
passive scanning and falls back to active when BlueZ has no advertisement monitors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from drivers.ble import parse_mac
from gateway.backoff import Backoff, RateLimitedLog
from gateway.config import BleSourceConfig
from gateway.readings import CLOCK_UNSYNCED, Sink
from gateway.sources.ble.filter import (
    BTHOME_UUID,
    AdvertFilter,
    DeviceState,
    device_state,
    is_encrypted_bthome,
    owner_by_key,
    payload_of,
)
from gateway.sources.ble.scanner import Scanner, ScannerFactory, default_scanner_factory
from gateway.sources.silence import BLE_ADVERT_GAP_S, Silence, judge_all, threshold_s
from gateway.system.clock import WallClock

log = logging.getLogger(__name__)

QUEUE_MAX: Final = 256
"""Allow-listed adverts waiting to be decoded; more are dropped (and counted)."""
ADAPTER_CHECK_S: Final = 1.0
"""How often the adapter's presence is checked while scanning."""
DEVICE_TIMEOUT_S: Final = 10.0
"""Bound on starting and stopping a scan (a D-Bus round trip to bluetoothd)."""


class AdapterNotReady(Exception):
    """The adapter is not (or no longer) there, or powered off."""


@dataclass(slots=True)
class BleStats:
    """Aggregate numbers only: no address ever goes in here."""

    adverts_seen: int = 0
    adverts_dropped_not_allowed: int = 0
    adverts_dropped_queue_full: int = 0
    adverts_duplicate: int = 0
    adverts_rate_limited: int = 0
    decode_errors: int = 0
    readings: int = 0
    adapter_restarts: int = 0
    scanning_mode: str = ""
    state: str = "starting"
    last_error: str = ""
    silent: dict[str, float] = field(default_factory=dict)  # device name -> seconds silent

    def as_dict(self) -> dict[str, Any]:
        """The counters by name, for the agent's status and metrics."""
        return {name: getattr(self, name) for name in self.__slots__}


class BleSource:
    """Reads allow-listed BLE sensors from their adverts, across adapter outages."""

    def __init__(
        self,
        config: BleSourceConfig,
        *,
        clock: WallClock,
        scanner_factory: ScannerFactory = default_scanner_factory,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.name = config.name
        self.stats = BleStats()
        self._clock = clock
        self._scanner_factory = scanner_factory
        self._monotonic_s = monotonic_s
        states = [device_state(device) for device in config.devices]
        self._devices: dict[str, DeviceState] = {
            state.config.address.upper(): state for state in states if state.config.address
        }
        self._keyed = [state for state in states if not state.config.address]
        self._filter = AdvertFilter(monotonic_s=monotonic_s)
        self._queue: asyncio.Queue[tuple[DeviceState | None, bytes, str]] = asyncio.Queue(QUEUE_MAX)
        self._log = RateLimitedLog(log, monotonic_s=monotonic_s)
        self._silence = {
            f"{self.name}/{device.name}": Silence(
                threshold_s(
                    config.silent_after_s
                    if device.silent_after_s is None
                    else device.silent_after_s,
                    BLE_ADVERT_GAP_S,
                )
            )
            for device in config.devices
        }

    def check_silence(self) -> dict[str, float]:
        """Judge each device's silence; {"<source>/<device>": seconds} for the silent ones."""
        silent = judge_all(self._silence, self._monotonic_s(), log=log, source=self.name)
        prefix = len(self.name) + 1
        self.stats.silent = {sensor[prefix:]: quiet_s for sensor, quiet_s in silent.items()}
        return silent

    def _on_advert(
        self,
        address: str,
        service_data: Mapping[str, bytes],
        manufacturer_data: Mapping[int, bytes],
    ) -> None:
        """The scanner's callback: allow-list lookup and queue, nothing else. Runs in bleak's
        D-Bus message handler, so it must neither block nor raise."""
        self.stats.adverts_seen += 1
        device = self._devices.get(address.upper())
        if device is None:
            if not (self._keyed and is_encrypted_bthome(service_data)):
                self.stats.adverts_dropped_not_allowed += 1
                return
            # Maybe a device allow-listed by its bind key: the decode loop tries the keys.
            payload, claimed = service_data.get(BTHOME_UUID), address
        else:
            payload = payload_of(device.config.kind, service_data, manufacturer_data)
            claimed = ""
        if payload is None:
            return
        try:
            self._queue.put_nowait((device, bytes(payload), claimed))
        except asyncio.QueueFull:
            self.stats.adverts_dropped_queue_full += 1

    async def run(self, sink: Sink) -> None:
        """Scan and decode until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._decode_loop(sink), name=f"{self.name}-decode")
            group.create_task(self._scan_loop(), name=f"{self.name}-scan")

    async def _scan_loop(self) -> None:
        """Scan while the adapter is there; while it is not, try again with capped backoff."""
        backoff = Backoff(base_s=0.2, cap_s=self.config.restart_max_s)
        outage_since: float | None = None
        passive = self.config.scanning != "active"
        while True:
            scanner = self._scanner_factory(
                self._on_advert, adapter=self.config.adapter, passive=passive
            )
            try:
                await _start(scanner, self.config.adapter)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                ready = await _ready(scanner)
                await _stop_quietly(scanner)
                self.stats.last_error = f"{type(error).__name__}: {error}"
                if passive and self.config.scanning == "auto" and ready:
                    self._fall_back_to_active(error)
                    passive = False
                    continue
                if outage_since is None:
                    outage_since = self._monotonic_s()
                    self._report_cannot_scan()
                await asyncio.sleep(backoff.next_delay())
                continue
            self._report_scanning("passive" if passive else "active", outage_since)
            outage_since = None
            backoff.reset()
            await self._scan_until_gone(scanner)
            outage_since = self._monotonic_s()
            passive = self.config.scanning != "active"

    def _fall_back_to_active(self, error: Exception) -> None:
        log.info(
            "source %s: passive scanning unavailable on %s (%s); scanning actively",
            self.name,
            self.config.adapter,
            error,
        )

    def _report_cannot_scan(self) -> None:
        """Once per outage: the scan could not start (no adapter, powered off, no bluetoothd)."""
        self.stats.state = "adapter missing"
        log.warning(
            "source %s: cannot scan on %s (%s); retrying until it is back",
            self.name,
            self.config.adapter,
            self.stats.last_error,
        )

    def _report_scanning(self, mode: str, outage_since: float | None) -> None:
        if outage_since is not None:
            self.stats.adapter_restarts += 1
            log.info(
                "source %s: scanning on %s again (%s) after %.1f s",
                self.name,
                self.config.adapter,
                mode,
                self._monotonic_s() - outage_since,
            )
        else:
            log.info(
                "source %s: scanning on %s (%s), %d devices allow-listed",
                self.name,
                self.config.adapter,
                mode,
                len(self._devices),
            )
        self.stats.scanning_mode = mode
        self.stats.state = "scanning"
        for silence in self._silence.values():
            silence.listen(self._monotonic_s())

    async def _scan_until_gone(self, scanner: Scanner) -> None:
        """Scan until the adapter goes away (or this is cancelled), then stop the session."""
        try:
            await _until_gone(scanner)
        finally:
            await _stop_quietly(scanner)
            for silence in self._silence.values():
                silence.stop()
        self.stats.state = "adapter missing"
        self.stats.last_error = f"adapter {self.config.adapter} gone or powered off"
        log.warning("source %s: %s; waiting for it to come back", self.name, self.stats.last_error)

    async def _decode_loop(self, sink: Sink) -> None:
        stats, queue = self.stats, self._queue
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            ts_ms = self._clock.now_ms()
            now_s = self._monotonic_s()
            flags = 0 if self._clock.is_synced() else CLOCK_UNSYNCED
            count = 0
            for queued, payload, address in batch:
                mac = b""
                if queued is None:  # not listed by address: does a bind key open it?
                    mac = parse_mac(address)
                    queued = owner_by_key(self._keyed, mac, payload)
                    if queued is None:
                        stats.adverts_dropped_not_allowed += 1
                        continue
                device = queued
                verdict, measurements = self._filter.check(device, payload, mac=mac)
                if verdict != "decode_error":  # a repeat or a held-back advert: it is alive
                    self._silence[f"{self.name}/{device.config.name}"].heard(now_s)
                if verdict == "duplicate":
                    stats.adverts_duplicate += 1
                elif verdict == "rate_limited":
                    stats.adverts_rate_limited += 1
                elif verdict == "decode_error":
                    stats.decode_errors += 1
                    stats.last_error = f"{device.config.name}: {device.last_error}"
                    self._log.log(
                        logging.WARNING,
                        device.config.name,
                        "source %s: advert of %s not decoded: %s",
                        self.name,
                        device.config.name,
                        device.last_error,
                    )
                else:
                    sink.emit(f"{self.name}/{device.config.name}", measurements, ts_ms, flags)
                    count += len(measurements)
            if count:
                stats.readings += count
                await sink.room()


async def _start(scanner: Scanner, adapter: str) -> None:
    """Start a scan; AdapterNotReady when BlueZ started it on a missing or powered-off adapter."""
    async with asyncio.timeout(DEVICE_TIMEOUT_S):
        await scanner.start()
    if not await _ready(scanner):  # BlueZ may start a scan on a powered-off adapter
        raise AdapterNotReady(f"adapter {adapter} missing or powered off")


async def _until_gone(scanner: Scanner) -> None:
    """Polls: BlueZ says an adapter went away only in a D-Bus signal that bleak keeps to itself."""
    while True:
        if not await _ready(scanner):
            return
        await asyncio.sleep(ADAPTER_CHECK_S)


async def _ready(scanner: Scanner) -> bool:
    try:
        async with asyncio.timeout(DEVICE_TIMEOUT_S):
            return await scanner.adapter_ready()
    except asyncio.CancelledError:
        raise
    except Exception:
        return False


async def _stop_quietly(scanner: Scanner) -> None:
    """Stopping a scan on an adapter that is gone fails; that is expected and harmless."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DEVICE_TIMEOUT_S):
            await scanner.stop()
