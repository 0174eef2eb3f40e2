"""matRad workspaces without a dij (ct + cst, as matRad's and pyRadPlan's phantom files): the case gets
specc's own influence matrix, on masks resampled as matRad does, aimed at the TARGET structures."""

from __future__ import annotations

import numpy as np
import pytest
from interop_fixtures import matrad_workspace, save_matrad_v5, save_matrad_v73
from typer.testing import CliRunner

from specc.case.engine import PencilBeamModel
from specc.case.importers.matrad import import_matrad
from specc.cli import app
from specc.errors import CaseError


def geometry_workspace(**extra) -> dict:
    workspace = matrad_workspace(with_stf=False)
    del workspace["dij"]
    workspace.update(extra)
    return workspace


@pytest.mark.parametrize("save", [save_matrad_v5, save_matrad_v73])
def test_a_workspace_without_dij_gets_the_engines_influence_on_matrads_masks(tmp_path, save):
    path = save(tmp_path / "phantom.mat", geometry_workspace())
    imported = import_matrad(path, engine={"grid_mm": 2.0, "beams": 5})
    case = imported.case
    # A 2 mm grid over the CT (the body is every CT voxel): the CT's own lattice, so the masks are
    # the CT masks: the PTV box x in [-6, 6), y in [-4, 4), z in [-2, 4) is 6 x 4 x 3 voxels of 2 mm.
    assert case.grid.shape == (10, 8, 6) and case.grid.origin_mm == (-9.0, -7.0, -5.0)
    assert case.structures["PTV"].n_voxels == 72 and case.structures["Body"].n_voxels == 480
    assert len(case.beams) == 5 and case.n_beamlets > 0 and case.influence.nnz > 0
    np.testing.assert_allclose(case.density, 1.0)  # ct.cube: water everywhere
    # The beams aim at the TARGET's centre of mass.
    np.testing.assert_allclose(case.beams[0].isocenter_mm, (0.0, 0.0, 1.0), atol=0.05)
    assert any("specc's own" in note for note in imported.notes)
    assert case.metadata.dose_engine == PencilBeamModel().label
    # the workspace's CT grid is recorded, as for a workspace with a dij, so a check of its dose can compare it
    assert case.metadata.extra["matrad.ct_dims"] == "8 10 6"  # ct.cubeDim, [Ny Nx Nz]
    # Every PTV voxel receives dose from the beams aimed at it.
    dose = case.dose_on_grid(np.ones(case.n_beamlets), 1)
    assert dose[case.structures["PTV"].mask].min() > 0


def test_plan_angles_are_used_when_the_workspace_has_them(tmp_path):
    pln = {"propStf": {"gantryAngles": np.array([[0.0, 90.0, 180.0]]), "couchAngles": np.array([[0.0, 0.0, 10.0]])}}
    path = save_matrad_v5(tmp_path / "phantom.mat", geometry_workspace(pln=pln))
    case = import_matrad(path, engine={"grid_mm": 2.0}).case
    assert [beam.gantry_deg for beam in case.beams] == [0.0, 90.0, 180.0]
    assert [beam.couch_deg for beam in case.beams] == [0.0, 0.0, 10.0]


def test_engine_options_with_a_dij_and_a_workspace_without_target_are_refused(tmp_path):
    with_dij = save_matrad_v5(tmp_path / "ws.mat", matrad_workspace())
    with pytest.raises(CaseError, match="the workspace has a dij .*beams apply only"):
        import_matrad(with_dij, engine={"beams": 5})
    workspace = geometry_workspace()
    workspace["cst"][0, 2] = "OAR"  # no structure typed TARGET any more
    untyped = save_matrad_v5(tmp_path / "untyped.mat", workspace)
    with pytest.raises(CaseError, match="no cst structure is typed TARGET; name .* --target"):
        import_matrad(untyped)
    assert len(import_matrad(untyped, engine={"targets": ["PTV"], "grid_mm": 2.0, "beams": 3}).case.beams) == 3


def test_cli_imports_a_phantom_file_and_refuses_engine_options_for_a_dij(tmp_path):
    runner = CliRunner()
    phantom = save_matrad_v5(tmp_path / "phantom.mat", geometry_workspace())
    result = runner.invoke(app, ["import", "matrad", str(phantom), "--out", str(tmp_path / "case.h5"), "--beams", "0,120,240",
                                 "--grid", "2"])
    assert result.exit_code == 0, result.output
    assert "specc's own" in result.output and "3 beams" in result.output
    with_dij = save_matrad_v5(tmp_path / "ws.mat", matrad_workspace())
    result = runner.invoke(app, ["import", "matrad", str(with_dij), "--out", str(tmp_path / "x.h5"), "--beams", "5"])
    assert result.exit_code == 1 and "has a dij" in result.output


def test_without_dij_names_and_exclusions_follow_the_case_import(tmp_path):
    """Rows 'PTV' and 'PTV ' (a stray space, here holding the whole body): refused naming both as written;
    `--exclude 'PTV '` leaves that row alone out, so with the Body out too the grid is the PTV's box (the
    no-dij box once left out a row by its trimmed name, so 'PTV ' stayed in and the grid was the CT's)."""
    workspace = geometry_workspace()
    cst = workspace["cst"]
    rows = {cst[row, 1]: row for row in range(cst.shape[0])}
    spaced = cst[rows["PTV"]].copy()
    spaced[1], spaced[2], spaced[3] = "PTV ", "OAR", cst[rows["Body"], 3]
    workspace["cst"] = np.vstack([cst, spaced[None, :]])
    path = save_matrad_v5(tmp_path / "spaced.mat", workspace)
    with pytest.raises(CaseError, match=r"'PTV' and cst\{\d+,2\} 'PTV ' are the same structure name"):
        import_matrad(path, engine={"grid_mm": 2.0, "beams": 3})
    kept = [name for name in rows if name not in ("Body", "PTV")]
    case = import_matrad(path, engine={"grid_mm": 2.0, "beams": 3}, exclude=["PTV ", "Body", *kept]).case
    assert set(case.structures) == {"PTV"} and case.grid.shape == (6, 4, 3)  # the PTV's box, not the CT's


def test_the_import_note_lists_couch_angles_and_says_when_beams_drop_them(tmp_path):
    pln = {"propStf": {"gantryAngles": np.array([[90.0, 90.0, 0.0]]), "couchAngles": np.array([[0.0, 90.0, 270.0]])}}
    path = save_matrad_v5(tmp_path / "phantom.mat", geometry_workspace(pln=pln))
    notes = import_matrad(path, engine={"grid_mm": 2.0}).notes
    assert any("3 beams (gantry 90, 90, 0 deg; couch 0, 90, 270 deg)" in note for note in notes)
    replaced = import_matrad(path, engine={"grid_mm": 2.0, "beams": [0.0, 90.0]}).notes
    assert any("its couch angles 0, 90, 270 deg are not used (all beams at couch 0)" in note for note in replaced)
    assert any("2 beams (gantry 0, 90 deg)," in note for note in replaced)


def test_a_pln_with_fewer_couch_than_gantry_angles_is_refused(tmp_path):
    """Review s19/r3 L8: every beam silently got couch 0 (matRad itself refuses such a pln)."""
    pln = {"propStf": {"gantryAngles": np.array([[0.0, 90.0, 180.0]]), "couchAngles": np.array([[0.0, 90.0]])}}
    path = save_matrad_v5(tmp_path / "p.mat", geometry_workspace(pln=pln))
    with pytest.raises(CaseError, match=r"p\.mat: pln\.propStf has 3 gantry angles \(gantryAngles\) but 2 couch angles "
                                        r"\(couchAngles\): each beam needs one of each"):
        import_matrad(path, engine={"grid_mm": 2.0})
    # --beams replaces the pln's beams, couch angles included (noted), so its counts do not matter then
    replaced = import_matrad(path, engine={"grid_mm": 2.0, "beams": [0.0]})
    assert [beam.couch_deg for beam in replaced.case.beams] == [0.0]


def test_plan_angles_outside_a_turn_are_the_same_directions_within_it(tmp_path):
    pln = {"propStf": {"gantryAngles": np.array([[-90.0, 360.0]]), "couchAngles": np.array([[0.0, -10.0]])}}
    imported = import_matrad(save_matrad_v5(tmp_path / "p.mat", geometry_workspace(pln=pln)), engine={"grid_mm": 2.0})
    assert [(beam.gantry_deg, beam.couch_deg) for beam in imported.case.beams] == [(270.0, 0.0), (0.0, 350.0)]
    assert any("outside 0-360 deg taken as the same directions" in note for note in imported.notes)


def test_the_rays_cross_the_ct_cube_beyond_the_structures_box(tmp_path):
    """Only the target kept: the dose grid is its box, the depth still runs through the whole CT cube."""
    path = save_matrad_v5(tmp_path / "phantom.mat", geometry_workspace())
    whole = import_matrad(path, engine={"grid_mm": 2.0, "beams": [0.0]}).case
    target_only = import_matrad(path, exclude=["Body"], engine={"grid_mm": 2.0, "beams": [0.0]}).case
    assert target_only.grid.shape[1] < whole.grid.shape[1]
    ptv, ptv_alone = whole.structures["PTV"].mask, target_only.structures["PTV"].mask
    dose = whole.dose_on_grid(np.ones(whole.n_beamlets), 1)[ptv]
    dose_alone = target_only.dose_on_grid(np.ones(target_only.n_beamlets), 1)[ptv_alone]
    assert np.sort(dose_alone) == pytest.approx(np.sort(dose), rel=1e-3)
