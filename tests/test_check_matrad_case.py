"""`specc check --case CASE.h5 --dose WORKSPACE.mat` with a case not imported from a matRad workspace (DICOM, PortPy,
a phantom): the check is filed under the case but measured on the workspace's dose and cst structures, so what the
two share is compared (audit s20/t3 F4). A workspace sharing no structure name with the case, or no space with its
grid in the patient frame, is refused naming both files; a partial match is a warning on the record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from interop_fixtures import matrad_workspace, save_matrad_v5, write_c_shape_study, write_study
from typer.testing import CliRunner

import specc
from specc.case.importers.dicom import import_dicom
from specc.case.importers.matrad import import_matrad
from specc.cli import app
from specc.errors import CaseError

PROTOCOL = """\
specc: 1
name: matRad check of a DICOM case
site: test
version: 1.0.0
structures:
  PTV: {role: target}
prescription:
  fractions: 30
  levels:
    - {target: PTV, dose: 60 Gy}
goals:
  PTV: ["Mean >= 50 Gy"]
"""


def workspace_file(path: Path, shift_x_mm: float = 0.0) -> Path:
    """`matrad_workspace` with organs (cst PTV, Body, Couch, Rectum, Bladder wall, Marker; CT 10 x 8 x 6 voxels of
    2 mm around the origin, moved `shift_x_mm` along x) and resultGUI 2 Gy per fraction in 30 fractions."""
    workspace = matrad_workspace(objectives="current", organs=True)
    for holder in (workspace["ct"], workspace["dij"]["doseGrid"]):
        holder["x"] = np.asarray(holder["x"]) + shift_x_mm
    workspace["resultGUI"] = {"physicalDose": np.full(tuple(int(n) for n in workspace["ct"]["cubeDim"].ravel()), 2.0)}
    workspace["pln"]["numOfFractions"] = 30.0
    return save_matrad_v5(path, workspace)


def dicom_case(folder: Path, write=write_c_shape_study, target: str = "PTV", grid_mm: float = 10) -> Path:
    """A DICOM study (C-shape: External, PTV, Core on a 100 x 90 x 24 mm CT around the origin) imported at `grid_mm`."""
    study = folder / "study"
    study.mkdir()
    write(study)
    path = folder / "dicom.h5"
    import_dicom(study, beams=[0], grid_mm=grid_mm, targets=[target]).case.save(path)
    return path


@pytest.fixture
def protocol_file(tmp_path: Path) -> Path:
    path = tmp_path / "protocol.yaml"
    path.write_text(PROTOCOL, encoding="utf-8")
    return path


def test_a_case_sharing_some_structures_is_checked_with_a_warning_naming_what_differs(tmp_path, protocol_file):
    """The audit's case: a DICOM case whose PTV is a cst row, but whose External and Core are not, and whose grid
    reaches 35 mm beyond the workspace's 20 mm CT: checked (filed under the case), the warning on the record."""
    case, workspace = dicom_case(tmp_path), workspace_file(tmp_path / "ws.mat")
    record = specc.check_dose(protocol_file, case, workspace, tmp_path / "out").record
    assert record.case.case_id == "SPECC-TEST-001"
    assert len(record.warnings) == 1
    warning = record.warnings[0]
    assert warning.startswith(f"the case 'SPECC-TEST-001' ({case}), from DICOM CT + RTSTRUCT study")
    assert ("matches the matRad workspace ws.mat only in part: its structures 'External', 'Core' are no cst row of "
            "the workspace; the workspace's cst rows 'Body', 'Couch', 'Rectum', 'Bladder wall', 'Marker' are no "
            "structure of the case; its grid reaches beyond the workspace's CT along x, y, z (the case's grid spans "
            "x -45 to 45, y -40 to 40, z -16.5 to 7.5 mm, the workspace's CT x -10 to 10, y -8 to 8, z -6 to 6 mm)"
            ) in warning
    assert warning.endswith("make sure both are of one patient, or check the workspace without --case")
    assert any("compared by what they share: the structures 'PTV' by name" in note for note in record.notes)


def test_the_command_line_says_the_warning_and_exits_0(tmp_path, protocol_file):
    case, workspace = dicom_case(tmp_path), workspace_file(tmp_path / "ws.mat")
    result = CliRunner().invoke(
        app, ["check", str(protocol_file), "--case", str(case), "--dose", str(workspace), "--out", str(tmp_path / "o"), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "warning: the case 'SPECC-TEST-001'" in result.output
    assert "'External', 'Core' are no cst row of the workspace" in " ".join(result.output.split())


def test_a_case_sharing_no_structure_name_is_refused(tmp_path, protocol_file):
    """A DICOM study of External, Target and Spinal Cord: no cst row of the workspace (PTV, Body, ...)."""
    case = dicom_case(tmp_path, write_study, target="Target", grid_mm=5)
    workspace = workspace_file(tmp_path / "ws.mat")
    with pytest.raises(CaseError) as refused:
        specc.check_dose(protocol_file, case, workspace, tmp_path / "out")
    message = str(refused.value)
    assert message.startswith(
        f"the case 'SPECC-TEST-001' ({case}) came from DICOM CT + RTSTRUCT study (imported from {tmp_path / 'study'}), "
        f"not from a matRad workspace, and is not of the patient of the workspace {workspace}: no structure name in "
        "common (the case's 'External', 'Target', 'Spinal Cord'; the workspace's cst 'PTV', 'Body', 'Couch', 'Rectum', "
        "'Bladder wall', 'Marker')"
    )
    assert message.endswith("Check the workspace without --case (the check is then filed under its name, 'ws'), or "
                            "give the case of its patient")
    assert not (tmp_path / "out" / "plan.json").exists()


def test_a_workspace_whose_ct_lies_elsewhere_in_the_patient_frame_is_refused(tmp_path, protocol_file):
    """The workspace's CT moved 300 mm along x: it shares the PTV's name with the case, but no voxel of space."""
    case, workspace = dicom_case(tmp_path), workspace_file(tmp_path / "far.mat", shift_x_mm=300.0)
    result = CliRunner().invoke(
        app, ["check", str(protocol_file), "--case", str(case), "--dose", str(workspace), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert "Traceback" not in said
    assert (f"is not of the patient of the workspace {workspace}: no space in common in the patient frame: the case's "
            "grid spans x -45 to 45, y -40 to 40, z -16.5 to 7.5 mm, the workspace's CT x 290 to 310, y -8 to 8, z -6 "
            "to 6 mm, apart along x. Check the workspace without --case") in said
    assert not (tmp_path / "o" / "plan.json").exists()


def as_dicom_case(workspace: Path, path: Path, renamed: dict[str, str] | None = None) -> Path:
    """The case imported from `workspace` (its dose grid, a structure per cst row), marked as a DICOM case, with
    the structures `renamed` (old name: new name)."""
    case = import_matrad(workspace).case
    case.metadata.source = "DICOM CT + RTSTRUCT study"
    case.metadata.extra.update({"import.format": "dicom", "import.source": "study"})
    for old, new in (renamed or {}).items():
        case.structures[new] = dataclasses.replace(case.structures.pop(old), name=new)
    case.save(path)
    return path


@pytest.mark.parametrize("measure_on", ["ct", "case"])
def test_a_structure_named_otherwise_is_a_warning_wherever_the_dose_is_measured(tmp_path, protocol_file, measure_on):
    workspace = workspace_file(tmp_path / "ws.mat")
    case = as_dicom_case(workspace, tmp_path / "renamed.h5", {"Marker": "Core"})
    record = specc.check_dose(protocol_file, case, workspace, tmp_path / "out", measure_on=measure_on).record
    assert len(record.warnings) == 1
    assert ("matches the matRad workspace ws.mat only in part: its structures 'Core' are no cst row of the workspace; "
            "the workspace's cst rows 'Marker' are no structure of the case. The check is filed under") in record.warnings[0]


def test_a_case_from_elsewhere_matching_every_name_within_the_ct_has_no_warning(tmp_path, protocol_file):
    """All compared agrees: only notes say what was compared."""
    workspace = workspace_file(tmp_path / "ws.mat")
    case = as_dicom_case(workspace, tmp_path / "same.h5")
    record = specc.check_dose(protocol_file, case, workspace, tmp_path / "out").record
    assert record.warnings == []
    assert any("compared by what they share: the structures 'PTV', 'Body', 'Couch', 'Rectum', 'Bladder wall', "
               "'Marker' by name" in note for note in record.notes)
