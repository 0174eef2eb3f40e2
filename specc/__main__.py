"""The `specc` console script, and `python -m specc`: the command line (`specc.cli.main`) loaded here, so that
a Ctrl-C while it loads (typer, rich and every command module: a second or more on a busy machine) is the one line
`interrupted`, exit 130, not a Python traceback ending in KeyboardInterrupt (audit s20/t2 F1). Nothing of a run
has begun then: no folder was looked at."""

from __future__ import annotations

import sys


def main() -> None:
    """Load the command line, then run it (`specc.cli.main`)."""
    try:
        from specc.cli import main as command_line
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    command_line()


if __name__ == "__main__":
    main()
