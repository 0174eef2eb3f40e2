"""`dvh`: a dose-volume limit, in the V form (`bound: upper`) or the D form (`bound: lower`).

A DVH limit counts voxels, which is not convex. The optimizer uses the conditional
value-at-risk bound of Rockafellar and Uryasev instead, written on the structure's dose
entries d (Gy per fraction) with their relative volumes w, for the volume fraction v:

- upper ("at most v above D"): the mean dose of the hottest v,
  `min_t t + w @ pos(d - t) / v`, must be at most D;
- lower ("at least v at D or more"): the mean dose of the coldest 1 - v,
  `max_s s - w @ pos(s - d) / (1 - v)`, must be at least D.

Both are convex and conservative: whenever the bound holds, the exact DVH limit holds too
on the same voxels, at the price of a plan somewhat stricter than required. v = 0 (upper)
and v = 100% (lower) are the plain maximum and minimum, and so is any v (or 1 - v) no larger
than the volume of one entry, which is how it is then written. An upper limit on at least the
whole structure is always met and adds nothing; a lower limit on more volume than the
structure has cannot be met and is a compile error. Volumes in cc are converted with the
structure's volume. Soft (`hard: false`), `weight` times the squared violation of the bound
in Gy per fraction is penalized (see `limits`).

On the final dose the exact DVH is measured from the voxel order statistics (no
interpolation): the upper form reports the volume above `dose` (in the unit of `volume`),
judged against `volume`, the lower form the dose that at least `volume` receives (D_v, in Gy),
judged against `dose`; each gives that bound as its `limit` and the distance past it as its
`violation`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from specc.errors import CompileError
from specc.protocol.units import Dose, Volume, format_number
from specc.terms.base import LIMIT_TOLERANCE, BuildContext, BuiltTerm, EvaluationContext, TermResult
from specc.terms.limits import HardOrSoftLimit, StructureName, beyond, judged_dose
from specc.terms.smooth import ConditionalValueAtRisk, SmoothContext, SmoothForm, scalar_limit, voxelwise_limit

# Voxel counts are compared with volumes given as decimal fractions: without this slack,
# "95% of 20 voxels" (19.000000000000004 in floating point) would demand 20 voxels.
_COUNT_SLACK = 1e-9


def dose_covering(dose: np.ndarray, fraction: float) -> float:
    """The highest dose that at least `fraction` of the (equal-volume) voxels receive: D_v."""
    if fraction > 1.0 + _COUNT_SLACK:
        return math.nan
    hottest_first = np.sort(dose)[::-1]
    needed = max(1, math.ceil(fraction * dose.size - _COUNT_SLACK))
    return float(hottest_first[min(needed, dose.size) - 1])


def fraction_above(dose: np.ndarray, threshold_gy: float) -> float:
    """Fraction of the (equal-volume) voxels receiving strictly more than `threshold_gy`: V_D."""
    return float(np.count_nonzero(dose > threshold_gy)) / dose.size


class DVH(HardOrSoftLimit):
    """A dose-volume limit: at most (`upper`) or at least (`lower`) `volume` of `structure` at `dose`.

    Clinical meaning: `bound: upper` is the V form of organ-at-risk limits, "at most
    `volume` of the structure may receive more than `dose`" (rectum V70Gy <= 20%, lung
    V20Gy <= 30%). `bound: lower` is the D form of target coverage, "at least `volume`
    receives at least `dose`" (PTV D95% >= 78 Gy). `volume` is a share of the structure
    (`%`) or an absolute volume (`cc`, as in D2cc). Hard by default; `hard: false` with a
    `weight` makes it a penalty.
    """

    kind: Literal["dvh"] = "dvh"
    structure: StructureName
    dose: Dose = Field(description="The dose level of the limit (total).")
    volume: Volume = Field(description='Volume of the limit: "20%" of the structure or "2 cc".')
    bound: Literal["upper", "lower"] = Field(
        description="upper: at most `volume` receives more than `dose` (V form, organs); "
        "lower: at least `volume` receives at least `dose` (D form, targets)."
    )

    @model_validator(mode="after")
    def _constrains_something(self) -> DVH:
        if self.bound == "upper" and self.volume.unit == "%" and self.volume.value == 100:
            raise ValueError("an upper DVH limit on 100% of the volume is always met: give a smaller volume")
        if self.bound == "lower" and self.volume.value == 0:
            raise ValueError("a lower DVH limit on 0 volume is always met: give the volume that must be covered")
        if self.bound == "lower" and self.dose.gy == 0:
            raise ValueError("every voxel receives at least 0 Gy, so this limit is always met: give a dose")
        return self

    def label(self) -> str:
        return f"dvh {self.structure} {self.metric()}{self.limit_suffix()}"

    def metric(self) -> str:
        """The limit in TG-263 notation: 'V70Gy <= 20%', 'V20Gy <= 10 cc', 'D95% >= 78 Gy', 'D2cc >= 60 Gy'."""
        if self.bound == "upper":
            return f"V{format_number(self.dose.gy)}Gy <= {self.volume}"
        return f"D{self._compact_volume()} >= {self.dose}"

    def _compact_volume(self) -> str:
        return f"{format_number(self.volume.value)}{self.volume.unit}"

    def _fraction(self, structure_cc: float) -> float:
        if self.volume.unit == "%":
            return self.volume.value / 100.0
        return self.volume.value / structure_cc

    def _too_large(self, structure_cc: float) -> CompileError:
        """A lower limit on more cc than the structure has: nothing can cover it (its `volume` to change)."""
        return CompileError(
            f"{self.structure} is only {structure_cc:.3g} cc, less than the {self.volume} that must be covered",
            field="volume",
        )

    def build(self, ctx: BuildContext) -> BuiltTerm:
        import cvxpy as cp

        fraction = self._fraction(ctx.volume_cc(self.structure))
        dose = ctx.dose(self.structure)
        weights = ctx.voxel_weights(self.structure)
        limit = ctx.per_fraction(self.dose)
        # A share no larger than any one entry's volume lies inside a single entry, so the
        # CVaR is then exactly the maximum (minimum): written so, it avoids a 1/fraction blow-up.
        smallest_entry = float(np.min(weights))
        if self.bound == "upper":
            if fraction >= 1.0:
                return BuiltTerm()  # the whole structure is allowed above the dose: nothing to limit
            if fraction <= smallest_entry:
                hottest = cp.max(dose)
            else:  # mean of the hottest `fraction` (upper CVaR), minimized over the threshold
                threshold = cp.Variable(name=f"cvar_threshold_{self.structure}")
                hottest = threshold + (weights @ cp.pos(dose - threshold)) / fraction
            return self.upper_limit(hottest, limit)
        else:
            if fraction > 1.0 + _COUNT_SLACK:  # the compile stage prefixes the protocol place and label
                raise self._too_large(ctx.volume_cc(self.structure))
            cold_fraction = 1.0 - min(fraction, 1.0)
            if cold_fraction <= smallest_entry:
                coldest = cp.min(dose)
            else:  # mean of the coldest `1 - fraction` (lower CVaR), maximized over the threshold
                threshold = cp.Variable(name=f"cvar_threshold_{self.structure}")
                coldest = threshold - (weights @ cp.pos(threshold - dose)) / cold_fraction
            return self.lower_limit(coldest, limit)

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        """The same CVaR bound as `build`, its `pos` written exactly with auxiliary variables."""
        fraction = self._fraction(ctx.volume_cc(self.structure))
        volumes = ctx.voxel_weights(self.structure)
        limit = ctx.per_fraction(self.dose)
        smallest_entry = float(np.min(volumes))
        upper = self.bound == "upper"
        if upper:
            if fraction >= 1.0:
                return SmoothForm(self.structure)
            share = fraction
        else:
            if fraction > 1.0 + _COUNT_SLACK:
                raise self._too_large(ctx.volume_cc(self.structure))
            share = 1.0 - min(fraction, 1.0)
        if share <= smallest_entry:
            return voxelwise_limit(self.structure, limit, upper=upper, hard=self.hard, weight=self.weight)
        cvar = ConditionalValueAtRisk(volumes, share, upper, limit)
        objective, constraints = scalar_limit(cvar.value, limit, upper, self.hard, self.weight)
        return SmoothForm(
            self.structure,
            objective=objective,
            constraints=(*constraints, cvar.rewriting()),
            auxiliary=cvar.auxiliary(),
        )

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        dose = ctx.dose(self.structure)
        structure_cc = ctx.volume_cc(self.structure)
        fraction = self._fraction(structure_cc)
        if self.bound == "upper":
            above = fraction_above(dose, self.dose.gy)
            # The tolerance is on dose: voxels within LIMIT_TOLERANCE of the limit are not counted as above it.
            above_tolerated = fraction_above(dose, self.dose.gy * (1.0 + LIMIT_TOLERANCE))
            if fraction >= 1.0:
                detail = f"the limit is not less than {self.structure}'s {structure_cc:.3g} cc: always met"
            else:
                detail = f"D{self._compact_volume()} = {dose_covering(dose, fraction):.2f} Gy"
            volume = 100.0 * above if self.volume.unit == "%" else above * structure_cc
            limit, violation = beyond(volume, None, self.volume.value)  # judged by its volume, in its unit
            return TermResult(
                value=volume,
                unit=self.volume.unit,
                satisfied=above_tolerated <= fraction + _COUNT_SLACK,
                detail=f"volume of {self.structure} above {self.dose}; {detail}",
                limit=limit,
                violation=violation,
            )
        covered = dose_covering(dose, fraction)
        if math.isnan(covered):
            detail = f"{self.structure} is only {structure_cc:.3g} cc, less than the {self.volume} to be covered"
        else:
            reached = 100.0 * float(np.mean(dose >= self.dose.gy))
            detail = (f"dose received by at least {self.volume} of {self.structure}; "
                      f"{reached:.1f}% receives at least {self.dose}")
        return judged_dose(covered, self.dose, None, detail)  # judged by the dose covering its volume


@dataclass(frozen=True)
class ExactDvhLimit:
    """A hard DVH limit in its exact, linear form: each of some entries at most (`upper`) or at
    least (`lower`) the limit's dose, the form the fast path solves in the exact refinement.

    Which entries is the refinement's choice (`specc.solve.refine.bounded_entries`, from the
    CVaR plan); `positions` are theirs among the structure's dose entries. The limit keeps
    its label, source and kind, so the solve log and the report name the protocol's term.
    `inside`: how far inside the limit's dose (a fraction of it) the bounds sit. A solver
    meets its bounds within a tolerance, and a hair above an upper limit's dose the bounded
    entries put the exact DVH on the dose itself, which counts every entry above it, over
    the limit (fast path, 10 mm test: V30Gy 45% for a limit of 30%, with the entries at
    30.0003 Gy; CLARABEL, 5 mm head-neck: V19Gy 55.5% for 48%).
    """

    limit: DVH
    positions: np.ndarray
    inside: float = 0.0

    @property
    def kind(self) -> str:
        return self.limit.kind

    @property
    def source(self) -> object:
        return self.limit.source

    @property
    def is_constraint(self) -> bool:
        return True

    def label(self) -> str:
        return self.limit.label()

    @property
    def bound(self) -> Dose:
        """The (total) dose the bounded entries are held at or under (`upper`), at or over (`lower`)."""
        factor = 1.0 - self.inside if self.limit.bound == "upper" else 1.0 + self.inside
        return Dose(gy=self.limit.dose.gy * factor)

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        if not len(self.positions):  # an upper limit may leave every entry free
            return SmoothForm(self.limit.structure)
        bounds = voxelwise_limit(
            self.limit.structure, ctx.per_fraction(self.bound), upper=self.limit.bound == "upper", hard=True,
            weight=None,
        )
        return dataclasses.replace(bounds, among=self.positions)
