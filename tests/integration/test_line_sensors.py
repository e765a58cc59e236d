"""OPS243 radar and MaxBotix rangefinder end to end: simulators on real ptys -> `citygw run` ->
real Mosquitto -> hub, readings with their units; the radar's set-up commands byte-exact."""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from spine_setup import sources_open

from gateway import wire
from gateway.devtools.sim_lines import Car, SimulatedMaxbotix, SimulatedOps243

pytestmark = pytest.mark.integration

RADAR_SETUP_KMH = [b"UK", b"F1", b"Oj", b"Ou", b"Om", b"Ot"]  # after the Ctrl-C


def _config(tmp_path: Path, broker: Any, prefix: str, source: dict[str, Any]) -> dict[str, Any]:
    return {
        "gateway": {"id": "gw-lines", "data_dir": str(tmp_path / "data")},
        "hub": {
            "url": broker.url,
            "topic_prefix": prefix,
            "flush_interval_s": 0.2,
            "wire_format": 1,  # decoded message by message
        },
        "buffer": {"commit_interval_ms": 50},
        "sources": [{"type": "serial", "reopen_max_s": 0.5, **source}],
    }


def _readings(messages: list[Any]) -> list[wire.HubReading]:
    return [r for m in messages if m.topic.endswith("/data") for r in wire.decode_data(m.payload)]


def _traffic(radar: SimulatedOps243, cars: list[Car], *, commands: int = 6) -> Iterator[Car]:
    """Quiet until the host has sent its set-up `commands`, then `cars`."""
    while len(radar.commands) < commands:
        yield Car(0.0, 1, in_view_s=0.0, gap_after_s=0.1)
    yield from cars


async def _run_radar(
    tmp_path: Path,
    mosquitto: Any,
    prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
    *,
    cars: list[Car],
    source: dict[str, Any],
    enough: Any,
) -> tuple[SimulatedOps243, list[wire.HubReading]]:
    pty = make_pty("ttyACM0")
    radar = SimulatedOps243(pty.master_fd, interval_s=0.1)
    radar.cars = _traffic(radar, cars)  # quiet until the agent has set the radar up
    sim = asyncio.create_task(radar.run())
    sub = await hub_subscriber(mosquitto, f"{prefix}/+/data")
    config = _config(
        tmp_path, mosquitto, prefix, {"name": "radar", "port": str(pty.link), **source}
    )
    agent = agent_process(write_config(config))
    try:
        agent.start()
        await agent.wait_for_log("connected to hub")
        messages = await sub.wait_for(lambda ms: enough(_readings(ms)), timeout=30)
    finally:
        agent.stop()
        sim.cancel()
        await asyncio.gather(sim, return_exceptions=True)
    return radar, _readings(messages)


async def test_radar_detections_reach_the_hub_in_the_unit_set_at_connect(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    cars = [Car(50.0, 1, 0.5, 1.5), Car(30.0, -1, 0.5, 1.5)]
    radar, got = await _run_radar(
        tmp_path,
        mosquitto,
        topic_prefix,
        make_pty,
        write_config,
        agent_process,
        hub_subscriber,
        cars=cars,
        source={"driver": "ops243", "units": "kmh", "baud": 19200},
        enough=lambda rs: sum(r.quantity == "speed_kmh" for r in rs) >= 10,
    )
    assert radar.commands[: len(RADAR_SETUP_KMH)] == RADAR_SETUP_KMH
    assert radar.unit.key == "kmh" and radar.replies_sent >= 1
    speeds = [r for r in got if r.quantity == "speed_kmh"]
    directions = [r.value for r in got if r.quantity == "direction"]
    assert {r.unit for r in speeds} == {"km/h"}
    assert {r.unit for r in got if r.quantity == "direction"} == {"1"}
    assert all(40 <= r.value <= 51 for r in speeds[:5]), [r.value for r in speeds]
    assert directions[:5] == [1, 1, 1, 1, 1]
    assert {r.source for r in got} == {"radar"}


async def test_radar_aggregated_per_interval_sends_vehicle_counts_and_percentiles(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    cars = [
        Car(40.0, 1, 0.5, 1.6),
        Car(60.0, -1, 0.5, 1.6),
        Car(50.0, 1, 0.5, 1.6),
        Car(44.0, 1, 0.5, 1.6),
    ]

    def counted(rs: list[wire.HubReading]) -> bool:
        return sum(r.value for r in rs if r.quantity.startswith("vehicles_")) >= len(cars)

    _, got = await _run_radar(
        tmp_path,
        mosquitto,
        topic_prefix,
        make_pty,
        write_config,
        agent_process,
        hub_subscriber,
        cars=cars,
        source={"driver": "ops243", "units": "kmh", "json": True, "aggregate_s": 2},
        enough=counted,
    )
    quantities = {r.quantity for r in got}
    assert "speed_kmh" not in quantities and "direction" not in quantities
    assert sum(r.value for r in got if r.quantity == "vehicles_inbound") == 3
    assert sum(r.value for r in got if r.quantity == "vehicles_outbound") == 1
    maxima = [r.value for r in got if r.quantity == "speed_max_inbound_kmh"]
    assert max(maxima) == pytest.approx(50.0 * 0.97, abs=1.0)  # the peak the beam saw
    outbound = [r for r in got if r.quantity == "speed_v85_outbound_kmh"]
    assert [round(r.value) for r in outbound] == [58]
    assert {r.unit for r in got if r.quantity.startswith("speed_")} == {"km/h"}
    assert {r.unit for r in got if r.quantity.startswith("vehicles_")} == {"1"}


async def _run_sonar(
    tmp_path: Path,
    mosquitto: Any,
    prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
    *,
    distances: list[float | None],
    source: dict[str, Any],
    enough: Any,
    quiet_after_s: float = 0.0,
) -> tuple[SimulatedMaxbotix, list[wire.HubReading], list[int]]:
    """A MaxSonar on a pty sends `distances` once the agent has the port open, then falls
    silent; the hub's readings once `enough(readings)` (and `quiet_after_s` later), and the
    wall time (ms) at which each report was written."""
    pty = make_pty("ttyUSB3")
    written_ms: list[int] = []

    def reports() -> Iterator[float | None]:
        for distance in distances:
            written_ms.append(time.time_ns() // 1_000_000)  # drawn just before its write
            yield distance

    sonar = SimulatedMaxbotix(pty.master_fd, model="MB7389", distances=reports())
    sub = await hub_subscriber(mosquitto, f"{prefix}/+/data")
    config = _config(
        tmp_path,
        mosquitto,
        prefix,
        {"name": "canal", "port": str(pty.link), "driver": "maxbotix", "model": "MB7389", **source},
    )
    agent = agent_process(write_config(config))
    sim: asyncio.Task[None] | None = None
    try:
        agent.start()
        await agent.wait_for_log("connected to hub")
        await sources_open(agent)
        sim = asyncio.create_task(sonar.run())
        await sub.wait_for(lambda ms: enough(_readings(ms)), timeout=30)
        await asyncio.sleep(quiet_after_s)
        messages = list(sub.messages)
    finally:
        agent.stop()
        if sim is not None:
            sim.cancel()
            await asyncio.gather(sim, return_exceptions=True)
    return sonar, _readings(messages), written_ms


async def test_rising_water_level_and_no_target_reach_the_hub(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    started = time.monotonic()
    _, got, _ = await _run_sonar(
        tmp_path,
        mosquitto,
        topic_prefix,
        make_pty,
        write_config,
        agent_process,
        hub_subscriber,
        distances=[3600, 3500, 3400, None, 3300, 3200],
        source={"mount_height_mm": 4000},
        enough=lambda rs: sum(r.quantity == "range_status" for r in rs) >= 6,
    )
    assert [(r.quantity, r.value, r.unit) for r in got if r.quantity != "range_status"] == [
        q
        for level in (400, 500, 600, None, 700, 800)
        if level is not None
        for q in (("distance_mm", 4000 - level, "mm"), ("water_level_mm", level, "mm"))
    ]
    assert [r.value for r in got if r.quantity == "range_status"] == [0, 0, 0, 3, 0, 0]
    assert time.monotonic() - started < 60


def _counted(readings: list[wire.HubReading]) -> int:
    return sum(
        int(r.value) for r in readings if r.quantity in ("distance_reports", "no_target_reports")
    )


async def test_rangefinder_aggregated_sends_one_median_per_interval_not_every_report(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    """A rippling canal with a bird under the sensor, then nothing in range for longer than an
    interval, then the water higher; then the sensor falls silent. Each interval's aggregate
    is checked against exactly the reports it counted (they partition the reports in order)."""
    rng = random.Random(7)
    ripples = [3000 + rng.randint(-20, 20) for _ in range(20)]
    ripples[6] = 600  # a bird
    distances: list[float | None] = [
        *ripples,
        *[None] * 25,  # 3.75 s at the MB7389's 6.67 Hz: at least one whole interval
        *[2500 + rng.randint(-20, 20) for _ in range(20)],
    ]
    aggregate_s = 2
    sonar, got, written_ms = await _run_sonar(
        tmp_path,
        mosquitto,
        topic_prefix,
        make_pty,
        write_config,
        agent_process,
        hub_subscriber,
        distances=distances,
        source={"mount_height_mm": 4000, "aggregate_s": aggregate_s},
        enough=lambda rs: _counted(rs) >= len(distances),
        quiet_after_s=3 * aggregate_s,  # the silent sensor's intervals: nothing is sent
    )
    assert sonar.frames_sent == len(distances) and _counted(got) == len(distances)
    aggregates: dict[int, dict[str, float]] = {}
    for r in sorted(got, key=lambda r: r.seq):
        aggregates.setdefault(r.ts_ms, {})[r.quantity] = r.value
    assert {r.unit for r in got if r.quantity.endswith("_mm")} == {"mm"}
    assert 3 <= len(aggregates) <= len(distances) / 5, "one aggregate per interval"
    first = 0
    for ts_ms, values in aggregates.items():
        last = first + int(values["distance_reports"] + values["no_target_reports"])
        assert last > first, "an interval without reports sends nothing"
        counted = distances[first:last]
        assert ts_ms >= written_ms[last - 1], "stamped at the interval's end"
        ranged = [d for d in counted if d is not None]
        assert values["no_target_reports"] == len(counted) - len(ranged)
        if ranged:
            assert values["range_status"] == 0
            assert values["distance_mm"] == statistics.median(ranged)
            assert values["water_level_mm"] == 4000 - statistics.median(ranged)
            assert (values["distance_min_mm"], values["distance_max_mm"]) == (
                min(ranged),
                max(ranged),
            )
        else:
            assert values == {
                "range_status": 3,
                "distance_reports": 0,
                "no_target_reports": len(counted),
            }
        first = last
    assert any("distance_mm" not in values for values in aggregates.values())
    medians = [v["distance_mm"] for v in aggregates.values() if "distance_mm" in v]
    assert all(2470 <= m <= 2520 or 2970 <= m <= 3020 for m in medians), "the bird is no level"
    assert min(v.get("distance_min_mm", 9999) for v in aggregates.values()) == 600


@pytest.mark.parametrize(
    ("commands", "options"),
    [
        (b"\x03UKF1OjOuOmOt", {"units": "kmh"}),
        (b"USF0OJOUOMOT", {"units": "mph", "json": True}),
        (b"UCF0OjOuOMOT", {"units": "cmps", "magnitude": True, "time": True}),
        (b"UFF2OjOUOmOt", {"units": "fps"}),  # the quoted unit label first
    ],
)
async def test_simulated_radar_obeys_output_settings_and_its_lines_decode(
    make_pty: Any, commands: bytes, options: dict[str, Any]
) -> None:
    """A real pty between a host (this test) and the simulator; no broker."""
    import os

    from drivers import new_stream

    pty = make_pty("ttyACM1")
    radar = SimulatedOps243(pty.master_fd, interval_s=0.02)
    radar.cars = _traffic(radar, [Car(50.0, -1, 0.3, 5.0)])
    sim = asyncio.create_task(radar.run())
    fd = os.open(pty.link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        os.write(fd, commands)
        decoder = new_stream("ops243", **options)
        frames: list[Any] = []
        async with asyncio.timeout(10):
            while radar.cars_passed < 1 or len(frames) < 16:
                await asyncio.sleep(0.05)
                with contextlib.suppress(BlockingIOError):
                    frames.extend(decoder.feed(os.read(fd, 4096)))
    finally:
        sim.cancel()
        await asyncio.gather(sim, return_exceptions=True)
        os.close(fd)
    assert decoder.stats.bad_frames == 0 and decoder.stats.skipped_bytes == 0
    reports = [f for f in frames if f.measurements]
    assert len(reports) == 15  # 0.3 s in view at 0.02 s
    unit = f"speed_{options['units']}"
    speeds = [m for f in reports for m in f.measurements if m.quantity == unit]
    assert len(speeds) == 15 and all(m.value > 0 for m in speeds)
    assert all(m.value == -1 for f in reports for m in f.measurements if m.quantity == "direction")
    if options.get("time"):
        assert all(f.sensor_time_s is not None for f in reports)
    if options.get("magnitude"):
        assert all(any(m.quantity == "magnitude" for m in f.measurements) for f in reports)
