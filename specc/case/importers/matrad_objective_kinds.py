"""Each matRad objective and constraint class as specc terms and goals, and how the two differ.

The scale: matRad minimizes sum_k penalty_k * f_k(d), with d the dose per fraction (its
dij is per fraction) and every dose parameter divided by pln.numOfFractions before the
optimization (matRad_fractionateCstFunctions); its squared objectives are means over the
N dose-grid voxels it optimizes the structure on, penalty/N * sum_i (...)^2 (the structure's
own less those overlap priorities give to other rows: `matrad_objectives` then puts the
terms on a derived structure of those voxels). specc's terms take the same dose
per fraction (`BuildContext.per_fraction`) and average with the voxels' relative volumes
(1/N on equal voxels), so where the function is the same, `weight = penalty` means the same
plan. Where it is not (NOTES says how for each kind), the penalty is still the weight, and
the protocol's comments say that the trade-off must be checked. Anything without a convex
specc equivalent raises `Untranslatable`, so the caller lists it instead of dropping it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specc.case.importers.matrad_cst_functions import CstFunction
from specc.protocol.units import format_number
from specc.terms.base import LIMIT_TOLERANCE

OBJECTIVE_PRIORITY = 2  # goals from matRad's objectives; its constraints' goals keep the default, 1


class Untranslatable(Exception):
    """A function with no convex specc equivalent; the message says why."""


@dataclass
class Translation:
    """What one matRad function becomes: terms, goals, the NOTES keys that explain them, the
    parts left out (one side of a two-sided function, a robustness setting), and a line when the
    weight is matRad's default penalty, not the one the workspace stores (old format)."""

    terms: list[dict[str, Any]] = field(default_factory=list)
    goals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    ignored_penalty: str | None = None


NOTES: dict[str, str] = {
    "old_penalty": "matRad <= 2.1's 'min DVH objective', 'max DVH objective', 'mean' and 'EUD' have weight 1, "
    "whatever penalty the workspace stores with them: matRad reads them through convertOldOptimizationStruct "
    "(matRad_DoseOptimizationFunction.m), which copies the penalty only for the squared types, so matRad optimizes "
    "them with its classes' default penalty, 1, and ignores the stored one.",
    "squared": "quadratic_overdose / quadratic_underdose / uniform_dose are matRad's squared overdosing / "
    "underdosing / deviation exactly: penalty/N x the sum of squared excesses (shortfalls, deviations) in Gy^2 per "
    "fraction, so weight = penalty means the same.",
    "mean_zero": "linear_overdose at 0 Gy is matRad's linear mean-dose objective with reference 0 Gy exactly "
    "(penalty x the mean dose per fraction; matRad <= 2.1's 'mean').",
    "mean_squared": "mean_dose (soft) is weight x pos(mean - max)^2 in Gy^2 per fraction: matRad's quadratic "
    "mean-dose objective (mean - ref)^2 on the side above ref; a mean below ref, which matRad also penalizes, is free.",
    "mean_linear": "mean_dose (soft) from matRad's linear mean-dose objective |mean - ref| (Gy per fraction): specc "
    "squares the excess (Gy^2 per fraction) and leaves a mean below ref free, so the penalty kept as the weight "
    "matches only at an excess of 1 Gy per fraction: check the trade-off.",
    "eud": "geud (soft) is weight x pos(gEUD - max)^2 (a >= 1) or pos(min - gEUD)^2 (a < 1) in Gy^2 per fraction: "
    "matRad's EUD objective (EUD - ref)^2 on the side a convex program can hold; matRad also penalizes the other.",
    "dvh": "dvh (soft) is not matRad's DVH objective: matRad penalizes penalty/N x the sum of (d_i - d)^2 over the "
    "voxels between d and the dose at the volume V (non-convex); specc's convex CVaR form penalizes weight x the "
    "squared violation (Gy^2 per fraction) of the mean dose of the hottest V (max) or the coldest 100% - V (min) "
    "beyond d. Both are 0 when the DVH point holds (specc's only a little past it: CVaR is conservative); the weight "
    "is matRad's penalty but not the same trade-off: check it.",
    "min_max_dose": "min_dose / max_dose (hard) hold on every voxel; matRad's default method ('approx') holds a "
    "log-sum-exp approximation of the minimum / maximum instead, its 'voxelwise' method the same as specc.",
    "aimed_inside": "A constraint's hard term aims 0.1% (LIMIT_TOLERANCE) of its dose inside matRad's bound, as "
    "specc's limits derived from protocol goals do (docs/optimizer.md): its priority-1 goal at matRad's exact bound "
    "is judged without tolerance, so a term at the bound itself, met within the solver's round-off, would read "
    "'satisfied' beside a failed goal.",
    "mean_hard": "mean_dose (hard) is matRad's mean-dose constraint exactly.",
    "dvh_hard": "dvh (hard): matRad counts the voxels at or above d; specc holds the convex CVaR bound (stricter) and "
    "then refines the plan to the exact DVH limit (docs/optimizer.md).",
    "eud_hard": "geud (hard) is matRad's EUD constraint, mean(d^k)^(1/k), on the side a convex program can hold "
    "(k >= 1 for a maximum, k <= 1 for a minimum); specc has no gEUD goal metric, so it is not a goal.",
}


def translate(function: CstFunction, source: str) -> Translation:
    """The terms and goals of one matRad function; `Untranslatable` when it has no specc equivalent."""
    if function.class_name is None:
        raise Untranslatable(_OLD_WITHOUT_CLASS.get(function.kind, "an old objective type matRad itself does not know"))
    translator = _TRANSLATORS.get(function.class_name)
    if translator is None:
        raise Untranslatable(_unknown_reason(function.class_name))
    translation = translator(function, source)
    if function.default_penalty:
        translation.notes.append("old_penalty")
    if function.ignored_penalty is not None and _stored(function.ignored_penalty) != "1":
        translation.ignored_penalty = (
            f"{function.where} ({function.structure}, {function.kind}): the stored penalty "
            f"{_stored(function.ignored_penalty)} is not read; weight 1"
        )
    if function.robustness != "none":
        translation.left_out.append(
            f"robustness '{function.robustness}': translated for the nominal dose only; specc's robustness is the "
            "protocol's `robustness` section (setup errors), to be written by hand"
        )
    return translation


# --- objectives ---------------------------------------------------------------------------------
def _squared(kind: str) -> Callable[[CstFunction, str], Translation]:
    def translator(function: CstFunction, source: str) -> Translation:
        dose = function.dose(0, source)
        if kind == "quadratic_underdose" and dose == 0:
            raise Untranslatable("squared underdosing below 0 Gy penalizes nothing")
        term = _term(kind, function, dose=_gy(dose), weight=_weight(function, source))
        return Translation(terms=[term], notes=["squared"])

    return translator


def _mean_dose(function: CstFunction, source: str) -> Translation:
    reference = function.dose(0, source)
    difference = function.number(1, source) if len(function.parameters) > 1 else 1.0  # 1 linear, 2 quadratic
    if difference not in (1.0, 2.0):
        raise Untranslatable(f"mean-dose difference setting {difference:g} is neither 1 (linear) nor 2 (quadratic)")
    weight = _weight(function, source)
    if difference == 1.0 and reference == 0:
        return Translation(terms=[_term("linear_overdose", function, dose="0 Gy", weight=weight)], notes=["mean_zero"])
    term = _term("mean_dose", function, max=_gy(reference), hard=False, weight=weight)
    return Translation(terms=[term], notes=["mean_squared" if difference == 2.0 else "mean_linear"])


def _eud(function: CstFunction, source: str) -> Translation:
    reference, exponent = function.dose(0, source), function.number(1, source)
    if not math.isfinite(exponent) or exponent == 0:
        raise Untranslatable(f"EUD exponent {exponent:g}: specc's geud needs a finite exponent other than 0")
    weight = _weight(function, source)
    if exponent >= 1:
        term = _term("geud", function, a=exponent, max=_gy(reference), hard=False, weight=weight)
    elif reference > 0:
        term = _term("geud", function, a=exponent, min=_gy(reference), hard=False, weight=weight)
    else:
        raise Untranslatable(f"EUD towards 0 Gy with exponent {exponent:g} < 1 is not convex")
    return Translation(terms=[term], notes=["eud"])


def _min_dvh(function: CstFunction, source: str) -> Translation:
    dose, volume = function.dose(0, source), function.number(1, source)
    if dose == 0 or not 0 < volume <= 100:
        raise Untranslatable(f"a minimum DVH objective at {dose:g} Gy on {volume:g}% constrains nothing")
    term = _term("dvh", function, dose=_gy(dose), volume=_percent(volume), bound="lower", hard=False,
                 weight=_weight(function, source))
    goal = f"D{format_number(volume)}% >= {_gy(dose)} (priority {OBJECTIVE_PRIORITY})"
    return Translation(terms=[term], goals=[goal], notes=["dvh"])


def _max_dvh(function: CstFunction, source: str) -> Translation:
    dose, volume = function.dose(0, source), function.number(1, source)
    if not 0 <= volume < 100:
        raise Untranslatable(f"a maximum DVH objective on {volume:g}% of the volume constrains nothing")
    term = _term("dvh", function, dose=_gy(dose), volume=_percent(volume), bound="upper", hard=False,
                 weight=_weight(function, source))
    goal = f"V{format_number(dose)}Gy[%] <= {format_number(volume)} (priority {OBJECTIVE_PRIORITY})"
    return Translation(terms=[term], goals=[goal], notes=["dvh"])


# --- constraints (hard terms, priority-1 goals) -------------------------------------------------------
def _min_max_dose(function: CstFunction, source: str) -> Translation:
    low, high = function.dose(0, source), function.dose(1, source)
    translation = Translation(notes=["min_max_dose", "aimed_inside"])
    if low > 0:
        translation.terms.append(_term("min_dose", function, dose=_aimed(low, upper=False)))
        translation.goals.append(f"Min >= {_gy(low)}")
    if math.isfinite(high):
        translation.terms.append(_term("max_dose", function, dose=_aimed(high, upper=True)))
        translation.goals.append(f"Max <= {_gy(high)}")
    return _constraining(translation, "a dose constraint from 0 Gy to Inf")


def _min_max_mean(function: CstFunction, source: str) -> Translation:
    low, high = function.dose(0, source), function.dose(1, source)
    bounds: dict[str, str] = {}
    translation = Translation(notes=["mean_hard", "aimed_inside"])
    if low > 0:
        bounds["min"] = _aimed(low, upper=False)
        translation.goals.append(f"Mean >= {_gy(low)}")
    if math.isfinite(high):
        bounds["max"] = _aimed(high, upper=True)
        translation.goals.append(f"Mean <= {_gy(high)}")
    if bounds:
        translation.terms.append(_term("mean_dose", function, **bounds))
    return _constraining(translation, "a mean-dose constraint from 0 Gy to Inf")


def _min_max_dvh(function: CstFunction, source: str) -> Translation:
    dose, low, high = function.dose(0, source), function.number(1, source), function.number(2, source)
    translation = Translation(notes=["dvh_hard", "aimed_inside"])
    if low > 0 and dose > 0:
        lower = _term("dvh", function, dose=_aimed(dose, upper=False), volume=_percent(low), bound="lower")
        translation.terms.append(lower)
        translation.goals.append(f"D{format_number(low)}% >= {_gy(dose)}")
    if high < 100:
        upper = _term("dvh", function, dose=_aimed(dose, upper=True), volume=_percent(max(high, 0.0)), bound="upper")
        translation.terms.append(upper)
        translation.goals.append(f"V{format_number(dose)}Gy[%] <= {format_number(max(high, 0.0))}")
    return _constraining(translation, f"a DVH constraint at {dose:g} Gy from {low:g}% to {high:g}%")


def _min_max_eud(function: CstFunction, source: str) -> Translation:
    exponent, low, high = function.number(0, source), function.dose(1, source), function.dose(2, source)
    if not math.isfinite(exponent) or exponent == 0:
        raise Untranslatable(f"EUD exponent {exponent:g}: specc's geud needs a finite exponent other than 0")
    bounds: dict[str, str] = {}
    translation = Translation(notes=["eud_hard"])
    if math.isfinite(high):
        if exponent >= 1:
            bounds["max"] = _gy(high)
        else:
            translation.left_out.append(f"EUD <= {high:g} Gy with exponent {exponent:g} < 1 is not convex")
    if low > 0:
        if exponent <= 1:
            bounds["min"] = _gy(low)
        else:
            translation.left_out.append(f"EUD >= {low:g} Gy with exponent {exponent:g} > 1 is not convex")
    if bounds:
        translation.terms.append(_term("geud", function, a=exponent, **bounds))
    elif translation.left_out:
        raise Untranslatable("; ".join(translation.left_out))
    return _constraining(translation, "an EUD constraint from 0 Gy to Inf")


_TRANSLATORS: dict[str, Callable[[CstFunction, str], Translation]] = {
    "DoseObjectives.matRad_SquaredOverdosing": _squared("quadratic_overdose"),
    "DoseObjectives.matRad_SquaredUnderdosing": _squared("quadratic_underdose"),
    "DoseObjectives.matRad_SquaredDeviation": _squared("uniform_dose"),
    "DoseObjectives.matRad_MeanDose": _mean_dose,
    "DoseObjectives.matRad_EUD": _eud,
    "DoseObjectives.matRad_MinDVH": _min_dvh,
    "DoseObjectives.matRad_MaxDVH": _max_dvh,
    "DoseConstraints.matRad_MinMaxDose": _min_max_dose,
    "DoseConstraints.matRad_MinMaxMeanDose": _min_max_mean,
    "DoseConstraints.matRad_MinMaxDVH": _min_max_dvh,
    "DoseConstraints.matRad_MinMaxEUD": _min_max_eud,
}

_OLD_WITHOUT_CLASS = {
    "exact DVH constraint": "an exact DVH point (an equality on the volume at a dose) is not convex",
    "max EUD constraint": "matRad cannot optimize it: its convertOldOptimizationStruct writes the exponent to "
    "S.parameters{1} (a typo for s), so the matRad_MinMaxEUD it makes has parameters{1} = [] and its constraint "
    "function mean(dose.^k)^(1/k) stops the optimization with an error; re-create the constraint in matRad "
    "(class DoseConstraints.matRad_MinMaxEUD, with its exponent) and import the saved workspace again",
}

_NOT_PHYSICAL = ("LETdObjectives", "LETxDoseObjectives", "DirtyDoseObjectives")


def _unknown_reason(class_name: str) -> str:
    package = class_name.split(".", 1)[0] if "." in class_name else ""
    if package in _NOT_PHYSICAL:
        return "LET and dirty-dose objectives have no specc equivalent (specc optimizes physical dose)"
    return f"class {class_name} has no specc equivalent"


# --- small helpers ---------------------------------------------------------------------------------
def _weight(function: CstFunction, source: str) -> float:
    penalty = function.penalty_value(source)
    if penalty == 0:
        raise Untranslatable("penalty 0: matRad leaves it out of the objective")
    return penalty


def _stored(value: Any) -> str:
    """An old struct's stored penalty as the YAML comment shows it."""
    if isinstance(value, str):
        return repr(value)
    numbers = np.asarray(value).ravel()
    if numbers.size == 1 and numbers.dtype.kind in "biuf":
        return format_number(float(numbers[0])) if math.isfinite(numbers[0]) else str(float(numbers[0]))
    return "(not a number)"


def _constraining(translation: Translation, nothing: str) -> Translation:
    if not translation.terms:
        raise Untranslatable(f"{nothing} constrains nothing")
    return translation


def _term(kind: str, function: CstFunction, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "structure": function.structure, **fields}


def _gy(value: float) -> str:
    return f"{format_number(value)} Gy"


def _aimed(value: float, upper: bool) -> str:
    """A constraint's bound moved LIMIT_TOLERANCE inside (down for an upper bound), as compile/derive.py aims a
    goal's limit, to 0.1 mGy: its goal stays at matRad's bound."""
    return _gy(round(value * (1.0 - LIMIT_TOLERANCE if upper else 1.0 + LIMIT_TOLERANCE), 4))


def _percent(value: float) -> str:
    return f"{format_number(value)}%"
