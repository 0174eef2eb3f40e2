"""The typer application that command modules register on, and the shared error exit."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
    rich_markup_mode="markdown",  # docstring paragraphs re-flowed to the terminal, not broken at source lines
)

# Goal statuses, then solver statuses (cohort table), "checked" (an external dose, `specc check
# --cohort`) and "error" (a case that stopped before a solve).
STATUS_STYLE = {
    "pass": "green",
    "variation": "yellow",
    "fail": "red",
    "not_evaluated": "dim",
    "not_converged": "magenta",
    "optimal": "green",
    "optimal_inaccurate": "magenta",
    "infeasible": "red",
    "unbounded": "red",
    "time_limit": "red",
    "iteration_limit": "red",
    "solver_error": "red",
    "checked": "green",
    "error": "bold red",
}


# Markup off: goal texts ("V10Gy[cc] <= 40"), structure, protocol and file names are user text, and a
# string printed or put in a table is shown exactly as it is. Styles are given as `Text` styles.
console = Console(markup=False)
error_console = Console(stderr=True, markup=False)


def fail(error: SpeccError | str, code: int = 1) -> NoReturn:
    """Print a user-facing error (no traceback) and exit with `code`."""
    error_console.print(Text("error: ", style="bold red") + Text(str(error)), soft_wrap=True)
    sys.exit(code)


def status_text(status: str) -> Text:
    """A goal or solver status, coloured as every table of the command line colours it."""
    return Text(status, style=STATUS_STYLE.get(status, ""))


@contextmanager
def imports_uninterrupted() -> Iterator[None]:
    """A command's imports of its stages (cvxpy, matplotlib, ...: seconds), a Ctrl-C during them held until they
    are done and then raised. Stopped half-way, an import leaves a package half-initialized, and the clean-up the
    Ctrl-C calls for, which imports the same modules (`specc.pipeline`), then ended in a traceback (matplotlib:
    "no attribute 'get_data_path'"). Held only where a Ctrl-C would raise KeyboardInterrupt anyway (Python's own
    handler, on the main thread): a process that ignores SIGINT (`specc plan ... &` in a script) went on through
    the signal before, and a holder installed there made it stop and remove the earlier plan (review s20/r2 F1);
    a handler of the caller's own is left to it."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            raise KeyboardInterrupt
