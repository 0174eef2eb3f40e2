"""`smoothness`: a quadratic penalty on differences between neighbouring beamlets.

Objective: `weight * mean_k ((S x)_k / x_ref)**2`, with x the beamlet weights (per fraction), S
the case's sparse operator of differences between the m pairs of neighbouring beamlets of the
same beam, and x_ref the case's reference fluence (`BuildContext.reference_fluence`: the uniform
beamlet weight that gives the prescription's target its dose per fraction on average): the mean
squared neighbour difference as a fraction of the open-field fluence that gives the
prescription. Unit-free, so the weight means the same plan whatever unit the case's beamlet
weights are in, and a mean, so that it does not depend on the number of beamlets. Reported on
the final fluence as the root-mean-square neighbour difference in % of the mean beamlet weight.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermBase, TermResult
from specc.terms.limits import Weight, format_weight
from specc.terms.smooth import SmoothContext, SmoothForm, SmoothGradient, SmoothPoint


class Smoothness(TermBase):
    """Quadratic penalty on differences between neighbouring beamlets of the same beam.

    Clinical meaning: jagged fluence maps are hard to deliver with a multileaf collimator
    (more monitor units, more leaf travel, more delivery error); smoothing them trades a
    little conformity for a deliverable, robust plan. Names no structure.
    """

    kind: Literal["smoothness"] = "smoothness"
    weight: Weight

    def label(self) -> str:
        return f"smoothness (weight {format_weight(self.weight)})"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        differences = ctx.smoothness_operator()
        pairs = differences.shape[0]
        if pairs == 0:  # no beam has two neighbouring beamlets: every fluence is as smooth as it gets
            return BuiltTerm()
        relative = differences @ ctx.fluence / ctx.reference_fluence()  # unit-free, of order 1
        return BuiltTerm(objective=self.weight * cp.sum_squares(relative) / pairs)

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        differences = ctx.smoothness_operator()
        pairs = differences.shape[0]
        if pairs == 0:
            return SmoothForm(None)
        factor = self.weight / (pairs * ctx.reference_fluence() ** 2)
        transposed = differences.T.tocsr()

        def objective(point: SmoothPoint) -> tuple[float, SmoothGradient]:
            step = differences @ point.fluence
            return factor * float(step @ step), SmoothGradient(fluence=2.0 * factor * (transposed @ step))

        return SmoothForm(None, objective=objective)

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        differences = ctx.smoothness_operator() @ ctx.fluence
        mean_fluence = float(np.mean(ctx.fluence))
        if differences.size == 0 or mean_fluence <= 0.0:
            return TermResult(value=0.0, unit="%", satisfied=None, detail="no neighbouring beamlets with fluence")
        rms = float(np.sqrt(np.mean(differences**2)))
        return TermResult(
            value=100.0 * rms / mean_fluence,
            unit="%",
            satisfied=None,
            detail=f"RMS difference between neighbouring beamlets, relative to the mean beamlet weight "
            f"({differences.size} pairs)",
        )
