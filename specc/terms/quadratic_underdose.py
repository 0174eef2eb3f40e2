"""`quadratic_underdose`: a penalty on dose below a level, growing with the square of the shortfall.

Objective: `weight * sum_i w_i * pos(D - d_i)**2`, with d_i the dose per fraction in Gy,
D the level per fraction and w_i the relative volume of entry i (sum 1): the
volume-weighted mean squared shortfall in Gy^2 per fraction. A mean rather than a sum keeps
weights comparable across structures and case sizes. Reported on the final dose as the
root-mean-square shortfall below `dose` in Gy (total).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from specc.protocol.units import Dose
from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermBase, TermResult
from specc.terms.limits import StructureName, Weight, format_weight
from specc.terms.smooth import SmoothContext, SmoothForm, squares_form


class QuadraticUnderdose(TermBase):
    """Penalty on the squared shortfall of `structure` below `dose` (total).

    Clinical meaning: the usual way to push a target up to its prescription ("the PTV should
    get 78 Gy"): voxels below `dose` cost the square of their shortfall, so large cold spots
    cost most; voxels above it cost nothing. Pair it with a `quadratic_overdose` or
    `max_dose` to keep the target from running hot.
    """

    kind: Literal["quadratic_underdose"] = "quadratic_underdose"
    structure: StructureName
    dose: Dose = Field(description="Total dose below which voxels are penalized (> 0).")
    weight: Weight

    @field_validator("dose")
    @classmethod
    def _penalizes_something(cls, dose: Dose) -> Dose:
        if dose.gy == 0:
            raise ValueError("no dose is below 0 Gy, so this penalty would do nothing: give the dose to reach")
        return dose

    def label(self) -> str:
        return f"quadratic_underdose {self.structure} below {self.dose} (weight {format_weight(self.weight)})"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        dose, level = ctx.dose(self.structure), ctx.per_fraction(self.dose)
        shortfall = cp.pos(level - dose)
        return BuiltTerm(
            objective=self.weight * (ctx.voxel_weights(self.structure) @ cp.square(shortfall)), met=[dose >= level]
        )

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        volumes = ctx.voxel_weights(self.structure)
        level = ctx.per_fraction(self.dose)
        return squares_form(self.structure, self.weight, volumes, level, "under")

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        dose = ctx.dose(self.structure)
        shortfall = np.maximum(self.dose.gy - dose, 0.0)
        below = 100.0 * float(np.mean(shortfall > 0))
        return TermResult(
            value=float(np.sqrt(np.mean(shortfall**2))),
            unit="Gy",
            satisfied=None,
            detail=f"RMS shortfall below {self.dose}; {below:.1f}% of {self.structure} below it",
        )
