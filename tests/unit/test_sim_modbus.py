"""The simulated meters behind `citygw simulate-meters`: a value for every register of the model,
values that move over time, energy that only grows, a demo config the agent accepts."""

from __future__ import annotations

import pytest

from drivers import eastron
from gateway.config import parse_config
from gateway.devtools.sim_modbus import SimMeter, demo_source, parse_meters


@pytest.mark.parametrize("model", eastron.MODELS)
def test_a_simulated_meter_fills_every_register_of_its_map_with_plausible_values(
    model: str,
) -> None:
    meter = SimMeter(1, model)
    registers = [0] * 400
    meter.fill(registers, 10.0)
    wire = eastron.encode_response(1, registers[0:80])
    response = eastron.read_response(wire, eastron.ReadRequest(1, 0, 80), model=model)
    values = {m.quantity: m.value for m in response.measurements}
    volts = [v for q, v in values.items() if q.startswith("voltage")]
    assert volts and all(220 < v < 240 for v in volts)
    assert all(-1 <= v <= 0 for q, v in values.items() if q.startswith("power_factor"))
    assert set(meter.values(10.0)) == {r.quantity for r in eastron.REGISTERS[model]}


def test_values_change_over_time_and_energy_only_grows() -> None:
    meter = SimMeter(2, "sdm120", seed=3)
    samples = [meter.values(t) for t in range(0, 600, 30)]
    assert len({round(s["power_w"], 1) for s in samples}) > 10
    energy = [s["energy_total_kwh"] for s in samples]
    assert energy == sorted(energy) and energy[-1] > energy[0]


def test_meters_are_parsed_from_address_model_pairs() -> None:
    meters = parse_meters("1:sdm630, 7:sdm120")
    assert [(m.address, m.model) for m in meters] == [(1, "sdm630"), (7, "sdm120")]
    with pytest.raises(ValueError, match="ADDRESS:MODEL"):
        parse_meters("1:sdm230")


def test_the_demo_source_is_a_valid_config_entry() -> None:
    config = parse_config(
        {
            "gateway": {"id": "demo", "data_dir": "/tmp/citygw-demo"},
            "hub": {"url": "mqtt://127.0.0.1:1883"},
            "sources": [demo_source("/tmp/bus/rs485")],
        }
    )
    assert config.sources[0].name == "energy"
