"""`[[alerts]]`: the example sets every key; bad rules are refused with the exact path."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.config import AlertRule, ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).parents[2] / "config" / "gateway.example.toml"
VALID: dict[str, Any] = {
    "gateway": {"id": "gw-1", "data_dir": "/tmp/citygw"},
    "hub": {"url": "mqtt://127.0.0.1:1883"},
    "sources": [
        {"type": "serial", "name": "pm", "port": "/dev/ttyUSB0", "driver": "sds011"},
        {
            "type": "ble",
            "name": "ble",
            "devices": [{"name": "kitchen", "address": "AA:BB:CC:DD:EE:FF", "kind": "ruuvi"}],
        },
    ],
    "alerts": [{"name": "pm-high", "source": "pm", "quantity": "pm2_5_ugm3", "above": 50}],
}


def with_rule(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    document["alerts"][0].update(changes)
    return {**document, "alerts": [{k: v for k, v in document["alerts"][0].items() if v != ...}]}


def test_the_example_sets_every_alert_key() -> None:
    config = load_config(EXAMPLE)
    document = tomllib.loads(EXAMPLE.read_text())
    keys = set().union(*(set(rule) for rule in document["alerts"]))
    assert keys == {f.name for f in dataclasses.fields(AlertRule)}
    assert [r.name for r in config.alerts] == [
        "pm-north-high",
        "canal-rising-fast",
        "kerbside-freezing-fast",
    ]


def test_a_valid_rule_has_the_documented_defaults() -> None:
    (rule,) = parse_config(VALID).alerts
    assert (rule.above, rule.below, rule.rate_per_min) == (50.0, None, None)
    assert (rule.for_s, rule.hysteresis, rule.min_interval_s, rule.rate_window_s) == (
        0.0,
        0.0,
        60.0,
        60.0,
    )
    assert parse_config({k: v for k, v in VALID.items() if k != "alerts"}).alerts == []


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"name": "bad name"}, "alerts[0].name", "expected 1-64 characters"),
        ({"source": "nowhere"}, "alerts[0].source", "no source 'nowhere'"),
        ({"source": "ble/garden"}, "alerts[0].source", "has no device 'garden'"),
        ({"source": "pm/kitchen"}, "alerts[0].source", "has no device 'kitchen'"),
        ({"source": "a/b/c"}, "alerts[0].source", "expected a source name"),
        ({"quantity": ""}, "alerts[0].quantity", "expected 1-64 characters"),
        ({"above": ...}, "alerts[0].above", "needs above, below or rate_per_min"),
        ({"below": 60}, "alerts[0].below", "expected less than above"),
        ({"above": "high"}, "alerts[0].above", "expected a number"),
        ({"above": 1e13}, "alerts[0].above", "expected a number <="),
        ({"rate_per_min": 0}, "alerts[0].rate_per_min", "not 0"),
        ({"rate_window_s": 0.5}, "alerts[0].rate_window_s", "expected a number >= 1"),
        ({"for_s": -1}, "alerts[0].for_s", "expected a number >= 0"),
        ({"hysteresis": -1}, "alerts[0].hysteresis", "expected a number >= 0"),
        ({"min_interval_s": 100_000}, "alerts[0].min_interval_s", "expected a number <="),
        ({"severity": "high"}, "alerts[0].severity", "unknown key"),
    ],
)
def test_bad_rules_are_refused_with_the_exact_path(
    changes: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(with_rule(**changes))
    assert error.value.path == path
    assert message in str(error.value)


def test_rule_names_are_unique() -> None:
    document = copy.deepcopy(VALID)
    document["alerts"].append({**document["alerts"][0], "above": 80})
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert error.value.path == "alerts[1].name"
    assert "used twice" in str(error.value)


def test_a_ble_source_or_one_of_its_devices_may_be_watched() -> None:
    for source in ("ble", "ble/kitchen"):
        config = parse_config(with_rule(source=source, quantity="temperature_c"))
        assert config.alerts[0].source == source


def test_a_rate_on_an_aggregating_source_needs_a_window_of_three_of_its_intervals() -> None:
    """One reading per aggregate_s: a shorter window never, or only by chance, spans half of
    itself, and the flood rule would never hold."""
    canal = {
        "type": "serial",
        "name": "canal",
        "port": "/dev/ttyUSB1",
        "driver": "maxbotix",
        "model": "MB7389",
        "mount_height_mm": 4000,
        "aggregate_s": 60,
    }
    rule = {"name": "rising", "source": "canal", "quantity": "water_level_mm", "rate_per_min": 5}
    document = {**VALID, "sources": [canal], "alerts": [{**rule, "rate_window_s": 120}]}
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert error.value.path == "alerts[0].rate_window_s"
    assert "aggregate_s = 60 s; expected at least 180 s" in str(error.value)
    parse_config({**document, "alerts": [{**rule, "rate_window_s": 180}]})
    level_only = {"name": "high", "source": "canal", "quantity": "water_level_mm", "above": 2000}
    parse_config({**document, "alerts": [level_only]})  # a level needs no window
    every_report = {k: v for k, v in canal.items() if k != "aggregate_s"}
    parse_config({**document, "sources": [every_report]})
