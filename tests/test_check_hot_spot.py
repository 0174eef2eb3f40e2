"""`specc check` says a hot spot outside the targets where a signer looks first, as `specc plan` does (audit b4 F2):
the check's outcome carries it for the summary line."""

from __future__ import annotations

import numpy as np
import pytest
from evaluate_fakes import protocol, synthetic_case
from interop_fixtures import write_rtdose_file

import specc

GOALS = {"Target": ["D95% >= 57 Gy"]}


def _check(tmp_path, outside_gy: float):
    case = synthetic_case()
    case_path = tmp_path / "case.h5"
    case.save(case_path)
    target = case.structures["Target"].mask
    dose = np.where(target, 60.0, 20.0)
    hot = np.zeros_like(target)
    hot[:3, :3, :3] = True  # a corner block of the grid, far from the target
    assert not (hot & target).any()
    dose[hot] = outside_gy
    rd = write_rtdose_file(tmp_path / f"RD{outside_gy:g}.dcm", dose, case.grid.origin_mm, case.grid.spacing_mm)
    return specc.check_dose(protocol(GOALS), case_path, rd, tmp_path / f"check{outside_gy:g}")


def test_a_checked_dose_with_a_hot_spot_outside_the_targets_carries_it_for_the_summary(tmp_path):
    hot = _check(tmp_path, 90.0)  # 150% of the 60 Gy level
    assert hot.outside_hot_spot is not None and "150%" in hot.outside_hot_spot.headline
    assert _check(tmp_path, 60.0).outside_hot_spot is None


def test_a_checked_dose_hot_in_the_air_beyond_the_body_is_not_the_hot_spot_in_the_patient(tmp_path):
    """Audit s20/t3 F3: another system's RT Dose holds dose beyond the body outline; the hot spot outside the
    targets read 123% in the air while the body's hottest was 116%. It is now searched inside the body."""
    case = synthetic_case()
    case_path = tmp_path / "case.h5"
    case.save(case_path)
    target, organ, body = (case.structures[name].mask for name in ("Target", "Organ", "Body"))
    dose = np.where(body, 20.0, 90.0)  # 150% everywhere in the air
    dose[target] = 60.0
    dose[organ & ~target] = 69.0  # 115% in the organ
    rd = write_rtdose_file(tmp_path / "RD.dcm", dose, case.grid.origin_mm, case.grid.spacing_mm)
    spot = specc.check_dose(protocol(GOALS), case_path, rd, tmp_path / "check").outside_hot_spot
    assert spot is not None and spot.within == "Body" and spot.peak_gy == pytest.approx(69.0, abs=0.01)
    assert "115%" in spot.headline and "inside Body" in spot.note
