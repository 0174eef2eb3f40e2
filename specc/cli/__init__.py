"""The `specc` command line: argument parsing and printing only.

Each command group lives in its own module and registers its commands on `app` when
imported; the work is done by the library (`specc.load_protocol`, `specc.Case.load`,
`specc.plan`).
"""

from __future__ import annotations

import signal

from specc.cli import approve, check, compare, io, phantom, plan, validate  # noqa: F401  (each registers its commands)
from specc.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Run the command; once it has finished, Ctrl-C is ignored. A Ctrl-C while Python shuts down
    after a complete plan or export would otherwise turn its exit code into 130 ('interrupted:
    nothing written') with every file in place."""
    try:
        app()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
