"""The source factory table: a source's config type -> the source, explicit (no plugin magic).
BLE (bleak, its drivers) and Modbus (pymodbus) are imported only when a config names them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from gateway.config import BleSourceConfig, SerialSourceConfig, SourceConfig
from gateway.config.sources import ModbusSourceConfig
from gateway.sources.modbus import modbus_source
from gateway.sources.serial.source import SerialSource
from gateway.system.clock import WallClock

if TYPE_CHECKING:
    from gateway.sources.ble.scanner import ScannerFactory
    from gateway.sources.ble.source import BleSource
    from gateway.sources.modbus.source import ModbusSource

Source: TypeAlias = "SerialSource | BleSource | ModbusSource"


def _ble_source(
    config: BleSourceConfig, *, clock: WallClock, scanner_factory: ScannerFactory | None = None
) -> BleSource:
    # Imported only when a BLE source is configured: its drivers, filter and scanner are
    # ~0.5 MB of RSS a serial-only gateway does not need (BENCHMARKS.md, memory).
    from gateway.sources.ble.source import BleSource

    if scanner_factory is None:
        return BleSource(config, clock=clock)
    return BleSource(config, clock=clock, scanner_factory=scanner_factory)


SOURCE_TYPES: dict[type[Any], Callable[..., Source]] = {
    SerialSourceConfig: SerialSource,
    BleSourceConfig: _ble_source,
    ModbusSourceConfig: modbus_source,  # pymodbus loads only then (~1.9 MB, BENCHMARKS.md)
}
"""Config type of a source -> the factory that builds it."""


def make_source(
    config: SourceConfig, *, clock: WallClock, ble_scanner_factory: ScannerFactory | None = None
) -> Source:
    """The source `config` describes (a BLE source with the given scanner, for tests)."""
    if isinstance(config, BleSourceConfig) and ble_scanner_factory is not None:
        return _ble_source(config, clock=clock, scanner_factory=ble_scanner_factory)
    return SOURCE_TYPES[type(config)](config, clock=clock)


def source_info(source: Source) -> dict[str, Any]:
    """What `citygw status` shows of a source besides its stats."""
    if isinstance(source.config, ModbusSourceConfig):
        return {"type": "modbus", "port": source.config.port}  # its stats hold each meter
    if isinstance(source.config, BleSourceConfig):
        return {
            "type": "ble",
            "adapter": source.config.adapter,
            "devices": len(source.config.devices),
        }
    return {"type": "serial", "driver": source.config.driver, "port": source.config.port}
