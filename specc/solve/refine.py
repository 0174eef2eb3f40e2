"""Exact DVH limits: a second solve after the conditional value-at-risk one.

A hard `dvh` term compiles to a CVaR bound (`specc.terms.dvh`), which is convex but
conservative: it limits the mean dose of the hottest v, so the plan usually keeps far less
than v above the dose. Once the CVaR solve has said *which* voxels may be hot, the exact
limit is linear, as in constrained hierarchical planners:

* upper ("at most v above D"): the hottest entries of the CVaR plan whose volumes add up
  to at most v may exceed D; every other entry is bounded, d_i <= D;
* lower ("at least v at D or more"): the hottest entries whose volumes first reach v must
  receive d_i >= D; the others are free. After the entries the CVaR plan leaves below D,
  the entries that an upper limit (of any priority) caps below D, an organ where it
  overlaps the target, are freed first (`bounded_entries`).

The CVaR plan meets these bounds (it met the exact limit, which the CVaR bound implies),
so the second solve, of the same objective with the CVaR bounds replaced, is feasible and
can only improve the objective, while its plan meets every exact DVH limit. A solver can
still disappoint (stop inaccurate, or a hair above the CVaR objective): the refined plan
replaces the CVaR plan only when it is better, and the log says which plan was kept and
gives each limit's exact value in both.

Soft DVH terms are not refined: their penalty stays on the CVaR (docs/optimizer.md).

The CVaR plan comes from the reference solver (the fast path leaves hard CVaR limits to it),
but the exact bounds are voxelwise hard limits, which the fast path certifies: a one-step
plan is refined there when it was chosen (`_solve_exact`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cvxpy as cp
import numpy as np

from specc.protocol.judgement import judged_text
from specc.solve.choice import reference_settings
from specc.solve.first_order.solver import FIRST_ORDER_SOLVER, FirstOrderSolver, attempt, handed_over
from specc.solve.priorities import ABSOLUTE_SLIP, RefinedStep, StepProgress, step_label, step_row
from specc.solve.result import SolveResult
from specc.solve.run import solve_program
from specc.terms.dvh import ExactDvhLimit

if TYPE_CHECKING:
    from specc.compile import CompiledProgram, CompiledTerm
    from specc.solve.choice import SolverSettings
    from specc.terms import DVH

# Volumes are compared as decimal fractions: 95% of 20 entries must be 19, not 20.
_COUNT_SLACK = 1e-9
# The exact bounds sit this fraction of their dose inside the limit (`ExactDvhLimit.inside`),
# and the fast path meets them within it: a plan then holds every exact limit counted
# strictly. A feasibility of 1e-4 (the fast path's default then) cost 0.2% of the refined objective on
# the 10 mm lower-limit test (1e-5: 0.06%) and leaves the prostate and head-neck refinements
# as fast (docs/performance-history.md, twelfth pass).
EXACT_FEASIBILITY = 1e-5


@dataclass(frozen=True)
class ExactDvh:
    """One hard DVH limit measured exactly on the program's dose entries (total dose)."""

    label: str
    source: str
    value: float  # volume above the dose (in the limit's volume unit), or D_v in Gy
    unit: str
    holds: bool
    limit: float  # what `value` is held to, in `unit`: at most the volume (upper), at least the dose (lower)
    upper: bool

    def shown(self) -> str:
        """The value as the goals' values are shown (`judged_text`, docs/report.md): with two decimals,
        D99% 25.025002 Gy read "25.02 Gy ... met" against ">= 25.025 Gy" (audit b4 F1)."""
        return f"{judged_text(self.value, '<=' if self.upper else '>=', self.limit, None)} {self.unit}"


def _share(term: DVH, program: CompiledProgram) -> float:
    """The limit's volume as a share of its structure."""
    if term.volume.unit == "%":
        return term.volume.value / 100.0
    voxels = program.selection.structures[term.structure].n_voxels
    return term.volume.value / (voxels * program.voxel_volume_cc)


def _entries(program: CompiledProgram, structure: str) -> tuple[np.ndarray, np.ndarray]:
    entries = program.selection.structures[structure]
    return entries.entries, entries.weights


def measure_exact(program: CompiledProgram, term: CompiledTerm, dose_per_fraction: np.ndarray) -> ExactDvh:
    """The exact DVH value of a hard `dvh` term on the program's dose entries."""
    limit: DVH = term.term  # type: ignore[assignment]
    entries, weights = _entries(program, limit.structure)
    dose = dose_per_fraction[entries] * program.fractions
    share = _share(limit, program)
    tolerance = 1e-3 * limit.dose.gy  # LIMIT_TOLERANCE of the terms, on dose
    if limit.bound == "upper":
        above = float(weights[dose > limit.dose.gy].sum())
        tolerated = float(weights[dose > limit.dose.gy + tolerance].sum())
        value = 100.0 * above if limit.volume.unit == "%" else above * _structure_cc(program, limit)
        holds = tolerated <= share + _COUNT_SLACK
        return ExactDvh(term.label, term.source, value, limit.volume.unit, holds, limit.volume.value, upper=True)
    order = np.argsort(-dose, kind="stable")
    reached = np.cumsum(weights[order])
    position = int(np.searchsorted(reached, min(share, 1.0) - _COUNT_SLACK))
    covered = float(dose[order][min(position, len(order) - 1)]) if share <= 1.0 + _COUNT_SLACK else math.nan
    holds = covered >= limit.dose.gy - tolerance
    return ExactDvh(term.label, term.source, covered, "Gy", holds, limit.dose.gy, upper=False)


def _structure_cc(program: CompiledProgram, limit: DVH) -> float:
    return program.selection.structures[limit.structure].n_voxels * program.voxel_volume_cc


def capped_entries(program: CompiledProgram, below_gy: float) -> np.ndarray:
    """Dose entries that some limit caps below `below_gy` (total): an upper `dvh` or `max_dose` term.

    Hard or soft, whatever its priority: such an entry cannot both reach `below_gy` and meet
    the cap, so a lower limit at `below_gy` should leave it to the cap when it may.
    """
    capped = [
        program.selection.structures[term.term.structure].entries  # type: ignore[attr-defined]
        for term in program.terms
        if (term.kind == "max_dose" or (term.kind == "dvh" and term.term.bound == "upper"))  # type: ignore[attr-defined]
        and term.term.dose.gy < below_gy  # type: ignore[attr-defined]
        and term.term.structure in program.selection.structures  # type: ignore[attr-defined]
    ]
    return np.unique(np.concatenate(capped)) if capped else np.empty(0, dtype=np.int64)


def exact_bounds(program: CompiledProgram, term: CompiledTerm, dose_per_fraction: np.ndarray) -> list[cp.Constraint]:
    """The linear bounds that replace the CVaR bound of `term`, given the CVaR plan's dose.

    An upper limit frees the hottest entries of the CVaR plan. A lower limit frees first the
    entries that another limit caps below its dose (an organ's limit where it overlaps the
    target: they cannot be covered and spared at once), then the coldest of the CVaR plan:
    the CVaR plan's order alone would spend the cold allowance on whichever entries the CVaR
    bound happened to leave coldest, and the organ's limit would then find none to use.
    """
    exact, bounded = exact_limit(program, term, dose_per_fraction)
    level = exact.bound.gy / program.fractions
    if exact.limit.bound == "upper":
        return [program.dose[bounded] <= level] if len(bounded) else []
    return [program.dose[bounded] >= level]


def exact_limit(
    program: CompiledProgram, term: CompiledTerm, dose_per_fraction: np.ndarray
) -> tuple[ExactDvhLimit, np.ndarray]:
    """`term`'s exact form given the CVaR plan's dose, and the dose entries it bounds (`bounded_entries`)."""
    bounded = bounded_entries(program, term, dose_per_fraction)
    entries, _ = _entries(program, term.term.structure)  # type: ignore[attr-defined]
    positions = np.flatnonzero(np.isin(entries, bounded))
    return ExactDvhLimit(term.term, positions, inside=EXACT_FEASIBILITY), bounded  # type: ignore[arg-type]


def bounded_entries(program: CompiledProgram, term: CompiledTerm, dose_per_fraction: np.ndarray) -> np.ndarray:
    """The dose entries (sorted) that the exact form of `term` bounds at its dose (see `exact_bounds`)."""
    limit: DVH = term.term  # type: ignore[assignment]
    entries, weights = _entries(program, limit.structure)
    dose = dose_per_fraction[entries]
    share = _share(limit, program)
    if limit.bound == "upper":
        order = np.argsort(-dose, kind="stable")
        reached = np.cumsum(weights[order])
        return np.sort(entries[order[reached > share + _COUNT_SLACK]])
    # Freed first: entries the CVaR plan leaves below the dose (so that it stays feasible),
    # then the capped ones, then the coldest; bounded are the others, hottest first.
    below = dose < limit.dose.gy / program.fractions
    capped = np.isin(entries, capped_entries(program, limit.dose.gy))
    order = np.lexsort((-dose, capped, below))
    reached = np.cumsum(weights[order])
    needed = int(np.searchsorted(reached, min(share, 1.0) - _COUNT_SLACK)) + 1
    return np.sort(entries[order[:needed]])


def refine_dvh_limits(
    program: CompiledProgram, problem: cp.Problem | RefinedStep | None, result: SolveResult, settings: SolverSettings,
    progress: StepProgress | None = None,
) -> SolveResult:
    """Re-solve `problem` with exact DVH limits (module docstring): None (the compiled problem) or a
    problem, whose objective `result` reached; or a priority step (`LexicographicProblem.refined_step`), the last whose
    goals the CVaR plan did not all meet, the others kept.

    `result` is the CVaR plan. Returns it unchanged when the program has no hard DVH limit or no
    usable plan. Otherwise the log (`steps`) gains the refinement and each limit's exact value,
    and the refined plan replaces the CVaR plan only when it is better: solved at least as
    accurately, the refined objective lower, every exact limit held (its `objective` is then the
    refined one). The refinement is skipped when that objective (for priority steps: every
    step's) already reached 0: nothing is left to gain. `progress`: told when the refinement,
    the last step, starts and ends.

    A refined plan names both solvers where they differ (`refined_by`): the CVaR plan, whose
    solve is most of the time and memory (CLARABEL: 243 of 262 s on the 5 mm head-neck), and the
    refinement (the fast path: 18 s). Until the audit a5 F1 fix it named the refinement's alone,
    and the terminal, report, plan.json and cohort said "SPECC-LBFGS" for that plan.
    """
    terms = program.hard_dvh_terms()
    if not terms or not result.usable:
        return result
    # From the result's fluence, not the cvxpy variable: a fast-path solve leaves that unset (or stale).
    cvar_dose = program.dose_per_fraction(result.fluence)
    before = [measure_exact(program, term, cvar_dose) for term in terms]
    steps = list(result.steps)
    row = f"{len(result.steps) + 1}. exact DVH refinement"
    step = problem if isinstance(problem, RefinedStep) else None
    cvar = result if step is None else dataclasses.replace(result, objective=step.reached)
    if step.every_step_met if step is not None else cvar.objective is not None and cvar.objective <= ABSOLUTE_SLIP:
        said = "every step's objective is" if step is not None else "the objective is"
        steps.append(step_row(step=row, status="skipped", reached=f"{said} already 0: CVaR plan kept"))
        return dataclasses.replace(result, steps=steps + _exact_rows(before, before))
    label = step_label(len(result.steps) + 1, len(result.steps) + 1, "exact DVH refinement")
    if progress is not None:
        progress(label, None)
    # Wall time, as the priority steps are timed: the solver's own time leaves out the exact
    # bounds' set-up and a hand-over to the reference solver.
    started = time.perf_counter()
    refined = _solve_exact(program, step.problem if step is not None else problem, result.fluence, cvar_dose, settings)
    seconds = time.perf_counter() - started
    if progress is not None:
        progress(label, seconds)
    after = [measure_exact(program, term, program.dose_per_fraction(refined.fluence)) for term in terms] if (
        refined.usable
    ) else []
    worse = _why_not_better(cvar, refined, after)
    steps.append(
        step_row(
            step=row,
            minimized=f"{step.name if step is not None else 'the objective'}, with each CVaR bound replaced by exact "
                      "voxel bounds",
            reached=f"{refined.objective:.6g} (CVaR plan: {cvar.objective:.6g})"
            if refined.usable and worse is None
            else f"CVaR plan kept: {worse} ({refined.solver})",
            status=refined.status,
            time=f"{seconds:.2f} s",
        )
    )
    if worse is not None:  # the message names the refinement's solver too: its time is in the log (audit b4 F8)
        return dataclasses.replace(
            result, steps=steps + _exact_rows(before, before), solve_time_s=result.solve_time_s + refined.solve_time_s,
            message=f"{result.message} Exact DVH refinement by {refined.solver} ({seconds:.2f} s), CVaR plan kept: "
            f"{worse.rstrip('.')}.",
        )
    return dataclasses.replace(
        refined,
        solver=refined_by(result.solver, refined.solver),
        message=f"{result.message} Exact DVH refinement: {refined.message}",
        steps=steps + _exact_rows(before, after),
        solve_time_s=result.solve_time_s + refined.solve_time_s,
    )


def refined_by(cvar_solver: str, refinement_solver: str) -> str:
    """The solver a refined plan names: the CVaR plan's, and the refinement's where it is another."""
    return cvar_solver if refinement_solver == cvar_solver else f"{cvar_solver}, refined by {refinement_solver}"


def _solve_exact(
    program: CompiledProgram, problem: cp.Problem | None, cvar_fluence: np.ndarray, cvar_dose: np.ndarray,
    settings: SolverSettings,
) -> SolveResult:
    """`problem` (None: the compiled one) with its CVaR bounds replaced by exact ones, solved.

    On the fast path when it was chosen and the problem is the compiled one: the exact bounds
    are voxelwise hard limits, which it certifies (5 mm TG-119 head-neck: 6.5 s from the CVaR
    plan, CLARABEL 81.7 s, objectives within 3e-5; docs/performance-history.md, twelfth pass). A
    lexicographic step's problem (earlier steps kept within their slip) goes to the reference
    solver (on the fast path it took twice as long: the kept steps are CVaR bounds again), and
    so does a fast solve that does not certify, with a note.
    """
    reason = None
    if settings.name == FIRST_ORDER_SOLVER and (problem is None or problem is program.problem):
        refined, reason = _solve_exact_fast(program, cvar_fluence, cvar_dose, settings)
        if refined is not None:
            return refined
    problem = program.problem if problem is None else problem
    terms = program.hard_dvh_terms()
    replaced = {id(constraint) for term in terms for constraint in term.constraints}
    constraints = [c for c in problem.constraints if id(c) not in replaced]
    for term in terms:
        constraints.extend(exact_bounds(program, term, cvar_dose))
    refined = solve_program(program.with_problem(cp.Problem(problem.objective, constraints)), reference_settings(settings))
    return refined if reason is None else handed_over("the refinement", reason, refined)


def _solve_exact_fast(
    program: CompiledProgram, cvar_fluence: np.ndarray, cvar_dose: np.ndarray, settings: SolverSettings
) -> tuple[SolveResult | None, str]:
    """The compiled terms with each hard DVH limit exact (`ExactDvhLimit`), on the fast path from
    the CVaR plan; None and the reason when it refuses the program or does not certify its point."""
    exact = {id(term): exact_limit(program, term, cvar_dose)[0] for term in program.hard_dvh_terms()}
    chosen = [exact.get(id(term), term.term) for term in program.terms]
    tight = dataclasses.replace(settings, tolerance=min(settings.tolerance or EXACT_FEASIBILITY, EXACT_FEASIBILITY))

    def solve() -> tuple[FirstOrderSolver, SolveResult]:
        solver = FirstOrderSolver(program)
        return solver, solver.solve(tight, terms=chosen, start=cvar_fluence)

    return attempt(solve, settings)


def _why_not_better(cvar: SolveResult, refined: SolveResult, after: list[ExactDvh]) -> str | None:
    """None when the refined plan should replace the CVaR plan, else the reason it does not."""
    if not refined.usable:
        return f"the refinement ended {refined.status}: {refined.message}"
    if cvar.converged and not refined.converged:
        return f"the refinement ended {refined.status}, the CVaR plan optimal"
    if not all(limit.holds for limit in after):
        return "the refined plan breaks an exact limit"
    if cvar.objective is not None and refined.objective is not None and refined.objective > cvar.objective:
        return f"the refined objective {refined.objective:.6g} is above the CVaR plan's"
    return None


def _exact_rows(before: list[ExactDvh], after: list[ExactDvh]) -> list[dict]:
    """One log row per hard DVH limit: its exact value in the plan kept, and in the CVaR plan."""
    return [
        step_row(
            step="exact value",
            minimized=f"{new.label} ({new.source})",
            reached=f"{new.shown()}; CVaR plan: {old.shown()}",
            status="met" if new.holds else "VIOLATED",
        )
        for old, new in zip(before, after)
    ]
