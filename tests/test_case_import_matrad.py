"""matRad workspace import (v5 and v7.3): voxel order, mask resampling, beams, clear errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from interop_fixtures import matrad_workspace, save_matrad_v5, save_matrad_v73

from specc.case import Case
from specc.case.importers.matrad import import_matrad
from specc.errors import CaseError

SAVERS = {"v5": save_matrad_v5, "v7.3": save_matrad_v73}


@pytest.fixture(scope="module", params=sorted(SAVERS))
def imported(request, tmp_path_factory):
    path = SAVERS[request.param](tmp_path_factory.mktemp("matrad") / "workspace.mat", matrad_workspace())
    return import_matrad(path)


def test_dose_grid_geometry_comes_from_dij(imported):
    grid = imported.case.grid
    assert grid.shape == (5, 4, 3)
    assert grid.spacing_mm == (4.0, 4.0, 4.0)
    assert grid.origin_mm == (-8.5, -6.5, -4.5)


def test_influence_rows_follow_matrad_column_major_order(imported):
    case = imported.case
    ix, iy, iz = np.unravel_index(case.voxel_indices, case.grid.shape)
    expected = (1 + ix + 10 * iy + 100 * iz) / 1000.0 * (iz > 0)
    dense = case.influence.toarray()
    np.testing.assert_allclose(dense[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(dense[:, 5], 6 * expected, rtol=1e-6)


def test_masks_are_resampled_by_nearest_neighbour(imported):
    # CT box x in [-6, 6), y in [-4, 4), z in [-2, 4) on 2 mm voxels centred at odd mm; the
    # nearest CT centre of dose centres x = -8.5, -4.5, 0.5, 4.5, 8.5 is -9, -5, 1, 5, 9.
    ptv = imported.case.structures["PTV"].mask
    expected = np.zeros((5, 4, 3), dtype=bool)
    expected[1:4, 1:3, 1:3] = True
    np.testing.assert_array_equal(ptv, expected)
    assert imported.case.structures["Body"].mask.all()
    assert imported.case.structures["PTV"].color == "#ff0000"


def test_beams_and_beamlets_come_from_stf(imported):
    case = imported.case
    assert [beam.gantry_deg for beam in case.beams] == [0.0, 180.0]
    assert case.beams[0].isocenter_mm == (0.0, 0.0, 1.0)
    assert case.beams[0].energy == "6 MV"
    np.testing.assert_array_equal(case.beamlets.beam_id, [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(case.beamlets.x_mm, [-5, 0, 5, -5, 0, 5])
    np.testing.assert_array_equal(case.beamlets.width_mm, 5.0)


def test_without_stf_the_geometry_gap_is_noted(tmp_path):
    path = save_matrad_v5(tmp_path / "nostf.mat", matrad_workspace(with_stf=False))
    result = import_matrad(path)
    np.testing.assert_array_equal(result.case.beamlets.beam_id, [1, 1, 1, 2, 2, 2])
    assert any("beamlet positions unknown" in note for note in result.notes)
    assert "beamlet positions unknown" in result.case.metadata.notes
    assert not result.case.metadata.beamlet_positions_known  # kept in the case file: no MLC segments from it
    saved = tmp_path / "nostf.h5"
    result.case.save(saved)
    assert not Case.load(saved).metadata.beamlet_positions_known
    assert import_matrad(save_matrad_v5(tmp_path / "stf.mat", matrad_workspace())).case.metadata.beamlet_positions_known


def test_without_stf_a_pln_with_more_couch_than_gantry_angles_is_refused(tmp_path):
    """Review s19/r3 L8: the beams' couch angles were read by position, the extra ones dropped without a word."""
    workspace = matrad_workspace(with_stf=False)
    workspace["pln"] = {"propStf": {"gantryAngles": np.array([[0.0, 90.0]]), "couchAngles": np.array([[0.0, 0.0, 90.0]])}}
    path = save_matrad_v5(tmp_path / "nostf.mat", workspace)
    with pytest.raises(CaseError, match=r"pln\.propStf has 2 gantry angles \(gantryAngles\) but 3 couch angles"):
        import_matrad(path)


def test_a_workspace_without_ct_is_refused(tmp_path):
    workspace = matrad_workspace()
    del workspace["ct"]
    path = save_matrad_v5(tmp_path / "noct.mat", workspace)
    with pytest.raises(CaseError, match=r"noct\.mat: no variable\(s\) ct; a matRad workspace needs ct and cst"):
        import_matrad(path)


def test_a_dij_of_the_wrong_size_is_refused(tmp_path):
    workspace = matrad_workspace()
    workspace["dij"]["doseGrid"]["dimensions"] = np.array([[4.0, 5.0, 4.0]])
    path = save_matrad_v5(tmp_path / "bad.mat", workspace)
    with pytest.raises(CaseError, match="dij.doseGrid"):
        import_matrad(path)


def test_without_a_dose_grid_a_dij_of_the_wrong_size_names_the_ct_grid_it_was_taken_on(tmp_path):
    """No dij.doseGrid: the dose grid is the CT's, so the error names ct.cubeDim, a field the workspace has."""
    workspace = matrad_workspace()
    del workspace["dij"]["doseGrid"]
    path = save_matrad_v5(tmp_path / "nogrid.mat", workspace)
    dims = [int(v) for v in np.ravel(workspace["ct"]["cubeDim"])]
    with pytest.raises(CaseError, match=r"no dij.doseGrid, so the dose grid is taken to be the CT grid: ct.cubeDim") as raised:
        import_matrad(path)
    assert str(dims) in str(raised.value) and "dij.doseGrid.dimensions" not in str(raised.value)


def test_exclude_leaves_a_structure_out_and_says_so(tmp_path):
    path = save_matrad_v5(tmp_path / "ws.mat", matrad_workspace())
    result = import_matrad(path, exclude=["Body"])
    assert set(result.case.structures) == {"PTV"}
    assert "Body: excluded on request" in result.not_imported
    with pytest.raises(CaseError, match="--exclude Nope"):
        import_matrad(path, exclude=["Nope"])


def test_names_alike_once_trimmed_are_shown_as_written_and_excluded_by_their_exact_name(tmp_path):
    """specc names a structure by cst{i,2} trimmed; --exclude takes the row named exactly so, else the trimmed
    name's rows."""
    workspace = matrad_workspace()
    workspace["cst"][1, 1] = "PTV "  # Body renamed: one stray space from the PTV's name
    path = save_matrad_v5(tmp_path / "ws.mat", workspace)
    with pytest.raises(CaseError, match=(r"ws.mat: cst\{1,2\} 'PTV' and cst\{2,2\} 'PTV ' are the same structure "
                                         r"name, 'PTV', once leading and trailing spaces are removed.*rename one of "
                                         r"them in matRad.*--exclude 'PTV '")):
        import_matrad(path)
    spaced_out = import_matrad(path, exclude=["PTV "])
    assert spaced_out.case.structures["PTV"].mask.sum() == 12  # the PTV's own row
    assert "PTV (cst{2,2} 'PTV '): excluded on request" in spaced_out.not_imported
    exact_out = import_matrad(path, exclude=["PTV"])
    assert exact_out.case.structures["PTV"].mask.all()  # the row written 'PTV ': Body's voxels
    assert "PTV: excluded on request" in exact_out.not_imported
    workspace["cst"][1, 1] = "Body "
    path = save_matrad_v5(tmp_path / "ws.mat", workspace)
    assert set(import_matrad(path).case.structures) == {"PTV", "Body"}
    assert set(import_matrad(path, exclude=["Body"]).case.structures) == {"PTV"}  # no row is 'Body' exactly
    workspace["cst"][1, 1] = "PTV"
    with pytest.raises(CaseError, match=r"cst\{1,2\} 'PTV' and cst\{2,2\} 'PTV' name two structures alike"):
        import_matrad(save_matrad_v5(tmp_path / "ws.mat", workspace))


def test_not_a_mat_file(tmp_path):
    (tmp_path / "x.mat").write_text("hello")
    with pytest.raises(CaseError, match="x.mat"):
        import_matrad(tmp_path / "x.mat")


def test_world_axes_of_a_ct_without_axes_are_matrads_for_a_non_square_cube():
    """matRad_getWorldAxes: first voxel at -(dimensions([2 1 3]) / 2) .* resolution, cubeDim being [Ny Nx Nz]."""
    from specc.case.importers.matrad import ct_axes

    ct = {"cubeDim": np.array([[8, 10, 6]]), "resolution": {"x": 2.0, "y": 3.0, "z": 4.0}}
    notes: list[str] = []
    x, y, z = ct_axes(ct, {}, (8, 10, 6), "ws.mat", notes)
    np.testing.assert_allclose(x, -10.0 + 2.0 * np.arange(10))
    np.testing.assert_allclose(y, -12.0 + 3.0 * np.arange(8))
    np.testing.assert_allclose(z, -12.0 + 4.0 * np.arange(6))
    assert notes and "matRad_getWorldAxes" in notes[0]


def test_a_fraction_of_a_fraction_is_refused_by_every_matrad_reader(tmp_path):
    """pln.numOfFractions 2.5 was read as 2 by the case import and the dose check, and refused by the
    objectives translation: one rule now (stated_fractions) for all of them."""
    from specc.case.importers.matrad import plan_fractions

    with pytest.raises(CaseError, match=r"pln.numOfFractions must be a positive integer, got \[2.5\]"):
        plan_fractions({"pln": {"numOfFractions": 2.5}}, {}, "ws.mat")
    assert plan_fractions({"pln": {}}, {"numOfFractions": 30.0}, "ws.mat") == 30
    with pytest.raises(CaseError, match=r"pln.numOfFractions must be a positive integer, got 'thirty'"):
        plan_fractions({"pln": {"numOfFractions": "thirty"}}, {}, "ws.mat")
    assert plan_fractions({}, {}, "ws.mat") is None


def test_a_cube_dim_that_is_not_the_cubes_shape_is_refused(tmp_path):
    """cubeDim written [Nx Ny Nz] imported silently, every voxel and dose row moved (matRad writes [Ny Nx Nz])."""
    workspace = matrad_workspace()
    ny, nx, nz = (int(v) for v in np.ravel(workspace["ct"]["cubeDim"]))
    assert ny != nx  # the fixture's cube is not square, so the swap is visible
    workspace["ct"]["cubeDim"] = np.array([[nx, ny, nz]], dtype=np.float64)
    path = save_matrad_v5(tmp_path / "swapped.mat", workspace)
    with pytest.raises(CaseError, match=rf"ct.cube has shape \[{ny}, {nx}, {nz}\], ct.cubeDim is \[{nx}, {ny}, {nz}\]"):
        import_matrad(path)


def test_an_empty_cell_of_voxels_is_a_structure_without_voxels(tmp_path):
    """`{}` read as '0 CT scenarios'; it is what `{[]}` is: no voxels, left out with --exclude."""
    workspace = matrad_workspace()
    workspace["cst"][1, 3] = np.empty((1, 0), dtype=object)
    path = save_matrad_v5(tmp_path / "empty.mat", workspace)
    name = workspace["cst"][1, 1]
    with pytest.raises(CaseError, match=rf"structure '{name}' has no voxels \(cst\{{2,4\}}\); exclude it with --exclude"):
        import_matrad(path)


def _truncated_v73(tmp_path):
    """A v7.3 workspace copied in part (an interrupted transfer of a large dij): its first half."""
    whole = save_matrad_v73(tmp_path / "whole.mat", matrad_workspace()).read_bytes()
    (tmp_path / "half.mat").write_bytes(whole[: len(whole) // 2])
    return tmp_path / "half.mat"


def _short_text(tmp_path):
    """A file shorter than a MAT header (scipy's header probe raised an IndexError on it)."""
    (tmp_path / "note.mat").write_text("hello, not a mat file\n")
    return tmp_path / "note.mat"


@pytest.mark.parametrize("make, says", [(_truncated_v73, "not a readable MATLAB v7.3 (HDF5) .mat file (Unable"),
                                        (_short_text, "not a readable MATLAB .mat file")])
def test_a_damaged_workspace_is_one_error_naming_it_in_every_reader(tmp_path, make, says):
    from specc.case.importers.matrad_dose import read_matrad_dose
    from specc.case.importers.matrad_objectives import convert_matrad_objectives

    path = make(tmp_path)
    for reader in (import_matrad, lambda p: convert_matrad_objectives(p), lambda p: read_matrad_dose(p, 30)):
        with pytest.raises(CaseError, match=rf"^{path}: {re.escape(says)}"):
            reader(path)


@pytest.mark.parametrize("saver", sorted(SAVERS))
def test_an_isocentre_in_matrad_2_cube_coordinates_is_converted_to_world(tmp_path, saver):
    """matRad 2.x's matRad_getIsoCenter: the TARGET voxels' mean index times ct.resolution (voxel (1,1,1) at
    (2, 2, 2) mm here); the fixture's first CT centre is (-9, -7, -5), so world = cube + (-11, -9, -7)."""
    workspace = matrad_workspace()
    for beam in workspace["stf"]:
        beam["isoCenter"] = np.array([[11.0, 9.0, 8.0]])  # the PTV centroid (0, 0, 1) mm in cube coordinates
    result = import_matrad(SAVERS[saver](tmp_path / "old.mat", workspace))
    assert [beam.isocenter_mm for beam in result.case.beams] == [(0.0, 0.0, 1.0)] * 2
    assert any(note.startswith("beams 1, 2: isoCenter (11.0, 9.0, 8.0) mm is the TARGET centroid in matRad 2.x's "
                               "cube coordinates") for note in result.notes)


def test_an_isocentre_at_neither_centroid_is_kept_and_noted(tmp_path):
    workspace = matrad_workspace()
    workspace["stf"][1]["isoCenter"] = np.array([[20.0, 20.0, 20.0]])
    result = import_matrad(save_matrad_v5(tmp_path / "moved.mat", workspace))
    assert [beam.isocenter_mm for beam in result.case.beams] == [(0.0, 0.0, 1.0), (20.0, 20.0, 20.0)]
    noted = [note for note in result.notes if "isoCenter" in note]
    assert len(noted) == 1 and noted[0].startswith("beam 2: isoCenter (20.0, 20.0, 20.0) mm is the TARGET centroid "
                                                   "in neither world (0.0, 0.0, 1.0) mm")
    assert "it would be world (9.0, 11.0, 13.0) mm: verify it" in noted[0]
    assert not any("isoCenter" in note for note in import_matrad(save_matrad_v5(tmp_path / "ws.mat",
                                                                               matrad_workspace())).notes)


def _with_body_on_tissue(shift: int) -> dict:
    """The fixture with a CT of air around a tissue box and Body = that box, its indices written `shift` lower
    (1: a 0-based export)."""
    workspace = matrad_workspace()
    dims = tuple(int(v) for v in np.ravel(workspace["ct"]["cubeDim"]))  # [Ny Nx Nz]
    tissue = np.zeros(dims, dtype=bool)
    tissue[1:-1, 1:-1, :] = True
    workspace["ct"]["cube"][0, 0] = np.where(tissue, 1.0, 0.001)
    workspace["cst"][1, 3][0, 0] = (np.flatnonzero(tissue.ravel(order="F")) + 1 - shift).astype(float).reshape(-1, 1)
    return workspace


def test_a_zero_based_cst_is_refused_where_the_body_lies_in_air(tmp_path):
    """0-based indices read as matRad's 1-based moved every structure one voxel along y without a word."""
    with pytest.raises(CaseError, match=r"cst\{2,4\} \(Body\) looks 0-based: read as matRad's 1-based indices, "
                                        r"16.7% of its voxels are air on ct.cube, read 0-based 0.0%"):
        import_matrad(save_matrad_v5(tmp_path / "zero.mat", _with_body_on_tissue(1)))
    result = import_matrad(save_matrad_v5(tmp_path / "one.mat", _with_body_on_tissue(0)))
    assert not any("0-based" in note for note in result.notes)


def test_without_a_body_row_the_index_base_is_noted_as_unknown(tmp_path):
    workspace = matrad_workspace()
    workspace["cst"][1, 1] = "Skin box"
    result = import_matrad(save_matrad_v5(tmp_path / "nobody.mat", workspace))
    assert any(note.startswith("cst indices taken as 1-based (matRad's); a 0-based export cannot be told")
               for note in result.notes)
