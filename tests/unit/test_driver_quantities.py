"""drivers.quantities: the register's table of what each driver measures stays exactly what
the codecs report for a real frame (vectors from the sensors' documents)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivers import DRIVERS, get_driver
from drivers.quantities import QUANTITIES, quantities

VECTORS = Path(__file__).parents[1] / "vectors"


def first_data_frame(vectors: str, model: str | None = None) -> bytes:
    for vector in json.loads((VECTORS / vectors).read_text()):
        if model is not None and vector.get("model") != model:
            continue
        if vector["expect"].get("type", "data") == "data" and vector["expect"].get(
            "checksum_ok", True
        ):
            return bytes.fromhex(vector["hex"])
    raise AssertionError(f"no data frame in {vectors}")


@pytest.mark.parametrize(
    ("driver", "vectors", "model"),
    [
        ("sds011", "sds011.json", None),
        ("pms5003", "pms5003.json", "PMS5003"),
        ("pms7003", "pms5003.json", "PMS5003"),
        ("pms5003t", "pms5003.json", "PMS5003T"),
        ("ruuvi", "ruuvi_df5.json", None),
    ],
)
def test_the_table_lists_what_a_real_frame_measures_in_order(
    driver: str, vectors: str, model: str | None
) -> None:
    measured = get_driver(driver).decode_one(first_data_frame(vectors, model))
    assert quantities(driver) == tuple((m.quantity, m.unit) for m in measured)


def test_every_registered_driver_is_in_the_table_and_device_defined_ones_list_none() -> None:
    assert set(QUANTITIES) == set(DRIVERS)
    assert quantities("bthome") == () and quantities("node") == ()
    assert quantities("no-such-driver") == ()


def test_a_meters_quantities_are_its_register_map_and_a_rangefinders_what_it_reports() -> None:
    from drivers import maxbotix
    from drivers.eastron import REGISTERS

    assert quantities("sdm630") == tuple((r.quantity, r.unit) for r in REGISTERS["sdm630"])
    assert len(quantities("sdm120")) == len(REGISTERS["sdm120"]) > 5
    frame = maxbotix.decode(b"R1234\r", model="MB7389", mount_height_mm=3000)
    assert quantities("maxbotix") == tuple((m.quantity, m.unit) for m in frame.measurements)
