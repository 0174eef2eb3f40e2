"""The clinical optimizer: priorities first, then exact DVH limits.

`solve_clinical` runs the lexicographic steps (`priorities.py`) and, when the program has
hard DVH limits, the exact refinement of the last step whose goals are not all met
(`LexicographicProblem.refined_step`, `refine.py`). With no goal
priorities and no DVH limit it is the plain single solve. The steps are the terms' own
`priority` fields, as `specc plan` solves them, unless a caller maps them otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from specc.compile.derive import term_priorities
from specc.compile.program import estimated_memory, protocol_sample_limit
from specc.compile.voxels import DEFAULT_SAMPLE_LIMIT
from specc.solve.diagnose import broken_by_the_prior
from specc.solve.first_order.solver import FIRST_ORDER_SOLVER, REFERENCE_SOLVER
from specc.solve.priorities import StepMemory, StepProgress, group_steps, solve_lexicographic
from specc.solve.refine import refine_dvh_limits
from specc.solve.run import infeasible_before_solving
from specc.terms.worst_case import WorstCase

if TYPE_CHECKING:
    from specc.compile import CompiledProgram, CompiledTerm
    from specc.protocol import Protocol
    from specc.terms import TermBase
    from specc.solve.choice import SolverSettings
    from specc.solve.first_order.solver import WarmStart
    from specc.solve.result import SolveResult

# The default sample of soft-only structures when an interior-point solver will solve the
# program. Its factorization grows with the rows, unlike the fast path's products: the
# goals-only TG-119 C-shape (5 mm) took 48.5 s at 3,000 and 113 s at 30,000
# (`specc.compile.voxels.DEFAULT_SAMPLE_LIMIT`, the fast path's default); docs/performance.md.
CVXPY_SAMPLE_LIMIT = 3_000


def sample_limit_for(
    protocol: Protocol, settings: SolverSettings, goal_priorities: Mapping[int, int] | None = None
) -> int | None:
    """The sample of soft-only structures to compile `protocol` with (None: every voxel).

    The protocol's own `sample_voxels` when it sets one; otherwise the fast path's default,
    or `CVXPY_SAMPLE_LIMIT` when a cvxpy solver will solve the program: one was asked for,
    the priorities make more than one lexicographic step, or a hard DVH limit needs its exact
    refinement (both cvxpy problems; the fast path leaves hard CVaR limits to CLARABEL too).
    `goal_priorities`: None takes the terms' own (`term_priorities`).
    """
    by_cvxpy = not fast_path_alone(protocol, settings, goal_priorities)
    return protocol_sample_limit(protocol, CVXPY_SAMPLE_LIMIT if by_cvxpy else DEFAULT_SAMPLE_LIMIT)


def fast_path_alone(
    protocol: Protocol, settings: SolverSettings, goal_priorities: Mapping[int, int] | None = None
) -> bool:
    """Whether `solve_clinical` is a single fast-path solve: that solver chosen, one priority
    step, no hard DVH limit to refine (a cvxpy problem each), no worst-case term (the fast path
    has no form for it: CLARABEL solves the program). `goal_priorities`: None takes the terms' own."""
    terms = protocol.optimization.terms if protocol.optimization is not None else []
    priorities = term_priorities(terms) if goal_priorities is None else goal_priorities
    with_objective = [index for index, term in enumerate(terms) if not term.is_constraint]
    return (
        settings.name == FIRST_ORDER_SOLVER
        and len(group_steps(with_objective, priorities)) <= 1
        and not any(term.kind == "dvh" and term.is_constraint for term in terms)
        and not any(isinstance(term, WorstCase) for term in terms)
    )


def estimated_solve_memory(
    program: CompiledProgram, settings: SolverSettings, goal_priorities: Mapping[int, int] | None = None
) -> tuple[int, str]:
    """The bytes `solve_clinical` will add to the process, on the route the solver rule takes, and that route.

    The fast path's figure where it solves the program alone (`fast_path_alone`), else a cvxpy
    solve's, which dominates (the measured basis: `specc.compile.program.estimated_memory`). A
    fast path that fails to certify hands over to CLARABEL, which no rule foresees: the figure
    is then the fast path's and the peak CLARABEL's.
    """
    alone = program.protocol is not None and fast_path_alone(program.protocol, settings, goal_priorities)
    stats = program.stats
    if alone:
        return estimated_memory(stats.nonzeros, stats.beamlets, by_cvxpy=False), f"{FIRST_ORDER_SOLVER} alone"
    by = REFERENCE_SOLVER if settings.name == FIRST_ORDER_SOLVER else settings.name
    return estimated_memory(stats.nonzeros, stats.beamlets, by_cvxpy=True), f"solved by {by}"


def solve_clinical(
    program: CompiledProgram,
    settings: SolverSettings,
    goal_priorities: Mapping[int, int] | None = None,
    slip_percent: float | None = None,
    coverage_slip_gy: float | None = None,
    warm: WarmStart | None = None,
    steps: StepMemory | None = None,
    progress: StepProgress | None = None,
) -> SolveResult:
    """Solve `program` by priority steps, then refine its DVH limits to their exact form; a program whose
    hard limits the prior course's dose alone breaks is infeasible without a solve (`broken_by_the_prior`).

    `goal_priorities` maps a term index to its priority; None (the default) takes the terms' own
    `priority` fields (`term_priorities`, what `with_optimization` returns too: derived from goals or
    written), and `{}` asks for one weighted program. `slip_percent` is the protocol's
    `optimization.solver.slip_percent` and `coverage_slip_gy` the coverage step's slip in Gy
    (None: the documented defaults, `specc.solve.priorities`). `warm`: where the fast path
    starts when it solves the program in one step (`fast_path_alone`). `steps`: the last plan's
    priority steps, of which the unchanged leading ones are kept (`StepMemory`). `progress`:
    told when each step of several starts and ends (`StepProgress`).
    """
    broken = broken_by_the_prior(program)
    if broken is not None:
        return infeasible_before_solving(program, settings, broken)
    priorities = term_priorities(_terms(program.terms)) if goal_priorities is None else goal_priorities
    refinement = 1 if program.hard_dvh_terms() else 0
    result, lexicographic = solve_lexicographic(
        program, settings, priorities, slip_percent, coverage_slip_gy, warm, steps, progress, refinement
    )
    if lexicographic is None or not result.usable:  # one step: the compiled problem; a step failed: nothing to refine
        return refine_dvh_limits(program, None, result, settings, progress)
    return refine_dvh_limits(program, lexicographic.refined_step(), result, settings, progress)


def _terms(compiled: Sequence[CompiledTerm]) -> list[TermBase]:
    return [term.term for term in compiled]
