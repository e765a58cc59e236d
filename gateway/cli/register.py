"""`citygw register export`: the public sensor register from gateway configs (docs/register.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.base import Commands, fail


def add_commands(commands: Commands) -> None:
    """Add the register group."""
    register = commands.group("register", help="the public sensor register")
    p = register.add(
        "export",
        help="write the register of one or more gateways as GeoJSON, CSV or SensRNet JSON",
        handler=cmd_register_export,
    )
    p.add_argument(
        "--config", required=True, nargs="+", metavar="FILE", help="gateway config files"
    )
    p.add_argument("--format", required=True, choices=("geojson", "csv", "sensrnet-json"))
    p.add_argument("-o", "--output", help="file to write (default: stdout)")


def cmd_register_export(args: argparse.Namespace) -> int:
    """Validate every config, export, write; notes (what was left out) go to stderr."""
    from gateway.config import load_config
    from gateway.hub.register_export import ExportError, export

    configs = [load_config(path) for path in args.config]
    try:
        result = export(configs, args.format)
    except ExportError as error:
        fail("register export", error)
        return 2
    for note in result.notes:
        print(f"citygw register export: note: {note}", file=sys.stderr)
    if args.output:
        Path(args.output).write_text(result.text, encoding="utf-8", newline="")
    else:
        sys.stdout.write(result.text)
    return 0
