"""`fluence_regularization`: a penalty on the total fluence.

Objective: `weight * mean_j x_j / x_ref` (`norm: l1`; the total fluence, since x >= 0) or
`weight * mean_j (x_j / x_ref)**2` (`norm: l2`), with x the beamlet weights per fraction and
x_ref the case's reference fluence (`BuildContext.reference_fluence`: the uniform beamlet weight
that gives the prescription's target its dose per fraction on average). Unit-free, so the weight
means the same plan whatever unit the case's beamlet weights are in; means over beamlets, so
that it does not depend on the number of beamlets. Reported on the final fluence as the mean
(l1) or root-mean-square (l2) beamlet weight, in the case's unit (the compile notes give x_ref
in it).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermBase, TermResult
from specc.terms.limits import Weight, format_weight
from specc.terms.smooth import SmoothContext, SmoothForm, SmoothGradient, SmoothPoint

FLUENCE_UNIT = "beamlet weight"


class FluenceRegularization(TermBase):
    """Penalty on the total (`l1`) or squared (`l2`) fluence.

    Clinical meaning: among plans of equal dose quality, prefer the one that delivers less
    fluence (fewer monitor units, less leakage and scatter dose to the whole patient); it also
    makes an otherwise flat optimum unique. `l1` lowers the total; `l2` also spreads fluence
    over many beamlets rather than a few intense ones.
    """

    kind: Literal["fluence_regularization"] = "fluence_regularization"
    weight: Weight
    norm: Literal["l1", "l2"] = Field(
        default="l1",
        description="l1: mean ratio of beamlet weight to the reference fluence (total fluence); l2: mean squared ratio.",
    )

    def label(self) -> str:
        return f"fluence_regularization {self.norm} (weight {format_weight(self.weight)})"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        relative = ctx.fluence / ctx.reference_fluence()  # unit-free, of order 1
        size = relative.size
        if self.norm == "l1":
            return BuiltTerm(objective=self.weight * cp.sum(relative) / size)
        return BuiltTerm(objective=self.weight * cp.sum_squares(relative) / size)

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        size = ctx.n_beamlets
        reference = ctx.reference_fluence()
        per_unit = self.weight / (size * reference)  # l1: weight / size per x_ref
        per_square = self.weight / (size * reference**2)  # l2: weight / size per x_ref squared

        def l1(point: SmoothPoint) -> tuple[float, SmoothGradient]:  # x >= 0, so sum(x) is the l1 norm
            return per_unit * float(point.fluence.sum()), SmoothGradient(fluence=np.full(size, per_unit))

        def l2(point: SmoothPoint) -> tuple[float, SmoothGradient]:
            fluence = point.fluence
            return per_square * float(fluence @ fluence), SmoothGradient(fluence=2.0 * per_square * fluence)

        return SmoothForm(None, objective=l1 if self.norm == "l1" else l2)

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        fluence = np.asarray(ctx.fluence, dtype=float)
        if self.norm == "l1":
            return TermResult(value=float(np.mean(fluence)), unit=FLUENCE_UNIT, satisfied=None,
                              detail="mean beamlet weight per fraction")
        return TermResult(value=float(np.sqrt(np.mean(fluence**2))), unit=FLUENCE_UNIT, satisfied=None,
                          detail="root-mean-square beamlet weight per fraction")
