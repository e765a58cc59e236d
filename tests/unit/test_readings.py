"""Staged readings as columns: each keeps its series, value, time and flags through take,
put_back and trimming, in order."""

from __future__ import annotations

from drivers.base import Measurement
from gateway.readings import CLOCK_UNSYNCED, Columns, Series, SeriesIndex

PM25, PM10 = Measurement("pm2_5_ugm3", 12.3, "ug/m3"), Measurement("pm10_ugm3", 45.6, "ug/m3")


def rows(columns: Columns) -> list[tuple[Series, float, int, int]]:
    series = columns.index.series
    return [
        (series[sid], value, ts, flags)
        for sid, value, ts, flags in zip(
            columns.sid, columns.values, columns.ts_ms, columns.flags, strict=True
        )
    ]


def test_each_reading_keeps_its_series_value_time_and_flags() -> None:
    staged = Columns(SeriesIndex())
    staged.add("pm-north", [PM25, PM10], 1_000)
    staged.add("pm-south", [PM25], 2_000, CLOCK_UNSYNCED)
    staged.add("pm-north", [PM10], 3_000)
    assert rows(staged) == [
        (Series("pm-north", "pm2_5_ugm3", "ug/m3"), 12.3, 1_000, 0),
        (Series("pm-north", "pm10_ugm3", "ug/m3"), 45.6, 1_000, 0),
        (Series("pm-south", "pm2_5_ugm3", "ug/m3"), 12.3, 2_000, CLOCK_UNSYNCED),
        (Series("pm-north", "pm10_ugm3", "ug/m3"), 45.6, 3_000, 0),
    ]
    assert len(staged.index.series) == 3, "a series is numbered once"


def test_take_put_back_and_drop_first_keep_the_order() -> None:
    staged = Columns(SeriesIndex())
    for n in range(6):
        staged.add("pm", [Measurement("pm2_5_ugm3", float(n), "ug/m3")], n)
    batch = staged.take(4)
    assert (list(batch.values), list(staged.values)) == ([0.0, 1.0, 2.0, 3.0], [4.0, 5.0])
    staged.add("pm", [Measurement("pm2_5_ugm3", 6.0, "ug/m3")], 6)
    staged.put_back(batch)  # the commit failed: back in front, before what came meanwhile
    assert list(staged.values) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert list(staged.ts_ms) == list(range(7))
    staged.drop_first(5)
    assert rows(staged) == [
        (Series("pm", "pm2_5_ugm3", "ug/m3"), v, t, 0) for v, t in ((5.0, 5), (6.0, 6))
    ]
    assert (len(staged.part(1)), len(staged)) == (1, 2), "part copies"
