"""The exact DVH against brute-force definitions on random doses."""

from __future__ import annotations

import numpy as np
import pytest

from specc.evaluate.dvh import DVH, DVH_CURVE_STEP_GY, UndefinedMetric
from specc.protocol.units import Volume


def brute_dose_at_volume(dose: np.ndarray, volume: np.ndarray, v_cc: float) -> float:
    """max{d : volume with dose >= d is at least v} over the candidate voxel doses."""
    return max(d for d in dose if volume[dose >= d].sum() >= v_cc - 1e-9 * volume.sum())


def brute_dose_at_cold_volume(dose: np.ndarray, volume: np.ndarray, v_cc: float) -> float:
    """min{d : volume with dose <= d is at least v}."""
    return min(d for d in dose if volume[dose <= d].sum() >= v_cc - 1e-9 * volume.sum())


@pytest.fixture(params=range(5))
def random_structure(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(request.param)
    n = int(rng.integers(1, 300))
    dose = rng.gamma(4.0, 12.0, size=n)
    weights = rng.uniform(0.05, 1.0, size=n) if request.param % 2 else np.ones(n)
    return dose, weights, float(rng.uniform(0.01, 0.2))


def test_dose_at_volume_matches_brute_force(random_structure):
    dose, weights, voxel_cc = random_structure
    dvh = DVH.from_dose(dose, voxel_cc, weights)
    volume = weights * voxel_cc
    for percent in (0, 1, 2, 5, 10, 33.3, 50, 95, 98, 99, 100):
        expected = brute_dose_at_volume(dose, volume, percent / 100 * volume.sum())
        assert dvh.dose_at_volume(Volume(value=percent, unit="%")) == expected
    for cc in (0.0, 0.03, voxel_cc, volume.sum() / 3, volume.sum()):
        assert dvh.dose_at_volume(Volume(value=cc, unit="cc")) == brute_dose_at_volume(dose, volume, cc)


def test_dose_at_cold_volume_matches_brute_force(random_structure):
    dose, weights, voxel_cc = random_structure
    dvh = DVH.from_dose(dose, voxel_cc, weights)
    volume = weights * voxel_cc
    for percent in (1, 5, 50, 90, 100):
        expected = brute_dose_at_cold_volume(dose, volume, percent / 100 * volume.sum())
        assert dvh.dose_at_cold_volume(Volume(value=percent, unit="%")) == expected


def test_volumes_and_statistics_match_brute_force(random_structure):
    dose, weights, voxel_cc = random_structure
    dvh = DVH.from_dose(dose, voxel_cc, weights)
    volume = weights * voxel_cc
    assert dvh.volume_cc == pytest.approx(volume.sum())
    assert dvh.max == dose.max() and dvh.min == dose.min()
    assert dvh.mean == pytest.approx(np.average(dose, weights=volume))
    for gy in (0.0, dose.min(), np.median(dose), 40.0, dose.max(), dose.max() + 1):
        at_least = volume[dose >= gy].sum()
        assert dvh.volume_at_dose(gy, "cc") == pytest.approx(at_least, abs=1e-12)
        assert dvh.volume_at_dose(gy, "%") == pytest.approx(100 * at_least / volume.sum(), abs=1e-9)
        assert dvh.volume_below_dose(gy, "cc") == pytest.approx(volume[dose < gy].sum(), abs=1e-9)


def test_equal_voxels_use_no_interpolation():
    """D95% of 20 equal voxels is the 19th hottest voxel's dose exactly (rounding-proof)."""
    dose = np.arange(1.0, 21.0)  # 1..20 Gy
    dvh = DVH.from_dose(dose, 0.1)
    assert dvh.dose_at_volume(Volume(value=95, unit="%")) == 2.0
    assert dvh.dose_at_volume(Volume(value=5, unit="%")) == 20.0
    assert dvh.dose_at_volume(Volume(value=5.01, unit="%")) == 19.0
    assert dvh.dose_at_volume(Volume(value=100, unit="%")) == 1.0
    assert dvh.dose_at_cold_volume(Volume(value=10, unit="%")) == 2.0
    assert dvh.dose_at_volume(Volume(value=0.2, unit="cc")) == 19.0


def test_volume_beyond_structure_is_undefined():
    dvh = DVH.from_dose(np.ones(10), 0.1)  # 1 cc
    with pytest.raises(UndefinedMetric, match="more than the whole structure"):
        dvh.dose_at_volume(Volume(value=2, unit="cc"))


def test_zero_weight_voxels_do_not_count_and_empty_is_an_error():
    dvh = DVH.from_dose(np.array([5.0, 100.0, 1.0]), 1.0, weights=np.array([1.0, 0.0, 1.0]))
    assert dvh.max == 5.0 and dvh.volume_cc == 2.0
    with pytest.raises(UndefinedMetric):
        DVH.from_dose(np.array([1.0]), 1.0, weights=np.array([0.0]))


def test_curve_is_the_exact_cumulative_volume():
    rng = np.random.default_rng(7)
    dose = rng.uniform(0, 60, 500)
    dvh = DVH.from_dose(dose, 0.027)
    doses, percent = dvh.curve_by_step(step_gy=1.2)
    assert doses[0] == 0 and doses[-1] == dose.max() and percent[0] == 100.0
    assert np.all(np.diff(percent) <= 0)
    for d, p in zip(doses, percent):
        assert p == pytest.approx(100 * np.mean(dose >= d))


def test_record_curves_are_sampled_every_step_and_read_within_a_step_of_the_goal_values(random_structure):
    """The record's curves had 201 points up to the plan maximum (0.35 Gy apart for a 70 Gy plan): a D90% read off
    them was 1.04 Gy where the goal table said 2.10 Gy (audit a4 F6). Every DVH_CURVE_STEP_GY now, exact at each
    dose, so a D_v read off the curve (the highest sampled dose still receiving v) is within one step of D_v."""
    dose, weights, voxel_cc = random_structure
    dvh = DVH.from_dose(dose, voxel_cc, weights)
    top = dose.max() + 3.0  # a plan maximum above this structure's
    doses, percent = dvh.curve_by_step(max_dose_gy=top)
    assert DVH_CURVE_STEP_GY == 0.1
    assert doses[-1] == top and np.allclose(np.diff(doses[:-1]), 0.1) and 0 < top - doses[-2] <= 0.1
    assert doses.tolist()[:4] == [0.0, 0.1, 0.2, 0.3]  # no binary noise in plan.json
    volume = weights * voxel_cc
    for d, p in zip(doses, percent):
        assert p == pytest.approx(100 * volume[dose >= d * (1 - 1e-6)].sum() / volume.sum(), abs=1e-9)  # V(d)'s rule
    for v in (2, 10, 50, 90, 95, 98):
        exact = dvh.dose_at_volume(Volume(value=v, unit="%"))
        read_off = doses[percent >= v - 1e-9].max()
        assert exact - DVH_CURVE_STEP_GY < read_off <= exact


def test_a_curve_counts_a_voxel_at_its_dose_by_the_rule_of_v_of_d():
    """A voxel normalized onto 60 Gy and read back as float32 (59.999996 Gy) receives 60 Gy on the curve as in V60Gy."""
    dvh = DVH.from_dose(np.array([60.0 * (1 - 6e-8), 30.0]), 0.5)
    doses, percent = dvh.curve_by_step(max_dose_gy=60.0)
    assert doses[-1] == 60.0 and percent[-1] == 50.0 == dvh.volume_at_dose(60.0)


def test_agrees_with_dicompyler_core_within_its_bin_width():
    """dicompyler-core bins the dose; at 0.01 Gy bins its D95/V20 converge to ours."""
    dicompyler_dvh = pytest.importorskip("dicompylercore.dvh")
    rng = np.random.default_rng(3)
    dose = rng.normal(50.0, 4.0, 4000).clip(0)
    ours = DVH.from_dose(dose, 0.001)
    bin_gy = 0.01
    counts, edges = np.histogram(dose, bins=np.arange(0, dose.max() + 2 * bin_gy, bin_gy))
    theirs = dicompyler_dvh.DVH(counts * 0.001, edges, dvh_type="differential").cumulative
    assert theirs.statistic("D95").value == pytest.approx(
        ours.dose_at_volume(Volume(value=95, unit="%")), abs=2 * bin_gy
    )
    assert theirs.volume_constraint(50, "Gy").value == pytest.approx(ours.volume_at_dose(50.0, "cc"), rel=0.01)
