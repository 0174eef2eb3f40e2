"""Lexicographic solving by goal priority (ECHO-like), one problem per step.

A clinic ranks goals; weights only approximate a ranking. Here the compiled terms are
grouped into steps solved in order, each step minimizing its own terms while every earlier
step's objective is kept within a slip of the value it reached:

1. the penalties of priority-1 goals beyond their threshold (their hard part, at the
   acceptable variation, is a constraint throughout) -- "must" goals first;
2. everything that is not a goal penalty: target coverage, hot spots, fall-off, and any
   hand-written term;
3. the penalties of priority-2 goals, then priority 3, and so on.

Hard terms are constraints in every step. A step with no term is skipped. A goal step
(priority p) is kept within a relative slip, `optimization.solver.slip_percent` (default
`DEFAULT_SLIP_PERCENT`): after it reached f_k*, later steps require
f_k <= f_k* (1 + slip) + `ABSOLUTE_SLIP` (the absolute part only absorbs solver tolerance
when f_k* is 0, a goal fully met).

The coverage step is kept within a slip in dose instead, `coverage_slip_gy` (default
`DEFAULT_COVERAGE_SLIP_GY`): its penalties are weighted mean squares of a dose excess (Gy^2
per fraction), so sqrt(f / W), with W the sum of the step's weights, is their RMS excess in
Gy per fraction, and later steps may raise it by the slip (per fraction):
f <= W (sqrt(f* / W) + slip_gy / fractions)^2, or the relative bound where that is looser.
Why: a few percent of a squared penalty is a fraction of a percent of a dose. Kept that
tightly, coverage of every target voxel left a priority-2 organ goal no room at all (TG-119
head-neck, parotid D50% 26.6 Gy for a goal of 20 Gy) while the target goals that coverage
serves hold anyway, as hard limits or as goal steps of their own. A hand-written unranked
term in other units (smoothness) is counted the same way: the bound is then no dose, but it
is never tighter than the relative one.

A step that reached 0 (every goal it penalizes met) is kept by its terms' own limits instead
(`BuiltTerm.met`: a soft DVH limit's CVaR at most its dose, an overdose penalty's voxels at
most its level), exactly what `f_k <= 0` means, written as the limits themselves (linear for
dose and CVaR limits; a mean EQD2's is its quadratic) rather than a bound on a sum of squares, a
second-order cone per dose entry. Measured on a goals-only
head-and-neck at 5 mm (two priority-1 goals with an acceptable variation, both met): the
coverage step after them took CLARABEL 188 s under the bound and 91 s under the limits, its
objective 0.6871 against 0.6876 (the bound's 1e-6 lets the limits slip by 1e-4 Gy per
fraction). Should the limits be infeasible after all (a step whose true optimum is a hair
above 0), the step is solved again under the bounds.

Each step is a problem of its own: `minimize f_k` subject to the hard terms and the bounds
`f_j <= bound_j` of the steps before it. (Until the thirteenth pass the steps shared one
parameterized problem, `minimize sum_k select_k f_k` subject to `kept_k f_k <= bound_k`, which
cvxpy canonicalizes once; but then every solve carried every step's objective as a
constraint, and quadratic terms in a constraint are second-order cones, one per dose entry:
5,881 cones in the first step of the goals-only TG-119 C-shape at 5 mm, which CLARABEL solved
in 22.3 s and 50 iterations against 8.5 s and 26 iterations for the step alone, the same
optimum within 2e-7. Canonicalizing a step costs 0.13-0.16 s there; docs/performance.md.)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cvxpy as cp
import numpy as np

from specc.solve.first_order.solver import FIRST_ORDER_SOLVER
from specc.solve.result import SolveResult
from specc.solve.run import solve_program

if TYPE_CHECKING:
    from specc.compile import CompiledProgram
    from specc.solve.choice import SolverSettings
    from specc.solve.first_order.solver import WarmStart

DEFAULT_SLIP_PERCENT = 3.0
# How much the coverage step's RMS dose excess may rise (Gy, total dose) while lower
# priorities are optimized: a round clinical tolerance, that of the TG-119 comparisons.
DEFAULT_COVERAGE_SLIP_GY = 1.0
# Absorbs the solver's tolerance when an earlier step reached 0 (its goals all met):
# objectives are in Gy^2 per fraction, and CLARABEL's default tolerances are about 1e-8.
ABSOLUTE_SLIP = 1e-6
# A step that reached at most this has met every goal it penalizes (solver tolerance apart):
# later steps keep it by its terms' limits (module docstring).
REACHED_ZERO = 0.1 * ABSOLUTE_SLIP

COVERAGE_STEP = "coverage, hot spots, fall-off and other terms"

# Told (label, None) when a step of a solve in several starts and (label, seconds) when it ends, the
# label "step k/n: what it minimizes": the shape of the pipeline's stage progress, so that a goals-only
# plan whose steps take minutes is not silent between "compile" and "done solve" (audit a1 F11).
StepProgress = Callable[[str, float | None], None]


def step_label(number: int, total: int, name: str) -> str:
    """How progress names step `number` of `total` (1-based)."""
    return f"step {number}/{total}: {name}"


@dataclass(frozen=True)
class Step:
    """The terms one lexicographic step minimizes (indices into `CompiledProgram.terms`)."""

    name: str
    terms: tuple[int, ...]
    kept_in_dose: bool = False  # the coverage step: kept within a slip in Gy (module docstring)


def plan_steps(program: CompiledProgram, goal_priorities: Mapping[int, int]) -> list[Step]:
    """The steps for `program`; `goal_priorities` maps a term index to its goal's priority.

    Terms absent from `goal_priorities` (not goal penalties) form the coverage step.
    """
    return group_steps([index for index, term in enumerate(program.terms) if term.objective is not None], goal_priorities)


def group_steps(with_objective: Sequence[int], goal_priorities: Mapping[int, int]) -> list[Step]:
    """The steps for the terms `with_objective` (indices of the terms that have one)."""
    by_priority: dict[int, list[int]] = {}
    coverage: list[int] = []
    for index in with_objective:
        if index in goal_priorities:
            by_priority.setdefault(goal_priorities[index], []).append(index)
        else:
            coverage.append(index)
    steps: list[Step] = []
    if 1 in by_priority:
        steps.append(Step("priority 1 penalties (goals beyond their variation)", tuple(by_priority.pop(1))))
    if coverage:
        steps.append(Step(COVERAGE_STEP, tuple(coverage), kept_in_dose=True))
    for priority in sorted(by_priority):
        steps.append(Step(f"priority {priority} penalties", tuple(by_priority[priority])))
    return steps


class LexicographicProblem:
    """The steps' objectives and the bounds kept so far; each step is solved as a problem of its own."""

    def __init__(self, program: CompiledProgram, steps: list[Step]) -> None:
        self.program = program
        self.steps = steps
        self.objectives = [cp.sum([program.terms[i].objective for i in step.terms]) for step in steps]
        self.bounds: dict[int, float] = {}  # step index -> the bound later steps keep on its objective
        self.reached: dict[int, float] = {}  # step index -> the objective it reached (of a kept step: its last plan's)
        self.held: set[int] = set()  # steps that reached 0, kept by their terms' limits instead of their bound

    def step_problem(self, index: int, bounds: Mapping[int, float] | None = None) -> cp.Problem:
        """Step `index`'s objective under the hard terms and what is kept of the steps before it: their
        terms' limits for a held step, else their bound (`bounds` instead of those kept so far: a
        problem of the same form, to ask what it needs)."""
        chosen = self.bounds if bounds is None else bounds
        kept: list[cp.Constraint] = []
        for k, bound in chosen.items():
            if k >= index:
                continue
            if k in self.held and bounds is None:
                kept += [c for i in self.steps[k].terms for c in self.program.terms[i].met]
            else:
                kept.append(self.objectives[k] <= bound)
        return cp.Problem(cp.Minimize(self.objectives[index]), [*self.program.problem.constraints, *kept])

    def solve_step(self, index: int, settings: SolverSettings) -> tuple[SolveResult, SolveResult | None]:
        """Step `index` solved, and the failed first solve when its held steps' limits left it no point (or
        none the solver could reach: limits met only on a boundary, without an interior, can fail it), after
        which the step was solved again under the bounds."""
        result = solve_program(self.program.with_problem(self.step_problem(index)), settings)
        held = {k for k in self.held if k < index}
        if result.status not in ("infeasible", "solver_error") or not held:
            return result, None
        self.held -= held
        return solve_program(self.program.with_problem(self.step_problem(index)), settings), result

    def keep(self, index: int, bound: float, reached: float | None = None) -> None:
        """Bound step `index`'s objective at `bound` (`kept_bound`) for the steps after it; held by its
        terms' limits instead when it `reached` 0 and each of its terms has them."""
        self.bounds[index] = bound
        if reached is not None:
            self.reached[index] = reached
        terms = [self.program.terms[i] for i in self.steps[index].terms]
        if reached is not None and reached <= REACHED_ZERO and all(term.met for term in terms):
            self.held.add(index)

    def refined_step(self) -> RefinedStep:
        """What the exact DVH refinement minimizes: the last step whose objective did not reach 0 (every step
        solved; when all reached 0, the last, which the refinement then skips: nothing is left to gain).

        Its problem keeps the steps before it as the step itself did, and the steps after it, which all
        reached 0, at 0 (their terms' limits, or their bound): the refinement then improves the last goals
        still penalized without giving up a goal of a later step that was met. Until audit s19/b2 F2 the
        refinement minimized the last step's objective only, and was skipped when that one was 0: a met
        priority-3 goal then left the priority-2 goals where the conservative CVaR plan had put them (the
        prostate's rectum D10% 75.87 Gy for a goal of 40 Gy, which the refinement meets without it).

        Without the step's own bound: a bound on the objective being minimized can only make the problem
        infeasible, never move its optimum, and the refinement's optimum is no worse than the CVaR plan it
        starts from, which met that bound. Kept, it cost the goals-only C-shape's refinement its coverage
        terms as cones (9.3 against 7.5 s).
        """
        open_steps = [k for k in range(len(self.steps)) if self.reached[k] > ABSOLUTE_SLIP]
        index = open_steps[-1] if open_steps else len(self.steps) - 1
        problem = self.step_problem(index)
        later: list[cp.Constraint] = []
        for k in range(index + 1, len(self.steps)):
            if k in self.held:
                later += [c for i in self.steps[k].terms for c in self.program.terms[i].met]
            else:
                later.append(self.objectives[k] <= self.bounds[k])
        name = f"step {index + 1}'s objective ({self.steps[index].name})"
        if index < len(self.steps) - 1:
            name += ", the steps after it kept at 0"
        # Its value at the CVaR plan, the last step's solution (the variables hold it): not the value it reached
        # in its own solve, which the later steps may raise up to its bound (review s19/r4 F1).
        at_plan = float(self.objectives[index].value)
        return RefinedStep(
            cp.Problem(problem.objective, [*problem.constraints, *later]), at_plan, name, not open_steps
        )


@dataclass(frozen=True)
class RefinedStep:
    """The objective the exact DVH refinement minimizes (`LexicographicProblem.refined_step`)."""

    problem: cp.Problem  # that objective under the hard terms and what is kept of the other steps
    reached: float  # its value at the CVaR plan (the last step's solution), what the refinement must improve on
    name: str  # how the log names it ("step 3's objective (priority 2 penalties), ...")
    every_step_met: bool  # every step reached 0: nothing left to refine


@dataclass(frozen=True)
class SolvedSteps:
    """A plan's priority steps: what each step's optimum depended on, the bound it left, its log row."""

    influence: object  # the program's matrix: the same object means the same dose rows
    keys: tuple[str, ...]  # `_step_keys`
    bounds: tuple[float, ...]
    reached: tuple[float, ...]
    held: frozenset[int]  # the steps kept by their terms' limits (`LexicographicProblem.held`)
    records: tuple[dict, ...]


class StepMemory:
    """The last plan's priority steps, kept by a session that plans the same case again (`specc plan --watch`).

    A step's optimum depends only on the rows, the hard terms, the solver's settings, the
    prescription's fractions and reference fluence, the slips, its own terms and the bounds of the steps before it.
    While all of those are unchanged, so is the optimum and the bound it leaves: a re-plan
    keeps the leading steps that are unchanged and solves from the first that may not be (a
    changed priority-2 goal leaves the coverage step as it was). The last step is always
    solved, since the plan is its solution.
    """

    def __init__(self) -> None:
        self.last: SolvedSteps | None = None


def _step_keys(program: CompiledProgram, steps: list[Step], settings: SolverSettings, slip: Slip) -> list[str]:
    """Per step, as JSON, what its optimum depends on besides the rows (`StepMemory`)."""
    hard = [term.term.model_dump(mode="json") for term in program.terms if term.hard]
    solver = [settings.name, settings.tolerance, settings.time_limit_s, settings.max_iterations]
    # The reference fluence: what smoothness and fluence_regularization are relative to, and the solver's scale.
    base = {"fractions": program.fractions, "solver": solver, "reference_fluence": program.fluence_scale,
            "slip": [slip.fraction, slip.coverage_gy], "hard": hard}
    keys: list[str] = []
    so_far: list[dict] = []
    for step in steps:
        terms = [program.terms[i].term.model_dump(mode="json") for i in step.terms]
        so_far.append({"name": step.name, "kept_in_dose": step.kept_in_dose, "terms": terms})
        keys.append(json.dumps({**base, "steps": so_far}, sort_keys=True))
    return keys


def _unchanged(memory: StepMemory | None, program: CompiledProgram) -> SolvedSteps | None:
    """The last plan's steps when they were solved on the same rows (None: nothing to keep)."""
    last = memory.last if memory is not None else None
    return last if last is not None and last.influence is program.influence else None


def slip_fraction(slip_percent: float | None) -> float:
    return (DEFAULT_SLIP_PERCENT if slip_percent is None else slip_percent) / 100.0


@dataclass(frozen=True)
class Slip:
    """How far later steps may worsen an earlier one: relative (goal steps) and in dose (coverage)."""

    fraction: float
    coverage_gy: float


def kept_bound(program: CompiledProgram, step: Step, reached: float, slip: Slip) -> float:
    """The bound later steps keep on `step`'s objective after it reached `reached` (module docstring)."""
    reached = max(reached, 0.0)
    relative = reached * (1.0 + slip.fraction) + ABSOLUTE_SLIP
    if not step.kept_in_dose:
        return relative
    # every term with an objective carries a weight (a hard limit has neither)
    total = float(sum(program.terms[i].term.weight for i in step.terms))  # type: ignore[attr-defined]
    rms = np.sqrt(reached / total) + slip.coverage_gy / program.fractions
    return max(relative, total * rms**2 + ABSOLUTE_SLIP)


def solve_lexicographic(
    program: CompiledProgram,
    settings: SolverSettings,
    goal_priorities: Mapping[int, int],
    slip_percent: float | None = None,
    coverage_slip_gy: float | None = None,
    warm: WarmStart | None = None,
    memory: StepMemory | None = None,
    progress: StepProgress | None = None,
    steps_after: int = 0,
) -> tuple[SolveResult, LexicographicProblem | None]:
    """Solve `program` step by step (module docstring); the result's `steps` log each step.

    `slip_percent` and `coverage_slip_gy` (None: their documented defaults) are the slips.
    `warm`: where a single solve of the compiled problem starts on the fast path (steps are cvxpy problems).
    `memory`: the last plan's steps, of which the unchanged leading ones are kept (`StepMemory`);
    it then holds this plan's. `progress`: told as each step solved starts and ends, numbered out
    of these steps and `steps_after` more (the exact refinement); silent for a single solve.

    Stops at the first step without a usable point and returns its result (an infeasible
    first step carries the diagnosis of the hard terms). The returned problem is the last
    step's, for a refinement solve of it (None when the program has no objective at all, or
    a single step).
    """
    steps = plan_steps(program, goal_priorities)
    if not steps:  # only hard terms: one feasibility solve, nothing to rank
        return solve_program(program, settings, warm), None
    slip = Slip(
        slip_fraction(slip_percent), DEFAULT_COVERAGE_SLIP_GY if coverage_slip_gy is None else coverage_slip_gy
    )
    total = len(steps) + steps_after

    def told(index: int, seconds: float | None) -> None:
        if progress is not None and total > 1:
            progress(step_label(index + 1, total, steps[index].name), seconds)

    if len(steps) == 1:  # one step ranks nothing: solve the compiled problem itself (the fast path can take it)
        started = time.perf_counter()
        told(0, None)
        result = solve_program(program, settings, warm)
        told(0, time.perf_counter() - started)
        reached = result.objective if result.usable else None
        record = _record(0, steps[0], program, reached, result, time.perf_counter() - started, slip, last=True)
        return dataclasses.replace(result, steps=[record]), None
    lexicographic = LexicographicProblem(program, steps)
    refusal = _bounds_refused(lexicographic, settings)
    if refusal is not None:
        return SolveResult(status="solver_error", converged=False, solver=settings.name, message=refusal,
                           fluence=None, objective=None, iterations=None, solve_time_s=0.0), None
    keys = _step_keys(program, steps, settings, slip) if memory is not None else []  # only a session keeps steps
    earlier = _unchanged(memory, program)
    kept = 0
    while earlier is not None and kept < min(len(steps) - 1, len(earlier.keys)) and earlier.keys[kept] == keys[kept]:
        lexicographic.keep(kept, earlier.bounds[kept])  # held as it was then, below (a step may have released it)
        lexicographic.reached[kept] = earlier.reached[kept]
        if kept in earlier.held:
            lexicographic.held.add(kept)
        kept += 1
    records: list[dict] = [dict(earlier.records[k]) for k in range(kept)] if earlier is not None else []
    for k, record in enumerate(records):  # the last plan's last step, now kept by a step added after it
        if not record["then kept within"]:
            record["then kept within"] = HELD_BY_LIMITS if k in lexicographic.held else f"{lexicographic.bounds[k]:.6g}"
    solving = 0.0
    result: SolveResult | None = None
    for index in range(kept, len(steps)):
        step = steps[index]
        started = time.perf_counter()
        held = set(lexicographic.held)
        told(index, None)
        result, failed = lexicographic.solve_step(index, settings)
        told(index, time.perf_counter() - started)
        solving += result.solve_time_s + (failed.solve_time_s if failed is not None else 0.0)
        if failed is not None:
            why = "no point" if failed.status == "infeasible" else f"a solver error ({failed.message})"
            for released in sorted(held - lexicographic.held):
                records[released]["then kept within"] = (
                    f"{lexicographic.bounds[released]:.6g} (its limits left step {index + 1} {why})"
                )
        if not result.usable:
            records.append(_record(index, step, program, None, result, time.perf_counter() - started, slip,
                                   last=index == len(steps) - 1))
            break
        reached = float(lexicographic.objectives[index].value)
        lexicographic.keep(index, kept_bound(program, step, reached, slip), reached)
        records.append(_record(index, step, program, reached, result, time.perf_counter() - started, slip,
                               index in lexicographic.held, last=index == len(steps) - 1))
    assert result is not None
    if memory is not None:
        memory.last = None  # a plan whose steps did not all end usable leaves nothing to keep
        if result.usable:
            bounds = tuple(lexicographic.bounds[k] for k in range(len(steps)))
            reached = tuple(lexicographic.reached[k] for k in range(len(steps)))
            memory.last = SolvedSteps(
                program.influence, tuple(keys), bounds, reached, frozenset(lexicographic.held), tuple(records)
            )
    shown = [{**row, "status": STEP_KEPT, "time": ""} if k < kept else row
             for k, row in enumerate(records)]
    return dataclasses.replace(result, steps=shown, solve_time_s=solving), lexicographic


def _bounds_refused(lexicographic: LexicographicProblem, settings: SolverSettings) -> str | None:
    """Why the solver cannot take the steps after the first (None: it can), said before any step runs.

    A later step keeps each earlier step's objective as a bound, and a bound on a quadratic
    objective is a second-order cone, which a quadratic-programming solver (OSQP, HiGHS)
    cannot take: it would solve the first step (OSQP ran to its 10,000-iteration limit on the
    goals-only C-shape at 10 mm) and only then refuse the second. The fast path hands the steps
    to the reference solver, which takes cones.
    """
    from cvxpy.constraints import SOC
    from cvxpy.reductions.solvers.defines import SOLVER_MAP_CONIC

    if settings.name == FIRST_ORDER_SOLVER:
        return None
    conic = SOLVER_MAP_CONIC.get(settings.name)
    if conic is not None and SOC in conic.SUPPORTED_CONSTRAINTS:
        return None
    last = len(lexicographic.steps) - 1
    if lexicographic.step_problem(last, dict.fromkeys(range(last), 0.0)).is_qp():
        return None
    return (
        f"{settings.name} solves quadratic programs only, but the priority steps after the first keep each earlier "
        "step's objective as a bound, and a bound on a quadratic penalty is a second-order cone: use CLARABEL or "
        "SCS (--solver), or the default solver (it hands the steps to CLARABEL)."
    )


# How the log says a step that reached 0 is kept (`LexicographicProblem.held`).
HELD_BY_LIMITS = "0: its goals held as limits"


def _record(
    index: int, step: Step, program: CompiledProgram, reached: float | None, result: SolveResult, seconds: float,
    slip: Slip, held: bool = False, last: bool = False,
) -> dict:
    """The log row of step `index`. The last step's "then kept within" is empty: no later step keeps it (the
    exact DVH refinement after it minimizes the same objective, it does not bound it), and a bound there
    read as a tolerance that applied to the plan (audit b4 F6: 1.3126 for a one-step plan that reached 0.197)."""
    labels = "; ".join(program.terms[i].label for i in step.terms) or "(none)"
    kept = (
        "" if last
        else "n/a" if reached is None
        else HELD_BY_LIMITS if held
        else f"{kept_bound(program, step, reached, slip):.6g}"
    )
    return step_row(
        step=f"{index + 1}. {step.name}",
        minimized=labels,
        reached="n/a" if reached is None else f"{reached:.6g}",
        kept_within=kept,
        status=result.status,
        time=f"{seconds:.2f} s",
    )


# The status of a step kept from the last plan of a session (`StepMemory`) in the log.
STEP_KEPT = "unchanged since the last plan: kept"

# Columns of the optimization log's step table (the report prints the keys as headers).
STEP_COLUMNS = ("step", "minimized", "reached", "then kept within", "status", "time")


def step_row(
    step: str, minimized: str = "", reached: str = "", kept_within: str = "", status: str = "", time: str = ""
) -> dict:
    """One row of `SolveResult.steps`, with every column present and in order."""
    return dict(zip(STEP_COLUMNS, (step, minimized, reached, kept_within, status, time)))


def step_values(lexicographic: LexicographicProblem) -> list[float]:
    """Each step's objective at the problem's current solution (for checks and the log)."""
    return [float(f.value) for f in lexicographic.objectives]
