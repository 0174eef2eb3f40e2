"""The clinical optimizer: priorities first, then exact DVH limits.

`solve_clinical` runs the lexicographic steps (`priorities.py`) and, when the program has
hard DVH limits, the exact refinement of the last step (`refine.py`). With no goal
priorities and no DVH limit it is the plain single solve.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from specc.solve.priorities import solve_lexicographic
from specc.solve.refine import refine_dvh_limits

if TYPE_CHECKING:
    from specc.compile import CompiledProgram
    from specc.solve.choice import SolverSettings
    from specc.solve.result import SolveResult


def solve_clinical(
    program: CompiledProgram,
    settings: SolverSettings,
    goal_priorities: Mapping[int, int] | None = None,
    slip_percent: float | None = None,
    coverage_slip_gy: float | None = None,
) -> SolveResult:
    """Solve `program` by priority steps, then refine its DVH limits to their exact form.

    `goal_priorities` maps a term index to its priority (`with_optimization` gives it: the
    terms' own `priority` fields, derived from goals or written); `slip_percent` is the protocol's
    `optimization.solver.slip_percent` and `coverage_slip_gy` the coverage step's slip in Gy
    (None: the documented defaults, `specc.solve.priorities`).
    """
    result, lexicographic = solve_lexicographic(
        program, settings, goal_priorities or {}, slip_percent, coverage_slip_gy
    )
    problem = lexicographic.problem if lexicographic is not None else None
    return refine_dvh_limits(program, problem, result, settings)
