"""`geud`: an upper bound on the generalized equivalent uniform dose.

gEUD = (sum_i w_i d_i**a)**(1/a), with w_i the relative volume of entry i. For a >= 1 it is
a weighted p-norm of the dose, hence convex: the bound is exact (cvxpy `pnorm` of the dose
scaled by w_i**(1/a); for a = 1 simply `w @ d`). Hard: gEUD <= max / fractions (gEUD is
homogeneous of degree 1, so per-fraction and total bounds agree). Soft: `weight` times the
squared excess in Gy per fraction (see `limits`). Measured on the final dose in Gy (total).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from specc.protocol.units import Dose, format_number
from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermResult
from specc.terms.limits import HardOrSoftLimit, StructureName, meets_upper
from specc.terms.smooth import SmoothContext, SmoothForm, SmoothGradient, SmoothPoint, scalar_limit


def generalized_eud(dose: np.ndarray, a: float) -> float:
    """gEUD of equal-volume voxels, scaled by the maximum so that large `a` cannot overflow."""
    highest = float(np.max(dose))
    if highest <= 0.0:
        return 0.0
    return highest * float(np.mean((dose / highest) ** a)) ** (1.0 / a)


class GEUD(HardOrSoftLimit):
    """The gEUD of `structure` with exponent `a` is at most `max` (total).

    Clinical meaning: the generalized equivalent uniform dose (Niemierko) summarizes a whole
    dose distribution as the uniform dose with the same biological effect. The exponent `a`
    encodes the organ's architecture: a = 1 is the mean dose (parallel organs such as the
    parotids and lungs), large a approaches the maximum dose (serial organs such as the spinal
    cord, a of 10 to 20). a < 1 would reward cold spots, which only makes sense for targets and
    not for this upper bound, so a >= 1 is required. Hard by default; `hard: false` with a
    `weight` makes it a penalty.
    """

    kind: Literal["geud"] = "geud"
    structure: StructureName
    a: float = Field(
        strict=True,
        description="Volume-effect exponent, >= 1: 1 is the mean dose, large values approach the maximum."
    )
    max: Dose = Field(description="Highest allowed gEUD (total).")

    @field_validator("a")
    @classmethod
    def _convex_exponent(cls, a: float) -> float:
        if not math.isfinite(a) or a < 1:
            raise ValueError(
                f"gEUD exponent a must be a finite number >= 1 (1 is the mean dose, larger values approach "
                f"the maximum), got {a}"
            )
        return a

    def label(self) -> str:
        return f"geud {self.structure} (a={format_number(self.a)}) <= {self.max}{self.limit_suffix()}"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        dose = ctx.dose(self.structure)
        weights = ctx.voxel_weights(self.structure)
        if self.a == 1:
            eud = weights @ dose
        else:
            eud = cp.pnorm(cp.multiply(weights ** (1.0 / self.a), dose), self.a)
        objective, constraints = self.upper_limit(eud, ctx.per_fraction(self.max))
        return BuiltTerm(objective=objective, constraints=constraints)

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        """gEUD = ||volumes**(1/a) * d||_a: smooth wherever some entry has dose, with gradient
        `volumes * |d|**(a-1) * sign(d) / gEUD**(a-1)` (computed relative to max |d| against overflow)."""
        volumes = ctx.voxel_weights(self.structure)
        a = self.a

        def eud(point: SmoothPoint) -> tuple[float, SmoothGradient]:
            magnitude = np.abs(point.dose)
            highest = float(np.max(magnitude)) if magnitude.size else 0.0
            if highest <= 0.0:  # all-zero dose: the gEUD is 0 and any direction raises it alike
                return 0.0, SmoothGradient(dose=volumes ** (1.0 / a))
            relative = magnitude / highest
            value = highest * float(volumes @ relative**a) ** (1.0 / a)
            gradient = volumes * np.sign(point.dose) * relative ** (a - 1.0) * (highest / value) ** (a - 1.0)
            return value, SmoothGradient(dose=gradient)

        objective, constraints = scalar_limit(eud, ctx.per_fraction(self.max), True, self.hard, self.weight)
        return SmoothForm(self.structure, objective=objective, constraints=constraints)

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        eud = generalized_eud(ctx.dose(self.structure), self.a)
        return TermResult(
            value=eud,
            unit="Gy",
            satisfied=meets_upper(eud, self.max.gy),
            detail=f"gEUD of {self.structure} with a = {format_number(self.a)}",
        )
