"""`mean_dose`: bounds on the volume-weighted mean dose of a structure.

Hard: `w @ d <= max / fractions` and/or `w @ d >= min / fractions`, with w the relative
volumes of the structure's dose entries (so that sampling or merging voxels in the compile
stage does not change the mean). Soft: each violated bound adds `weight` times its squared
excess or shortfall in Gy per fraction (see `limits`). Measured on the final dose as the
mean total dose over the structure's voxels, in Gy.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from specc.protocol.units import Dose
from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermResult
from specc.terms.limits import ScalarLimit, StructureName, check_min_max
from specc.terms.smooth import SmoothContext, SmoothForm, SmoothGradient, SmoothPoint


class MeanDose(ScalarLimit):
    """The mean total dose of `structure` is at most `max` and/or at least `min`.

    Clinical meaning: for parallel organs the mean dose is what predicts complications
    (parotid mean <= 26 Gy against xerostomia, lung mean <= 20 Gy against pneumonitis, liver,
    kidneys); a lower bound is rarer (a target's mean near its prescription). Give `max`,
    `min` or both. Hard by default; `hard: false` with a `weight` makes it a penalty.
    """

    kind: Literal["mean_dose"] = "mean_dose"
    structure: StructureName
    max: Dose | None = Field(default=None, description="Highest allowed mean dose (total).")
    min: Dose | None = Field(default=None, description="Lowest allowed mean dose (total, > 0).")

    @model_validator(mode="after")
    def _consistent_bounds(self) -> MeanDose:
        if self.max is None and self.min is None:
            raise ValueError("mean_dose needs `max`, `min` or both")
        check_min_max("mean_dose", self.min, self.max)
        return self

    def label(self) -> str:
        return f"mean_dose {self.structure} {self.bounds_text()}{self.limit_suffix()}"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        mean = ctx.voxel_weights(self.structure) @ ctx.dose(self.structure)
        return self.limit_value(mean, ctx)

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        volumes = ctx.voxel_weights(self.structure)

        def mean(point: SmoothPoint) -> tuple[float, SmoothGradient]:
            return float(volumes @ point.dose), SmoothGradient(dose=volumes)

        return self.limit_smooth_value(self.structure, mean, ctx)

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        mean = float(np.mean(ctx.dose(self.structure)))
        satisfied = self.within_bounds(mean)
        return TermResult(value=mean, unit="Gy", satisfied=satisfied, detail=f"mean dose in {self.structure}")
