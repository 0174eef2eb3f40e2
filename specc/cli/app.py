"""The typer application that command modules register on, and the shared error exit."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

from specc.errors import SpeccError

app = typer.Typer(
    name="specc",
    help="Declarative IMRT plan-specification compiler.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console()
error_console = Console(stderr=True)


def fail(error: SpeccError | str, code: int = 1) -> NoReturn:
    """Print a user-facing error (no traceback) and exit with `code`."""
    # User strings (file names, structure names) may contain rich markup: print them as plain text.
    error_console.print(Text("error: ", style="bold red") + Text(str(error)), soft_wrap=True)
    sys.exit(code)
