"""`worst_case`: a penalty held at its worst setup-error scenario (minimax robust optimization).

Not written by users: robust optimization (`specc.compile.scenarios`) makes one of a penalty on
a robust structure and its copies in every scenario when the protocol says `robustness:
{objective: worst_case}`. Objective: the largest over the scenarios of the copies' penalties,
each at the term's whole weight (the objective-wise worst case of Pflugfelder, Wilkens and
Oelfke, Phys Med Biol 53:1689, 2008; Fredriksson's composite worst case takes the maximum of
the sum of all robust penalties instead). A maximum of convex functions is convex, so the
program stays the reference cvxpy program; the fast path has no form for a maximum over
scenarios and hands the program to the reference solver.

Only the squared-dose penalties (`WORST_CASE_KINDS`) are held so: their value on the final
dose is a function of the dose alone, so the evaluation can name the worst scenario. Reported
on the final dose: the worst scenario's copy, its value and unit, with the scenario named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, SerializeAsAny

from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermBase, TermResult
from specc.terms.smooth import NoSmoothForm, SmoothContext, SmoothForm, SmoothPoint

if TYPE_CHECKING:
    import scipy.sparse as sp

    from specc.protocol.units import Dose

WORST_CASE_KINDS = ("quadratic_underdose", "quadratic_overdose", "uniform_dose")


class WorstCase(TermBase):
    """The worst scenario's penalty of a term and its copies (the term first)."""

    kind: Literal["worst_case"] = "worst_case"
    scenarios: list[SerializeAsAny[TermBase]] = Field(min_length=2)

    @property
    def weight(self) -> float:
        """The copies' weight: the maximum of their penalties scales with it, as one penalty's does."""
        return self.scenarios[0].weight  # type: ignore[attr-defined]

    def label(self) -> str:
        return f"worst case of {self.scenarios[0].label()} over {len(self.scenarios)} scenarios"

    def structures(self) -> tuple[str, ...]:
        return tuple(name for term in self.scenarios for name in term.structures())

    def every_voxel(self) -> tuple[str, ...]:
        """All of them: the displaced copies hold every voxel, and a sampled nominal copy's estimate,
        which runs low, would be compared with them under the maximum."""
        return self.structures()

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        built = [term.build(ctx) for term in self.scenarios]
        return BuiltTerm(
            objective=cp.maximum(*(part.objective for part in built)),
            constraints=[constraint for part in built for constraint in part.constraints],
            met=[constraint for part in built for constraint in part.met] if all(part.met for part in built) else [],
        )

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        raise NoSmoothForm(
            "a maximum over setup-error scenarios (robustness objective: worst_case) has no smooth form"
        )

    def penalties(self, ctx: EvaluationContext) -> list[float]:
        """Each scenario's penalty on the final dose, as the optimization wrote it (the term's own first)."""
        return [_penalty(term, ctx) for term in self.scenarios]

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        penalties = self.penalties(ctx)
        worst = int(np.argmax(penalties))
        result = self.scenarios[worst].evaluate(ctx)
        name = self.scenarios[worst].structures()[0]
        return TermResult(
            value=result.value, unit=result.unit, satisfied=None,
            detail=f"worst of {len(self.scenarios)} scenarios: {name} (penalty {penalties[worst]:.4g}); {result.detail}",
        )


def _penalty(term: TermBase, ctx: EvaluationContext) -> float:
    """The term's objective on every voxel of the final dose, as the optimization wrote it."""
    (structure,) = term.structures()
    dose = ctx.dose(structure)
    form = term.smooth_form(_FullGrid(ctx, len(ctx.fluence)))
    assert form.objective is not None and form.auxiliary is None, f"{term.kind} is not a worst-case kind"
    point = SmoothPoint(dose=dose / ctx.fractions, auxiliary=np.zeros(0), fluence=ctx.fluence)
    return form.objective(point)[0]


class _FullGrid:
    """`SmoothContext` over the final dose: every voxel of a structure, of equal volume."""

    def __init__(self, ctx: EvaluationContext, n_beamlets: int) -> None:
        self._ctx = ctx
        self.n_beamlets = n_beamlets

    def voxel_weights(self, structure: str) -> np.ndarray:
        count = len(self._ctx.dose(structure))
        return np.full(count, 1.0 / count)

    def volume_cc(self, structure: str) -> float:
        return self._ctx.volume_cc(structure)

    def per_fraction(self, dose: Dose) -> float:
        return dose.gy / self._ctx.fractions

    def smoothness_operator(self) -> sp.csr_matrix:
        return self._ctx.smoothness_operator()
