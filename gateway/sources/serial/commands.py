"""What a serial source writes to its sensor (at connect, to wake it, to put it to sleep), and
the driver options it takes from the source's config."""

from __future__ import annotations

from dataclasses import dataclass

from drivers import get_driver
from gateway.config import SerialSourceConfig


@dataclass(frozen=True, slots=True)
class SensorCommands:
    """What to write to a sensor of a driver: on connect, to wake it, to put it to sleep."""

    start: tuple[bytes, ...]
    wake: bytes
    sleep: bytes


def driver_options(config: SerialSourceConfig) -> dict[str, object]:
    """The driver's options (drivers/options.py) set by the config field of the same name."""
    options: dict[str, object] = {}
    for option in get_driver(config.driver).options:
        value = getattr(config, option.name, None)
        if value is not None:
            options[option.name] = value
    return options


def sensor_commands(
    driver: str, *, node_interval_s: int | None = None, options: dict[str, object] | None = None
) -> SensorCommands:
    """The bytes that set up, wake and put to sleep a sensor behind `driver` (with the driver's
    `options`, e.g. the radar's units)."""
    options = options or {}
    # codecs imported here, for the one driver asked: a gateway loads only those it uses
    if driver == "node":  # a citygw node duty-cycles its own sensors; we may set its pace
        from drivers import node

        start = (
            ()
            if node_interval_s is None
            else (
                node.encode_command("set_interval", node_interval_s, node_id=node.BROADCAST, seq=1),
            )
        )
        return SensorCommands(start=start, wake=b"", sleep=b"")
    if driver == "ops243":  # units, output mode: every line parseable (drivers/ops243_units.py)
        from drivers.ops243_units import start_commands

        units, json = str(options.get("units", "mps")), bool(options.get("json", False))
        return SensorCommands(start=start_commands(units=units, json=json), wake=b"", sleep=b"")
    if driver == "maxbotix":  # free-running, nothing to set
        return SensorCommands(start=(), wake=b"", sleep=b"")
    if driver == "sds011":
        from drivers import sds011

        return SensorCommands(
            # active reporting, continuous working period: our duty cycle decides
            start=(
                sds011.cmd_set_sleep(False),
                sds011.cmd_set_reporting_mode(False),
                sds011.cmd_set_working_period(0),
            ),
            wake=sds011.cmd_set_sleep(False),
            sleep=sds011.cmd_set_sleep(True),
        )
    from drivers import pms5003

    return SensorCommands(
        start=(pms5003.cmd_wake(), pms5003.cmd_active()),
        wake=pms5003.cmd_wake(),
        sleep=pms5003.cmd_sleep(),
    )
