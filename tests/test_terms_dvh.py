"""dvh: the CVaR bound is conservative, the exact DVH is measured from order statistics."""

from __future__ import annotations

import numpy as np
import pytest

from specc.errors import CompileError
from specc.protocol.units import Dose, Volume
from specc.terms import DVH, LIMIT_TOLERANCE, MaxDose, MinDose
from specc.terms.dvh import dose_covering, fraction_above
from terms_fakes import (
    FakeBuildContext,
    FakeEvaluationContext,
    fluence_cost,
    random_case,
    solve_with,
    target_reward,
    total_dose,
)






def brute_dose_covering(dose: np.ndarray, fraction: float) -> float:
    """Largest dose level d with at least `fraction` of the voxels at d or more."""
    return max(level for level in dose if np.count_nonzero(dose >= level) >= fraction * dose.size - 1e-9)


def test_order_statistics_match_brute_force() -> None:
    rng = np.random.default_rng(30)
    for size in (1, 7, 20, 101):
        dose = rng.uniform(0, 80, size=size).round(1)  # rounding makes ties
        fractions = [0.0, 1.0, 0.95, 0.05, *rng.uniform(0, 1, size=10), *(np.arange(size + 1) / size)]
        for fraction in fractions:
            assert dose_covering(dose, fraction) == brute_dose_covering(dose, fraction)
        for threshold in (*dose, -1.0, 100.0):
            assert fraction_above(dose, threshold) == np.mean([d > threshold for d in dose])
    assert dose_covering(np.arange(20.0), 0.95) == 1.0  # 19 of 20 voxels, not 20 after rounding error
    assert np.isnan(dose_covering(np.arange(20.0), 1.5))


@pytest.mark.parametrize(("seed", "volume"), [(31, 20.0), (32, 5.0), (33, 50.0), (34, 0.0)])
def test_upper_cvar_bound_is_conservative(seed: int, volume: float) -> None:
    case = random_case(seed)
    free = total_dose(case, "Organ", solve_with(case, [], target_reward))
    level = float(np.quantile(free, 0.3))  # the free plan has 70% of the organ above this level
    term = DVH(structure="Organ", dose=Dose(gy=level), volume=Volume(value=volume, unit="%"), bound="upper")
    fluence = solve_with(case, [term], target_reward)
    dose = total_dose(case, "Organ", fluence)
    result = term.evaluate(FakeEvaluationContext(case, fluence))
    exact = 100.0 * np.count_nonzero(dose > level * (1 + LIMIT_TOLERANCE)) / dose.size
    assert exact <= volume
    assert result.satisfied is True and result.unit == "%"
    assert result.value == pytest.approx(100.0 * np.mean(dose > level))
    assert np.mean(free > level) * 100 > volume  # the limit was not met without the term


@pytest.mark.parametrize(("seed", "volume"), [(35, 95.0), (36, 50.0), (37, 100.0)])
def test_lower_cvar_bound_is_conservative(seed: int, volume: float) -> None:
    case = random_case(seed)
    term = DVH(structure="Target", dose="10 Gy", volume=Volume(value=volume, unit="%"), bound="lower")
    fluence = solve_with(case, [term], fluence_cost)
    dose = total_dose(case, "Target", fluence)
    result = term.evaluate(FakeEvaluationContext(case, fluence))
    assert np.count_nonzero(dose >= 10.0 * (1 - LIMIT_TOLERANCE)) >= volume / 100 * dose.size - 1e-9
    assert result.value == pytest.approx(brute_dose_covering(dose, volume / 100))
    assert result.satisfied is True and result.unit == "Gy"


def test_cvar_bound_counts_voxels_by_their_weight() -> None:
    case = random_case(38, weighted=True)
    free = total_dose(case, "Organ", solve_with(case, [], target_reward))
    level = float(np.quantile(free, 0.5))
    term = DVH(structure="Organ", dose=Dose(gy=level), volume="10%", bound="upper")
    dose = total_dose(case, "Organ", solve_with(case, [term], target_reward))
    weights = case.weights["Organ"]
    assert weights[dose > level * (1 + LIMIT_TOLERANCE)].sum() <= 0.10
    assert weights[dose > level * (1 - 0.05)].sum() > 0.05  # the bound is not vacuously loose


def test_cc_volumes_are_converted_with_the_structure_volume() -> None:
    case = random_case(39)  # Organ: 60 voxels of 0.125 cc = 7.5 cc
    free = total_dose(case, "Organ", solve_with(case, [], target_reward))
    level = Dose(gy=float(np.quantile(free, 0.5)))
    in_cc = DVH(structure="Organ", dose=level, volume="1.5 cc", bound="upper")
    in_percent = DVH(structure="Organ", dose=level, volume="20%", bound="upper")
    fluence_cc = solve_with(case, [in_cc], target_reward)
    fluence_percent = solve_with(case, [in_percent], target_reward)
    target_cc, target_percent = (total_dose(case, "Target", f).mean() for f in (fluence_cc, fluence_percent))
    assert target_cc == pytest.approx(target_percent, rel=1e-5)
    result = in_cc.evaluate(FakeEvaluationContext(case, fluence_cc))
    assert result.unit == "cc" and result.satisfied is True
    assert result.value == pytest.approx(7.5 * np.mean(total_dose(case, "Organ", fluence_cc) > level.gy))


def test_upper_limit_on_more_than_the_structure_adds_nothing_and_is_met() -> None:
    case = random_case(40)
    term = DVH(structure="Organ", dose="1 Gy", volume="10 cc", bound="upper")
    built = term.build(FakeBuildContext(case))
    assert built.objective is None and built.constraints == []
    result = term.evaluate(FakeEvaluationContext(case, np.ones(case.n_beamlets)))
    assert result.satisfied is True and "always met" in result.detail


def test_lower_limit_on_more_than_the_structure_is_a_compile_error() -> None:
    case = random_case(41)  # Target: 40 voxels of 0.125 cc = 5 cc
    term = DVH(structure="Target", dose="60 Gy", volume="6 cc", bound="lower")
    with pytest.raises(CompileError, match=r"^Target is only 5 cc, less than the 6 cc that must be covered$"):
        term.build(FakeBuildContext(case))
    result = term.evaluate(FakeEvaluationContext(case, np.ones(case.n_beamlets)))
    assert result.satisfied is False and np.isnan(result.value)


def test_soft_dvh_trades_violation_for_weight() -> None:
    case = random_case(42)
    free = total_dose(case, "Organ", solve_with(case, [], target_reward))
    level = Dose(gy=float(np.quantile(free, 0.5)))
    above = []
    for weight in (0.01, 1.0, 100.0):
        term = DVH(structure="Organ", dose=level, volume="20%", bound="upper", hard=False, weight=weight)
        above.append(term.evaluate(FakeEvaluationContext(case, solve_with(case, [term], target_reward))).value)
    assert above[0] > above[1] >= above[2]
    assert above[0] > 20.0 and above[2] <= 20.0


class KnownDose:
    """An evaluation context with a given total dose on one structure of 1 cc voxels."""

    fractions = 1
    fluence = np.ones(1)

    def __init__(self, dose: np.ndarray) -> None:
        self._dose = dose

    def dose(self, structure: str) -> np.ndarray:
        return self._dose

    def voxel_volume_cc(self) -> float:
        return 1.0

    def volume_cc(self, structure: str) -> float:
        return float(self._dose.size)


def test_exact_dvh_judges_with_a_dose_tolerance() -> None:
    evaluation = KnownDose(np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]))

    def judged(dose_gy: float, volume: str, bound: str) -> bool | None:
        return DVH(structure="Organ", dose=Dose(gy=dose_gy), volume=volume, bound=bound).evaluate(evaluation).satisfied

    # 1 of 10 voxels (10%, 1 cc) is above 90 Gy.
    assert judged(90.0, "10%", "upper") and judged(90.0, "1 cc", "upper")
    assert not judged(90.0, "9%", "upper") and not judged(90.0, "0.9 cc", "upper")
    # A voxel within the tolerance above the limit does not count as above it; one beyond it does.
    assert judged(100.0 / (1 + 0.5 * LIMIT_TOLERANCE), "0%", "upper")
    assert not judged(100.0 / (1 + 2 * LIMIT_TOLERANCE), "0%", "upper")
    # D90% is 20 Gy; D95% is 10 Gy (the 20 Gy level covers only 90%).
    assert judged(20.0, "90%", "lower") and not judged(20.0, "95%", "lower")
    assert judged(10.0 / (1 - 0.5 * LIMIT_TOLERANCE), "100%", "lower")
    assert not judged(10.0 / (1 - 2 * LIMIT_TOLERANCE), "100%", "lower")
    result = DVH(structure="Organ", dose="50 Gy", volume="2 cc", bound="upper").evaluate(evaluation)
    assert (result.value, result.unit, result.satisfied) == (5.0, "cc", False)


def test_volume_inside_one_voxel_is_the_maximum_or_minimum() -> None:
    case = random_case(44)  # Organ: 60 voxels of 1.67% each; Target: 40 of 2.5%
    free = total_dose(case, "Organ", solve_with(case, [], target_reward))
    level = Dose(gy=float(np.quantile(free, 0.5)))
    as_dvh = solve_with(case, [DVH(structure="Organ", dose=level, volume="1%", bound="upper")], target_reward)
    as_max = solve_with(case, [MaxDose(structure="Organ", dose=level)], target_reward)
    target_dvh, target_max = (total_dose(case, "Target", fluence).mean() for fluence in (as_dvh, as_max))
    assert target_dvh == pytest.approx(target_max, rel=1e-6)
    as_dvh = solve_with(case, [DVH(structure="Target", dose="10 Gy", volume="98%", bound="lower")], fluence_cost)
    as_min = solve_with(case, [MinDose(structure="Target", dose="10 Gy")], fluence_cost)
    assert as_dvh.sum() == pytest.approx(as_min.sum(), rel=1e-6)
