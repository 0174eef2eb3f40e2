"""`quadratic_overdose`: a penalty on dose above a level, growing with the square of the excess.

Objective: `weight * sum_i w_i * pos(d_i - D)**2`, with d_i the dose per fraction in Gy,
D the level per fraction and w_i the relative volume of entry i (sum 1): the
volume-weighted mean squared excess in Gy^2 per fraction, comparable across structures
and case sizes. Reported on the final dose as the root-mean-square excess above `dose` in
Gy (total).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from specc.protocol.units import Dose
from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermBase, TermResult
from specc.terms.limits import StructureName, Weight, format_weight
from specc.terms.smooth import SmoothContext, SmoothForm, squares_form


class QuadraticOverdose(TermBase):
    """Penalty on the squared excess of `structure` above `dose` (total).

    Clinical meaning: keeps an organ at risk, or a target's hot spots, below a dose without a
    hard limit ("keep the bladder under 60 Gy where possible"): voxels above `dose` cost the
    square of their excess, voxels below cost nothing. `dose: 0 Gy` simply drives the whole
    structure's dose down.
    """

    kind: Literal["quadratic_overdose"] = "quadratic_overdose"
    structure: StructureName
    dose: Dose = Field(description="Total dose above which voxels are penalized.")
    weight: Weight

    def label(self) -> str:
        return f"quadratic_overdose {self.structure} above {self.dose} (weight {format_weight(self.weight)})"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        dose, level = ctx.dose(self.structure), ctx.per_fraction(self.dose)
        excess = cp.pos(dose - level)
        return BuiltTerm(
            objective=self.weight * (ctx.voxel_weights(self.structure) @ cp.square(excess)), met=[dose <= level]
        )

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        volumes = ctx.voxel_weights(self.structure)
        level = ctx.per_fraction(self.dose)
        return squares_form(self.structure, self.weight, volumes, level, "over")

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        dose = ctx.dose(self.structure)
        excess = np.maximum(dose - self.dose.gy, 0.0)
        above = 100.0 * float(np.mean(excess > 0))
        return TermResult(
            value=float(np.sqrt(np.mean(excess**2))),
            unit="Gy",
            satisfied=None,
            detail=f"RMS excess above {self.dose}; {above:.1f}% of {self.structure} above it",
        )
