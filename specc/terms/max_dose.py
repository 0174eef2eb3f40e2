"""`max_dose`: a ceiling on the dose of every voxel of a structure.

Hard: `max(d) <= D / fractions` on the structure's dose entries. Soft:
`weight * pos(max(d) - D / fractions)**2` (see `limits`). Measured on the final dose as the
maximum total dose over the structure's voxels, in Gy.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from specc.protocol.units import Dose
from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermResult
from specc.terms.smooth import SmoothContext, SmoothForm, voxelwise_limit
from specc.terms.limits import HardOrSoftLimit, StructureName, judged_dose


class MaxDose(HardOrSoftLimit):
    """No voxel of `structure` may receive more than `dose` (total).

    Clinical meaning: a point-dose ceiling, for serial organs whose function is lost when any
    part is overdosed (spinal cord, brainstem, optic nerves: `max_dose SpinalCord <= 45 Gy`)
    and for hot spots inside a target (e.g. 107% of its prescription). Hard by
    default; `hard: false` with a `weight` makes it a penalty on the hottest voxel's excess.
    """

    kind: Literal["max_dose"] = "max_dose"
    structure: StructureName
    dose: Dose = Field(description="Highest total dose any voxel may receive.")

    def dose_bounds(self) -> tuple[Dose | None, Dose | None]:
        return None, (self.dose if self.hard else None)

    def upper_limit_on(self, dose_gy: np.ndarray, weights: np.ndarray) -> tuple[float, float, str] | None:
        return float(dose_gy.max()), self.dose.gy, "a maximum of"

    def label(self) -> str:
        return f"max_dose {self.structure} <= {self.dose}{self.limit_suffix()}"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        return self.upper_limit(cp.max(ctx.dose(self.structure)), ctx.per_fraction(self.dose))

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        return voxelwise_limit(self.structure, ctx.per_fraction(self.dose), upper=True, hard=self.hard, weight=self.weight)

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        highest = float(np.max(ctx.dose(self.structure)))
        return judged_dose(highest, None, self.dose, f"maximum dose in {self.structure}")
