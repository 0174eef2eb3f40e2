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

Terms derived from goals carry the goal's protocol line, so the message names goals. A hard
limit that robust optimization copied into setup-error scenarios (`specc.compile.scenarios`)
is one term here: its copies share one slack, so the message names the protocol's limit once
("in 7 setup-error scenarios") and the diagnosis solves one program per limit, not per copy.
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
            self.problem.solve(solver=settings.name, canon_backend=cp.SCIPY_CANON_BACKEND, **settings.arguments())
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


def explain_infeasibility(program: CompiledProgram, settings: SolverSettings) -> str:
    """A message naming the conflicting hard terms (with protocol lines) and what each would need."""
    limits = _limits(program)
    listing = "; ".join(f"{_limit_label(group[0], len(group))} ({group[0].source})" for group in limits) or "none"
    if not limits:
        return f"no hard term is involved, which points at a solver problem; hard terms: {listing}"
    conflicts, note = find_conflicts(program, settings, limits)
    if not conflicts:
        reason = note or "the solver found no conflict when each hard term may be loosened (numerical trouble?)"
        return f"{reason}; hard terms: {listing}"
    named = " and ".join(f"{c.label} ({c.term.source})" for c in conflicts)
    needs = "; ".join(
        f"{c.label} alone by about {c.alone_gy:.3g} Gy" if c.alone_gy is not None else f"{c.label} alone cannot resolve it"
        for c in conflicts
    )
    extra = f" ({note})" if note else ""
    return (
        f"these hard limits conflict: {named}. Relaxation that each would need on its own: {needs} "
        f"(for a dvh limit, of the mean dose of the volume it constrains).{extra} All hard terms: {listing}"
    )
