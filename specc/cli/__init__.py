"""The `specc` command line: argument parsing and printing only.

Each command lives in its own module and registers itself on `app`; the work is done by
the library (`specc.load_protocol`, `specc.Case.load`, `specc.plan`).
"""

from __future__ import annotations

from importlib import import_module

from specc.cli.app import app

# One module per command group; each module adds its commands to `app` on import.
_COMMAND_MODULES = [
    "specc.cli.validate",
    "specc.cli.phantom",
    "specc.cli.plan",
    "specc.cli.io",
]


def main() -> None:
    for name in _COMMAND_MODULES:
        try:
            import_module(name)
        except ModuleNotFoundError as error:
            # A command module that is not written yet must not break the others.
            if error.name != name:
                raise
    app()
