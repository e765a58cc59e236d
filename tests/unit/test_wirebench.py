"""`citygw bench wire`: simulated-time batching through the real encoder, MQTT bytes counted."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from gateway import wire
from gateway.cli import main
from gateway.devtools.wirebench import (
    PINGREQ,
    TOPIC_ALIAS_PROPERTY,
    Row,
    mqtt_publish_size,
    read_rows,
    replay,
    unit_of,
)
from gateway.readings import Series
from gateway.wire import v1

DATA = Path(__file__).parents[2] / "bench" / "data" / "aberdeen-2019-05" / "readings.csv.gz"


def test_publish_size_counts_fixed_header_topic_packet_id_and_properties() -> None:
    assert mqtt_publish_size("a/b", 10) == 1 + 1 + (2 + 3 + 2 + 1 + 10)
    assert mqtt_publish_size("a/b", 200) == 1 + 2 + (2 + 3 + 2 + 1 + 200)  # 2-byte length
    assert mqtt_publish_size("a/b", 10, mqtt5=False) == 1 + 1 + (2 + 3 + 2 + 10)
    assert mqtt_publish_size("", 10, properties_len=3) == 1 + 1 + (2 + 0 + 2 + 1 + 3 + 10)


def test_readings_are_batched_per_flush_window_of_their_own_time() -> None:
    rows = [Row(t * 1000, "s1", "pm10_ugm3", 1.5) for t in (0, 10, 59, 60, 61, 185)]
    stats = replay(rows, flush_seconds=60)
    assert (stats.readings, stats.messages) == (6, 3)  # [0,10,59] [60,61] [185]
    assert stats.bytes > stats.payload_bytes


def test_the_count_matches_the_real_encoder_byte_for_byte() -> None:
    rows = [Row(1000, "s1", "pm10_ugm3", 1.5), Row(1000, "s1", "temperature_c", 21.25)]
    stats = replay(rows, flush_seconds=60, gateway_id="gw", topic_prefix="p")
    series = {1: Series("s1", "pm10_ugm3", "ug/m3"), 2: Series("s1", "temperature_c", "Cel")}
    payload = v1.encode_data(
        "gw", 1, [(1, 1000, 1, 1.5, 0), (2, 1000, 2, 21.25, 0)], series.__getitem__
    )
    birth = wire.encode_status("gw", state="online", version="0", started_ms=0)
    assert stats.payload_bytes == len(payload)
    assert stats.birth_bytes == mqtt_publish_size("p/gw/status", len(birth))
    assert stats.bytes == stats.birth_bytes + mqtt_publish_size(
        "p/gw/data", len(payload), properties_len=TOPIC_ALIAS_PROPERTY
    )
    assert [r.value for r in wire.decode_data(payload)] == [1.5, 21.25]


def test_the_topic_travels_once_per_connection_then_by_alias() -> None:
    rows = [Row(t * 1000, "s1", "pm10_ugm3", 1.5) for t in (0, 60, 120, 3600, 3660)]
    one_hour = replay(rows, flush_seconds=60, wire_format=3, connection_hours=1)
    no_alias = replay(rows, flush_seconds=60, wire_format=3, connection_hours=1, topic_alias=False)
    topic = len("citygw/v1/gw-0001/data")
    assert (one_hour.messages, one_hour.connections) == (5, 2)
    # 5 messages: without the alias each names the topic; with it, the first of each connection
    # names it, and every one carries the 3-byte alias property
    assert no_alias.bytes - one_hour.bytes == 3 * topic - 5 * TOPIC_ALIAS_PROPERTY
    assert one_hour.birth_bytes == no_alias.birth_bytes > 0


def test_idle_time_between_messages_costs_pings_at_the_keepalive() -> None:
    rows = [Row(t * 1000, "s1", "pm10_ugm3", 1.5) for t in (0, 300, 600)]
    stats = replay(rows, flush_seconds=300, wire_format=3, keepalive_s=60)
    assert stats.ping_bytes == 2 * PINGREQ * 5  # two 300 s gaps, a PINGREQ each 60 s


def test_v3_is_the_smallest_on_the_real_data_of_one_station() -> None:
    rows = list(itertools.islice(read_rows(DATA, sensors={"5331", "5332"}), 2000))
    per_reading = {
        fmt: replay(rows, flush_seconds=300, wire_format=fmt).as_dict(300)["bytes_per_reading"]
        for fmt in (1, 2, 3)
    }
    assert per_reading[3] < per_reading[2] < per_reading[1]
    assert per_reading[3] <= 8  # the target for one station at a 300 s flush


def test_units_come_from_the_quantity_suffix() -> None:
    assert [unit_of(q) for q in ("pm25_ugm3", "temperature_c", "humidity_pct", "x")] == [
        "ug/m3",
        "Cel",
        "%",
        "",
    ]


def test_cli_prints_one_json_object_with_the_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(
            "ts,sensor_id,quantity,value\n1.0,7,pm10_ugm3,3.5\n2.0,7,pm25_ugm3,1.25\n"
            "3.0,8,pm10_ugm3,9\n"
        )
    assert (
        main(
            [
                "bench",
                "wire",
                "--readings",
                str(path),
                "--flush-seconds",
                "60",
                "--sensors",
                "7",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert (result["readings"], result["messages"]) == (2, 1)
    assert result["bytes_per_reading"] == result["bytes"] / 2


def test_the_shipped_real_data_set_reads_with_its_columns() -> None:
    first = next(read_rows(DATA))
    assert first.ts_ms == 1_556_668_805_000 and first.quantity == "pm10_ugm3"
