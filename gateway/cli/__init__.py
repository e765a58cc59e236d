"""The `citygw` command line: one entry point, a subcommand per job (table in README.md).

Each command group is a module here with its handlers and an `add_commands(commands)` that adds
its parsers: `agent` (run, check-config, schema, status), `decode`, `hub` (hub tail), `fleet`
(keys, config sign|push|diff), `node` (node flash|monitor|simulate), `devtools` (demo, bench
wire). Handlers import what they need when they run, so `citygw --help` and the agent stay light.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import agent, decode, devtools, fleet, hub, node
from gateway.cli.base import Commands, help_formatter, help_width
from gateway.config import ConfigError

GROUPS = (agent, decode, hub, fleet, node, devtools)
"""The command groups, in the order `citygw --help` lists their commands."""


def build_parser() -> argparse.ArgumentParser:
    """The `citygw` parser with every group's commands; help wraps to the terminal."""
    width = help_width()
    parser = argparse.ArgumentParser(
        prog="citygw",
        description="citygw: smart-city edge gateway agent and its tools.",
        formatter_class=help_formatter(width),
    )
    parser.add_argument("--version", action="version", version=f"citygw {__version__}")
    commands = Commands(parser, dest="command", width=width, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` names; its exit code (2 for an invalid config)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as error:
        print(f"citygw: {error.what}: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    return code
