"""`specc check --dose ws.mat`: the plan matRad optimized (resultGUI) judged as matRad measures it, on
the workspace's CT grid with its cst{i,4} voxels, with or without the case imported from it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from interop_fixtures import matrad_workspace, save_matrad_v5, save_matrad_v73
from typer.testing import CliRunner

import specc
from specc.case.importers.matrad import import_matrad
from specc.cli import app
from specc.errors import SpeccError

PROTOCOL = """\
specc: 1
name: matRad check
site: test
version: 1.0.0
structures:
  PTV: {{role: target}}
  Body: {{role: other}}
prescription:
  fractions: {fractions}
  levels:
    - {{target: PTV, dose: 60 Gy}}
goals:
  PTV: ["Mean >= 50 Gy", "Max <= 80 Gy", "D95% >= 40 Gy"]
  Body: ["Mean <= 40 Gy"]
"""


def gy_per_fraction(x, y, z):
    """Curved in x and y, so that measuring it on the 4 mm dose grid (trilinear, resampled masks) reads
    otherwise than on the CT grid; hottest at the corner where x, y and z are largest."""
    return 1.5 + 0.05 * x + 0.02 * y + 0.03 * z + 0.004 * (x**2 + y**2)


def linear_gy_per_fraction(x, y, z):
    """Trilinear interpolation reproduces a linear dose exactly: the expected values need no interpolation."""
    return 1.5 + 0.05 * x + 0.02 * y + 0.03 * z


def workspace_with_result(dose_per_fraction=gy_per_fraction) -> dict:
    """`matrad_workspace`: CT 2 mm, dose grid 4 mm (matRad's default ratio), with resultGUI on the CT grid."""
    workspace = matrad_workspace()
    ct = workspace["ct"]
    x, y, z = (np.asarray(ct[axis]).ravel() for axis in "xyz")
    gy, gx, gz = np.meshgrid(y, x, z, indexing="ij")  # matRad cubes are [Ny Nx Nz]
    workspace["resultGUI"] = {"physicalDose": dose_per_fraction(gx, gy, gz)}
    workspace["pln"] = {"numOfFractions": 30.0}
    return workspace


def matrads_numbers(workspace: dict) -> dict[str, dict[str, float]]:
    """What matRad's DVH gives, from the workspace alone: resultGUI x numOfFractions at each row's
    cst{i,4} CT voxels (1-based, column-major over [Ny Nx Nz]); D95 as matRad's sort does it."""
    total = workspace["resultGUI"]["physicalDose"].ravel(order="F") * workspace["pln"]["numOfFractions"]
    cst = workspace["cst"]
    numbers = {}
    for row in range(cst.shape[0]):
        dose = total[np.asarray(cst[row, 3][0, 0]).ravel().astype(int) - 1]
        hottest_first = np.sort(dose)[::-1]
        numbers[cst[row, 1]] = {
            "mean": dose.mean(), "max": dose.max(), "min": dose.min(),
            "D95": hottest_first[int(np.ceil(0.95 * dose.size)) - 1],
        }
    return numbers


@pytest.fixture(params=["v5", "v7.3"])
def saved(request, tmp_path) -> tuple[Path, Path]:
    save = save_matrad_v5 if request.param == "v5" else save_matrad_v73
    path = save(tmp_path / "workspace.mat", workspace_with_result())
    case_path = tmp_path / "case.h5"
    import_matrad(path).case.save(case_path)
    return path, case_path


def protocol_file(tmp_path: Path, fractions: int) -> Path:
    path = tmp_path / f"protocol-{fractions}.yaml"
    path.write_text(PROTOCOL.format(fractions=fractions))
    return path


def test_matrads_plan_is_measured_on_its_ct_grid_with_the_cst_voxels_as_matrad_does(saved, tmp_path):
    workspace, case_path = saved
    record = specc.check_dose(protocol_file(tmp_path, 30), case_path, workspace, tmp_path / "out").record
    expected = matrads_numbers(workspace_with_result())
    for structure in record.structures:
        numbers = expected[structure.structure]
        assert (structure.mean_gy, structure.max_gy, structure.min_gy) == pytest.approx(
            (numbers["mean"], numbers["max"], numbers["min"]), rel=1e-12
        )
    d95 = next(goal for goal in record.goals if goal.metric.startswith("D95"))
    assert d95.value == pytest.approx(expected["PTV"]["D95"], rel=1e-12)
    # The case imported from the workspace lies on the 4 mm dose grid: measured there (the dose
    # interpolated, the masks resampled), as specc did before, the PTV would read otherwise.
    case = specc.Case.load(case_path)
    assert case.grid.spacing_mm == pytest.approx((4, 4, 4))
    x, y, z = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
    on_dose_grid = (30 * gy_per_fraction(x, y, z))[case.structures["PTV"].mask].mean()
    assert abs(on_dose_grid - expected["PTV"]["mean"]) > 0.1
    # Where it was measured is on the record: the CT grid, the dose's own, nothing interpolated.
    ct = workspace_with_result()["ct"]
    assert record.case.grid.spacing_mm == pytest.approx((2, 2, 2))
    assert record.case.grid.origin_mm == pytest.approx([np.asarray(ct[a]).ravel()[0] for a in "xyz"])
    assert record.case.case_id == case.case_id
    source = record.dose_source
    assert source.format == "matRad resultGUI" and source.fractions_scaled == 30 and not source.interpolated
    assert source.grid == record.case.grid
    assert any("one fraction" in note for note in record.notes)
    assert any("on the CT grid (10 × 8 × 6 voxels of 2 × 2 × 2 mm" in note for note in record.notes)
    assert any("4 × 4 × 4 mm" in note and "its masks are not used" in note for note in record.notes)
    # The hottest voxel of the whole grid, where x, y and z are largest: a swapped axis would move it.
    assert record.hot_spot.max_gy == pytest.approx(expected["Body"]["max"], rel=1e-12)
    assert record.hot_spot.location_mm == pytest.approx([np.asarray(ct[a]).ravel()[-1] for a in "xyz"])


def test_a_matrad_workspace_is_checked_without_a_case(tmp_path):
    path = save_matrad_v5(tmp_path / "ws.mat", workspace_with_result())
    record = specc.check_dose(protocol_file(tmp_path, 30), None, path, tmp_path / "out").record
    expected = matrads_numbers(workspace_with_result())
    assert record.case.case_id == "ws"
    assert {s.structure: s.mean_gy for s in record.structures} == pytest.approx(
        {name: numbers["mean"] for name, numbers in expected.items()}, rel=1e-12
    )
    assert not any("its masks are not used" in note for note in record.notes)
    with pytest.raises(SpeccError, match="an RT Dose is checked on a case"):
        specc.check_dose(protocol_file(tmp_path, 30), None, tmp_path / "RD.dcm", tmp_path / "rd")


def test_a_cst_row_without_voxels_is_left_out_and_said(tmp_path):
    workspace = workspace_with_result()
    cst = np.empty((3, 6), dtype=object)
    cst[:2] = workspace["cst"]
    cst[2] = cst[1]
    cst[2, 0], cst[2, 1] = 2.0, "Empty"
    cst[2, 3] = np.empty((1, 1), dtype=object)
    cst[2, 3][0, 0] = np.zeros((0, 1))
    workspace["cst"] = cst
    path = save_matrad_v5(tmp_path / "ws.mat", workspace)
    record = specc.check_dose(protocol_file(tmp_path, 30), None, path, tmp_path / "out").record
    assert any(note.startswith("Empty: cst{3,4} holds no voxel") for note in record.notes)


def test_the_cli_checks_a_workspace_alone_and_refuses_another_grid(tmp_path):
    path = save_matrad_v5(tmp_path / "ws.mat", workspace_with_result())
    protocol = protocol_file(tmp_path, 30)
    runner = CliRunner()
    result = runner.invoke(app, ["check", str(protocol), "--dose", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "plan.json").exists()
    refused = runner.invoke(app, ["check", str(protocol), "--dose", str(path), "--grid", "1", "--out", str(tmp_path / "g")])
    assert refused.exit_code == 1 and "measured on its CT grid" in refused.output


def test_a_matrad_plan_of_other_fractions_is_refused(saved, tmp_path):
    workspace, case_path = saved
    with pytest.raises(SpeccError, match="has 30 fractions .* the protocol prescribes 25"):
        specc.check_dose(protocol_file(tmp_path, 25), case_path, workspace, tmp_path / "out")


def test_a_workspace_without_result_says_how_to_save_it(tmp_path):
    path = save_matrad_v5(tmp_path / "plain.mat", matrad_workspace())
    case_path = tmp_path / "case.h5"
    import_matrad(path).case.save(case_path)
    with pytest.raises(SpeccError, match="no resultGUI.physicalDose"):
        specc.check_dose(protocol_file(tmp_path, 30), case_path, path, tmp_path / "out")


def test_the_import_report_points_a_workspaces_result_to_specc_check(tmp_path):
    path = save_matrad_v5(tmp_path / "ws.mat", workspace_with_result())
    imported = import_matrad(path)
    assert any("resultGUI" in item and "specc check" in item for item in imported.not_imported)


@pytest.mark.parametrize("save", [save_matrad_v5, save_matrad_v73])
def test_a_matrad_plan_as_a_prior_course_is_its_fractions_total(save, tmp_path):
    """A prior course is read onto the case of the plan it adds to (trilinear: exact for a linear dose)."""
    from specc.composite import read_prior_dose

    workspace = save(tmp_path / "linear.mat", workspace_with_result(linear_gy_per_fraction))
    case = import_matrad(workspace).case
    prior = read_prior_dose([workspace], case)
    x, y, z = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
    np.testing.assert_allclose(prior.total_gy, 30 * linear_gy_per_fraction(x, y, z), rtol=1e-9)
    assert prior.sources[0].format == "matRad resultGUI"
    unstated = workspace_with_result()
    del unstated["pln"]
    del unstated["dij"]["numOfFractions"]  # matRad also keeps the plan's fractions in the dij
    path = save_matrad_v5(tmp_path / "unstated.mat", unstated)
    with pytest.raises(specc.SpeccError, match="states no pln.numOfFractions"):
        read_prior_dose([path], case)


# --- the case named with the workspace must be of it (audit c1 #2) ---------------------------------------
def case_of(tmp_path: Path, name: str, workspace: dict) -> Path:
    """The case `specc import matrad` makes of `workspace`, saved as NAME.h5 (imported from NAME.mat)."""
    path = save_matrad_v5(tmp_path / f"{name}.mat", workspace)
    case_path = tmp_path / f"{name}.h5"
    import_matrad(path).case.save(case_path)
    return case_path


def test_a_case_of_the_workspace_under_another_file_name_names_the_check(tmp_path):
    """Two workspaces of one patient, before and after optimizing, differ in their names only."""
    before = workspace_with_result()
    del before["resultGUI"]
    case_path = case_of(tmp_path, "patient7-plan", before)
    after = save_matrad_v5(tmp_path / "patient7-optimized.mat", workspace_with_result())
    record = specc.check_dose(protocol_file(tmp_path, 30), case_path, after, tmp_path / "out").record
    assert record.case.case_id == "patient7-plan"
    assert any(note.startswith(f"the case 'patient7-plan' ({case_path}), imported from ")
               and "is a case of patient7-optimized.mat: its CT grid is the workspace's" in note
               for note in record.notes)


def shifted_ptv(workspace: dict) -> dict:
    """The PTV one CT voxel (2 mm) further along x: another contour of the same names on the same CT."""
    ct = workspace["ct"]
    x, y, z = (np.asarray(ct[axis]).ravel() for axis in "xyz")
    gx, gy, gz = np.meshgrid(x, y, z, indexing="xy")
    ptv = (gx >= -4) & (gx < 8) & (gy >= -4) & (gy < 4) & (gz >= -2) & (gz < 4)
    workspace["cst"][0, 3][0, 0] = (np.flatnonzero(ptv.ravel(order="F")) + 1).astype(np.float64).reshape(-1, 1)
    return workspace


def renamed(workspace: dict) -> dict:
    workspace["cst"][0, 1], workspace["cst"][1, 1] = "OuterTarget", "BODY"
    return workspace


def finer_ct(workspace: dict) -> dict:
    """The CT's first voxel centre 2 mm lower in z (another scan's position), all else alike."""
    workspace["ct"]["z"] = workspace["ct"]["z"] - 2.0
    workspace["dij"]["doseGrid"]["z"] = workspace["dij"]["doseGrid"]["z"] - 2.0
    return workspace


@pytest.mark.parametrize("other, differs", [
    (renamed, r"its structures 'OuterTarget', 'BODY' are no cst row of the workspace \(whose cst names 'PTV', 'Body'\)"),
    (finer_ct, r"the CT it was imported from \(10 × 8 × 6 voxels of 2, 2, 2 mm, first centre -9, -7, -7 mm\) is not the "
               r"workspace's \(10 × 8 × 6 voxels of 2, 2, 2 mm, first centre -9, -7, -5 mm\)"),
    (shifted_ptv, r"the workspace's cst\{i,4\} voxels, resampled onto the case's grid \(5 × 4 × 3 voxels of 4, 4, 4 mm, "
                  r"first centre -8.5, -6.5, -4.5 mm\) from its CT \(10 × 8 × 6 voxels of 2, 2, 2 mm, first centre -9, -7, "
                  r"-5 mm\) as specc import matrad does, are not the case's masks: PTV \(12 voxels in the case, 12 from "
                  r"cst\{1,4\}, 8 differing\)"),
])
def test_a_case_of_another_workspace_is_refused_naming_both_files_and_what_differs(other, differs, tmp_path):
    case_path = case_of(tmp_path, "other", other(workspace_with_result()))
    workspace = save_matrad_v5(tmp_path / "ws.mat", workspace_with_result())
    with pytest.raises(SpeccError, match=re.escape(f"the case 'other' ({case_path}), imported from {tmp_path / 'other.mat'}, "
                                                   f"is not a case of the workspace {workspace}: ") + differs) as refused:
        specc.check_dose(protocol_file(tmp_path, 30), case_path, workspace, tmp_path / "out")
    assert "specc import matrad ws.mat" in str(refused.value)
    assert not (tmp_path / "out" / "plan.json").exists()


def test_a_case_recording_no_ct_grid_is_compared_by_its_masks(tmp_path):
    """A case imported before the CT grid was recorded: another contour is still found."""
    for name, workspace in (("same", workspace_with_result()), ("moved", shifted_ptv(workspace_with_result()))):
        case = specc.Case.load(case_of(tmp_path, name, workspace))
        for key in ("matrad.ct_dims", "matrad.ct_resolution_mm", "matrad.ct_first_centre_mm"):
            del case.metadata.extra[key]
        case.save(tmp_path / f"{name}.h5")
    workspace = save_matrad_v5(tmp_path / "ws.mat", workspace_with_result())
    record = specc.check_dose(protocol_file(tmp_path, 30), tmp_path / "same.h5", workspace, tmp_path / "out").record
    assert any("is a case of ws.mat: (it records no CT grid to compare) its 2 structures" in note for note in record.notes)
    with pytest.raises(SpeccError, match=r"PTV \(12 voxels in the case, 12 from cst\{1,4\}, 8 differing\)"):
        specc.check_dose(protocol_file(tmp_path, 30), tmp_path / "moved.h5", workspace, tmp_path / "moved")


def test_dose_grid_centres_midway_between_ct_centres_may_be_resampled_from_either(tmp_path):
    """A 4 mm dose grid whose centres lie midway between 2 mm CT centres, every other one written 0.0001 mm
    higher (rounding): the importer resamples those from the upper CT centre, and the case keeps a uniform grid,
    on which the lower is as near. The case is of the workspace all the same. (The PTV from x = -4 mm: the
    lower of the CT centres beside x = -4 mm lies outside it, the upper inside.)"""
    workspace = shifted_ptv(workspace_with_result())
    for axis in "xyz":
        centres = np.asarray(workspace["ct"][axis])[:, ::2] + 1.0
        centres[:, 1::2] += 1e-4
        workspace["dij"]["doseGrid"][axis] = centres
    case_path = case_of(tmp_path, "rounded", workspace)
    case = specc.Case.load(case_path)
    assert case.grid.axes_mm()[0][1] == -4.0  # midway between CT centres -5 and -3 mm
    record = specc.check_dose(protocol_file(tmp_path, 30), case_path, tmp_path / "rounded.mat", tmp_path / "out").record
    assert any("is a case of rounded.mat" in note for note in record.notes)


def test_a_case_from_elsewhere_is_noted_as_unchecked(saved, tmp_path):
    workspace, case_path = saved
    case = specc.Case.load(case_path)
    case.metadata.source = "PortPy patient Lung_Phantom_Patient_1"
    case.metadata.extra.update({"import.format": "portpy", "import.source": "data/Lung_Phantom_Patient_1"})
    case.case_id = "Lung_Phantom_Patient_1"
    case.save(tmp_path / "portpy.h5")
    record = specc.check_dose(protocol_file(tmp_path, 30), tmp_path / "portpy.h5", workspace, tmp_path / "pp").record
    assert record.case.case_id == "Lung_Phantom_Patient_1"
    assert (f"the case 'Lung_Phantom_Patient_1' ({tmp_path / 'portpy.h5'}) came from PortPy patient "
            "Lung_Phantom_Patient_1 (imported from data/Lung_Phantom_Patient_1), not from a matRad workspace: whether "
            f"it is the patient of {workspace.name} could not be checked; the check is filed under its case id "
            "'Lung_Phantom_Patient_1', which specc compare and cohorts pair on") in record.notes


# --- measured like for like with specc's plan of the case, and filed under that case (audit d2 #1, #2) --------------
def numpy_on_case_grid(workspace: dict, case: specc.Case) -> dict[str, dict[str, float]]:
    """resultGUI x numOfFractions interpolated (trilinear, scipy) from the CT grid onto the case's voxel centres,
    measured with the case's masks: what specc's plan of the case would read, were matRad's dose its own."""
    from scipy.interpolate import RegularGridInterpolator

    ct = workspace["ct"]
    x, y, z = (np.asarray(ct[axis]).ravel() for axis in "xyz")
    cube = np.transpose(workspace["resultGUI"]["physicalDose"], (1, 0, 2))  # [Ny Nx Nz] -> [x, y, z]
    interpolate = RegularGridInterpolator((x, y, z), cube * workspace["pln"]["numOfFractions"])
    centres = np.stack(np.meshgrid(*case.grid.axes_mm(), indexing="ij"), axis=-1)
    total = interpolate(centres)
    numbers = {}
    for name, structure in case.structures.items():
        dose = total[structure.mask]
        hottest_first = np.sort(dose)[::-1]
        numbers[name] = {"mean": dose.mean(), "max": dose.max(), "min": dose.min(),
                         "D95": hottest_first[int(np.ceil(0.95 * dose.size)) - 1]}
    return numbers


def test_measured_on_the_case_a_matrad_plan_reads_as_specc_reads_its_plan_of_the_case(saved, tmp_path):
    workspace, case_path = saved
    case = specc.Case.load(case_path)
    record = specc.check_dose(protocol_file(tmp_path, 30), case_path, workspace, tmp_path / "out",
                              measure_on="case").record
    expected = numpy_on_case_grid(workspace_with_result(), case)
    for structure in record.structures:
        numbers = expected[structure.structure]
        assert (structure.mean_gy, structure.max_gy, structure.min_gy) == pytest.approx(
            (numbers["mean"], numbers["max"], numbers["min"]), rel=1e-9
        )
    goals = {goal.text: goal.value for goal in record.goals}
    assert goals["D95% >= 40 Gy"] == pytest.approx(expected["PTV"]["D95"], rel=1e-9)
    assert goals["Mean >= 50 Gy"] == pytest.approx(expected["PTV"]["mean"], rel=1e-9)
    # matRad's own reading (CT grid, cst voxels) differs: the option changed what was measured
    assert abs(expected["PTV"]["mean"] - matrads_numbers(workspace_with_result())["PTV"]["mean"]) > 0.1
    assert record.case.grid.shape == case.grid.shape and record.case.grid.spacing_mm == pytest.approx((4, 4, 4))
    assert (record.case.case_id, record.case.sha256) == (case.case_id, case.content_hash())
    source = record.dose_source
    assert source.interpolated and source.grid.spacing_mm == pytest.approx((2, 2, 2))
    assert source.attributes["measured on"] == (
        f"the case {case.case_id!r}'s grid and masks, as specc measures its plans (--measure-on case)"
    )
    assert "structures" not in source.attributes  # the case's own masks
    assert any("(--measure-on case): on the case's grid (5 × 4 × 3 voxels of 4 × 4 × 4 mm) with the case's masks"
               in note for note in record.notes)
    assert any("interpolated (trilinear)" in note for note in record.notes)
    assert not any("measured as matRad measures its DVHs" in note for note in record.notes)
    assert any("is a case of" in note for note in record.notes)  # the case is still checked to be the workspace's


def test_measuring_on_the_case_needs_a_case_and_a_matrad_workspace(tmp_path):
    path = save_matrad_v5(tmp_path / "ws.mat", workspace_with_result())
    protocol = protocol_file(tmp_path, 30)
    with pytest.raises(SpeccError, match=r"--measure-on case measures matRad's dose on a case's grid .*--case CASE.h5"):
        specc.check_dose(protocol, None, path, tmp_path / "out", measure_on="case")
    runner = CliRunner()
    refused = runner.invoke(app, ["check", str(protocol), "--dose", str(path), "--measure-on", "case",
                                  "--out", str(tmp_path / "a")])
    assert refused.exit_code == 1 and "give --case CASE.h5" in refused.output
    rt_dose = runner.invoke(app, ["check", str(protocol), "--case", str(tmp_path / "c.h5"), "--dose",
                                  str(tmp_path / "RD.dcm"), "--measure-on", "ct", "--out", str(tmp_path / "b")])
    assert rt_dose.exit_code == 1 and "--measure-on applies to a matRad workspace" in rt_dose.output


def plan_protocol(tmp_path: Path) -> Path:
    path = tmp_path / "plan-protocol.yaml"
    path.write_text(PROTOCOL.format(fractions=30)
                    + "optimization:\n  terms:\n    - {kind: uniform_dose, structure: PTV, dose: 60 Gy, weight: 10}\n")
    return path


def test_a_matrad_check_with_its_case_is_filed_under_that_case_and_compare_names_both_grids(tmp_path):
    """The documented workflow (docs/check.md, matRad plans): specc's plan of the case beside matRad's check."""
    from specc.report.compare import read_plans, warnings

    workspace = save_matrad_v5(tmp_path / "ws.mat", workspace_with_result())
    case_path = tmp_path / "ws.h5"
    import_matrad(workspace).case.save(case_path)
    protocol = plan_protocol(tmp_path)
    planned = specc.plan(protocol, case_path, tmp_path / "specc").record
    on_ct = specc.check_dose(protocol, case_path, workspace, tmp_path / "matrad").record
    alone = specc.check_dose(protocol, None, workspace, tmp_path / "alone").record
    # With --case the check names the case's id and content SHA-256, as the plan of it does; the CT structures it
    # measured keep theirs in the dose source, which is what a check without a case is filed under.
    assert (on_ct.case.case_id, on_ct.case.sha256) == (planned.case.case_id, planned.case.sha256)
    assert on_ct.case.source == planned.case.source
    assert on_ct.case.grid.spacing_mm == pytest.approx((2, 2, 2))  # measured on the CT grid all the same
    assert on_ct.dose_source.attributes["structures SHA-256"] == alone.case.sha256 != planned.case.sha256
    assert alone.dose_source.attributes["structures"] == "cst{i,4} voxels of ws.mat on its CT grid"
    assert any("the check is filed under it, but its masks are not used" in note and "--measure-on case" in note
               for note in on_ct.notes)

    ct_warnings = [notice.text for notice in warnings(read_plans([tmp_path / "specc", tmp_path / "matrad"]))]
    assert not any("different case" in warning for warning in ct_warnings)
    assert ct_warnings == [
        "the plans are measured on different grids and structure masks (specc: 5 × 4 × 3 voxels of 4 × 4 × 4 mm, "
        f"first centre (-8.5, -6.5, -4.5) mm, the masks of the case ws ({planned.case.sha256[:12]}); matrad: 10 × 8 × 6 voxels of 2 × 2 × 2 mm, "
        "first centre (-9, -7, -5) mm, cst{i,4} voxels of ws.mat on its CT grid): a goal's difference between them, "
        "and a pass beside a fail, may come from the measurement (voxel size, interpolation, masks) rather than from "
        "the plans. To compare the plans, measure matRad's dose as specc measures its plan of the case: specc check "
        "--case CASE.h5 --dose WORKSPACE.mat --measure-on case"
    ]
    # Without the case: the same case id over other case data, said as the workspace's CT structures
    alone_warnings = [notice.text for notice in warnings(read_plans([tmp_path / "specc", tmp_path / "alone"]))]
    assert alone_warnings[0].startswith(
        f"the plans name the same case 'ws' but hold different case data (specc: the case ws from "
        f"{planned.case.source} ({planned.case.sha256[:12]}); alone: the CT grid and cst{{i,4}} structures of the "
        f"matRad workspace {workspace} ({alone.case.sha256[:12]})): alone checked a matRad workspace without --case"
    )
    assert "the plans are measured on different grids" in alone_warnings[1]
    # Measured like for like: nothing to warn of
    on_case = specc.check_dose(protocol, case_path, workspace, tmp_path / "like", measure_on="case").record
    assert on_case.case.grid == planned.case.grid
    assert warnings(read_plans([tmp_path / "specc", tmp_path / "like"])) == []
    runner = CliRunner()
    shown = runner.invoke(app, ["compare", str(tmp_path / "specc"), str(tmp_path / "matrad"), "--out",
                                str(tmp_path / "cmp")])
    assert shown.exit_code == 0, shown.output
    assert "Clinical goals (measured on different grids or masks: see the warning)" in " ".join(shown.output.split())
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "cst{i,4} voxels of ws.mat on its CT grid" in page and "4 × 4 × 4 mm" in page
