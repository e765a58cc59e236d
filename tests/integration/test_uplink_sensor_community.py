"""The `sensor.community` uplink against a local HTTP server that stands in for the public API.

api.sensor.community cannot be reached from here: `push_api.PushApi` checks what the real push
endpoint checks and answers 200, 4xx, 5xx or 429 when a test asks it to (see its docstring).
The destination's HTTP client, TCP and JSON are all real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from push_api import NODE, PATH, PushApi, serve_push_api

from gateway.config import UplinkSection
from gateway.uplinks.destination import DeliveryError, OutgoingReading
from gateway.uplinks.sensor_community import SensorCommunity, destination

pytestmark = pytest.mark.integration

T0_MS = 1_796_000_000_000  # 2026-11-30T00:53:20Z


@pytest.fixture
def push_api() -> Iterator[PushApi]:
    yield from serve_push_api()


def section(url: str) -> UplinkSection:
    """A `[[uplinks]]` record of format sensor.community for `url` (the config's own type)."""
    return UplinkSection(
        name="sensor-community",
        owners=["burgermeetnet"],
        url=url,
        format="sensor.community",
        sensor_id=NODE,
        timeout_s=5.0,
    )


@pytest.fixture
async def uplink(push_api: PushApi) -> AsyncIterator[SensorCommunity]:
    target = destination(
        section(f"http://127.0.0.1:{push_api.port}{PATH}"), gateway_id="gw-1", version="9.9.9"
    )
    yield target
    await target.close()


def reading(
    seq: int, source: str, quantity: str, unit: str, value: float, *, second: int = 0
) -> OutgoingReading:
    return OutgoingReading(
        "gw-1", 1, seq, T0_MS + second * 1000, source, quantity, unit, value, "burgers", 0
    )


def sds011(second: int, pm2_5: float, pm10: float, *, source: str = "pm-school") -> list[Any]:
    seq = 10 * second
    return [
        reading(seq, source, "pm2_5_ugm3", "ug/m3", pm2_5, second=second),
        reading(seq + 1, source, "pm10_ugm3", "ug/m3", pm10, second=second),
    ]


async def test_sds011_readings_make_one_post_per_measurement_with_the_firmware_body(
    push_api: PushApi, uplink: SensorCommunity
) -> None:
    await uplink.deliver(sds011(0, 5.1, 12.3) + sds011(145, 6.0, 13.25))

    assert len(push_api.accepted) == 2
    first = push_api.accepted[0]
    assert first.body == (
        b'{"software_version":"citygw-9.9.9","sensordatavalues":['
        b'{"value_type":"P1","value":"12.30"},{"value_type":"P2","value":"5.10"}],'
        b'"timestamp":"2026-11-30T00:53:20.000Z"}'
    )
    assert first.headers["x-sensor"] == NODE
    assert first.headers["x-pin"] == "1"
    assert first.headers["content-type"] == "application/json"
    assert "authorization" not in first.headers
    assert push_api.accepted[1].json["sensordatavalues"] == [
        {"value_type": "P1", "value": "13.25"},
        {"value_type": "P2", "value": "6.00"},
    ]
    assert push_api.accepted[1].json["timestamp"] == "2026-11-30T00:55:45.000Z"
    assert push_api.connections == 1  # both POSTs on one kept-alive connection


async def test_each_sensor_family_goes_to_its_airrohr_pin_and_the_rest_is_counted(
    push_api: PushApi, uplink: SensorCommunity
) -> None:
    batch = [
        reading(1, "pms", "pm1_0_ugm3", "ug/m3", 3),
        reading(2, "pms", "pm2_5_ugm3", "ug/m3", 4),
        reading(3, "pms", "pm10_ugm3", "ug/m3", 5),
        reading(4, "pms", "pm2_5_cf1_ugm3", "ug/m3", 4.5),  # CF=1: no value_type
        reading(5, "pms", "n0_3_per_dl", "1/0.1L", 900),
        reading(6, "ruuvi", "temperature_c", "Cel", 21.5),
        reading(7, "ruuvi", "humidity_pct", "%", 55.25),
        reading(8, "ruuvi", "pressure_hpa", "hPa", 1013.25),
        reading(9, "ruuvi", "battery_v", "V", 2.9),
        reading(10, "bmp", "temperature_c", "Cel", 20),
        reading(11, "bmp", "pressure_hpa", "hPa", 1000),
        reading(12, "sht", "temperature_c", "Cel", 19.75),
        reading(13, "sht", "humidity_pct", "%", 60),
        reading(14, "co2", "co2_ppm", "ppm", 450),
    ]
    await uplink.deliver(batch)

    by_pin = {int(r.headers["x-pin"]): r.json["sensordatavalues"] for r in push_api.accepted}
    assert by_pin == {
        1: [
            {"value_type": "P0", "value": "3.00"},
            {"value_type": "P1", "value": "5.00"},
            {"value_type": "P2", "value": "4.00"},
        ],
        3: [
            {"value_type": "pressure", "value": "100000.00"},
            {"value_type": "temperature", "value": "20.00"},
        ],
        7: [
            {"value_type": "humidity", "value": "60.00"},
            {"value_type": "temperature", "value": "19.75"},
        ],
        11: [
            {"value_type": "humidity", "value": "55.25"},
            {"value_type": "pressure", "value": "101325.00"},
            {"value_type": "temperature", "value": "21.50"},
        ],
    }
    assert len(push_api.accepted) == 4  # one POST per family at this measurement time
    assert uplink.stats.skipped == {
        "pm2_5_cf1_ugm3": 1,
        "n0_3_per_dl": 1,
        "battery_v": 1,
        "co2_ppm": 1,
    }


async def test_a_5xx_keeps_the_readings_and_a_resend_posts_only_what_is_missing(
    push_api: PushApi, uplink: SensorCommunity
) -> None:
    batch = sds011(0, 1, 2) + sds011(1, 3, 4) + sds011(2, 5, 6)
    push_api.forced = [(201, {}), (503, {})]  # the first POST lands, the second fails
    with pytest.raises(DeliveryError) as raised:
        await uplink.deliver(batch)
    assert not raised.value.refused
    assert raised.value.retry_after_s is None

    await uplink.deliver(batch)  # the loop sends the batch again
    times = [r.json["timestamp"] for r in push_api.accepted]
    assert len(times) == len(set(times)) == 3  # each measurement time once
    assert uplink.stats.not_again == 2  # the first POST's two readings were not sent again


async def test_429_says_when_to_come_back(push_api: PushApi, uplink: SensorCommunity) -> None:
    push_api.forced = [(429, {"Retry-After": "120"})]
    with pytest.raises(DeliveryError) as raised:
        await uplink.deliver(sds011(0, 1, 2))
    assert raised.value.retry_after_s == 120.0
    assert not raised.value.refused
    assert push_api.accepted == []


async def test_an_unknown_node_is_refused(push_api: PushApi, uplink: SensorCommunity) -> None:
    push_api.nodes = {"esp8266-other"}
    with pytest.raises(DeliveryError) as raised:
        await uplink.deliver(sds011(0, 1, 2))
    assert raised.value.refused
    assert push_api.refused == [(403, '{"detail":"Node not found in database."}')]


async def test_a_server_that_is_down_raises_delivery_error(push_api: PushApi) -> None:
    target = destination(section("http://127.0.0.1:9/v1/push-sensor-data/"), gateway_id="g")
    try:
        with pytest.raises(DeliveryError):
            await target.deliver(sds011(0, 1, 2))
    finally:
        await target.close()


async def test_a_second_source_on_a_pin_is_skipped_not_mixed_in(
    push_api: PushApi, uplink: SensorCommunity
) -> None:
    await uplink.deliver(sds011(0, 1, 2) + sds011(0, 7, 8, source="pm-other"))
    assert [r.json["sensordatavalues"][1]["value"] for r in push_api.accepted] == ["1.00"]
    assert uplink.stats.pin_conflicts == 2


async def test_a_batch_without_any_mapped_quantity_posts_nothing(
    push_api: PushApi, uplink: SensorCommunity
) -> None:
    await uplink.deliver([reading(1, "x", "co2_ppm", "ppm", 400)])
    assert push_api.accepted == []
    assert push_api.connections == 0
