"""The driver registry: names config can use, fresh stream decoders, one-frame decoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drivers import DRIVERS, DecodeError, get_driver, new_stream, serial_drivers

VECTORS = Path(__file__).parents[1] / "vectors"


def _vectors(name: str) -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((VECTORS / f"{name}.json").read_text())
    return vectors


def test_registry_lists_exactly_the_implemented_drivers_under_their_own_names() -> None:
    assert set(DRIVERS) == {
        "sds011",
        "pms5003",
        "pms7003",
        "pms5003t",
        "node",
        "bthome",
        "ruuvi",
        "ops243",
        "maxbotix",
        "sdm120",
        "sdm630",
    }
    for name, driver in DRIVERS.items():
        assert driver.name == name
        assert driver.description


def test_unknown_driver_name_raises_key_error_listing_known_names() -> None:
    with pytest.raises(
        KeyError,
        match="known drivers: bthome, maxbotix, node, ops243, pms5003, pms5003t, pms7003, ruuvi, "
        "sdm120, sdm630, sds011",
    ):
        get_driver("sds012")


def test_ble_advert_drivers_have_no_stream_decoder_and_are_not_serial_drivers() -> None:
    assert set(serial_drivers()) == {
        "sds011",
        "pms5003",
        "pms7003",
        "pms5003t",
        "node",
        "ops243",
        "maxbotix",
    }
    for name in ("bthome", "ruuvi"):
        assert get_driver(name).new_stream is None
        with pytest.raises(KeyError, match="decodes BLE adverts, not a serial stream"):
            new_stream(name)


def test_ble_drivers_decode_one_advert_to_its_measurements() -> None:
    bthome = get_driver("bthome").decode_one(bytes.fromhex("4002ca0903bf13"))
    assert [(m.quantity, m.value) for m in bthome] == [
        ("temperature_c", 25.06),
        ("humidity_pct", 50.55),
    ]
    ruuvi = get_driver("ruuvi").decode_one(
        bytes.fromhex("0512fc5394c37c0004fffc040cac364200cdcbb8334c884f")
    )
    assert ruuvi[0].quantity == "temperature_c" and len(ruuvi) == 9


@pytest.mark.parametrize("name", sorted(serial_drivers()))
def test_each_new_stream_is_a_fresh_decoder_with_its_own_stats(name: str) -> None:
    first, second = new_stream(name), new_stream(name)
    assert first is not second
    first.feed(b"\x00\x01\x02\x00")  # garbage to every driver, the node link's delimiter included
    assert first.stats.skipped_bytes == 4
    assert second.stats.skipped_bytes == 0


def test_sds011_data_frame_gives_pm_measurements_and_a_reply_gives_none() -> None:
    driver = get_driver("sds011")
    data = bytes.fromhex("aac0d4043a0aa1601dab")
    reply = bytes.fromhex("aac502000100a16004ab")
    assert [(m.quantity, m.value) for m in driver.decode_one(data)] == [
        ("pm2_5_ugm3", 123.6),
        ("pm10_ugm3", 261.8),
    ]
    assert tuple(driver.decode_one(reply)) == ()
    frames = new_stream("sds011").feed(reply + data)
    assert [tuple(f.measurements) for f in frames] == [(), tuple(driver.decode_one(data))]


@pytest.mark.parametrize(
    ("name", "model"), [("sds011", None), ("pms5003", "PMS5003"), ("pms5003t", "PMS5003T")]
)
def test_stream_and_decode_one_agree_on_every_vector(name: str, model: str | None) -> None:
    driver = get_driver(name)
    vectors = [
        v
        for v in _vectors("sds011" if model is None else "pms5003")
        if v.get("model", model) == model
        and v["expect"].get("valid", True)
        and v["expect"].get("type") != "command"
    ]
    assert vectors
    for vector in vectors:
        wire = bytes.fromhex(vector["hex"])
        frames = new_stream(name).feed(wire)
        assert [tuple(f.measurements) for f in frames] == [tuple(driver.decode_one(wire))]


def test_pms5003t_driver_reads_temperature_where_pms5003_reads_counts() -> None:
    wire = bytes.fromhex("424d001c0015002500260014002200260f00046600fa001600d400e09a00053e")
    t_quantities = {m.quantity: m.value for m in get_driver("pms5003t").decode_one(wire)}
    plain_quantities = {m.quantity: m.value for m in get_driver("pms5003").decode_one(wire)}
    assert t_quantities["temperature_c"] == 21.2
    assert "temperature_c" not in plain_quantities
    assert plain_quantities["n5_0_per_dl"] == 212.0


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_decode_one_raises_decode_error_on_garbage(name: str) -> None:
    with pytest.raises(DecodeError):
        get_driver(name).decode_one(b"\x00" * 10)


def test_every_serial_driver_the_config_accepts_is_registered() -> None:
    from typing import get_args, get_type_hints

    from gateway.config import SerialSourceConfig

    accepted = set(get_args(get_type_hints(SerialSourceConfig)["driver"]))
    assert accepted == set(serial_drivers())
