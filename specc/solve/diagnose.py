"""Which hard terms make a program infeasible, and how much each would have to give.

"Infeasible" alone tells a physicist nothing to change. The elastic program gives each hard
term one slack s_t >= 0 that loosens all of its inequalities (an equality becomes
|lhs - rhs| <= s_t) and minimizes the sum of slacks. Its dual multipliers say which terms
take part in the conflict: a term whose loosened constraints carry a positive multiplier
is one the optimum pushes against, whether or not its own slack ended up positive; a term
with zero multipliers could be dropped without easing anything, so it is not named. Then,
for each conflicting term, a second elastic program loosens that term alone: its slack is
the relaxation that term alone would need (Gy per fraction for every dose limit, printed
as total Gy), or none is enough when the others must give too.

A composite's prior dose alone may already break an upper limit (a cumulative maximum or mean); this plan
only adds dose, so the diagnosis says so instead of a relaxation over this plan's fractions.

Terms derived from goals carry the goal's protocol line, so the message names goals. A goal in
EQD2 or BED is held as its physical equivalent in this plan's fractions (or, a mean, as a
`mean_dose` in that quantity), whose dose a physicist never wrote: given the protocol, such a
limit is named by its goal as written, and its relaxation is given in the goal's quantity (the
physical relaxation converted back: 1.32 Gy physical in 5 fractions on a limit of 70 Gy EQD2,
alpha/beta 3 Gy, is about 4.6 Gy EQD2), with the limit that would hold rounded outward. Every other
relaxation is in total Gy of the limit's own dose (physical unless it names EQD2 or BED). A hard
limit that robust optimization copied into setup-error scenarios (`specc.compile.scenarios`)
is one term here: its copies share one slack, so the message names the protocol's limit once
("in 7 setup-error scenarios") and the diagnosis solves one program per limit, not per copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cvxpy as cp
import numpy as np
from cvxpy.constraints import Equality, Inequality

from specc.protocol.isoeffect import isoeffective_gy, physical_gy
from specc.protocol.units import format_number
from specc.solve.interruptible import solve_interruptibly
from specc.terms.base import LIMIT_TOLERANCE

if TYPE_CHECKING:
    from specc.compile import CompiledProgram, CompiledTerm
    from specc.protocol import Goal, Protocol
    from specc.solve.choice import SolverSettings
    from specc.terms.base import SourceLocation

# A slack below this (Gy per fraction) is solver noise, not a relaxation.
_SLACK_NOISE = 1e-6
# Elastic multipliers are between 0 and 1 (the price of one unit of slack); below this a
# term does not take part in the conflict.
_DUAL_NOISE = 1e-4
_USABLE = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


def _relaxed(constraint: cp.Constraint, slack: cp.Expression) -> tuple[cp.Constraint, ...] | None:
    if isinstance(constraint, Inequality):
        lhs, rhs = constraint.args
        return (lhs - rhs <= slack,)
    if isinstance(constraint, Equality):
        lhs, rhs = constraint.args
        return (lhs - rhs <= slack, rhs - lhs <= slack)
    return None


@dataclass(frozen=True)
class Conflict:
    """A hard term in conflict and the relaxation it alone would need (None: not enough alone)."""

    term: CompiledTerm  # the protocol's limit (of robust copies, the nominal one)
    slack_in_sum: float  # its slack (Gy per fraction) when all terms may give, summed minimum
    alone_gy: float | None  # total Gy when it is the only term relaxed
    scenarios: int = 1  # setup-error scenarios it holds in (robust optimization), sharing the slack

    @property
    def label(self) -> str:
        return _limit_label(self.term, self.scenarios)


def _limit_label(term: CompiledTerm, scenarios: int) -> str:
    """A protocol limit as the messages name it: its copies in setup-error scenarios counted, not listed."""
    return term.label + (f" in {scenarios} setup-error scenarios" if scenarios > 1 else "")


def _limits(program: CompiledProgram) -> list[list[CompiledTerm]]:
    """The hard terms grouped by the protocol limit they are: a limit and its robust copies together
    (same protocol line, kind and fields, the copies naming the limit's structure displaced)."""
    scenarios = program.selection.scenarios
    groups: dict[str, list[CompiledTerm]] = {}
    for term in program.hard_terms():
        fields = term.term.model_dump(mode="json")
        if fields.get("structure") in scenarios:
            fields["structure"] = scenarios[fields["structure"]].structure
        groups.setdefault(f"{term.source} {sorted(fields.items())}", []).append(term)
    return list(groups.values())


class _Elastic:
    """The program with one slack on each group of hard terms in `relaxable` (the others kept hard)."""

    def __init__(
        self, program: CompiledProgram, relaxable: list[list[CompiledTerm]], linking: list[cp.Constraint]
    ) -> None:
        """`linking`: the dose rows the hard terms read, tied to the fluence (`_hard_rows`, shared by every
        elastic program of one diagnosis)."""
        hard = program.hard_terms()
        slack_of = {id(term): index for index, group in enumerate(relaxable) for term in group}
        self.slacks = cp.Variable(len(relaxable), nonneg=True, name="slack")
        constraints = list(linking)
        self.relaxed: list[list[cp.Constraint]] = [[] for _ in relaxable]
        self.unrelaxable: list[str] = []
        for term in hard:
            if id(term) not in slack_of:
                constraints.extend(term.constraints)
                continue
            index = slack_of[id(term)]
            for constraint in term.constraints:
                relaxed = _relaxed(constraint, self.slacks[index])
                if relaxed is None:
                    self.unrelaxable.append(term.label)
                    constraints.append(constraint)
                else:
                    self.relaxed[index].extend(relaxed)
                    constraints.extend(relaxed)
        self.problem = cp.Problem(cp.Minimize(cp.sum(self.slacks)), constraints)

    def solve(self, settings: SolverSettings) -> str:
        try:
            solve_interruptibly(
                self.problem, solver=settings.name, canon_backend=cp.SCIPY_CANON_BACKEND, **settings.arguments()
            )
        except cp.SolverError as error:
            return f"could not be solved ({error})"
        return "" if self.problem.status in _USABLE and self.slacks.value is not None else str(self.problem.status)

    def prices(self) -> np.ndarray:
        """Sum of the absolute multipliers of each relaxed term's loosened constraints."""
        return np.array(
            [sum(float(np.sum(np.abs(c.dual_value))) for c in mine if c.dual_value is not None) for mine in self.relaxed]
        )


def _hard_rows(program: CompiledProgram) -> list[cp.Constraint]:
    """The dose of the entries some hard term reads, linked to the fluence: all that feasibility
    depends on. Soft terms, their rows and the bounds of earlier priority steps (met by the step
    that set them) cannot make a program infeasible, and leaving them out keeps the elastic
    programs small (the rows of a body sample, a fall-off shell, a target's coverage region)."""
    entries = [
        program.selection.structures[name].entries for term in program.hard_terms() for name in term.term.structures()
        if name in program.selection.structures
    ]
    if not entries or program.influence is None:
        return []
    return program.linking(np.unique(np.concatenate(entries)))


def find_conflicts(
    program: CompiledProgram, settings: SolverSettings, limits: list[list[CompiledTerm]] | None = None
) -> tuple[list[Conflict], str]:
    """The hard terms in conflict (most needed relaxation first) and a note when that failed;
    `limits`: the program's hard terms grouped (`_limits`), when the caller has them."""
    limits = _limits(program) if limits is None else limits
    linking = _hard_rows(program)
    elastic = _Elastic(program, limits, linking)
    trouble = elastic.solve(settings)
    if trouble:
        return [], f"the diagnosis ended {trouble}"
    slacks = np.asarray(elastic.slacks.value, dtype=float)
    prices = elastic.prices()
    involved = [i for i in range(len(limits)) if slacks[i] > _SLACK_NOISE or prices[i] > _DUAL_NOISE]
    conflicts = []
    for i in involved:
        alone = _Elastic(program, [limits[i]], linking)
        alone_trouble = alone.solve(settings)
        alone_gy = None if alone_trouble else float(alone.slacks.value[0]) * program.fractions
        conflicts.append(Conflict(limits[i][0], float(slacks[i]), alone_gy, len(limits[i])))
    conflicts.sort(key=lambda c: (c.alone_gy is None, c.alone_gy or 0.0))
    note = f"not relaxable, kept hard: {', '.join(sorted(set(elastic.unrelaxable)))}" if elastic.unrelaxable else ""
    return conflicts, note


@dataclass(frozen=True)
class _Isoeffective:
    """A goal in EQD2 or BED that a hard limit holds, with what converts its doses."""

    goal: Goal
    alpha_beta_gy: float
    fractions: int

    def limit_gy(self) -> float:
        """The goal's dose the hard limit holds (in the goal's quantity): its acceptable variation where it has
        one (priority 1 holds that hard), else its threshold; of a V or CV metric, the metric's dose."""
        goal = self.goal
        if not goal.metric.is_dose:
            assert goal.metric.dose is not None, "an isoeffective V metric names its dose in Gy"
            return goal.metric.dose.gy
        variation = goal.variation_value
        return variation if variation is not None else goal.threshold_value

    def relaxed_limit(self, term: CompiledTerm, relaxation_gy: float) -> float:
        """Where the goal's limit would hold after the term's relaxation (total Gy of the term's own dose),
        rounded outward to 0.1 Gy: the physical equivalent moved by it and converted back; a `mean_dose` in
        the goal's quantity is already in it."""
        goal = self.goal
        looser = 1.0 if goal.is_lower_bound == (goal.metric.quantity == "CV") else -1.0  # CV: the volume below
        if getattr(term.term, "quantity", "physical") == goal.quantity:
            relaxed = self.limit_gy() + looser * relaxation_gy
        else:
            physical = physical_gy(self.limit_gy(), self.fractions, self.alpha_beta_gy, goal.quantity)
            moved = max(physical + looser * relaxation_gy, 0.0)
            relaxed = float(isoeffective_gy(moved, self.fractions, self.alpha_beta_gy, goal.quantity))
        outward = math.ceil if looser > 0 else math.floor
        return outward(round(relaxed * 10.0, 6)) / 10.0


def _isoeffective_goals(protocol: Protocol | None) -> dict[SourceLocation, _Isoeffective]:
    """The protocol's goals in EQD2 or BED by where they were written: a term derived from one carries
    that place as its source (`specc.compile.derive`)."""
    if protocol is None:
        return {}
    found: dict[SourceLocation, _Isoeffective] = {}
    for goal in protocol.goals:
        ratio = protocol.structures[goal.structure].alpha_beta  # required of an isoeffective goal's structure
        if goal.isoeffective and goal.source is not None and ratio is not None:
            found[goal.source] = _Isoeffective(goal, ratio.gy, protocol.prescription.fractions)
    return found


def _named(conflict: Conflict, written: dict[SourceLocation, _Isoeffective]) -> str:
    """The conflicting limit with its line: an isoeffective goal as written, with the limit that holds it."""
    isoeffective = written.get(conflict.term.term.source)
    if isoeffective is None:
        return f"{conflict.label} ({conflict.term.source})"
    goal = isoeffective.goal
    physical = getattr(conflict.term.term, "quantity", "physical") == "physical"
    held = f"{conflict.label}{f' physical in {isoeffective.fractions} fractions' if physical else ''}"
    return f"{goal.structure} {goal.text} ({conflict.term.source}; held as {held})"


def _need(conflict: Conflict, written: dict[SourceLocation, _Isoeffective]) -> str:
    """What the limit alone would need, in its goal's quantity where the goal is in EQD2 or BED."""
    if conflict.alone_gy is None:
        return f"{conflict.label} alone cannot resolve it"
    isoeffective = written.get(conflict.term.term.source)
    if isoeffective is None:
        return f"{conflict.label} alone by about {conflict.alone_gy:.3g} Gy"
    goal = isoeffective.goal
    limit, relaxed = isoeffective.limit_gy(), isoeffective.relaxed_limit(conflict.term, conflict.alone_gy)
    unit = f"Gy {goal.quantity}"
    own = getattr(conflict.term.term, "quantity", "physical") == goal.quantity
    physical = "" if own else f": {conflict.alone_gy:.3g} Gy physical in {isoeffective.fractions} fractions"
    return (
        f"{goal.structure} {goal.text} alone by about {abs(relaxed - limit):.3g} {unit} "
        f"(to about {format_number(relaxed)} {unit}{physical})"
    )


def _broken_by_the_prior(program: CompiledProgram, limits: list[list[CompiledTerm]]) -> list[str]:
    """The upper limits a composite's prior dose alone already breaks (the dose at zero fluence): this plan only
    adds dose, so no plan of this course can meet them, and relaxing them "by N Gy over this plan's fractions"
    would point at the wrong lever. Each kind says what its upper limit measures (`TermBase.upper_limit_on`)."""
    if program.offset is None:
        return []
    broken = []
    for group in limits:
        term = group[0]
        spec = term.term
        entries = program.selection.structures.get(getattr(spec, "structure", ""))
        if entries is None:
            continue
        measured = spec.upper_limit_on(program.offset[entries.entries] * program.fractions, entries.weights)
        if measured is None:
            continue
        value, limit, what = measured
        if value > limit * (1 + LIMIT_TOLERANCE):
            broken.append(f"{_limit_label(term, len(group))} ({term.source}), {spec.structure} receiving {what} "
                          f"{value:.2f} Gy from it")
    return broken


def broken_by_the_prior(program: CompiledProgram) -> str | None:
    """Why no plan of this course can meet the hard limits, when a composite's prior dose alone already breaks
    one of them; None when it breaks none. Known before any solve (the dose at zero fluence), so the solve
    stage asks first instead of spending a solve (minutes with CLARABEL on a head-and-neck case) to learn it."""
    return _prior_message(program, _limits(program))


def _prior_message(program: CompiledProgram, limits: list[list[CompiledTerm]]) -> str | None:
    broken = _broken_by_the_prior(program, limits)
    if not broken:
        return None
    listing = "; ".join(f"{_limit_label(group[0], len(group))} ({group[0].source})" for group in limits)
    return (
        f"the prior course's dose alone already breaks {'; '.join(broken)}. This plan only adds dose, so no plan "
        "of this course can meet such a limit: optimization terms act on the composite dose (prior course + this "
        "plan), none on this plan's dose alone. Write the limit as a cumulative one above what the prior course "
        "gave, or as a soft term (an overdose penalty, which keeps this plan's dose there as low as the other terms "
        f"allow). All hard terms: {listing}"
    )


def explain_infeasibility(program: CompiledProgram, settings: SolverSettings) -> str:
    """A message naming the conflicting hard terms (with protocol lines) and what each would need; the
    protocol the program was compiled from lets a limit held for a goal in EQD2 or BED be named by that
    goal, its relaxation in the goal's quantity (see the module docstring)."""
    limits = _limits(program)
    listing = "; ".join(f"{_limit_label(group[0], len(group))} ({group[0].source})" for group in limits) or "none"
    if not limits:
        return f"no hard term is involved, which points at a solver problem; hard terms: {listing}"
    broken = _prior_message(program, limits)
    if broken is not None:
        return broken
    conflicts, note = find_conflicts(program, settings, limits)
    if not conflicts:
        reason = note or "the solver found no conflict when each hard term may be loosened (numerical trouble?)"
        return f"{reason}; hard terms: {listing}"
    written = _isoeffective_goals(program.protocol)
    named = " and ".join(_named(c, written) for c in conflicts)
    needs = "; ".join(_need(c, written) for c in conflicts)
    extra = f" ({note})" if note else ""
    return (
        f"these hard limits conflict: {named}. Relaxation that each would need on its own: {needs} "
        f"(total Gy over the plan's {program.fractions} fractions, physical dose unless EQD2 or BED is named; "
        f"for a dvh limit, of the mean dose of the volume it constrains).{extra} All hard terms: {listing}"
    )
