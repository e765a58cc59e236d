"""`citygw demo` and `citygw bench wire`: the whole system on simulated sensors, and wire sizes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gateway.cli.base import Commands, fail


def add_commands(commands: Commands) -> None:
    """Add demo and the bench group (bench wire)."""
    bench = commands.group("bench", help="measurements")
    p = bench.add(
        "wire",
        help="bytes on the wire per reading, replaying a CSV of "
        "readings (ts,sensor_id,quantity,value) in simulated time",
        handler=cmd_bench_wire,
    )
    p.add_argument("--readings", required=True, help="CSV or CSV.gz file")
    p.add_argument("--flush-seconds", type=float, required=True)
    p.add_argument("--sensors", help="only these sensor ids, comma-separated")
    p.add_argument("--format", type=int, choices=[1, 2, 3, 4], default=1, help="wire format")
    p.add_argument(
        "--no-topic-alias",
        action="store_true",
        help="the full data topic in every message (a broker without topic aliases)",
    )
    p.add_argument(
        "--connection-hours",
        type=float,
        default=24.0,
        help="how long a connection lasts (a birth and the full topic each time)",
    )
    p.add_argument("--json", action="store_true")

    p = commands.add(
        "demo",
        help="the whole system on simulated sensors and a local broker",
        handler=cmd_demo,
    )
    p.add_argument("--seconds", type=float, default=None, help="stop by itself after N seconds")

    p = commands.add(
        "simulate-sensor",
        help="a simulated OPS243 radar (passing cars) or MaxBotix (rising water) on a "
        "pseudo-terminal, for an agent to read",
        handler=cmd_simulate_sensor,
    )
    p.add_argument("sensor", choices=["ops243", "maxbotix"])
    p.add_argument("--link", required=True, help="symlink to the pty's device, e.g. /tmp/ttyRadar")
    p.add_argument("--model", default="MB7389", help="maxbotix: the model (default MB7389)")
    p.add_argument("--seed", type=int, default=0, help="ops243: the traffic's random seed")
    p.add_argument("--seconds", type=float, default=None, help="stop by itself after N seconds")

    p = commands.add(
        "simulate-meters",
        help="Eastron SDM120/SDM630 energy meters on a simulated RS-485 bus (pymodbus's "
        "Modbus RTU server on a socat pty pair), for a modbus source to poll",
        handler=cmd_simulate_meters,
    )
    p.add_argument("--dir", required=True, help="directory for the pty links; the bus is DIR/rs485")
    p.add_argument(
        "--meters",
        default="1:sdm630,2:sdm120",
        help="ADDRESS:MODEL, comma-separated (default 1:sdm630,2:sdm120)",
    )
    p.add_argument("--baud", type=int, default=9600, help="line speed (default 9600, 8N1)")
    p.add_argument("--seconds", type=float, default=None, help="stop by itself after N seconds")


def cmd_bench_wire(args: argparse.Namespace) -> int:
    """Print the replay's bytes per reading; 2 for an unreadable file, 1 if nothing matched."""
    from gateway.devtools.wirebench import format_report, read_rows, replay

    sensors = set(args.sensors.split(",")) if args.sensors else None
    try:
        stats = replay(
            read_rows(Path(args.readings), sensors=sensors),
            flush_seconds=args.flush_seconds,
            wire_format=args.format,
            topic_alias=not args.no_topic_alias,
            connection_hours=args.connection_hours,
        )
    except (OSError, ValueError) as error:
        fail("bench wire", error)
        return 2
    if stats.readings == 0:
        fail("bench wire", "no readings (check --sensors)")
        return 1
    if args.json:
        print(json.dumps(stats.as_dict(args.flush_seconds)))
    else:
        print(format_report(stats, args.flush_seconds), end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C or --seconds."""
    from gateway.devtools.demo import run_demo

    return run_demo(seconds=args.seconds)


def cmd_simulate_sensor(args: argparse.Namespace) -> int:
    """Run the simulator until Ctrl-C or --seconds; 2 for an unknown model."""
    import asyncio
    import contextlib

    from gateway.devtools.sim_lines import (
        SimulatedMaxbotix,
        SimulatedOps243,
        passing_cars,
    )
    from gateway.devtools.sim_serial import close_pty, open_pty

    master_fd, slave = open_pty(args.link)
    try:
        if args.sensor == "ops243":
            sensor: SimulatedOps243 | SimulatedMaxbotix = SimulatedOps243(
                master_fd, cars=passing_cars(seed=args.seed)
            )
        else:
            sensor = SimulatedMaxbotix(master_fd, model=args.model)
    except KeyError:
        close_pty(master_fd, args.link)
        fail("simulate-sensor", f"unknown model {args.model!r}")
        return 2
    print(f"{args.sensor} on {args.link} -> {slave}", flush=True)

    async def run() -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.seconds):
                await sensor.run()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        close_pty(master_fd, args.link)
    return 0


def cmd_simulate_meters(args: argparse.Namespace) -> int:
    """Serve the meters until Ctrl-C or --seconds; 2 for a bad --meters."""
    import asyncio
    import contextlib

    from gateway.devtools.sim_modbus import parse_meters, run_bus

    try:
        meters = parse_meters(args.meters)
    except ValueError as error:
        fail("simulate-meters", f"--meters: {error}")
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_bus(meters, directory=Path(args.dir), baud=args.baud, seconds=args.seconds))
    return 0
