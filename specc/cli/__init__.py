"""The `specc` command line: argument parsing and printing only.

Each command group lives in its own module and registers its commands on `app` when
imported; the work is done by the library (`specc.load_protocol`, `specc.Case.load`,
`specc.plan`).
"""

from __future__ import annotations

import signal

from rich.text import Text

from specc.cli import approve, check, compare, io, phantom, plan, validate  # noqa: F401  (each registers its commands)
from specc.cli.app import app, error_console

__all__ = ["app", "main"]


def main() -> None:
    """Run the command; once it has finished, Ctrl-C is ignored. A Ctrl-C while Python shuts down
    after a complete plan or export would otherwise turn its exit code into 130 ('interrupted:
    nothing written') with every file in place.

    A Ctrl-C that no command caught (before one began its work: typer building the command line, or reading
    the arguments, which ends it as a silent exit 130) is one line, `interrupted`, exit 130, no traceback (audit
    s20/t2 F1). The `specc` script imports this module through `specc.__main__`, which says the same for a Ctrl-C
    while it loads."""
    try:
        app()
    except KeyboardInterrupt:
        error_console.print(Text("interrupted", style="red"))
        raise SystemExit(130) from None
    except SystemExit as ended:
        if _uncaught_interrupt(ended):
            error_console.print(Text("interrupted", style="red"))
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _uncaught_interrupt(ended: SystemExit) -> bool:
    """Whether typer ended the run for a KeyboardInterrupt no command caught: the exit raised while handling its
    `Exit(130)` raised from that KeyboardInterrupt (a command's own exit 130, after its line, is raised from none)."""
    handled = ended.__context__
    return ended.code == 130 and handled is not None and isinstance(handled.__cause__, KeyboardInterrupt)
