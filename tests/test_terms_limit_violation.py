"""Each limit kind says, on the final dose, which bound it judged its value against and how far past it the value lies.

Audit s21 (design card, one kind in one place): the benchmark chose that bound itself, by isinstance checks on
the kinds (a DVH upper limit by its volume, a lower one by its dose, a mean or gEUD by min / max, else
`dose_bounds`), and plan.json said only whether a limit held. Now each kind's `evaluate` gives `limit` and
`violation` in its value's unit. The doses below are known, ten 1 cc voxels of 10, 20, ..., 100 Gy, so every
expected number is worked out by hand or by a formula written here, not by the kind's own code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from specc.terms import KINDS, LIMIT_TOLERANCE, HardOrSoftLimit, LinearOverdose, UniformDose
from specc.terms.base import TermBase

DOSE_GY = np.arange(10.0, 101.0, 10.0)  # mean 55 Gy; 5 voxels (50%, 5 cc) above 50 Gy; D90% = 20 Gy


class KnownDose:
    """An evaluation context with `DOSE_GY` (total) on every structure, 1 cc voxels."""

    fluence = np.ones(1)

    def __init__(self, fractions: int = 1) -> None:
        self.fractions = fractions

    def dose(self, structure: str) -> np.ndarray:
        return DOSE_GY

    def voxel_volume_cc(self) -> float:
        return 1.0

    def volume_cc(self, structure: str) -> float:
        return float(DOSE_GY.size)


def _eqd2_mean(fractions: int, alpha_beta: float) -> float:
    """Mean EQD2 of `DOSE_GY` over `fractions`: d (d / n + a/b) / (2 + a/b) per voxel."""
    return float(np.mean(DOSE_GY * (DOSE_GY / fractions + alpha_beta) / (2.0 + alpha_beta)))


def _power_mean(a: float) -> float:
    return float(np.mean(DOSE_GY**a)) ** (1.0 / a)


# (term as written, fractions, expected value, unit, limit, violation)
CASES = [
    ({"kind": "max_dose", "structure": "O", "dose": "80 Gy"}, 1, 100.0, "Gy", 80.0, 20.0),
    ({"kind": "max_dose", "structure": "O", "dose": "120 Gy"}, 1, 100.0, "Gy", 120.0, 0.0),
    ({"kind": "max_dose", "structure": "O", "dose": "80 Gy", "hard": False, "weight": 1}, 1, 100.0, "Gy", 80.0, 20.0),
    ({"kind": "min_dose", "structure": "T", "dose": "15 Gy"}, 1, 10.0, "Gy", 15.0, 5.0),
    ({"kind": "min_dose", "structure": "T", "dose": "5 Gy"}, 1, 10.0, "Gy", 5.0, 0.0),
    ({"kind": "mean_dose", "structure": "O", "max": "50 Gy"}, 1, 55.0, "Gy", 50.0, 5.0),
    ({"kind": "mean_dose", "structure": "O", "min": "60 Gy"}, 1, 55.0, "Gy", 60.0, 5.0),
    # two-sided: the bound broken, else the upper one
    ({"kind": "mean_dose", "structure": "O", "min": "60 Gy", "max": "70 Gy"}, 1, 55.0, "Gy", 60.0, 5.0),
    ({"kind": "mean_dose", "structure": "O", "min": "40 Gy", "max": "52 Gy"}, 1, 55.0, "Gy", 52.0, 3.0),
    ({"kind": "mean_dose", "structure": "O", "min": "50 Gy", "max": "60 Gy"}, 1, 55.0, "Gy", 60.0, 0.0),
    # an EQD2 mean is judged against its EQD2 limit, not the physical mean (55 Gy, under 30 Gy + 25)
    ({"kind": "mean_dose", "structure": "O", "max": "30 Gy", "quantity": "EQD2", "alpha_beta": "3 Gy"}, 5,
     _eqd2_mean(5, 3.0), "Gy", 30.0, _eqd2_mean(5, 3.0) - 30.0),
    ({"kind": "geud", "structure": "O", "a": 1, "max": "50 Gy"}, 1, 55.0, "Gy", 50.0, 5.0),
    ({"kind": "geud", "structure": "O", "a": 8, "max": "100 Gy"}, 1, _power_mean(8), "Gy", 100.0, 0.0),
    ({"kind": "geud", "structure": "T", "a": -10, "min": "40 Gy"}, 1, _power_mean(-10), "Gy", 40.0,
     40.0 - _power_mean(-10)),
    # an upper DVH limit is judged by its volume, in its unit
    ({"kind": "dvh", "structure": "O", "dose": "50 Gy", "volume": "20%", "bound": "upper"}, 1, 50.0, "%", 20.0, 30.0),
    ({"kind": "dvh", "structure": "O", "dose": "50 Gy", "volume": "2 cc", "bound": "upper"}, 1, 5.0, "cc", 2.0, 3.0),
    ({"kind": "dvh", "structure": "O", "dose": "50 Gy", "volume": "60%", "bound": "upper"}, 1, 50.0, "%", 60.0, 0.0),
    # a lower one by the dose its volume receives
    ({"kind": "dvh", "structure": "T", "dose": "30 Gy", "volume": "90%", "bound": "lower"}, 1, 20.0, "Gy", 30.0, 10.0),
    ({"kind": "dvh", "structure": "T", "dose": "15 Gy", "volume": "9 cc", "bound": "lower"}, 1, 20.0, "Gy", 15.0, 0.0),
]


def _term(written: dict) -> TermBase:
    return KINDS[written["kind"]].model_validate(written)


@pytest.mark.parametrize(("written", "fractions", "value", "unit", "limit", "violation"), CASES,
                         ids=[_term(case[0]).label() for case in CASES])
def test_a_limit_gives_its_bound_and_how_far_past_it_its_value_lies(
    written: dict, fractions: int, value: float, unit: str, limit: float, violation: float
) -> None:
    result = _term(written).evaluate(KnownDose(fractions))
    assert (result.value, result.unit) == (pytest.approx(value), unit)
    assert result.limit == pytest.approx(limit) and result.violation == pytest.approx(violation, abs=1e-12)
    assert result.satisfied is (violation == 0.0)


def test_every_kind_that_can_be_a_limit_is_checked_here() -> None:
    limit_kinds = {name for name, cls in KINDS.items() if issubclass(cls, HardOrSoftLimit)}
    assert limit_kinds == {"min_dose", "max_dose", "mean_dose", "dvh", "geud"}
    assert {written["kind"] for written, *_ in CASES} == limit_kinds


def test_an_undefined_dvh_dose_breaks_its_limit_by_an_unknown_amount() -> None:
    term = _term({"kind": "dvh", "structure": "T", "dose": "15 Gy", "volume": "12 cc", "bound": "lower"})
    result = term.evaluate(KnownDose())  # 12 cc of a 10 cc structure: no dose covers it
    assert math.isnan(result.value) and result.satisfied is False
    assert (result.limit, result.violation) == (15.0, math.inf)


def test_the_violation_is_the_plain_distance_while_satisfied_allows_the_tolerance() -> None:
    within = _term({"kind": "max_dose", "structure": "O", "dose": f"{100.0 / (1 + 0.5 * LIMIT_TOLERANCE)!r} Gy"})
    result = within.evaluate(KnownDose())
    assert result.satisfied is True and result.violation == pytest.approx(100.0 - result.limit) and result.violation > 0


@pytest.mark.parametrize("objective", [
    UniformDose(structure="T", dose="60 Gy", weight=1), LinearOverdose(structure="O", dose="40 Gy", weight=1),
])
def test_an_objective_has_no_limit(objective: TermBase) -> None:
    assert not isinstance(objective, HardOrSoftLimit)  # no `hard`: these kinds are never limits
    result = objective.evaluate(KnownDose())
    assert (result.satisfied, result.limit, result.violation) == (None, None, None)
