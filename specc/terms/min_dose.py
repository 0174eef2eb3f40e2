"""`min_dose`: a floor under the dose of every voxel of a structure.

Hard: `min(d) >= D / fractions` on the structure's dose entries. Soft:
`weight * pos(D / fractions - min(d))**2` (see `limits`). Measured on the final dose as the
minimum total dose over the structure's voxels, in Gy.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from specc.protocol.units import Dose
from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermResult
from specc.terms.smooth import SmoothContext, SmoothForm, voxelwise_limit
from specc.terms.limits import HardOrSoftLimit, StructureName, judged_dose


class MinDose(HardOrSoftLimit):
    """Every voxel of `structure` receives at least `dose` (total).

    Clinical meaning: a cold-spot floor, usually on a target (`min_dose CTV >= 74 Gy`): no
    part of the tumour may be left underdosed, since a cold spot is where it recurs. Hard by
    default; `hard: false` with a `weight` makes it a penalty on the coldest voxel's shortfall.
    """

    kind: Literal["min_dose"] = "min_dose"
    structure: StructureName
    dose: Dose = Field(description="Lowest total dose every voxel must receive (> 0).")

    @field_validator("dose")
    @classmethod
    def _constrains_something(cls, dose: Dose) -> Dose:
        if dose.gy == 0:
            raise ValueError("a minimum dose of 0 Gy constrains nothing: give the dose the structure must reach")
        return dose

    def dose_bounds(self) -> tuple[Dose | None, Dose | None]:
        return (self.dose if self.hard else None), None

    def label(self) -> str:
        return f"min_dose {self.structure} >= {self.dose}{self.limit_suffix()}"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        return self.lower_limit(cp.min(ctx.dose(self.structure)), ctx.per_fraction(self.dose))

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        return voxelwise_limit(self.structure, ctx.per_fraction(self.dose), upper=False, hard=self.hard, weight=self.weight)

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        lowest = float(np.min(ctx.dose(self.structure)))
        return judged_dose(lowest, self.dose, None, f"minimum dose in {self.structure}")
