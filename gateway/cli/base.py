"""What every command group builds on: subcommands whose help wraps to the terminal, logging.

A group module (`agent`, `decode`, `hub`, `fleet`, `node`, `devtools`) adds its commands with
`Commands.add` and keeps its heavy imports inside the handlers, so `citygw --help` and the agent's
own start stay light.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]
"""A command: the parsed arguments in, the exit code out."""

MAX_HELP_COLUMNS = 100
"""Help wraps to the terminal, but no wider than this: longer lines are hard to read."""

LOG_LEVELS = ("debug", "info", "warning", "error")


def age_text(seconds: float) -> str:
    """A duration for a person: "45 s", "12 min", "3.5 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def terminal_columns() -> int:
    """The terminal's width as shutil.get_terminal_size() gives it: COLUMNS, the terminal, or 80.

    Asked of os directly: shutil imports bz2 and lzma, ~0.5 MB of the agent's RSS for help it
    never prints (tests/unit/test_lazy_import.py).
    """
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0 and sys.__stdout__ is not None:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def help_width() -> int:
    """Columns for help text: the terminal's width less argparse's margin, capped, at least 40."""
    return max(min(terminal_columns(), MAX_HELP_COLUMNS) - 2, 40)


def help_formatter(
    width: int, *, preformatted: bool = False
) -> Callable[..., argparse.HelpFormatter]:
    """An argparse `formatter_class` that wraps at `width` (argparse's own width is unbounded,
    and asking it for the terminal imports shutil). `preformatted`: description and epilog are
    printed as written."""
    kind = argparse.RawDescriptionHelpFormatter if preformatted else argparse.HelpFormatter
    return functools.partial(kind, width=width)


class Commands:
    """One level of subcommands (`citygw COMMAND`, `citygw node COMMAND`), all with one width."""

    def __init__(
        self,
        parser: argparse.ArgumentParser,
        *,
        dest: str,
        width: int,
        metavar: str | None = None,
    ) -> None:
        self.width = width
        self._level = parser.add_subparsers(dest=dest, required=True, metavar=metavar)

    def add(
        self,
        name: str,
        *,
        help: str,
        handler: Handler | None = None,
        description: str | None = None,
        epilog: str | None = None,
        preformatted: bool = False,
    ) -> argparse.ArgumentParser:
        """A parser for `name`; `handler` runs when it is chosen. With `preformatted`, description
        and epilog keep their line breaks (wrap them to `self.width`)."""
        parser = self._level.add_parser(
            name,
            help=help,
            description=description,
            epilog=epilog,
            formatter_class=help_formatter(self.width, preformatted=preformatted),
        )
        if handler is not None:
            parser.set_defaults(func=handler)
        return parser

    def group(self, name: str, *, help: str) -> Commands:
        """A command that takes a subcommand of its own (`citygw node flash`)."""
        return Commands(self.add(name, help=help), dest=f"{name}_command", width=self.width)


def setup_logging(level: str, *, gateway_id: str = "") -> None:
    """Plain lines on stderr; under systemd straight to journald, with fields (journal.py)."""
    from gateway.system.journal import log_handler

    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[log_handler(fields={"CITYGW_GATEWAY": gateway_id} if gateway_id else None)],
    )
    logging.getLogger("citygw.mqtt").setLevel(logging.WARNING)


def fail(command: str, message: object) -> None:
    """Print `citygw COMMAND: MESSAGE` on stderr, the form of every command's error line."""
    print(f"citygw {command}: {message}", file=sys.stderr)
