"""`specc check` of an RT Dose whose grid leaves an organ wholly outside: that organ's goals read NOT
EVALUATED with the reason, every other goal is judged, and nothing of it reads as a pass (audit a4 F3),
on a case (--case --dose) and on an export folder alike."""

from __future__ import annotations

import numpy as np
import pytest
from evaluate_fakes import protocol, synthetic_case
from interop_fixtures import (
    CircleRoi, CtGeometry, body_hu, standard_rois, write_ct_series, write_rtdose_file, write_rtstruct,
)

import specc
from specc.errors import CompileError

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


# An export whose RT Dose covers CT slices 1..10 of 12: "Distant" (the protocol's Kidney) and "Lens" lie on the
# last slice alone, so the importer gives them no voxel on the dose grid (`ExportedPlan.outside_grid`).
EXPORT_DOSE_ORIGIN = (-40.0, -40.0, -12.0)
EXPORT_DOSE_SPACING = (2.5, 2.5, 3.0)
EXPORT_DOSE_SHAPE = (33, 32, 10)
EXPORT_PROTOCOL = """\
specc: 1
name: Outside test
site: test
version: 1.0.0
structures:
  Target: {role: target}
  Cord: {role: oar, aliases: [Spinal Cord]}
  Kidney: {role: oar, aliases: [Distant]}
  Lens: {role: oar, if_contoured: true}
  Near: {role: other, expression: "Target | Kidney"}
  KidneyPRV: {role: other, expression: "expand(Kidney, 5mm)"}
prescription:
  fractions: 30
  levels:
    - {target: Target, dose: 60 Gy}
goals:
  Target:
    - "D95% >= 57 Gy"
  Kidney:
    - "Mean <= 18 Gy"
  Lens:
    - "Max <= 7 Gy"
  Near:
    - "Max <= 66 Gy"
  KidneyPRV:
    - "Max <= 20 Gy"
"""


def _no_dose(cx: float, cy: float, radius_mm: float) -> str:
    """Why a one-slice circle beyond the dose grid has no dose: its voxels are the grid's (x, y) lattice points
    inside it."""
    x = EXPORT_DOSE_ORIGIN[0] + EXPORT_DOSE_SPACING[0] * np.arange(EXPORT_DOSE_SHAPE[0])
    y = EXPORT_DOSE_ORIGIN[1] + EXPORT_DOSE_SPACING[1] * np.arange(EXPORT_DOSE_SHAPE[1])
    voxels = int(np.count_nonzero(np.hypot(x[:, None] - cx, y[None, :] - cy) < radius_mm))
    return f"all its voxels ({voxels}) lie outside the dose grid of RD.dcm: they have no dose"


@pytest.fixture
def export_missing_an_organ(tmp_path):
    geometry = CtGeometry()
    z = geometry.z()
    folder = tmp_path / "export"
    write_ct_series(folder, geometry, body_hu(geometry))
    write_rtstruct(folder / "RS.dcm", geometry, [
        *standard_rois(geometry),
        CircleRoi("Distant", 0.0, 0.0, 8.0, z[-1], z[-1], (0, 0, 255)),
        CircleRoi("Lens", -20.0, -10.0, 4.0, z[-1], z[-1], (0, 255, 255)),
    ])
    x, y = (o + s * np.arange(n) for o, s, n in zip(EXPORT_DOSE_ORIGIN, EXPORT_DOSE_SPACING, EXPORT_DOSE_SHAPE[:2]))
    plane = 62.0 / (1.0 + np.exp((np.hypot(x[:, None] - 5.0, y[None, :] - 3.0) - 14.0) / 2.5))
    dose = np.repeat(plane[:, :, None], EXPORT_DOSE_SHAPE[2], axis=2)
    write_rtdose_file(folder / "RD.dcm", dose, EXPORT_DOSE_ORIGIN, EXPORT_DOSE_SPACING)
    return folder


def test_an_export_whose_dose_grid_misses_an_organ_reads_its_goals_not_evaluated(export_missing_an_organ, tmp_path):
    """The export path stopped at the Kidney goal ('no case structure named Kidney') and read the Lens as 'not
    contoured'; now both read as the --case --dose path reads an organ wholly outside, and the rest is judged."""
    path = tmp_path / "outside.yaml"
    path.write_text(EXPORT_PROTOCOL)
    outcome = specc.check_export(path, export_missing_an_organ, tmp_path / "check")
    record = outcome.record
    by_goal = {(goal.structure, goal.text): goal for goal in record.goals}
    assert by_goal[("Target", "D95% >= 57 Gy")].status in ("pass", "fail")
    assert by_goal[("Target", "D95% >= 57 Gy")].value is not None
    kidney, lens = _no_dose(0.0, 0.0, 8.0), _no_dose(-20.0, -10.0, 4.0)
    for structure, text, why in (("Kidney", "Mean <= 18 Gy", kidney), ("Lens", "Max <= 7 Gy", lens)):
        goal = by_goal[(structure, text)]
        assert (goal.status, goal.value, goal.note) == ("not_evaluated", None, f"{structure}: {why}")
    # Target | Kidney has the target's voxels only: judged on them, Kidney's part would be missed
    near = by_goal[("Near", "Max <= 66 Gy")]
    assert (near.status, near.note) == ("not_evaluated", "Near: built from Kidney, part of which has no dose")
    prv = by_goal[("KidneyPRV", "Max <= 20 Gy")]  # computed on the grid from nothing: absent, with why
    assert (prv.status, prv.note) == (
        "not_evaluated", f"KidneyPRV: empty on this case (`expand(Kidney, 5mm)` has no voxel; Kidney: {kidney})"
    )
    assert {"Kidney", "Lens"}.isdisjoint(structure.structure for structure in record.structures)
    assert record.dose_source.incomplete["Kidney"] == kidney and record.dose_source.incomplete["Lens"] == lens
    assert ("Kidney, Lens: wholly outside the dose grid of RD.dcm: no DVH, and their goals read NOT EVALUATED "
            "(--outside-zero counts their voxels at 0 Gy, if the calculation volume held all the dose)") in record.notes
    assert f"Kidney: {kidney}: its goals read NOT EVALUATED" in record.notes
    assert not any("not contoured" in note for note in record.notes)
    assert (tmp_path / "check" / "plan.json").is_file()


def test_a_target_wholly_outside_an_exports_dose_grid_is_an_error_with_the_reason(export_missing_an_organ, tmp_path):
    path = tmp_path / "outside.yaml"
    path.write_text(EXPORT_PROTOCOL.replace("Kidney: {role: oar,", "Kidney: {role: target,"))
    kidney = _no_dose(0.0, 0.0, 8.0)
    with pytest.raises(CompileError) as raised:
        specc.check_export(path, export_missing_an_organ, tmp_path / "check")
    assert str(raised.value) == (
        f"{path}:8:3: structures.Kidney: structure 'Kidney' (the case's 'Distant'): {kidney}, "
        "and a target must be whole on every case"
    )
    assert not (tmp_path / "check").exists()
