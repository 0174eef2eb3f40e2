"""`linear_overdose`: a penalty on dose above a level, proportional to the excess.

Objective: `weight * sum_i w_i * pos(d_i - D)`, with d_i the dose per fraction in Gy, D the
level per fraction and w_i the relative volume of entry i (sum 1): the volume-weighted mean
excess in Gy per fraction. Reported on the final dose as the mean excess above `dose` in
Gy (total).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from specc.protocol.units import Dose
from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermBase, TermResult
from specc.terms.limits import StructureName, Weight, format_weight
from specc.terms.smooth import Auxiliary, SmoothConstraint, SmoothContext, SmoothForm, SmoothGradient, SmoothPoint


class LinearOverdose(TermBase):
    """Penalty on the mean excess of `structure` above `dose` (total).

    Clinical meaning: like `quadratic_overdose`, but a linear penalty keeps pushing small
    excesses down and tolerates a few large ones more, so it tends to leave most of the organ
    under the level: a soft, convex stand-in for "as little volume above `dose` as possible".
    """

    kind: Literal["linear_overdose"] = "linear_overdose"
    structure: StructureName
    dose: Dose = Field(description="Total dose above which voxels are penalized.")
    weight: Weight

    def label(self) -> str:
        return f"linear_overdose {self.structure} above {self.dose} (weight {format_weight(self.weight)})"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        dose, level = ctx.dose(self.structure), ctx.per_fraction(self.dose)
        excess = cp.pos(dose - level)
        return BuiltTerm(objective=self.weight * (ctx.voxel_weights(self.structure) @ excess), met=[dose <= level])

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        """`weight * volumes @ u` with `d_i - D <= u_i`, u >= 0: at the optimum u = pos(d - D)."""
        volumes = ctx.voxel_weights(self.structure)
        level = ctx.per_fraction(self.dose)
        weighted = self.weight * volumes

        def objective(point: SmoothPoint) -> tuple[float, SmoothGradient]:
            return float(weighted @ point.auxiliary), SmoothGradient(auxiliary=weighted)

        excess = SmoothConstraint(
            residual=lambda point: point.dose - level - point.auxiliary,
            pullback=lambda point, multipliers: SmoothGradient(dose=multipliers, auxiliary=-multipliers),
            scale=level,
            hard=False,
        )
        auxiliary = Auxiliary(
            lower=np.zeros(len(volumes)),
            upper=np.full(len(volumes), np.inf),
            start=lambda dose: np.maximum(dose - level, 0.0),
        )
        return SmoothForm(self.structure, objective=objective, constraints=(excess,), auxiliary=auxiliary)

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        dose = ctx.dose(self.structure)
        excess = np.maximum(dose - self.dose.gy, 0.0)
        above = 100.0 * float(np.mean(excess > 0))
        return TermResult(
            value=float(np.mean(excess)),
            unit="Gy",
            satisfied=None,
            detail=f"mean excess above {self.dose}; {above:.1f}% of {self.structure} above it",
        )
