"""`mean_dose`: bounds on the volume-weighted mean dose of a structure, physical or isoeffective.

Hard: `w @ d <= max / fractions` and/or `w @ d >= min / fractions`, with w the relative
volumes of the structure's dose entries (so that sampling or merging voxels in the compile
stage does not change the mean). Soft: each violated bound adds `weight` times its squared
excess or shortfall in Gy per fraction (see `limits`). Measured on the final dose as the
mean total dose over the structure's voxels, in Gy.

With `quantity: EQD2` or `BED` (and the tissue's `alpha_beta`) the mean is of each voxel's
isoeffective dose, `specc.protocol.isoeffect`: per fraction `d (d + alpha/beta) / s`, s =
alpha/beta + 2 (EQD2) or alpha/beta (BED), a convex quadratic of the dose, so its upper bound
is a convex constraint (a cone for CLARABEL, a smooth constraint for the fast path); a lower
bound on it is not convex and is refused. The mean of the voxels' EQD2 is what predicts
pneumonitis from a hypofractionated lung dose (mean lung EQD2), not the EQD2 of the mean dose.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from specc.protocol.isoeffect import DoseQuantity, divisor, isoeffective_gy
from specc.protocol.units import Dose
from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermResult
from specc.terms.dose_roles import DoseRole
from specc.terms.limits import ScalarLimit, StructureName, check_min_max, judged_dose
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
    quantity: DoseQuantity = Field(
        default="physical",
        description="physical (default), or EQD2 / BED: the mean of each voxel's isoeffective dose (max only).",
    )
    alpha_beta: Annotated[Dose | None, DoseRole.PARAMETER] = Field(
        default=None,
        description='The tissue\'s alpha/beta ratio, e.g. "3 Gy" (EQD2 / BED); left out, the structure\'s `alpha_beta`.',
    )

    @model_validator(mode="after")
    def _consistent_bounds(self) -> MeanDose:
        if self.max is None and self.min is None:
            raise ValueError("mean_dose needs `max`, `min` or both")
        check_min_max("mean_dose", self.min, self.max)
        if self.quantity == "physical":
            if self.alpha_beta is not None:
                raise ValueError("`alpha_beta` converts a mean in EQD2 or BED: give `quantity` too, or remove it")
            return self
        if self.alpha_beta is None or self.alpha_beta.gy <= 0:
            raise ValueError(
                f"a mean {self.quantity} needs the tissue's alpha/beta: give `alpha_beta` (a positive dose, e.g. 3 Gy) "
                f"here or on structures.{self.structure}"
            )
        if self.min is not None:
            raise ValueError(
                f"a lower bound on a mean {self.quantity} is not convex (the conversion is a convex quadratic of the "
                "dose): bound it from above only"
            )
        return self

    @classmethod
    def with_structure_defaults(cls, written: dict, alpha_beta: Dose | None) -> dict:
        # A mean in EQD2 / BED takes its structure's alpha/beta when it gives none: the ratio is the tissue's, and
        # written twice the two could drift (a differing one is a protocol error).
        if written.get("quantity", "physical") == "physical" or "alpha_beta" in written or alpha_beta is None:
            return written
        return {**written, "alpha_beta": alpha_beta}

    def upper_limit_on(self, dose_gy: np.ndarray, weights: np.ndarray) -> tuple[float, float, str] | None:
        if self.max is None or self.quantity != "physical":  # an EQD2 mean converts each course apart
            return None
        return float(weights @ dose_gy), self.max.gy, "a mean of"

    def label(self) -> str:
        of = "" if self.quantity == "physical" else f" ({self.quantity}, alpha/beta {self.alpha_beta})"
        return f"mean_dose {self.structure}{of} {self.bounds_text()}{self.limit_suffix()}"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        weights, dose = ctx.voxel_weights(self.structure), ctx.dose(self.structure)
        if self.quantity == "physical":
            return self.limit_value(weights @ dose, ctx)
        assert self.alpha_beta is not None
        per_fraction = weights @ (cp.square(dose) + self.alpha_beta.gy * dose) / divisor(self.quantity, self.alpha_beta.gy)
        return self.limit_value(per_fraction, ctx)

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        volumes = ctx.voxel_weights(self.structure)
        if self.quantity == "physical":

            def mean(point: SmoothPoint) -> tuple[float, SmoothGradient]:
                return float(volumes @ point.dose), SmoothGradient(dose=volumes)

            return self.limit_smooth_value(self.structure, mean, ctx)
        assert self.alpha_beta is not None
        ratio, scale = self.alpha_beta.gy, divisor(self.quantity, self.alpha_beta.gy)

        def isoeffective_mean(point: SmoothPoint) -> tuple[float, SmoothGradient]:
            dose = point.dose
            return float(volumes @ (dose * (dose + ratio))) / scale, SmoothGradient(
                dose=volumes * (2.0 * dose + ratio) / scale
            )

        return self.limit_smooth_value(self.structure, isoeffective_mean, ctx)

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        dose = ctx.dose(self.structure)
        if self.quantity == "physical":
            mean = float(np.mean(dose))
            detail = f"mean dose in {self.structure}"
        else:
            assert self.alpha_beta is not None
            mean = float(np.mean(isoeffective_gy(dose, ctx.fractions, self.alpha_beta.gy, self.quantity)))
            detail = (
                f"mean {self.quantity} in {self.structure} (alpha/beta {self.alpha_beta}, {ctx.fractions} fractions)"
            )
        return judged_dose(mean, self.min, self.max, detail)
