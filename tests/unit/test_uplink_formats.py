"""The pure parts of the HTTP uplinks: sensor.community families, STA ids, units and times,
request splitting, the recently-delivered keys, Retry-After."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.uplinks.destination import DeliveryError, OutgoingReading
from gateway.uplinks.http_client import Response, basic_auth, iso_ms
from gateway.uplinks.recent import RecentKeys
from gateway.uplinks.sensor_community import (
    PIN_BME280,
    PIN_BMP280,
    PIN_PM,
    PIN_TEMP_HUMIDITY,
    SensorCommunityStats,
    families,
)
from gateway.uplinks.sensorthings import MAX_ROWS_PER_REQUEST, _split, parse_ms
from gateway.uplinks.sensorthings_api import StaError, id_from_location, literal, segment
from gateway.uplinks.sensorthings_entities import (
    SeriesKey,
    Stream,
    observed_property,
    unit_of_measurement,
)


def r(
    seq: int, quantity: str, unit: str, value: float, *, source: str = "s", ts: int = 0
) -> OutgoingReading:
    return OutgoingReading("gw", 1, seq, 1_000_000 + ts, source, quantity, unit, value, "o", 0)


def test_pm_quantities_of_every_driver_map_to_p0_p1_p2_on_pin_1() -> None:
    stats = SensorCommunityStats()
    batch = [
        r(1, "pm1_0_ugm3", "ug/m3", 1.234),  # pms5003
        r(2, "pm2_5_ugm3", "ug/m3", 2),  # sds011, pms5003
        r(3, "pm10_ugm3", "ug/m3", 3.005),
        r(4, "pm2_5", "ug/m3", 9, ts=5),  # the register's plain names
    ]
    posts = families(batch, stats, {})
    assert [(p.source, p.pin, p.values) for p in posts] == [
        ("s", PIN_PM, (("P0", "1.23"), ("P1", "3.00"), ("P2", "2.00"))),
        ("s", PIN_PM, (("P2", "9.00"),)),
    ]
    assert [len(p.readings) for p in posts] == [3, 1]
    assert stats.skipped == {}


@pytest.mark.parametrize(
    ("quantities", "pin"),
    [
        ({"temperature_c", "humidity_pct", "pressure_hpa"}, PIN_BME280),
        ({"temperature_c", "pressure_hpa"}, PIN_BMP280),
        ({"temperature_c", "humidity_pct"}, PIN_TEMP_HUMIDITY),
        ({"humidity_pct"}, PIN_TEMP_HUMIDITY),
    ],
)
def test_climate_quantities_pick_the_airrohr_pin_of_what_was_measured(
    quantities: set[str], pin: int
) -> None:
    units = {"temperature_c": "Cel", "humidity_pct": "%", "pressure_hpa": "hPa"}
    batch = [r(i, q, units[q], 1013.25) for i, q in enumerate(sorted(quantities))]
    [post] = families(batch, SensorCommunityStats(), {})
    assert post.pin == pin
    if "pressure_hpa" in quantities:
        assert ("pressure", "101325.00") in post.values  # the API takes Pa


def test_a_quantity_without_a_value_type_or_in_another_unit_is_skipped_and_counted() -> None:
    stats = SensorCommunityStats()
    batch = [
        r(1, "co2_ppm", "ppm", 400),
        r(2, "pm2_5_ugm3", "mg/m3", 0.01),  # not the unit the API means
        r(3, "pm10_ugm3", "ug/m3", float("nan")),
        r(4, "co2_ppm", "ppm", 401),
    ]
    assert families(batch, stats, {}) == []
    assert stats.skipped == {"co2_ppm": 2, "pm2_5_ugm3": 1, "pm10_ugm3": 1}


def test_one_post_per_family_per_measurement_time_in_time_order() -> None:
    batch = [r(i, "pm10_ugm3", "ug/m3", i, ts=1000 * (3 - i)) for i in range(3)]
    posts = families(batch, SensorCommunityStats(), {})
    assert [p.ts_ms for p in posts] == [1_001_000, 1_002_000, 1_003_000]


def test_two_frames_read_at_the_same_time_go_in_two_posts_neither_overwritten() -> None:
    """A source that reads two frames in one go stamps them alike (CI under load): one POST
    would carry the second frame's values, and the first's readings would be acked unsent."""
    batch = [
        r(1, "pm2_5_ugm3", "ug/m3", 1),
        r(2, "pm10_ugm3", "ug/m3", 10),
        r(3, "pm2_5_ugm3", "ug/m3", 2),
        r(4, "pm10_ugm3", "ug/m3", 20),
        r(5, "temperature_c", "Cel", 21.5),
    ]
    posts = families(batch, SensorCommunityStats(), {})
    assert [(p.pin, p.values) for p in posts] == [
        (PIN_PM, (("P1", "10.00"), ("P2", "1.00"))),
        (PIN_PM, (("P1", "20.00"), ("P2", "2.00"))),
        (PIN_TEMP_HUMIDITY, (("temperature", "21.50"),)),
    ]
    assert [[x.seq for x in p.readings] for p in posts] == [[1, 2], [3, 4], [5]]


def test_the_post_body_is_the_firmwares_json_with_the_measurement_time() -> None:
    [post] = families([r(1, "pm10_ugm3", "ug/m3", 12.3, ts=123)], SensorCommunityStats(), {})
    assert post.body("citygw-1.0") == (
        b'{"software_version":"citygw-1.0","sensordatavalues":[{"value_type":"P1","value":"12.30"}]'
        b',"timestamp":"1970-01-01T00:16:40.123Z"}'
    )


def test_a_pin_belongs_to_the_first_source_that_used_it() -> None:
    owners: dict[int, str] = {}
    stats = SensorCommunityStats()
    families([r(1, "pm10_ugm3", "ug/m3", 1, source="a")], stats, owners)
    posts = families([r(2, "pm10_ugm3", "ug/m3", 1, source="b")], stats, owners)
    assert posts == []
    assert stats.pin_conflicts == 1


def test_recent_keys_know_exactly_what_was_delivered_and_forget_the_oldest() -> None:
    recent = RecentKeys(max_keys=5)
    recent.add([r(1, "q", "u", 0), r(3, "q", "u", 0), r(5, "q", "u", 0)])
    assert r(3, "q", "u", 0) in recent
    assert r(2, "q", "u", 0) not in recent
    assert dataclasses.replace(r(3, "q", "u", 0), epoch=2) not in recent
    recent.add([r(10, "q", "u", 0), r(11, "q", "u", 0), r(12, "q", "u", 0)])
    assert r(1, "q", "u", 0) not in recent  # over 5 keys: the oldest batch is forgotten
    assert r(12, "q", "u", 0) in recent
    assert len(recent) == 3
    few = RecentKeys(max_batches=2)
    for seq in range(3):
        few.add([r(seq, "q", "u", 0)])
    assert [r(seq, "q", "u", 0) in few for seq in range(3)] == [False, True, True]


@pytest.mark.parametrize(
    ("location", "entity_id"),
    [
        ("http://h/v1.1/Things('01a2-x')", "01a2-x"),
        ("http://h/v1.1/Things(42)", 42),
        ("https://h/FROST/v1.1/Datastreams('it''s')", "it's"),
    ],
)
def test_entity_ids_come_from_the_location_header(location: str, entity_id: object) -> None:
    assert id_from_location(location) == entity_id
    assert id_from_location(f"x{segment(entity_id)}") == entity_id  # type: ignore[arg-type]


def test_odata_literals_double_their_quotes() -> None:
    assert literal("gw/it's") == "'gw/it''s'"
    assert segment(7) == "(7)"


def test_units_map_to_ucum_and_quantities_to_a_vocabulary() -> None:
    assert unit_of_measurement("Cel") == {
        "name": "degree Celsius",
        "symbol": "°C",
        "definition": "http://www.opengis.net/def/uom/UCUM/0/Cel",
    }
    assert unit_of_measurement("furlong")["definition"] == "urn:citygw:unit:furlong"
    assert observed_property("pm2_5_ugm3") == (
        "PM2.5",
        "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/6001",
    )
    assert observed_property("pm10") == observed_property("pm10_ugm3")
    assert observed_property("noise_dba") == ("noise_dba", "urn:citygw:quantity:noise_dba")


def test_times_go_out_with_milliseconds_and_come_back_from_any_iso_form() -> None:
    assert iso_ms(1_796_000_000_123) == "2026-11-30T00:53:20.123Z"
    for text in (
        "2026-11-30T00:53:20.123Z",
        "2026-11-30T00:53:20.123000+00:00",
        "2026-11-30T01:53:20.123+01:00",
    ):
        assert parse_ms(text) == 1_796_000_000_123


def test_requests_hold_at_most_the_row_limit_and_cut_a_long_series() -> None:
    stream = Stream("d", "f")
    a = [r(i, "a", "u", 0) for i in range(7)]
    b = [r(i, "b", "u", 0) for i in range(5)]
    requests = _split(
        [(SeriesKey("s", "a", "u"), stream, a), (SeriesKey("s", "b", "u"), stream, b)], 4
    )
    assert [[len(group[2]) for group in request] for request in requests] == [[4], [3, 1], [4]]
    assert MAX_ROWS_PER_REQUEST == 10_000


def test_retry_after_and_what_a_status_means_to_the_loop() -> None:
    assert Response(429, {"retry-after": "30"}, b"").retry_after_s() == 30.0
    assert (
        Response(429, {"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}, b"").retry_after_s() is None
    )
    assert Response(503, {}, b"").retry_after_s() is None
    refused = StaError("x", status=403).delivery_error()
    assert isinstance(refused, DeliveryError) and refused.refused
    assert not StaError("x", status=429, retry_after_s=5).delivery_error().refused
    assert StaError("x", status=429, retry_after_s=5).delivery_error().retry_after_s == 5
    assert not StaError("x", status=503).delivery_error().refused


def test_basic_auth_needs_a_user_name() -> None:
    assert basic_auth("") is None
    assert basic_auth("u", "p") == "Basic dTpw"
