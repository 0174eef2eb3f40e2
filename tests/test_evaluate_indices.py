"""Target indices on hand-made doses whose isodose volumes and hot spots are known voxel by voxel."""

from __future__ import annotations

import numpy as np
import pytest

from specc.case import Grid
from specc.evaluate.indices import target_indices

# 1 x 1 x 2 mm voxels: 0.002 cc each, so 15 voxels make 0.03 cc.
GRID = Grid(shape=(10, 10, 4), spacing_mm=(1.0, 1.0, 2.0), origin_mm=(0.0, 0.0, 0.0))
VOXEL_CC = 0.002
RX_GY = 60.0


def _target(count: int) -> np.ndarray:
    mask = np.zeros(GRID.shape, dtype=bool)
    mask.flat[:count] = True
    return mask


@pytest.mark.parametrize("read_back", [np.float64, np.float32])
def test_coverage_and_isodose_volumes_count_a_voxel_at_the_prescription_alike(read_back):
    """A target normalized exactly onto 60 Gy and read back as float32 (59.999996 Gy) lies wholly inside the
    prescription isodose, and so does every other voxel at 60 Gy: TV_PIV <= PIV, PCI and CI the same reading."""
    target = _target(40)
    dose = np.zeros(GRID.shape)
    dose[target] = RX_GY - 5e-5  # within 1e-6 of 60 Gy: counts as receiving it (V(d)'s rule)
    dose.flat[50] = RX_GY  # one voxel outside the target, exactly at the prescription
    dose.flat[60:70] = 0.5 * RX_GY * (1 - 5e-7)  # the half-prescription isodose by the same rule
    indices = target_indices("PTV", RX_GY, dose.astype(read_back).astype(np.float64), target, GRID, VOXEL_CC)
    assert indices.coverage_percent == pytest.approx(100.0)
    assert indices.prescription_isodose_cc == pytest.approx(41 * VOXEL_CC)
    assert indices.half_isodose_cc == pytest.approx(51 * VOXEL_CC)
    assert indices.paddick_conformity_index == pytest.approx(40 / 41)


def test_a_voxel_below_the_rounding_tolerance_is_outside_every_isodose():
    target = _target(40)
    dose = np.zeros(GRID.shape)
    dose[target] = RX_GY
    dose.flat[:10] = RX_GY * (1 - 1e-5)  # 10 target voxels 0.6 mGy short: not covered, and not in the PIV
    indices = target_indices("PTV", RX_GY, dose, target, GRID, VOXEL_CC)
    assert indices.coverage_percent == pytest.approx(75.0)
    assert indices.prescription_isodose_cc == pytest.approx(30 * VOXEL_CC)
    assert indices.paddick_conformity_index == pytest.approx(30**2 / (40 * 30))


def test_a_target_under_0_03_cc_has_no_near_maximum_as_a_goal_on_it_has_none():
    """A 10-voxel (0.02 cc) target at 1..10 Gy: its 'D0.03cc' was its minimum, 1 Gy, shown as its hot spot, while the
    goal 'D0.03cc' on it read NOT EVALUATED (audit a4 F1). Both now say why, in the same words."""
    from specc.evaluate.dvh import DVH, UndefinedMetric
    from specc.evaluate.indices import near_max_undefined
    from specc.protocol.units import Volume

    target = _target(10)
    dose = np.zeros(GRID.shape)
    dose[target] = np.arange(1.0, 11.0)
    with pytest.raises(UndefinedMetric) as goal:
        DVH.from_dose(dose[target], VOXEL_CC).dose_at_volume(Volume(value=0.03, unit="cc"))
    assert near_max_undefined(10 * VOXEL_CC) == str(goal.value) == "0.03 cc is more than the whole structure (0.02 cc)"
    spot = target_indices("S10", 10.0, dose, target, GRID, VOXEL_CC).hot_spot
    assert (spot.d0_03cc_gy, spot.max_gy) == (None, 10.0)  # plan.json kept the minimum, 1 Gy, as its D0.03cc
    assert near_max_undefined(15 * VOXEL_CC) is None  # exactly 0.03 cc: D0.03cc is its coldest voxel
    whole = _target(15)
    dose[whole] = np.arange(1.0, 16.0)
    assert target_indices("S15", 15.0, dose, whole, GRID, VOXEL_CC).hot_spot.d0_03cc_gy == 1.0


def test_a_hot_voxel_outside_targets_that_leave_under_0_03_cc_is_noted_by_its_maximum():
    """Outside the targets 10 voxels (0.02 cc): one at 80 Gy against a 60 Gy level. The note read the region's
    'D0.03cc', its minimum (5 Gy), and said nothing; it now judges the maximum and says why."""
    from specc.evaluate.indices import outside_hot_spot

    target = np.ones(GRID.shape, dtype=bool)
    target.flat[-10:] = False
    dose = np.full(GRID.shape, 60.0)
    dose.flat[-10:] = 5.0
    dose.flat[-1] = 80.0
    spot = outside_hot_spot(dose, [target], 60.0, GRID, VOXEL_CC)
    note = spot.note if spot is not None else None
    assert note is not None and note.startswith(
        "hot spot outside the prescription targets: maximum (no D0.03cc: 0.03 cc is more than the whole structure "
        "(0.02 cc)) 80.00 Gy (133% of the highest dose level, 60 Gy)")


def test_a_lower_level_isodose_leaves_out_the_higher_level_target_but_not_its_own_voxels():
    """A simultaneous boost: PTV_High (20 voxels at 78 Gy) beside PTV_Low (10 voxels at 70.2 Gy), 2 voxels of
    spill at 71 Gy. The 70.2 Gy isodose held PTV_High too: CI 3.2 and PCI 0.3125 for a conformal plan (audit b4
    F3). Without the higher target it is PTV_Low and its spill: CI 1.2, PCI 10/12."""
    from specc.evaluate.indices import higher_level_targets

    high, low = _target(20), np.zeros(GRID.shape, dtype=bool)
    low.flat[20:30] = True
    dose = np.zeros(GRID.shape)
    dose[high], dose[low] = 78.0, 70.2
    dose.flat[30:32] = 71.0  # spill beyond both targets
    dose.flat[32:40] = 40.0  # inside the half isodoses of both levels
    levels = [("PTV_High", 78.0), ("PTV_Low", 70.2)]
    assert higher_level_targets("PTV_Low", levels) == ["PTV_High"] and higher_level_targets("PTV_High", levels) == []
    lower = target_indices("PTV_Low", 70.2, dose, low, GRID, VOXEL_CC, higher_targets=high)
    assert lower.prescription_isodose_cc == pytest.approx(12 * VOXEL_CC)  # was 32 voxels
    assert lower.prescription_isodose_cc / lower.volume_cc == pytest.approx(1.2)
    assert lower.paddick_conformity_index == pytest.approx(10 / 12)
    assert lower.half_isodose_cc == pytest.approx(20 * VOXEL_CC)  # was 40 voxels
    # a higher target overlapping this one: its voxels inside this target count (TV_PIV <= PIV, PCI <= 1)
    nested = low | high
    dose[nested] = 70.2
    inner = target_indices("PTV_Low", 70.2, dose, nested, GRID, VOXEL_CC, higher_targets=high)
    assert inner.prescription_isodose_cc == pytest.approx(32 * VOXEL_CC)
    assert inner.paddick_conformity_index == pytest.approx(30**2 / (30 * 32))


def _box(x: slice, y: slice, z: slice = slice(None)) -> np.ndarray:
    mask = np.zeros(GRID.shape, dtype=bool)
    mask[x, y, z] = True
    return mask


def test_the_hot_spot_outside_the_targets_is_searched_inside_the_patients_outline():
    """Audit s20/t3 F3: another system's RT Dose, hot in air beyond the body, read 123% where the hottest 0.03 cc
    inside the body was 116%. Searched inside the outline (the structures enclosing every target and organ), the
    air is left out, and the note says where it searched."""
    from specc.evaluate.indices import outside_hot_spot, patient_outline

    body, target, organ = _box(slice(1, 9), slice(1, 9)), _box(slice(3, 5), slice(3, 5)), _box(slice(6, 8), slice(3, 5))
    dose = np.where(body, 40.0, 0.0)
    dose[target] = RX_GY
    dose[organ] = 69.0  # 115% in the body (16 voxels: 0.032 cc)
    dose[0] = 74.0  # 123% in the air on one side (40 voxels: 0.08 cc)
    outline = patient_outline([target], [organ], {"BODY": body})
    assert outline is not None and outline[0] == "BODY" and outline[1] is not body and (outline[1] == body).all()
    whole = outside_hot_spot(dose, [target], RX_GY, GRID, VOXEL_CC)
    assert whole is not None and whole.peak_gy == 74.0 and whole.within is None  # the air, as before
    spot = outside_hot_spot(dose, [target], RX_GY, GRID, VOXEL_CC, outline)
    assert spot is not None and (spot.peak, spot.peak_gy) == ("D0.03cc", 69.0)
    assert spot.location_mm == tuple(GRID.positions_mm(np.flatnonzero(organ.ravel())[:1])[0])  # not in the air
    assert spot.note.startswith("hot spot outside the prescription targets inside BODY: D0.03cc 69.00 Gy (115%")
    dose[organ] = 60.0
    assert outside_hot_spot(dose, [target], RX_GY, GRID, VOXEL_CC, outline) is None  # 100% in the body: no note


def test_only_structures_holding_every_target_and_organ_are_the_outline_and_without_one_the_whole_grid_counts():
    """A margin around the target (a PTV_eval) encloses the target but not the organ: searching inside it would
    miss a hot spot in undrawn tissue. The outline is the union of those that hold both ("A or B"), an equal mask
    (the protocol's Body and the case's BODY) named once; with no organ at risk nothing proves an outline."""
    from specc.evaluate.indices import patient_outline

    body, target, organ = _box(slice(1, 9), slice(1, 9)), _box(slice(3, 5), slice(3, 5)), _box(slice(6, 8), slice(3, 5))
    margin = _box(slice(2, 6), slice(2, 6))
    assert patient_outline([target], [organ], {"PTV_eval": margin}) is None
    assert patient_outline([target], [organ], {"Target": target, "Organ": organ}) is None  # the targets themselves
    assert patient_outline([target], [], {"Body": body}) is None
    couch_side = _box(slice(0, 9), slice(1, 9))  # an outline drawn to take in a bolus
    name, union = patient_outline([target], [organ], {"Body": body, "PTV_eval": margin, "BODY": body.copy(),
                                                      "Outline+bolus": couch_side})
    assert name == "Body or Outline+bolus" and (union == (body | couch_side)).all()
    beyond = _box(slice(0, 1), slice(0, 1))  # a target reaching out of the body
    assert patient_outline([target, beyond], [organ], {"Body": body}) is None
