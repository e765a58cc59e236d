"""The `citygw` command line: one entry point, a subcommand per job (table in README.md).

Each command group is a module here with its handlers and an `add_commands(commands)` that adds
its parsers: `agent` (run, check-config, schema, status), `decode`, `hub` (hub tail), `fleet`
(keys, config sign|push|diff), `node` (node flash|monitor|simulate), `register` (register
export), `devtools` (demo, bench wire). Handlers import what they need when they run, and a
command's own group is the only one imported when it runs, so `citygw run` (the agent, for
weeks) keeps no other group's code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli.base import Commands, help_formatter, help_width
from gateway.config import ConfigError

GROUPS: dict[str, tuple[str, ...]] = {
    "agent": ("run", "check-config", "schema", "status"),
    "decode": ("decode",),
    "hub": ("hub",),
    "fleet": ("keys", "config"),
    "node": ("node",),
    "register": ("register",),
    "devtools": ("bench", "demo", "simulate-sensor", "simulate-meters"),
}
"""Each group module and the commands it adds, in the order `citygw --help` lists them
(tests/unit/test_cli_groups.py keeps this table and the modules in step)."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `citygw` parser: every group's commands, or only the group of `command`; help wraps
    to the terminal."""
    width = help_width()
    parser = argparse.ArgumentParser(
        prog="citygw",
        description="citygw: smart-city edge gateway agent and its tools.",
        formatter_class=help_formatter(width),
    )
    parser.add_argument("--version", action="version", version=f"citygw {__version__}")
    commands = Commands(parser, dest="command", width=width, metavar="COMMAND")
    for module, names in GROUPS.items():
        if command is None or command in names:
            importlib.import_module(f"gateway.cli.{module}").add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` names; its exit code (2 for an invalid config)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    first = argv[0] if argv else None
    known = any(first in names for names in GROUPS.values())
    args = build_parser(first if known else None).parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as error:
        print(f"citygw: {error.what}: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    return code
