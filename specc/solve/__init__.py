"""Solve stage: solver choice, running cvxpy, mapping statuses, diagnosing infeasibility.

`SolveResult` and friends are imported eagerly (later stages read them); the functions that
need cvxpy are loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from specc.solve.result import USABLE_STATUSES, SolveResult, SolveStatus, TermValue

_LAZY = {
    "solve_program": "specc.solve.run",
    "choose_solver": "specc.solve.choice",
    "SolverSettings": "specc.solve.choice",
    "DEFAULT_SOLVER": "specc.solve.choice",
}

__all__ = ["USABLE_STATUSES", "SolveResult", "SolveStatus", "TermValue", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'specc.solve' has no attribute {name!r}")
