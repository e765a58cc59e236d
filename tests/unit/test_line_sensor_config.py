"""The radar's and the rangefinder's config: options per driver with exact error paths, and
what the source writes at connect, byte-exact."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import ConfigError, SerialSourceConfig, parse_config
from gateway.config.schema import convert
from gateway.sources.serial.commands import driver_options, sensor_commands


def _source(**fields: Any) -> SerialSourceConfig:
    data = {"type": "serial", "name": "s", "port": "/dev/ttyACM0", **fields}
    return convert(data, SerialSourceConfig)


def test_radar_config_gives_its_codec_options_and_set_up_commands() -> None:
    config = _source(driver="ops243", units="mph", json=True, aggregate_s=60)
    options = driver_options(config)
    assert options == {"units": "mph", "json": True}  # aggregate_s belongs to the source
    commands = sensor_commands("ops243", options=options)
    assert commands.start == (b"\x03", b"US", b"F1", b"OJ", b"OU", b"Om", b"Ot")
    assert (commands.wake, commands.sleep) == (b"", b"")


def test_radar_without_options_is_set_to_the_factory_unit_and_plain_lines() -> None:
    commands = sensor_commands("ops243", options=driver_options(_source(driver="ops243")))
    assert commands.start == (b"\x03", b"UM", b"F2", b"Oj", b"Ou", b"Om", b"Ot")


def test_rangefinder_is_sent_nothing_and_gets_its_model_and_height() -> None:
    config = _source(driver="maxbotix", model="MB7060", mount_height_mm=3000)
    assert driver_options(config) == {"model": "MB7060", "mount_height_mm": 3000}
    assert sensor_commands("maxbotix").start == ()


def test_rangefinder_may_aggregate_and_gets_the_median_aggregator() -> None:
    from gateway.sources.serial.aggregate import interval_aggregator
    from gateway.sources.serial.rangefinder import RangeAggregator
    from gateway.sources.serial.traffic import TrafficAggregator

    config = _source(driver="maxbotix", model="MB7389", mount_height_mm=3000, aggregate_s=60)
    assert driver_options(config) == {"model": "MB7389", "mount_height_mm": 3000}
    aggregator = interval_aggregator(config, start_s=5.0)
    assert isinstance(aggregator, RangeAggregator)
    assert (aggregator.due_s, aggregator.mount_height_mm) == (65.0, 3000)
    radar = interval_aggregator(_source(driver="ops243", aggregate_s=60), start_s=0.0)
    assert isinstance(radar, TrafficAggregator)


def test_drivers_without_options_get_none() -> None:
    assert driver_options(_source(driver="sds011")) == {}


@pytest.mark.parametrize(
    ("source", "path", "message"),
    [
        ({"driver": "sds011", "units": "kmh"}, "sources[0].units", 'only for driver = "ops243"'),
        ({"driver": "maxbotix", "model": "MB7389", "json": True}, "sources[0].json", "ops243"),
        ({"driver": "ops243", "aggregate_s": 0.5}, "sources[0].aggregate_s", ">= 1"),
        ({"driver": "maxbotix", "aggregate_s": 0.5}, "sources[0].aggregate_s", ">= 1"),
        ({"driver": "sds011", "aggregate_s": 60}, "sources[0].aggregate_s", 'or "maxbotix"'),
        ({"driver": "ops243", "units": "m", "aggregate_s": 60}, "sources[0].aggregate_s", "speed"),
        ({"driver": "ops243", "units": "kph"}, "sources[0].units", "'kmh'"),
        ({"driver": "ops243", "model": "MB7389"}, "sources[0].model", "maxbotix"),
        ({"driver": "maxbotix"}, "sources[0].model", "MB7389"),
        ({"driver": "maxbotix", "model": "mb7389"}, "sources[0].model", "MB7389"),
        (
            {"driver": "maxbotix", "model": "MB7389", "mount_height_mm": 0},
            "sources[0].mount_height_mm",
            ">= 1",
        ),
        (
            {"driver": "sds011", "mount_height_mm": 3000},
            "sources[0].mount_height_mm",
            "maxbotix",
        ),
        (
            {"driver": "ops243", "duty_cycle": {"period_s": 60, "on_s": 30}},
            "sources[0].duty_cycle",
            "no sleep command",
        ),
    ],
)
def test_driver_options_are_checked_with_exact_paths(
    source: dict[str, Any], path: str, message: str
) -> None:
    document = {
        "gateway": {"id": "gw-1", "data_dir": "/tmp/citygw"},
        "hub": {"url": "mqtt://127.0.0.1:1883"},
        "sources": [{"type": "serial", "name": "s", "port": "/dev/ttyACM0", **source}],
    }
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert error.value.path == path
    assert message in str(error.value)


def test_demo_sources_are_a_valid_config_for_both_simulators() -> None:
    from gateway.devtools.sim_lines import demo_sources

    document = {
        "gateway": {"id": "gw-1", "data_dir": "/tmp/citygw"},
        "hub": {"url": "mqtt://127.0.0.1:1883"},
        "sources": demo_sources("/tmp/ttyRadar", "/tmp/ttySonar"),
    }
    drivers = [s.driver for s in parse_config(document).sources]  # type: ignore[union-attr]
    assert drivers == ["ops243", "maxbotix"]
