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

Terms derived from goals carry the goal's protocol line, so the message names goals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cvxpy as cp
import numpy as np
from cvxpy.constraints import Equality, Inequality

if TYPE_CHECKING:
    from specc.compile import CompiledProgram, CompiledTerm
    from specc.solve.choice import SolverSettings

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

    term: CompiledTerm
    slack_in_sum: float  # its slack (Gy per fraction) when all terms may give, summed minimum
    alone_gy: float | None  # total Gy when it is the only term relaxed


class _Elastic:
    """The program with a slack on each hard term listed in `relaxable` (the others kept hard)."""

    def __init__(self, program: CompiledProgram, relaxable: list[CompiledTerm]) -> None:
        hard = program.hard_terms()
        loosened = {id(term) for term in relaxable}
        self.slacks = cp.Variable(len(relaxable), nonneg=True, name="slack")
        own = {id(c) for term in hard for c in term.constraints}
        constraints = [c for c in program.problem.constraints if id(c) not in own]
        self.relaxed: list[list[cp.Constraint]] = []
        self.unrelaxable: list[str] = []
        index = 0
        for term in hard:
            if id(term) not in loosened:
                constraints.extend(term.constraints)
                continue
            mine: list[cp.Constraint] = []
            for constraint in term.constraints:
                relaxed = _relaxed(constraint, self.slacks[index])
                if relaxed is None:
                    self.unrelaxable.append(term.label)
                    constraints.append(constraint)
                else:
                    mine.extend(relaxed)
            constraints.extend(mine)
            self.relaxed.append(mine)
            index += 1
        self.problem = cp.Problem(cp.Minimize(cp.sum(self.slacks)), constraints)

    def solve(self, settings: SolverSettings) -> str:
        try:
            self.problem.solve(solver=settings.name, canon_backend=cp.SCIPY_CANON_BACKEND, **settings.arguments())
        except cp.SolverError as error:
            return f"could not be solved ({error})"
        return "" if self.problem.status in _USABLE and self.slacks.value is not None else str(self.problem.status)

    def prices(self) -> np.ndarray:
        """Sum of the absolute multipliers of each relaxed term's loosened constraints."""
        return np.array(
            [sum(float(np.sum(np.abs(c.dual_value))) for c in mine if c.dual_value is not None) for mine in self.relaxed]
        )


def find_conflicts(program: CompiledProgram, settings: SolverSettings) -> tuple[list[Conflict], str]:
    """The hard terms in conflict (most needed relaxation first) and a note when that failed."""
    hard = program.hard_terms()
    elastic = _Elastic(program, hard)
    trouble = elastic.solve(settings)
    if trouble:
        return [], f"the diagnosis ended {trouble}"
    slacks = np.asarray(elastic.slacks.value, dtype=float)
    prices = elastic.prices()
    involved = [i for i, term in enumerate(hard) if slacks[i] > _SLACK_NOISE or prices[i] > _DUAL_NOISE]
    conflicts = []
    for i in involved:
        alone = _Elastic(program, [hard[i]])
        alone_trouble = alone.solve(settings)
        alone_gy = None if alone_trouble else float(alone.slacks.value[0]) * program.fractions
        conflicts.append(Conflict(hard[i], float(slacks[i]), alone_gy))
    conflicts.sort(key=lambda c: (c.alone_gy is None, c.alone_gy or 0.0))
    note = f"not relaxable, kept hard: {', '.join(sorted(set(elastic.unrelaxable)))}" if elastic.unrelaxable else ""
    return conflicts, note


def explain_infeasibility(program: CompiledProgram, settings: SolverSettings) -> str:
    """A message naming the conflicting hard terms (with protocol lines) and what each would need."""
    hard = program.hard_terms()
    listing = "; ".join(f"{term.label} ({term.source})" for term in hard) or "none"
    if not hard:
        return f"no hard term is involved, which points at a solver problem; hard terms: {listing}"
    conflicts, note = find_conflicts(program, settings)
    if not conflicts:
        reason = note or "the solver found no conflict when each hard term may be loosened (numerical trouble?)"
        return f"{reason}; hard terms: {listing}"
    named = " and ".join(f"{c.term.label} ({c.term.source})" for c in conflicts)
    needs = "; ".join(
        f"{c.term.label} alone by about {c.alone_gy:.3g} Gy"
        if c.alone_gy is not None
        else f"{c.term.label} alone cannot resolve it"
        for c in conflicts
    )
    extra = f" ({note})" if note else ""
    return (
        f"these hard limits conflict: {named}. Relaxation that each would need on its own: {needs} "
        f"(for a dvh limit, of the mean dose of the volume it constrains).{extra} All hard terms: {listing}"
    )
