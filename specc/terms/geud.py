"""`geud`: bounds on the generalized equivalent uniform dose, where they are convex.

gEUD = (sum_i w_i d_i**a)**(1/a), with w_i the relative volume of entry i, is a weighted
power mean of the dose. Its curvature follows the exponent, and so does which bound a
convex program can hold:

* a >= 1 (organs): a weighted p-norm, convex, so `gEUD <= max` is a convex constraint
  (cvxpy `pnorm` of the dose scaled by w_i**(1/a); for a = 1 simply `w @ d`);
* a <= 1, a != 0 (targets, typically a of -5 to -20: the cold spots dominate): concave on
  the non-negative doses, so `gEUD >= min` is convex (cvxpy's concave `pnorm` for p < 1);
* anything else (an upper bound with a < 1, a lower bound with a > 1) bounds a function from
  the wrong side and is not convex: the model refuses it, and the loader reports the term's
  protocol line. a = 0 (the geometric mean, the limit of the power mean) is refused too:
  write a small negative exponent instead.

gEUD is homogeneous of degree 1, so a bound on the total dose is the same bound on the
dose per fraction divided by the fractions. Hard: the constraint. Soft: `weight` times the
squared excess or shortfall in Gy per fraction (see `limits`). Measured on the final dose in
Gy (total), on every voxel of the structure.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from specc.protocol.units import Dose, format_number
from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, TermResult
from specc.terms.limits import ScalarLimit, StructureName, check_min_max, judged_dose
from specc.terms.smooth import NoSmoothForm, SmoothContext, SmoothForm, SmoothGradient, SmoothPoint


def generalized_eud(dose: np.ndarray, a: float) -> float:
    """gEUD of equal-volume voxels, computed relative to an extreme dose so no power overflows.

    For a > 0 the doses are scaled by the maximum (every ratio <= 1); for a < 0 by the
    minimum (every ratio >= 1, its power <= 1). With a < 0 a voxel without dose makes the
    gEUD 0, its limit.
    """
    if a == 0:
        raise ValueError("the gEUD with a = 0 is the geometric mean, which specc does not use")
    if a > 0:
        highest = float(np.max(dose))
        if highest <= 0.0:
            return 0.0
        return highest * float(np.mean((dose / highest) ** a)) ** (1.0 / a)
    lowest = float(np.min(dose))
    if lowest <= 0.0:
        return 0.0
    return lowest * float(np.mean((dose / lowest) ** a)) ** (1.0 / a)


class GEUD(ScalarLimit):
    """The gEUD of `structure` with exponent `a` is at most `max` and/or at least `min` (total).

    Clinical meaning: the generalized equivalent uniform dose (Niemierko) summarizes a whole
    dose distribution as the uniform dose with the same biological effect. The exponent `a`
    encodes the tissue: a = 1 is the mean dose (parallel organs such as the parotids and
    lungs), large a approaches the maximum dose (serial organs such as the spinal cord, a of
    10 to 20), negative a approaches the minimum dose (targets, a of -5 to -20, where cold
    spots cost tumour control). `max` (an organ limit) needs a >= 1 and `min` (a target's
    coverage) needs a <= 1, the bounds a convex program can hold; both at once only with
    a = 1. Hard by default; `hard: false` with a `weight` makes it a penalty.
    """

    kind: Literal["geud"] = "geud"
    structure: StructureName
    a: float = Field(
        strict=True,
        description="Volume-effect exponent: >= 1 with `max` (1 is the mean dose, large values approach the "
        "maximum); <= 1 and not 0 with `min` (negative values approach the minimum).",
    )
    max: Dose | None = Field(default=None, description="Highest allowed gEUD (total); needs a >= 1.")
    min: Dose | None = Field(default=None, description="Lowest allowed gEUD (total, > 0); needs a <= 1, a != 0.")

    @model_validator(mode="after")
    def _convex_bounds(self) -> GEUD:
        a = self.a
        if not math.isfinite(a):
            raise ValueError(f"gEUD exponent a must be a finite number, got {a}")
        if self.max is None and self.min is None:
            raise ValueError("geud needs `max` (an upper bound, a >= 1), `min` (a lower bound, a <= 1) or both")
        if self.max is not None and a < 1:
            raise ValueError(
                f"gEUD <= max with a = {format_number(a)} is not convex: an upper bound needs a >= 1 (1 is the mean "
                "dose, larger values approach the maximum); a < 1 suits a lower bound (`min`) on a target"
            )
        if self.min is not None and a > 1:
            raise ValueError(
                f"gEUD >= min with a = {format_number(a)} is not convex: a lower bound needs a <= 1 (negative values "
                "approach the minimum dose); a > 1 suits an upper bound (`max`) on an organ"
            )
        if self.min is not None and a == 0:
            raise ValueError(
                "gEUD with a = 0 is the geometric mean, which specc does not compile: give a small negative "
                "exponent (e.g. -1) or a = 1 (the mean dose)"
            )
        check_min_max("geud", self.min, self.max)
        return self

    def label(self) -> str:
        bounds = self.bounds_text()
        return f"geud {self.structure} (a={format_number(self.a)}) {bounds}{self.limit_suffix()}"

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        dose = ctx.dose(self.structure)
        weights = ctx.voxel_weights(self.structure)
        if self.a == 1:
            eud = weights @ dose
        else:  # convex for a > 1, concave (on d >= 0, which cvxpy adds) for a < 1
            eud = cp.pnorm(cp.multiply(weights ** (1.0 / self.a), dose), self.a)
        return self.limit_value(eud, ctx)

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        """gEUD = ||volumes**(1/a) * d||_a: smooth wherever some entry has dose, with gradient
        `volumes * |d|**(a-1) * sign(d) / gEUD**(a-1)` (computed relative to max |d| against overflow).

        A lower bound with a < 1 has no smooth form: its gradient is infinite at a voxel
        without dose (where a first-order solve starts), so the reference solver takes it.
        """
        if self.min is not None and self.a != 1:
            raise NoSmoothForm(
                f"geud {self.structure}: a lower bound with a = {format_number(self.a)} is not differentiable "
                "where a voxel has no dose"
            )
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

        return self.limit_smooth_value(self.structure, eud, ctx)

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        eud = generalized_eud(ctx.dose(self.structure), self.a)
        return judged_dose(eud, self.min, self.max, f"gEUD of {self.structure} with a = {format_number(self.a)}")
