"""What each driver measures: (quantity, unit) pairs, for the public sensor register.

A plain table, so that listing a source's quantities loads no codec (the register is built
by the agent; the codecs cost RSS). `tests/unit/test_driver_quantities.py` keeps it in step
with what the codecs really report. Drivers whose quantities depend on the device (a BTHome
sensor sends the objects it has; a citygw node the sensors its node.json names) map to None.
"""

from __future__ import annotations

from typing import Final

Quantity = tuple[str, str]
"""(quantity, unit), as a reading carries them."""

_PM: Final = "ug/m3"
_COUNT: Final = "1/0.1L"
_PMS_MASS: Final[tuple[Quantity, ...]] = (
    ("pm1_0_cf1_ugm3", _PM),
    ("pm2_5_cf1_ugm3", _PM),
    ("pm10_cf1_ugm3", _PM),
    ("pm1_0_ugm3", _PM),
    ("pm2_5_ugm3", _PM),
    ("pm10_ugm3", _PM),
    ("n0_3_per_dl", _COUNT),
    ("n0_5_per_dl", _COUNT),
    ("n1_0_per_dl", _COUNT),
    ("n2_5_per_dl", _COUNT),
)
_PMS: Final = (*_PMS_MASS, ("n5_0_per_dl", _COUNT), ("n10_per_dl", _COUNT))

QUANTITIES: Final[dict[str, tuple[Quantity, ...] | None]] = {
    "sds011": (("pm2_5_ugm3", _PM), ("pm10_ugm3", _PM)),
    "pms5003": _PMS,
    "pms7003": _PMS,
    "pms5003t": (*_PMS_MASS, ("temperature_c", "Cel"), ("humidity_pct", "%")),
    "ruuvi": (
        ("temperature_c", "Cel"),
        ("humidity_pct", "%"),
        ("pressure_hpa", "hPa"),
        ("acceleration_x_g", "[g]"),
        ("acceleration_y_g", "[g]"),
        ("acceleration_z_g", "[g]"),
        ("battery_v", "V"),
        ("tx_power_dbm", "dBm"),
        ("movement_count", "1"),
    ),
    "maxbotix": (("range_status", "1"), ("distance_mm", "mm"), ("water_level_mm", "mm")),
    "ops243": None,  # speed or range in the configured unit, plus magnitude, or aggregates
    "sdm120": (),  # the meter's register map: drivers.eastron.REGISTERS (see `quantities`)
    "sdm630": (),
    "bthome": None,
    "node": None,
}
"""Driver name -> what it measures; None: whatever the device reports or its settings say."""

AGGREGATED: Final[dict[str, tuple[Quantity, ...]]] = {
    "maxbotix": (
        ("range_status", "1"),
        ("distance_reports", "1"),
        ("no_target_reports", "1"),
        ("distance_mm", "mm"),
        ("distance_min_mm", "mm"),
        ("distance_max_mm", "mm"),
        ("water_level_mm", "mm"),
        ("water_level_min_mm", "mm"),
        ("water_level_max_mm", "mm"),
    ),
}
"""What a source with `aggregate_s` sends per interval instead (gateway/sources/serial/): the
rangefinder's median distance and level (under the names of a single report's), their min and
max, and how many reports had a target and how many had none. Not listed: the radar's
(`ops243` is None above)."""


def quantities(driver: str, *, aggregated: bool = False) -> tuple[Quantity, ...]:
    """What `driver` measures, in the order its frames carry it (`aggregated`: what a source
    with `aggregate_s` sends per interval); empty when that depends on the device (see
    `QUANTITIES`) or the driver is not in the table."""
    if aggregated:
        return AGGREGATED.get(driver, ())
    if driver in ("sdm120", "sdm630"):  # a data table beside its codec, loaded on use
        from drivers.eastron import REGISTERS

        return tuple((r.quantity, r.unit) for r in REGISTERS[driver])
    return QUANTITIES.get(driver) or ()
