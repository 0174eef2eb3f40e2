"""Which solver runs a program, with which limits.

Precedence: `--solver` on the command line, then the protocol's `optimization.solver.name`,
then the default rule below. Tolerances and the time limit come from the protocol and are
translated to each solver's own option names here, the only place that knows them.

Default rule (measured on the TG-119 phantoms, docs/compiler.md and docs/performance.md):
SPECC-LBFGS, the matrix-free fast path (`specc.solve.first_order`), wherever it applies and
certifies its point (a KKT test in float64); it solves the same program about 10x faster
than CLARABEL at 5 mm and at 2.5 mm because it factorizes nothing. Where it does not apply
(a kind without a smooth form, a problem beyond the compiled terms, hard limits it cannot
reach) or cannot certify its point, CLARABEL, the reference interior-point solver, solves
instead and the solve message says so. CLARABEL, OSQP, SCS and HIGHS stay selectable by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import cvxpy as cp

from specc.errors import SolveError
from specc.protocol import SolverOptions
from specc.protocol.models import SOLVERS, limit_refused, route_of
from specc.solve.first_order.solver import FIRST_ORDER_SOLVER, REFERENCE_SOLVER

DEFAULT_SOLVER = FIRST_ORDER_SOLVER

# Option names of each supported solver, as cvxpy passes them on. Every solver the protocol
# language names (`SolverOptions.name`) has an entry in each table: until audit s20/t2 F5 HIGHS had
# none for the tolerance and the iteration limit, which were dropped without a word (a protocol's
# cap of 40 iterations ran 11 minutes).
_TIME_LIMIT = {"CLARABEL": "time_limit", "OSQP": "time_limit", "SCS": "time_limit_secs", "HIGHS": "time_limit"}
# The protocol's one `tolerance` sets each solver's gap and feasibility tolerances (HiGHS' active-set
# QP solver answers to the dual feasibility one: 2125 against 3023 iterations at 1e-2 on the test
# case; its simplex to both feasibility ones, its interior point to the gap).
_TOLERANCE = {
    "CLARABEL": ("tol_gap_rel", "tol_gap_abs", "tol_feas"),
    "OSQP": ("eps_rel", "eps_abs"),
    "SCS": ("eps_rel", "eps_abs"),
    "HIGHS": ("primal_feasibility_tolerance", "dual_feasibility_tolerance", "ipm_optimality_tolerance"),
}
# The protocol's `max_iterations` caps every count the solver keeps: HiGHS chooses its method itself
# (simplex, interior point, active-set QP for a quadratic objective, PDLP) and limits each apart.
_MAX_ITERATIONS = {
    "CLARABEL": ("max_iter",),
    "OSQP": ("max_iter",),
    "SCS": ("max_iters",),
    "HIGHS": ("simplex_iteration_limit", "ipm_iteration_limit", "qp_iteration_limit", "pdlp_iteration_limit"),
}
# CLARABEL factorizes with faer; its threads cost more than they give at these sizes: on
# 2 cores, one thread solved the 5 mm TG-119 prostate in 4.9 s against 7.5-7.6 s with the
# default (all cores), and the goals-only C-shape's first step in 7.2-7.3 s against 9.5-9.6 s
# (docs/performance-history.md, seventh pass). QDLDL, the other method, took 23.6 s on the latter.
_EXTRA = {"OSQP": {"polish": True}, "CLARABEL": {"max_threads": 1}}


# CLARABEL's own tolerances (1e-8) are far below anything clinical; 1e-6 (of doses of order
# 1 Gy per fraction) saved about a quarter of the iterations on the TG-119 C-shape with the
# same objective to 7 digits. A protocol's `tolerance` replaces it.
_DEFAULT_TOLERANCE = {"CLARABEL": 1e-6}


@dataclass(frozen=True)
class Variables:
    """What a program's variables are, in the words its solve's message uses: a program in
    segment weights (`specc.sequence.weights`, A S for A) is the same program to the solvers,
    but its 77 columns are segments, not 77 of the case's beamlets."""

    solution: str  # what the solve finds
    columns: str  # the variables, counted (plural)


FLUENCE = Variables("fluence", "beamlets")
SEGMENT_WEIGHTS = Variables("segment weights", "segments")


@dataclass(frozen=True)
class SolverSettings:
    """A solver and its limits; None means the solver's own default. `variables`: what the
    program solves for, as its messages say it."""

    name: str = DEFAULT_SOLVER
    time_limit_s: float | None = None
    tolerance: float | None = None
    max_iterations: int | None = None
    variables: Variables = FLUENCE

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments for `cvxpy.Problem.solve` with this solver."""
        arguments: dict[str, Any] = dict(_EXTRA.get(self.name, {}))
        if self.time_limit_s is not None and self.name in _TIME_LIMIT:
            arguments[_TIME_LIMIT[self.name]] = float(self.time_limit_s)
        if self.tolerance is not None:
            for option in _TOLERANCE.get(self.name, ()):
                arguments[option] = float(self.tolerance)
        if self.max_iterations is not None:
            for option in _MAX_ITERATIONS.get(self.name, ()):
                arguments[option] = int(self.max_iterations)
        return arguments


def choose_solver(requested: str | None = None, options: SolverOptions | None = None) -> SolverSettings:
    """The settings to solve with: `requested` (command line) > protocol > default rule."""
    options = options or SolverOptions()
    name = (requested or options.name or DEFAULT_SOLVER).upper()
    supported = list(SOLVERS)  # the protocol's names: each of cvxpy's has an entry in every option table
    by_cvxpy = cp.installed_solvers()
    installed = [FIRST_ORDER_SOLVER, *(solver for solver in SOLVERS[1:] if solver in by_cvxpy)]
    if name not in supported:  # another cvxpy solver (SCIPY, ECOS, ...) would get none of the protocol's limits
        raise SolveError(
            f"solver {name!r} is not one specc solves with (the protocol's limits reach only these): "
            f"{', '.join(supported)}; installed solvers: {', '.join(installed)}"
        )
    if name not in installed:
        raise SolveError(f"solver {name!r} is not installed; installed solvers: {', '.join(installed)}")
    # The fast path hands a program it cannot solve or certify to the reference solver, with these limits.
    for solver in route_of(name):
        _refuse_what_it_cannot_take(solver, options, name)
    return SolverSettings(
        name=name,
        time_limit_s=options.time_limit_s,
        tolerance=options.tolerance if options.tolerance is not None else _DEFAULT_TOLERANCE.get(name),
        max_iterations=options.max_iterations,
    )


def _refuse_what_it_cannot_take(solver: str, options: SolverOptions, chosen: str) -> None:
    """A SolveError, before any solve, for a protocol limit `solver` cannot take (`limit_refused`; a protocol that
    names its solver is refused at its line, this is for one chosen with --solver); `chosen`: the solver the run
    asked for, where `solver` would solve in its place."""
    refused = limit_refused(solver, options.tolerance, options.max_iterations, chosen)
    if refused is not None:
        raise SolveError(f"optimization.solver.{refused}")


def reference_settings(settings: SolverSettings) -> SolverSettings:
    """What the reference solver runs with where it solves in the fast path's place.

    The protocol's limits and tolerance, else the reference's default tolerance (1e-6), as
    docs/compiler.md promises. (Until the twelfth pass only the exact refinement had it: the
    fallbacks, the lexicographic steps and the CVaR step of a hard DVH limit among them,
    ran at CLARABEL's own 1e-8.)
    """
    if settings.name != FIRST_ORDER_SOLVER:
        return settings
    tolerance = settings.tolerance if settings.tolerance is not None else _DEFAULT_TOLERANCE.get(REFERENCE_SOLVER)
    return dataclasses.replace(settings, name=REFERENCE_SOLVER, tolerance=tolerance)
