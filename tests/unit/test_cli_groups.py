"""The command line imports only the group of the command it runs, from a table that must match
what each group module adds."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from gateway.cli import GROUPS, build_parser


def commands_of(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return tuple(subparsers.choices)


@pytest.mark.parametrize("module", GROUPS)
def test_the_table_names_exactly_the_commands_each_group_adds(module: str) -> None:
    for command in GROUPS[module]:
        assert commands_of(build_parser(command)) == GROUPS[module]


def test_the_full_parser_lists_every_command_in_table_order() -> None:
    assert commands_of(build_parser()) == tuple(c for names in GROUPS.values() for c in names)


def test_running_the_agent_loads_no_other_command_group() -> None:
    code = (
        "import sys\n"
        "from gateway.cli import main\n"
        "try:\n"
        "    main(['run', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('gateway.cli.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip().splitlines()[-1] == "['gateway.cli.agent', 'gateway.cli.base']"
