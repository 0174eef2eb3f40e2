"""`specc check` of an RT Dose whose grid leaves an organ wholly outside: that organ's goals read NOT
EVALUATED with the reason, every other goal is judged, and nothing of it reads as a pass (audit a4 F3)."""

from __future__ import annotations

import numpy as np
import pytest
from evaluate_fakes import protocol, synthetic_case
from interop_fixtures import write_rtdose_file

import specc

GOALS = {
    "Target": ["D95% >= 57 Gy"],
    "Organ": ["Max <= 45 Gy", "Mean <= 30 Gy"],
    "Body": ["Max <= 66 Gy"],
}
# The synthetic organ lies at x 17.5..32.5 mm, voxel indices 11..14 along x; the target within 15 mm of
# the centre. The dose grid keeps x indices 0..10: the organ wholly outside, the body partly, the target inside.
KEPT_X = 11


@pytest.fixture
def checked(tmp_path):
    case = synthetic_case()
    case_path = tmp_path / "case.h5"
    case.save(case_path)
    dose = np.where(case.structures["Target"].mask, 60.0, 20.0)
    rd = write_rtdose_file(tmp_path / "RD.dcm", dose[:KEPT_X], case.grid.origin_mm, case.grid.spacing_mm)
    return specc.check_dose(protocol(GOALS), case_path, rd, tmp_path / "check")


def test_an_organ_wholly_outside_the_dose_grid_reads_not_evaluated_and_the_rest_is_judged(checked):
    record = checked.record
    by_goal = {(goal.structure, goal.text): goal for goal in record.goals}
    assert by_goal[("Target", "D95% >= 57 Gy")].status == "pass"
    organ_voxels = int(np.count_nonzero(synthetic_case().structures["Organ"].mask))
    for text in GOALS["Organ"]:
        goal = by_goal[("Organ", text)]
        assert (goal.status, goal.value) == ("not_evaluated", None)
        assert goal.note == f"Organ: all its voxels ({organ_voxels}) lie outside the dose grid of RD.dcm: they have no dose"
    assert by_goal[("Body", "Max <= 66 Gy")].status == "not_evaluated"  # partly outside, as before
    assert "Organ" not in {structure.structure for structure in record.structures}  # no DVH of nothing
    assert record.goal_counts() == {"pass": 1, "not_evaluated": 3}
    assert ("Organ: wholly outside the dose grid of RD.dcm: no DVH, and their goals read NOT EVALUATED "
            "(--outside-zero counts their voxels at 0 Gy, if the calculation volume held all the dose)") in record.notes
    assert (checked.paths[0].parent / "plan.json").is_file()
