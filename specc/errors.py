"""Errors a user can act on.

Every stage raises a subclass of `SpeccError` for bad input; the CLI prints its message
(never a traceback) and exits non-zero. Anything else escaping is a bug in specc.
"""

from __future__ import annotations


class SpeccError(Exception):
    """An error caused by the user's input (protocol, case, options), with a clear message."""


class CaseError(SpeccError):
    """A case file or case object that cannot be used (names the file and dataset)."""


class CompileError(SpeccError):
    """A protocol that cannot be compiled against a case (names the protocol line)."""


class SolveError(SpeccError):
    """The solver did not produce a usable plan (infeasible, failed, ...)."""
