"""`citygw bench wire`: simulated-time batching through the real encoder, MQTT bytes counted."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from gateway import wire
from gateway.cli import main
from gateway.wirebench import Row, mqtt_publish_size, read_rows, replay, unit_of

DATA = Path(__file__).parents[2] / "bench" / "data" / "aberdeen-2019-05" / "readings.csv.gz"


def test_publish_size_counts_fixed_header_topic_packet_id_and_properties() -> None:
    assert mqtt_publish_size("a/b", 10) == 1 + 1 + (2 + 3 + 2 + 1 + 10)
    assert mqtt_publish_size("a/b", 200) == 1 + 2 + (2 + 3 + 2 + 1 + 200)  # 2-byte length
    assert mqtt_publish_size("a/b", 10, mqtt5=False) == 1 + 1 + (2 + 3 + 2 + 10)


def test_readings_are_batched_per_flush_window_of_their_own_time() -> None:
    rows = [Row(t * 1000, "s1", "pm10_ugm3", 1.5) for t in (0, 10, 59, 60, 61, 185)]
    stats = replay(rows, flush_seconds=60)
    assert (stats.readings, stats.messages) == (6, 3)  # [0,10,59] [60,61] [185]
    assert stats.bytes > stats.payload_bytes


def test_the_count_matches_the_real_encoder_byte_for_byte() -> None:
    rows = [Row(1000, "s1", "pm10_ugm3", 1.5), Row(1000, "s1", "temperature_c", 21.25)]
    stats = replay(rows, flush_seconds=60, gateway_id="gw", topic_prefix="p")
    series = {1: wire.Series("s1", "pm10_ugm3", "ug/m3"), 2: wire.Series("s1", "temperature_c",
                                                                         "Cel")}
    payload = wire.encode_data("gw", 1, [(1, 1000, 1, 1.5, 0), (2, 1000, 2, 21.25, 0)],
                               series.__getitem__)
    assert stats.payload_bytes == len(payload)
    assert stats.bytes == mqtt_publish_size("p/gw/data", len(payload))
    assert [r.value for r in wire.decode_data(payload)] == [1.5, 21.25]


def test_units_come_from_the_quantity_suffix() -> None:
    assert [unit_of(q) for q in ("pm25_ugm3", "temperature_c", "humidity_pct", "x")] == [
        "ug/m3", "Cel", "%", ""]


def test_cli_prints_one_json_object_with_the_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("ts,sensor_id,quantity,value\n1.0,7,pm10_ugm3,3.5\n2.0,7,pm25_ugm3,1.25\n"
                     "3.0,8,pm10_ugm3,9\n")
    assert main(["bench", "wire", "--readings", str(path), "--flush-seconds", "60",
                 "--sensors", "7", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["readings"], result["messages"]) == (2, 1)
    assert result["bytes_per_reading"] == result["bytes"] / 2


def test_the_shipped_real_data_set_reads_with_its_columns() -> None:
    first = next(read_rows(DATA))
    assert first.ts_ms == 1_556_668_805_000 and first.quantity == "pm10_ugm3"
