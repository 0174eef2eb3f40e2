"""The fast path: solve a compiled program matrix-free, in the contract's statuses.

Interior-point and ADMM solvers factorize a dense beamlets x beamlets block; on clinical
sizes that alone takes minutes (docs/performance.md). `FirstOrderSolver` instead minimizes
the terms' smooth forms (`specc.terms.smooth`) with L-BFGS-B inside an augmented Lagrangian
(`augmented_lagrangian.py`), touching the influence matrix only through products.

It keeps the operator and its last solution: `solve(settings, terms=...)` after a weight or
limit change rebuilds only the terms' forms and warm-starts from the previous fluence and
multipliers, without recompiling, on the beamlets and dose rows that plan used
(`working_set.py`).

It never guesses. It refuses (and the reference cvxpy solver runs instead, with a note in
the message) when a term has no smooth form, when the cvxpy problem it is handed is not
the compiled one (e.g. a lexicographic step with extra constraints), or when the program
has a hard DVH limit (its CVaR form certifies on some cases only, and more slowly than
CLARABEL on others; measured in docs/performance.md; the exact refinement that follows,
voxelwise bounds, is solved here again: `specc.solve.refine`). It calls a point
optimal only when its float64 KKT certificate holds (`augmented_lagrangian.certify`); an
uncertified point is `optimal_inaccurate`, and `solve_first_order` then hands the program
to the reference solver. When it cannot reach feasibility (the penalty grows without the
violation shrinking), the reference solver decides too, which also gives the elastic
diagnosis of an infeasible program. Only a stop at a limit the protocol set is returned
as it is: `time_limit` or `iteration_limit`, the statuses any solver's limits give, with the
point where it meets the hard limits (labelled NOT CONVERGED downstream), without one where it
does not.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from specc.compile.smooth_context import SmoothFormContext
from specc.protocol.models import FAST_PATH_FALLBACK, SOLVERS
from specc.solve.first_order.assemble import DoseOperator, FastPathRefused, SmoothProgram
from specc.solve.first_order.augmented_lagrangian import AugmentedLagrangianResult, Tolerances
from specc.solve.first_order.working_set import minimize_from_scratch, minimize_on_working_sets
from specc.solve.result import LIMIT_STATUSES, SolveResult, SolveStatus, TermValue
from specc.terms.base import LIMIT_TOLERANCE

if TYPE_CHECKING:
    from specc.compile import CompiledProgram
    from specc.solve.choice import SolverSettings
    from specc.terms.smooth import SmoothTerm

# The fast path's name in a protocol, and what decides when it refuses or cannot reach feasibility: the stock
# default (the protocol stage names both, so that a protocol's limits are checked against each at its line).
FIRST_ORDER_SOLVER = SOLVERS[0]
REFERENCE_SOLVER = FAST_PATH_FALLBACK


class FirstOrderSolver:
    """A compiled program's operator and last solution, for first and warm re-solves."""

    def __init__(self, program: CompiledProgram) -> None:
        if program.influence is None:
            raise FastPathRefused("the compiled program carries no influence matrix")
        self.program = program
        # In the unit-free fluence z = x / s, as a cvxpy solver sees the program (`CompiledProgram.fluence_scale`).
        self.operator = DoseOperator(program.influence, offset=program.offset, scale=program.fluence_scale)
        self.context = SmoothFormContext.of(program)
        self._last: tuple[SmoothProgram, AugmentedLagrangianResult] | None = None

    def take(self, program: CompiledProgram) -> None:
        """Solve `program` from now on: a recompile on this solver's rows (`compile_protocol`'s `reuse`), warm.

        Its terms read the new program's context (its reference fluence: a term on the fluence added, or a
        prescription changed, audit r2 F1/F2), and its variable is the new program's z; the last solution
        carries over as the fluence it is (`solve` converts it between the scales)."""
        if program.influence is not self.program.influence or program.fractions != self.program.fractions:
            raise ValueError("a solver takes a program on its own rows and fractions only")
        if program.fluence_scale != self.operator.scale:
            self.operator = DoseOperator(program.influence, offset=program.offset, scale=program.fluence_scale)
        self.program = program
        self.context = SmoothFormContext.of(program)

    @property
    def last_run(self) -> AugmentedLagrangianResult | None:
        """The last solve's run (rounds, working sets, certificate); None before the first."""
        return None if self._last is None else self._last[1]

    def smooth_program(self, terms: Sequence[SmoothTerm] | None = None) -> SmoothProgram:
        chosen = [compiled.term for compiled in self.program.terms] if terms is None else terms
        return SmoothProgram(self.operator, self.context, chosen)

    def solve(
        self, settings: SolverSettings, terms: Sequence[SmoothTerm] | None = None, start: np.ndarray | None = None
    ) -> SolveResult:
        """Solve the program, or the same structures with changed `terms`, warm when possible.

        `start`: a fluence to start from instead of the last solution (e.g. the plan of a
        sampled program of the same protocol); the multipliers then start cold. A warm solve
        runs on working sets of the previous plan's beamlets and dose rows (`working_set.py`)
        and is certified on the whole program like any other.
        """
        started = time.perf_counter()
        smooth = self.smooth_program(terms)
        tolerances = Tolerances(
            feasibility=min(settings.tolerance, Tolerances.feasibility) if settings.tolerance else Tolerances.feasibility,
            time_limit_s=settings.time_limit_s,
            max_iterations=settings.max_iterations or Tolerances.max_iterations,
        )
        multipliers = penalty = None
        if start is not None and start.any():
            # A plan to start from (of the sampled program, for a finish on every voxel): its working
            # sets, multipliers from scratch (multi-target 5 mm, sampled solve and finish: 6.9 -> 6.0 s).
            result = minimize_on_working_sets(smooth, smooth.start(start), tolerances, None, None)
        elif self._last is None or start is not None:
            result = minimize_from_scratch(smooth, smooth.start(np.zeros(smooth.n_beamlets)), tolerances)
        else:
            previous, result = self._last
            z = smooth.start(previous.fluence(result.z))
            if [c.multipliers for c in previous.constraints] == [c.multipliers for c in smooth.constraints]:
                # The multipliers carry over; the penalty restarts where the last solve started:
                # its final (largest) value only makes the first round ill-conditioned (10 mm
                # test cases, weight x1.5 and x4: 5,980 -> 5,150 warm iterations in all;
                # docs/performance-history.md, ninth pass).
                multipliers, penalty = result.multipliers, result.initial_penalty
            result = minimize_on_working_sets(smooth, z, tolerances, multipliers, penalty)
        self._last = (smooth, result)
        used_terms = [t.term for t in self.program.terms] if terms is None else list(terms)
        return self._result(smooth, result, used_terms, settings, time.perf_counter() - started)

    def _result(
        self,
        smooth: SmoothProgram,
        result: AugmentedLagrangianResult,
        terms: Sequence[SmoothTerm],
        settings: SolverSettings,
        seconds: float,
    ) -> SolveResult:
        hard_violation = max((float(r.max(initial=0.0)) for r in _hard_residuals(smooth, result.z)), default=0.0)
        status: SolveStatus
        holds = hard_violation <= LIMIT_TOLERANCE
        if result.outcome == "converged":
            status = "optimal"
        elif result.outcome in LIMIT_STATUSES:
            status = result.outcome  # as for any solver; with the point where it meets the hard limits
        elif result.outcome == "uncertified" and holds:
            status = "optimal_inaccurate"
        else:
            status = "solver_error"
        fluence = smooth.fluence(result.z) if status != "solver_error" and holds else None
        # Each term's own value at the plan, as a cvxpy solver's log gives it, and the objective as their sum
        # (the augmented Lagrangian's objective reads auxiliaries held within a tolerance: `term_values`).
        values: list[float | None] = [None] * len(smooth.forms)
        if fluence is not None:
            dose = smooth.plan_dose(result.z)
            self.program.fluence.value = fluence
            self.program.dose.value = dose
            values = smooth.term_values(result.z, dose)
        term_values = [
            TermValue(
                label=term.label(),
                kind=term.kind,
                source=str(term.source) if term.source is not None else "(no source line)",
                hard=bool(term.is_constraint),
                objective_contribution=value,
            )
            for term, value in zip(terms, values)
        ]
        return SolveResult(
            status=status,
            converged=status == "optimal",
            solver=FIRST_ORDER_SOLVER,
            message=_message(
                status, result, hard_violation, settings, hard=any(c.constraint.hard for c in smooth.constraints)
            ),
            fluence=fluence,
            objective=float(sum(value for value in values if value is not None)) if fluence is not None else None,
            iterations=result.iterations,
            solve_time_s=seconds,
            terms=term_values,
        )


def _hard_residuals(smooth: SmoothProgram, z: np.ndarray) -> list[np.ndarray]:
    residuals = smooth.evaluate(z).residuals
    return [residuals[c.multipliers] for c in smooth.constraints if c.constraint.hard]


def _message(
    status: SolveStatus, result: AugmentedLagrangianResult, violation: float, settings: SolverSettings, hard: bool
) -> str:
    """The solve's message. `hard`: whether the program has hard limits; without them no clause speaks of
    them (a plan of quadratic terms read 'hard limits met within 0% of their dose', audit b4 F5)."""
    after = f"after {result.iterations} L-BFGS-B iterations"
    if result.multipliers.size:  # rounds only mean something where there are constraints
        after += f" in {result.outer_iterations} augmented-Lagrangian rounds"
    if result.working_sets:
        columns = settings.variables.columns  # beamlets, or the segments of a segment-weight program
        sizes = ", then ".join(f"{count} {columns} x {rows} dose rows" for count, rows in result.working_sets)
        after += f" (ending on working sets of {sizes})"
    certificate = f" (KKT check in float64: {result.certificate.describe()})" if result.certificate else ""
    held = f"; hard limits {'met' if status == 'optimal' else 'hold'} {_within(violation)}" if hard else ""
    if status == "optimal":
        return f"{FIRST_ORDER_SOLVER} found the optimal {settings.variables.solution} {after}{certificate}{held}."
    if status == "optimal_inaccurate":
        return (
            f"{FIRST_ORDER_SOLVER} stopped {after} at a point it could not certify optimal{certificate}{held}. "
            f"The plan is labelled NOT CONVERGED; try --solver {REFERENCE_SOLVER}."
        )
    if status in LIMIT_STATUSES:
        if result.outcome == "time_limit":
            limit, option = f"time limit of {settings.time_limit_s:g} s", "time_limit_s"
        else:
            limit, option = f"limit of {settings.max_iterations or result.iterations} iterations", "max_iterations"
        if violation <= LIMIT_TOLERANCE:
            return (
                f"{FIRST_ORDER_SOLVER} stopped at its {limit} {after} before reaching its tolerances{held}. The plan "
                f"is shown but labelled NOT CONVERGED; raise `{option}` under `optimization.solver`."
            )
        return (
            f"{FIRST_ORDER_SOLVER} stopped at its {limit} {after} with hard limits still violated by up to "
            f"{_percent(violation)} of their dose, so there is no plan; raise `{option}` under "
            "`optimization.solver`."
        )
    if violation > LIMIT_TOLERANCE:
        return f"{FIRST_ORDER_SOLVER} could not meet the hard limits {after} (violation {_percent(violation)} of their dose)."
    # Its rounds stopped making progress (`augmented_lagrangian`: "stalled") where the hard limits hold: the
    # multipliers, or the limits of a term's exact rewriting, did not settle. 'Could not meet the hard
    # limits (violation 0%)' read as a contradiction (audit b4 F5).
    return f"{FIRST_ORDER_SOLVER} stalled {after}: it could not certify a point optimal{certificate}{held}."


def _within(violation: float) -> str:
    """How closely the hard limits hold: 'exactly', or within the violation, never rounded to 0%."""
    return "exactly" if violation <= 0 else f"within {_percent(violation)} of their dose"


def _percent(fraction: float) -> str:
    """A fraction as a percentage with 3 significant digits: a violation of 4e-7 is 4e-05%, never 0%."""
    return f"{100 * fraction:.3g}%"


@dataclass
class WarmStart:
    """Where the next fast-path solve of a changed program starts (`specc plan --watch`).

    `solver`: the one that made the last plan; it re-solves a program on the same rows (and
    the same fractions) warm, keeping its multipliers, on that program's terms, reference
    fluence and scale (`FirstOrderSolver.take`): the plan a fresh solve of it gives.
    `fluence`: the last plan, the start for a program on other rows. `solve_first_order`
    leaves the solver it used here, for the change after.
    """

    fluence: np.ndarray | None = None
    solver: FirstOrderSolver | None = None

    def solve(self, program: CompiledProgram, settings: SolverSettings) -> tuple[FirstOrderSolver, SolveResult]:
        """Solve `program` from here (from zero when empty); the solver used, and its result."""
        last = self.solver
        if last is not None and last.program.influence is program.influence and last.program.fractions == program.fractions:
            last.take(program)
            solver, result = last, last.solve(settings)
        else:
            solver = FirstOrderSolver(program)
            result = solver.solve(settings, start=self.fluence)
        self.solver = solver
        return solver, result


def _stopped_by_user_limit(solver: FirstOrderSolver, settings: SolverSettings) -> bool:
    """A stop at a limit the protocol set is the user's choice: no reference solve after it."""
    user_limit = settings.time_limit_s is not None or settings.max_iterations is not None
    return user_limit and solver.last_run is not None and solver.last_run.outcome in LIMIT_STATUSES


def attempt(
    solve: Callable[[], tuple[FirstOrderSolver, SolveResult]], settings: SolverSettings
) -> tuple[SolveResult | None, str]:
    """A fast-path solve's result where it stands (certified, or stopped at a limit the protocol
    set), else None and why not: the reference solver then runs instead (`handed_over`)."""
    try:
        solver, result = solve()
    except FastPathRefused as error:
        return None, str(error)
    if result.status == "optimal" or _stopped_by_user_limit(solver, settings):
        return result, ""
    return None, result.message


def handed_over(what: str, reason: str, result: SolveResult) -> SolveResult:
    """The reference solver's `result` where it ran on `what` instead, its message saying so: first where it
    made a plan; after its own outcome where it made none, so that an infeasible program reads as the clinical
    conflict it is ("the hard limits cannot all be met at once: ..."), not as a solver that failed (audit c3
    F5: a cohort page led an infeasible case with "SPECC-LBFGS did not solve this program")."""
    note = f"{FIRST_ORDER_SOLVER} did not solve {what} ({reason}), so {REFERENCE_SOLVER} ran instead"
    message = f"{note}: {result.message}" if result.usable else f"{result.message} ({note})"
    return dataclasses.replace(result, message=message)


def solve_first_order(program: CompiledProgram, settings: SolverSettings, warm: WarmStart | None = None) -> SolveResult:
    """The fast path for `solve_program`; the reference solver runs where it refuses or fails.

    `warm`: start from a previous plan (`WarmStart`) instead of from zero.
    """
    from specc.solve.choice import reference_settings  # imported here to keep the modules acyclic
    from specc.solve.run import solve_program  # the reference path

    reference = reference_settings(settings)
    reason = None
    hard_dvh = [term.label for term in program.hard_dvh_terms()]
    if not program.problem_is_compiled:
        reason = "the problem carries constraints or objectives beyond the compiled terms"
    elif hard_dvh:
        # Measured (docs/performance-history.md, twelfth pass): certified on the 5 mm prostate in 3.7 s
        # and head-neck in 37.8 s (CLARABEL 6.9 / 88.6 s), but the goals-only multi-target ran
        # to its 20,000-iteration limit uncertified (55 s) before CLARABEL's 13 s: an attempt
        # that fails costs its time first, and nothing yet tells early that it will.
        reason = f"hard DVH (CVaR) limits are left to the reference solver: {'; '.join(hard_dvh)}"
    else:
        result, reason = attempt(lambda: (WarmStart() if warm is None else warm).solve(program, settings), settings)
        if result is not None:
            return result
    if warm is not None:
        warm.solver = None  # the plan is the reference solver's: the next change starts from its fluence
    return handed_over("this program", reason, solve_program(program, reference))
