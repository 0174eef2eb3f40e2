"""PortPy folder import: dose-voxel lattice, majority masks, per-beam triplets, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from interop_fixtures import write_portpy_folder

from specc.case.importers.hu_density import DEFAULT_HU_TABLE, hu_table_record, hu_to_relative_electron_density
from specc.case.importers.portpy import import_portpy
from specc.errors import CaseError


@pytest.fixture(scope="module", params=[False, True], ids=["centroids", "stored-coordinates"])
def imported(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("portpy") / "Patient_1"
    facts = write_portpy_folder(folder, with_coordinates=request.param)
    return facts, import_portpy(folder)


def test_grid_is_the_dose_voxel_lattice(imported):
    _, result = imported
    grid = result.case.grid
    assert grid.shape == (4, 3, 4)
    assert grid.spacing_mm == (4.0, 4.0, 2.0)
    assert grid.origin_mm == (-6.0, -4.0, -3.0)  # centre of the first 2 x 2 block of CT voxels


def test_influence_rows_and_columns_follow_the_triplets(imported):
    _, result = imported
    case = result.case
    positions = case.grid.positions_mm(case.voxel_indices)
    base = (1000 + positions[:, 0] + 10 * positions[:, 1] + 100 * positions[:, 2]) / 1e4
    dense = case.influence.toarray()
    np.testing.assert_allclose(dense[:, 0], base, rtol=1e-5)  # beam 0, beamlet 0
    np.testing.assert_allclose(dense[:, 7], base * 4 * 2, rtol=1e-5)  # beam 1, beamlet 3
    np.testing.assert_array_equal(case.beamlets.beam_id, [0, 0, 0, 0, 1, 1, 1, 1])
    assert [b.gantry_deg for b in case.beams] == [0.0, 90.0]
    assert case.beams[1].isocenter_mm == (1.0, 2.0, 3.0)


def test_a_dose_voxel_is_in_a_structure_when_half_its_ct_voxels_are(imported):
    _, result = imported
    ptv = result.case.structures["PTV"].mask
    expected = np.zeros((4, 3, 4), dtype=bool)
    expected[1:3, 1, 1:3] = True  # block 1 (x 2, 3) fully inside, block 2 (x 4, 5) half inside
    np.testing.assert_array_equal(ptv, expected)


def test_volume_outside_the_calculation_box_is_reported(imported):
    facts, result = imported
    assert f"BODY: {facts['outside_cc']:.2f} cc outside PortPy's calculation box (no dose computed there)" in result.not_imported


def test_density_comes_from_the_mean_hu_of_each_dose_voxel(imported):
    _, result = imported
    density = result.case.density
    half_air = float(hu_to_relative_electron_density(np.array(-500.0)))  # mean of -1000 and 0 HU
    assert density[0, 0, 0] == pytest.approx(half_air, abs=1e-6)
    assert density[1, 1, 1] == pytest.approx(1.0, abs=1e-6)


def test_the_hu_table_and_ct_numbers_beyond_it_are_recorded(tmp_path):
    """Review s19/r3 L7: --hu-table converted PortPy's HU but left no record of the table, nor of the CT numbers
    beyond its ends, as the DICOM and matRad imports give."""
    folder = tmp_path / "Patient_1"
    write_portpy_folder(folder)
    table = ((-100.0, 0.95), (0.0, 1.0), (3000.0, 2.8))
    result = import_portpy(folder, hu_table=table)
    assert result.case.metadata.extra["import.hu_table"] == "-100:0.95; 0:1; 3000:2.8"
    assert any("through a user HU table (3 rows" in note for note in result.notes)
    below = [note for note in result.notes if "below the HU table's first row (-100 HU)" in note]
    assert len(below) == 1 and "down to -1000 HU" in below[0]
    plain = import_portpy(folder)
    assert plain.case.metadata.extra["import.hu_table"] == hu_table_record(DEFAULT_HU_TABLE)
    assert not [note for note in plain.notes if "HU table's first row" in note]


def test_missing_metadata_file_is_named(tmp_path):
    folder = tmp_path / "P"
    write_portpy_folder(folder)
    (folder / "OptimizationVoxels_MetaData.json").unlink()
    with pytest.raises(CaseError, match="OptimizationVoxels_MetaData.json: missing"):
        import_portpy(folder)


def test_triplets_beyond_the_voxels_are_refused(tmp_path):
    import h5py

    folder = tmp_path / "P"
    write_portpy_folder(folder)
    with h5py.File(folder / "Beams" / "Beam_1_Data.h5", "a") as f:
        data = f["inf_matrix_sparse"][()]
        data[0, 0] = 999
        del f["inf_matrix_sparse"]
        f.create_dataset("inf_matrix_sparse", data=data)
    with pytest.raises(CaseError, match=r"Beam_1_MetaData.json: inf_matrix_sparse refers to voxel 999"):
        import_portpy(folder)


def test_irregular_dose_voxels_are_refused(tmp_path):
    folder = tmp_path / "P"
    write_portpy_folder(folder)
    meta = json.loads((folder / "OptimizationVoxels_MetaData.json").read_text())
    meta["dose_voxel_resolution_xyz_mm"] = [3.0, 4.0, 2.0]
    (folder / "OptimizationVoxels_MetaData.json").write_text(json.dumps(meta))
    with pytest.raises(CaseError, match="not on a regular"):
        import_portpy(folder)


def test_a_dose_grid_volume_off_portpys_own_is_noted_beside_it(tmp_path):
    """The half-of-its-CT-voxels rule counts every tie in: the fixture's PTV has a dose voxel half inside, so the
    case's PTV is larger than PortPy's volume_cc, and that was never said (45 cc -> 57 cc in the audit)."""
    folder = tmp_path / "Patient_1"
    write_portpy_folder(folder)
    entries = json.loads((folder / "StructureSet_MetaData.json").read_text())
    stated = next(entry["volume_cc"] for entry in entries if entry["name"] == "PTV")
    result = import_portpy(folder)
    imported_cc = result.case.structures["PTV"].mask.sum() * np.prod(result.case.grid.spacing_mm) / 1000.0
    assert abs(imported_cc / stated - 1) > 0.05  # the fixture's tie makes a visible difference
    assert (f"PTV: {imported_cc:.2f} cc on the dose grid, {stated:.2f} cc by PortPy's volume_cc "
            f"({100 * (imported_cc / stated - 1):+.0f}%)") in " ".join(result.notes)
    for entry in entries:
        entry["volume_cc"] = float(imported_cc) if entry["name"] == "PTV" else entry["volume_cc"]
    (folder / "StructureSet_MetaData.json").write_text(json.dumps(entries))
    assert not any(note.startswith("PTV:") for note in import_portpy(folder).notes)
