"""What a solve produced, in the vocabulary the evaluate and report stages read.

The solver's own status strings differ between solvers and cvxpy versions; this module is
the one contract the later stages see: seven statuses, a message a physicist can act on and
the fluence (when a usable point exists). One event has one status whatever the solver: a stop
at a time limit is `time_limit`, at an iteration limit (the protocol's `max_iterations` or the
solver's own) `iteration_limit` (a status line reading "time_limit" sent a physicist to raise a
time limit never reached), each with a fluence when the solver stopped at a point that meets the
hard limits (the fast path can), without one otherwise; either way the plan is not converged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

SolveStatus = Literal[
    "optimal", "optimal_inaccurate", "infeasible", "unbounded", "time_limit", "iteration_limit", "solver_error"
]
LIMIT_STATUSES: frozenset[str] = frozenset({"time_limit", "iteration_limit"})  # a limit of the solve stopped it

# Statuses for which the solver may return a point worth evaluating (labelled NOT CONVERGED unless
# "optimal"); `SolveResult.usable` also needs the point itself (a time limit often leaves none).
USABLE_STATUSES: frozenset[str] = frozenset({"optimal", "optimal_inaccurate", *LIMIT_STATUSES})


@dataclass(frozen=True)
class TermValue:
    """One compiled term in the optimization log."""

    label: str
    kind: str
    source: str  # "protocols/x.yaml:14": the protocol statement it came from
    hard: bool
    objective_contribution: float | None  # its objective part at the solution; None for constraints


@dataclass(frozen=True)
class SolveResult:
    """The outcome of one solve; `fluence` is None when no usable point exists."""

    status: SolveStatus
    converged: bool  # True only for "optimal"
    # The solver that produced the plan; where the exact DVH refinement was solved by another, both
    # ("CLARABEL, refined by SPECC-LBFGS"): what the terminal, report, plan.json and cohort show.
    solver: str
    message: str
    fluence: np.ndarray | None
    objective: float | None
    iterations: int | None
    solve_time_s: float
    terms: list[TermValue] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    # What a reviewer must see before trusting the plan (the record's `warnings`: the report's banner, the
    # terminal's red line): a sample that cost more than the optimizer's accuracy and was kept (`check_sample`).
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Whether the fluence may be evaluated (an optimal point, or one labelled NOT CONVERGED)."""
        return self.status in USABLE_STATUSES and self.fluence is not None
