"""Errors a user can act on.

Every stage raises a subclass of `SpeccError` for bad input; the CLI prints its message
(never a traceback) and exits non-zero. Anything else escaping is a bug in specc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class SpeccError(Exception):
    """An error caused by the user's input (protocol, case, options), with a clear message."""


class CaseError(SpeccError):
    """A case file or case object that cannot be used (names the file and dataset)."""


class CompileError(SpeccError):
    """A protocol that cannot be compiled against a case (names the file, line, column and field path).

    Raised where the item's place is not known (a term building itself), it names the item's `field` the
    problem is in (a dvh term's `volume`), for the caller that knows where the item is written to point at.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SolveError(SpeccError):
    """The solver did not produce a usable plan (infeasible, failed, ...)."""


def validation_text(error: ValidationError, whole: str) -> str:
    """The first thing wrong in a file specc wrote and reads back, as "field.path: message" (`whole`
    naming the document when the fault is at its top level, as unparsable JSON)."""
    first = error.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc']) or whole}: {first['msg']}"
