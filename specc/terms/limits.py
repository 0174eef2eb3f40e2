"""Fields and judgements shared by the kinds: structure names, weights, hard-or-soft limits.

A limit kind (min/max/mean dose, DVH, gEUD) is hard by default: it becomes a cvxpy
constraint and the solver must meet it. Written with `hard: false` and a `weight` (then
required), it becomes the penalty `weight * pos(violation)**2`, the violation measured in
Gy per fraction. Squaring puts soft limits on the same Gy^2-per-fraction scale as the quadratic
objectives, so a weight means the same thing whichever kind it sits on.

On the final dose a limit is judged with `LIMIT_TOLERANCE`: an upper limit of D counts as
met up to D * (1 + LIMIT_TOLERANCE), a lower limit down to D * (1 - LIMIT_TOLERANCE). Its
`TermResult` also gives the bound and the plain distance past it (`beyond`), without tolerance.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, StringConstraints, model_validator

from specc.terms.base import LIMIT_TOLERANCE, BuiltTerm, TermBase, TermResult

from specc.protocol.units import Dose
from specc.terms.smooth import ScalarFunction, SmoothContext, SmoothForm, min_max_form

if TYPE_CHECKING:
    import cvxpy as cp

    from specc.terms.base import BuildContext

StructureName = Annotated[
    str,
    StringConstraints(min_length=1),
    Field(description="Name of a structure defined in the protocol's `structures`."),
]
# Strict: a YAML `weight: yes` or `weight: "2"` is a typo to report, not a value to coerce.
Weight = Annotated[
    float,
    Field(strict=True, gt=0, allow_inf_nan=False, description="Relative importance of this objective (> 0)."),
]


def format_weight(weight: float) -> str:
    return f"{weight:g}"


def check_min_max(kind: str, low: Dose | None, high: Dose | None) -> None:
    """The rules shared by kinds bounding one value from below and/or above (mean dose, gEUD)."""
    if low is not None and low.gy == 0:
        raise ValueError(f"a minimum {kind} of 0 Gy constrains nothing: remove `min` or give a dose")
    if low is not None and high is not None and low.gy > high.gy:
        raise ValueError(f"{kind} `min` ({low}) is above `max` ({high}): no dose can meet both")


def min_max_text(low: Dose | None, high: Dose | None) -> str:
    """'>= 20 Gy and <= 26 Gy', as a label writes a two-sided bound."""
    bounds = ([f">= {low}"] if low is not None else []) + ([f"<= {high}"] if high is not None else [])
    return " and ".join(bounds)


def meets_upper(value_gy: float, limit_gy: float) -> bool:
    """Whether a dose meets an upper limit, allowing the solver's tolerance."""
    return value_gy <= limit_gy * (1.0 + LIMIT_TOLERANCE)


def meets_lower(value_gy: float, limit_gy: float) -> bool:
    """Whether a dose meets a lower limit, allowing the solver's tolerance."""
    return value_gy >= limit_gy * (1.0 - LIMIT_TOLERANCE)


def beyond(value: float, low: float | None, high: float | None) -> tuple[float, float]:
    """(limit, violation) of a measured `value` bounded by `low` and/or `high` (in its unit): the bound it is
    judged against (the one it breaks; within both, the upper one where there is one) and how far past that bound
    it lies, 0 within. An undefined value (nan) breaks its limit by an unknown amount: inf."""
    bound = high if high is not None else low
    if bound is None:
        raise ValueError("a limit needs a lower or an upper bound")
    if math.isnan(value):
        return bound, math.inf
    if low is not None and value < low:
        return low, low - value
    return bound, (max(value - bound, 0.0) if high is not None else 0.0)


def judged_dose(value_gy: float, low: Dose | None, high: Dose | None, detail: str) -> TermResult:
    """A measured total dose `value_gy` (Gy) against a lower and/or an upper bound, as every kind bounding one dose
    (max_dose, min_dose, mean_dose, gEUD, a lower DVH limit's covering dose) reports it: met with `LIMIT_TOLERANCE`,
    and the bound judged against with the plain distance past it (`beyond`). One rule, so that a kind's judgement and
    the limit and violation plan.json records of it cannot part. `detail` says what was measured."""
    limit, violation = beyond(value_gy, *(None if bound is None else bound.gy for bound in (low, high)))
    satisfied = (high is None or meets_upper(value_gy, high.gy)) and (low is None or meets_lower(value_gy, low.gy))
    return TermResult(value=value_gy, unit="Gy", satisfied=satisfied, detail=detail, limit=limit, violation=violation)


class HardOrSoftLimit(TermBase):
    """A limit the solver must meet (`hard: true`, the default) or a weighted penalty."""

    hard: bool = Field(
        default=True,
        strict=True,
        description="true: a constraint the plan must meet; false: a penalty weighted by `weight`.",
    )
    weight: Weight | None = Field(
        default=None,
        description="Importance of the penalty; required with `hard: false`, not allowed on a hard limit.",
    )

    @model_validator(mode="after")
    def _weight_only_when_soft(self) -> HardOrSoftLimit:
        if self.hard and self.weight is not None:
            raise ValueError(
                "a hard limit has no weight: remove `weight`, or set `hard: false` to make it a weighted penalty"
            )
        if not self.hard and self.weight is None:
            raise ValueError("a soft limit (`hard: false`) needs a `weight` > 0")
        if self.hard and self.priority is not None:
            raise ValueError(
                "a hard limit holds in every step, so it has no priority: remove `priority`, or set `hard: false` "
                "with a `weight` to make it a penalty optimized at that priority"
            )
        return self

    @property
    def is_constraint(self) -> bool:
        return self.hard

    def limit_suffix(self) -> str:
        """' (soft, weight 2)' for soft limits, '' for hard ones: appended to labels."""
        return "" if self.hard else f" (soft, weight {format_weight(self.weight or 0.0)})"

    def upper_limit(self, value: cp.Expression, limit: float) -> BuiltTerm:
        """`value <= limit` (Gy per fraction) as a constraint or as the squared-excess penalty."""
        import cvxpy as cp

        if self.hard:
            return BuiltTerm(constraints=[value <= limit])
        return BuiltTerm(objective=self.weight * cp.square(cp.pos(value - limit)), met=[value <= limit])

    def lower_limit(self, value: cp.Expression, limit: float) -> BuiltTerm:
        """`value >= limit` (Gy per fraction) as a constraint or as the squared-shortfall penalty."""
        import cvxpy as cp

        if self.hard:
            return BuiltTerm(constraints=[value >= limit])
        return BuiltTerm(objective=self.weight * cp.square(cp.pos(limit - value)), met=[value >= limit])


class ScalarLimit(HardOrSoftLimit):
    """A limit on one number summarizing a structure's dose (its mean, its gEUD): `min` and/or `max`.

    The kind computes its number (cvxpy expression, smooth function, measured value); the
    bounds and their per-fraction conversion are shared here, and the kind judges its measured value
    by `judged_dose`, as every kind bounding one dose does.
    """

    max: Dose | None = None
    min: Dose | None = None

    def bounds_text(self) -> str:
        return min_max_text(self.min, self.max)

    def fraction_bounds(self, ctx: BuildContext | SmoothContext) -> tuple[float | None, float | None]:
        """(min, max) in Gy per fraction; None where the protocol gives no bound."""
        low = None if self.min is None else ctx.per_fraction(self.min)
        high = None if self.max is None else ctx.per_fraction(self.max)
        return low, high

    def limit_value(self, value: cp.Expression, ctx: BuildContext) -> BuiltTerm:
        """`min <= value <= max` (value in Gy per fraction, either side optional), hard or soft."""
        low, high = self.fraction_bounds(ctx)
        built = BuiltTerm()
        parts = []
        if high is not None:
            parts.append(self.upper_limit(value, high))
        if low is not None:
            parts.append(self.lower_limit(value, low))
        for part in parts:
            built.constraints.extend(part.constraints)
            built.met.extend(part.met)
            if part.objective is not None:
                built.objective = part.objective if built.objective is None else built.objective + part.objective
        return built

    def limit_smooth_value(self, structure: str, value: ScalarFunction, ctx: SmoothContext) -> SmoothForm:
        return min_max_form(structure, value, *self.fraction_bounds(ctx), self.hard, self.weight)
