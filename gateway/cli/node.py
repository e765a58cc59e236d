"""`citygw node flash|monitor|simulate`: put the firmware on a node, watch it, or fake one."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway.cli.base import LOG_LEVELS, Commands, fail, setup_logging

FLASH_EXTRA = "pip install 'citygw[flash]'"


def add_commands(commands: Commands) -> None:
    """Add the node group: simulate, flash, monitor."""
    node = commands.group("node", help="sensor-node tools")
    p = node.add(
        "simulate",
        help="a virtual node: the real firmware in MicroPython with its UART on a pseudo-terminal",
        handler=cmd_node_simulate,
    )
    p.add_argument("--port", help="put a symlink to the pty here (e.g. /tmp/ttyNODE0)")
    p.add_argument("--interval-s", type=_interval_s, default=60, help="node.json interval_s")
    p.add_argument("--node-id", type=_node_id, default=17, help="node.json node_id")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    _add_flash(node)
    p = node.add(
        "monitor", help="show a node's console output (Ctrl-C to leave)", handler=cmd_node_monitor
    )
    p.add_argument("--port", required=True, help="the board's serial port")


def _add_flash(node: Commands) -> None:
    p = node.add(
        "flash",
        help="MicroPython (optional), the firmware and node.json onto "
        "a board, verified by SHA-256 (docs/flashing.md)",
        handler=cmd_node_flash,
    )
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument(
        "--board",
        required=True,
        choices=["esp32", "rp2"],
        help="esp32 (ESP32_GENERIC boards) or rp2 (Pico, Pico W)",
    )
    p.add_argument(
        "--node-config",
        required=True,
        metavar="FILE",
        help="the node.json to put on the board (checked first)",
    )
    p.add_argument(
        "--micropython",
        metavar="IMAGE",
        help="write this MicroPython image first (.bin for esp32, .uf2 for rp2)",
    )
    p.add_argument(
        "--firmware",
        metavar="DIR",
        help="the firmware folder (default: this checkout's firmware/, else the "
        "copy in the installed package)",
    )
    p.add_argument("--log-level", choices=LOG_LEVELS, default="warning")


def _interval_s(text: str) -> int:
    value = int(text)
    if not 5 <= value <= 86400:
        raise argparse.ArgumentTypeError("the firmware takes 5..86400 s")
    return value


def _node_id(text: str) -> int:
    value = int(text, 0)
    if not 0 <= value <= 0xFFFE:
        raise argparse.ArgumentTypeError("a node id is 0..65534 (0xFFFF is broadcast)")
    return value


def cmd_node_simulate(args: argparse.Namespace) -> int:
    """Run a virtual node until stopped; 1 if Node.js or the MicroPython package is missing."""
    from gateway.devtools.sim_node import SimulatorUnavailable, simulate

    setup_logging(args.log_level)
    try:
        return asyncio.run(simulate(args.port, interval_s=args.interval_s, node_id=args.node_id))
    except SimulatorUnavailable as error:
        fail("node simulate", error)
        return 1


def cmd_node_flash(args: argparse.Namespace) -> int:
    """Flash and verify a board; 2 for an invalid node.json (nothing written), 1 on failure."""
    try:
        from gateway.nodes.board import BoardError
        from gateway.nodes.flash import FIRMWARE_DIR, FlashError, flash
    except ImportError as error:  # mpremote is in the flash extra
        fail("node flash", f"{error.name} is missing: {FLASH_EXTRA}")
        return 1
    from gateway.nodes.config import NodeConfigError
    from gateway.nodes.image import ImageError

    setup_logging(args.log_level)
    try:
        report = flash(
            port=args.port,
            board=args.board,
            node_config=Path(args.node_config),
            image=Path(args.micropython) if args.micropython else None,
            firmware_dir=Path(args.firmware) if args.firmware else FIRMWARE_DIR,
            progress=_progress,
        )
    except NodeConfigError as error:
        fail(
            "node flash",
            f"invalid node config: {error} (nothing was written to the board; fix the file "
            "and run again)",
        )
        return 2
    except (BoardError, FlashError, ImageError) as error:
        fail("node flash", error)
        return 1
    print(
        f"flashed {args.port}: {len(report.written)} written, {len(report.unchanged)} "
        f"unchanged, {len(report.removed)} removed, {len(report.verified)} verified; "
        "the board was reset",
        flush=True,
    )
    return 0


def _progress(line: str) -> None:
    print(line, flush=True)


def cmd_node_monitor(args: argparse.Namespace) -> int:
    """Copy the node's console to stdout until Ctrl-C; 1 if the port cannot be opened."""
    try:
        from gateway.nodes.board import BoardError, console
    except ImportError as error:
        fail("node monitor", f"{error.name} is missing: {FLASH_EXTRA}")
        return 1

    def opened() -> None:
        print(f"{args.port}: the node's console (Ctrl-C to leave)", file=sys.stderr, flush=True)

    try:
        console(args.port, sys.stdout.buffer, on_open=opened)
    except BoardError as error:
        fail("node monitor", error)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
