"""A matrix-free fast path for the compiled program: L-BFGS-B inside an augmented Lagrangian.

The cvxpy problem stays the reference any cvxpy solver can take; this package solves the
same program from the terms' smooth forms (`specc.terms.smooth`). See docs/performance.md.
"""

from __future__ import annotations

from specc.solve.first_order.assemble import FastPathRefused, SmoothProgram
from specc.solve.first_order.augmented_lagrangian import Tolerances
from specc.solve.first_order.solver import (
    FIRST_ORDER_SOLVER,
    REFERENCE_SOLVER,
    FirstOrderSolver,
    WarmStart,
    solve_first_order,
)

__all__ = [
    "FIRST_ORDER_SOLVER",
    "REFERENCE_SOLVER",
    "FastPathRefused",
    "FirstOrderSolver",
    "SmoothProgram",
    "Tolerances",
    "WarmStart",
    "solve_first_order",
]
