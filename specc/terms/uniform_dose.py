"""`uniform_dose`: a two-sided quadratic penalty around one dose.

Objective: `weight * sum_i w_i * (d_i - D)**2`, with d_i the dose per fraction in Gy, D the
level per fraction and w_i the relative volume of entry i (sum 1): the volume-weighted mean
squared deviation in Gy^2 per fraction, on the same scale as `quadratic_underdose` and
`quadratic_overdose`. Reported on the final dose as the root-mean-square deviation from
`dose` in Gy (total).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from specc.protocol.units import Dose
from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermBase, TermResult
from specc.terms.limits import StructureName, Weight, format_weight
from specc.terms.smooth import SmoothContext, SmoothForm, squares_form


class UniformDose(TermBase):
    """Pulls every voxel of `structure` towards `dose` (total), from below and above.

    Clinical meaning: a homogeneous target dose at the prescription ("PTV uniform at 78 Gy"),
    penalizing cold and hot spots alike.
    """

    kind: Literal["uniform_dose"] = "uniform_dose"
    structure: StructureName
    dose: Dose = Field(description="Total dose every voxel should receive.")
    weight: Weight

    def label(self) -> str:
        return f"uniform_dose {self.structure} at {self.dose} (weight {format_weight(self.weight)})"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        dose, level = ctx.dose(self.structure), ctx.per_fraction(self.dose)
        deviation = dose - level
        return BuiltTerm(
            objective=self.weight * (ctx.voxel_weights(self.structure) @ cp.square(deviation)), met=[dose == level]
        )

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        volumes = ctx.voxel_weights(self.structure)
        level = ctx.per_fraction(self.dose)
        return squares_form(self.structure, self.weight, volumes, level, "both")

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        dose = ctx.dose(self.structure)
        rms = float(np.sqrt(np.mean((dose - self.dose.gy) ** 2)))
        spread = f"{np.min(dose):.2f} to {np.max(dose):.2f} Gy"
        return TermResult(
            value=rms,
            unit="Gy",
            satisfied=None,
            detail=f"RMS deviation from {self.dose} in {self.structure} (dose from {spread})",
        )
