"""Energy meters on an RS-485 bus over Modbus RTU: polling, per-meter health, reopening the
adapter; `transport.py` is the only module that imports pymodbus (loaded only when configured)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import ModbusSourceConfig
    from gateway.sources.modbus.source import ModbusSource
    from gateway.system.clock import WallClock


def modbus_source(config: ModbusSourceConfig, *, clock: WallClock) -> ModbusSource:
    """The source for `config`. Its module, and pymodbus with it (~1.9 MB of RSS, ~25-80 ms of
    start-up: BENCHMARKS.md, Modbus), is imported only now: a gateway without meters never
    loads them."""
    from gateway.sources.modbus.source import ModbusSource

    return ModbusSource(config, clock=clock)
