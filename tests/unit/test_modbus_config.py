"""`type = "modbus"` sources: the example sets every key, and each mistake names its exact path."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, ModbusMeter, ModbusSourceConfig, load_config, parse_config

EXAMPLE = Path(__file__).parents[2] / "config" / "gateway.example.toml"
VALID: dict[str, Any] = {
    "gateway": {"id": "gw-1", "data_dir": "/tmp/citygw"},
    "hub": {"url": "mqtt://127.0.0.1:1883"},
    "sources": [
        {
            "type": "modbus",
            "name": "energy",
            "port": "/dev/ttyUSB1",
            "meters": [
                {"name": "lights", "address": 1, "model": "sdm630"},
                {"name": "cabinet", "address": 2, "model": "sdm120"},
            ],
        }
    ],
}


def _with(source: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    document["sources"][0].update(source)
    return document


def _meter(index: int, **changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    document["sources"][0]["meters"][index].update(changes)
    return document


def test_a_modbus_source_with_two_meters_is_valid_with_the_serial_defaults() -> None:
    source = parse_config(VALID).sources[0]
    assert isinstance(source, ModbusSourceConfig)
    assert (source.baud, source.parity, source.stop_bits) == (9600, "N", 1)
    assert [(m.name, m.address, m.model) for m in source.meters] == [
        ("lights", 1, "sdm630"),
        ("cabinet", 2, "sdm120"),
    ]


def test_the_example_config_sets_every_modbus_key() -> None:
    config = load_config(EXAMPLE)
    document = tomllib.loads(EXAMPLE.read_text())
    index = next(i for i, s in enumerate(document["sources"]) if s["type"] == "modbus")
    assert isinstance(config.sources[index], ModbusSourceConfig)
    keys = {f.name for f in dataclasses.fields(ModbusSourceConfig)}
    assert set(document["sources"][index]) == keys | {"type"}
    meter_keys = set().union(*(set(m) for m in document["sources"][index]["meters"]))
    assert meter_keys == {f.name for f in dataclasses.fields(ModbusMeter)}


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        (_meter(1, address=1), "sources[0].meters[1].address", "address 1 is used twice"),
        (_meter(1, name="lights"), "sources[0].meters[1].name", "'lights' is used twice"),
        (_meter(0, address=0), "sources[0].meters[0].address", "expected a number >= 1"),
        (_meter(0, address=248), "sources[0].meters[0].address", "expected a number <= 247"),
        (_meter(0, address="1"), "sources[0].meters[0].address", "expected an integer"),
        (_meter(0, model="sdm230"), "sources[0].meters[0].model", "expected one of 'sdm120'"),
        (_meter(0, name="a b"), "sources[0].meters[0].name", "expected 1-64 characters"),
        (_meter(0, serial="x"), "sources[0].meters[0].serial", "unknown key"),
        (_with({"meters": []}), "sources[0].meters", "at least one meter"),
        (_with({"interval_s": 0.5}), "sources[0].interval_s", "expected a number >= 1"),
        (_with({"interval_s": 86_401}), "sources[0].interval_s", "expected a number <= 86400"),
        (_with({"timeout_s": 0.01}), "sources[0].timeout_s", "expected a number >= 0.05"),
        (_with({"retries": 6}), "sources[0].retries", "expected a number <= 5"),
        (_with({"parity": "X"}), "sources[0].parity", "expected one of 'N', 'E', 'O'"),
        (_with({"stop_bits": 3}), "sources[0].stop_bits", "expected one of 1, 2"),
        (_with({"baud": 115200}), "sources[0].baud", "expected one of 1200"),
        (_with({"port": ""}), "sources[0].port", "expected a device path"),
        (_with({"driver": "sdm120"}), "sources[0].driver", "unknown key"),
    ],
)
def test_each_mistake_names_its_exact_path(
    document: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert error.value.path == path
    assert message in str(error.value)


def test_more_meters_than_one_bus_carries_are_refused() -> None:
    meters = [{"name": f"m{i}", "address": i, "model": "sdm120"} for i in range(1, 34)]
    with pytest.raises(ConfigError) as error:
        parse_config(_with({"meters": meters}))
    assert error.value.path == "sources[0].meters"


def test_a_push_may_not_point_a_modbus_source_at_an_arbitrary_device() -> None:
    from gateway.remote.policy import PolicyError, check

    local = parse_config(VALID)
    check(parse_config(_with({"interval_s": 30})), local)  # its own port: fine
    with pytest.raises(PolicyError, match=r"sources\[0\]\.port: '/etc/shadow'"):
        check(parse_config(_with({"port": "/etc/shadow"})), local)


def test_every_meter_model_the_config_accepts_is_a_registered_modbus_driver() -> None:
    from typing import get_args, get_type_hints

    from drivers import modbus_drivers

    assert set(get_args(get_type_hints(ModbusMeter)["model"])) == set(modbus_drivers())


def test_pymodbus_loads_only_when_a_modbus_source_is_configured(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from gateway.agent.root import Agent\n"
        "from gateway.config import parse_config\n"
        "document = json.loads(sys.argv[1])\n"
        "Agent(parse_config(document))\n"
        "print(any(m.startswith('pymodbus') for m in sys.modules))\n"
    )
    serial_only = copy.deepcopy(VALID)
    serial_only["gateway"]["data_dir"] = str(tmp_path / "a")
    serial_only["sources"] = [
        {"type": "serial", "name": "pm", "port": "/dev/ttyUSB0", "driver": "sds011"}
    ]
    with_meters = copy.deepcopy(VALID)
    with_meters["gateway"]["data_dir"] = str(tmp_path / "b")
    loaded = [
        subprocess.run(
            [sys.executable, "-c", code, json.dumps(document)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        for document in (serial_only, with_meters)
    ]
    assert loaded == ["False", "True"]


def test_an_alert_rule_may_watch_one_meter_or_every_meter_of_a_bus() -> None:
    def rule(source: str) -> dict[str, Any]:
        return {"name": "lights-overload", "source": source, "quantity": "power_total_w"}

    for source in ("energy/lights", "energy"):
        document = {**copy.deepcopy(VALID), "alerts": [{**rule(source), "above": 5000.0}]}
        assert parse_config(document).alerts[0].source == source
    document = {**copy.deepcopy(VALID), "alerts": [{**rule("energy/pump"), "above": 5000.0}]}
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert error.value.path == "alerts[0].source"
    assert "has no device 'pump' (only a BLE source's devices or a modbus source's meters)" in str(
        error.value
    )
