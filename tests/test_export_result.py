"""result.h5: what the pipeline writes is what exporters read back, and bad files are named."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from interop_fixtures import small_case

from specc.case import Case
from specc.export import ResultError, read_result, write_result


def test_round_trip_keeps_dose_fluence_grid_and_identifiers(tmp_path):
    case = small_case({"dicom.FrameOfReferenceUID": "1.2.3"})
    fluence = np.array([2.0, 0.5])
    dose = case.dose_on_grid(fluence, fractions=5)
    case.save(tmp_path / "case.h5")
    write_result(tmp_path / "result.h5", case, fluence, dose, 5, '{"a": 1}', case_path=tmp_path / "case.h5",
                 case_roles={"Rückenmark": "oar", "PTV 70": "target"})

    result = read_result(tmp_path / "result.h5")
    assert result.case_roles == {"Rückenmark": "oar", "PTV 70": "target"}  # by case name, any characters
    assert read_result(write_result(tmp_path / "plain.h5", case, fluence, dose, 5)).case_roles == {}
    assert result.fractions == 5
    assert result.grid == case.grid
    np.testing.assert_array_equal(result.fluence, fluence)
    np.testing.assert_allclose(result.dose_gy, dose, rtol=1e-6)
    assert result.metadata_extra["dicom.FrameOfReferenceUID"] == "1.2.3"
    assert result.record_json == '{"a": 1}'
    assert result.case_sha256 == case.content_hash()
    assert result.load_case().content_hash() == case.content_hash()


def test_load_case_refuses_a_different_case(tmp_path):
    case = small_case()
    write_result(tmp_path / "result.h5", case, np.ones(2), case.dose_on_grid(np.ones(2), 1), 1)
    other = small_case()
    other.structures["Target"].mask[0, 0, 0] = True
    other.voxel_indices = np.union1d(other.voxel_indices, [0])
    other = Case(other.case_id, other.grid, other.voxel_indices, sp.csr_matrix(np.ones((len(other.voxel_indices), 2), np.float32)),
                 other.beams, other.beamlets, other.structures, other.metadata)
    other.save(tmp_path / "other.h5")
    result = read_result(tmp_path / "result.h5")
    with pytest.raises(ResultError, match="not the case"):
        result.load_case(tmp_path / "other.h5")
    with pytest.raises(ResultError, match="--case"):
        result.load_case()  # no case path was recorded


def test_write_rejects_a_dose_of_the_wrong_shape(tmp_path):
    case = small_case()
    with pytest.raises(ValueError, match="grid"):
        write_result(tmp_path / "r.h5", case, np.ones(2), np.zeros((4, 3, 3)), 1)
    with pytest.raises(ValueError, match="beamlets"):
        write_result(tmp_path / "r.h5", case, np.ones(3), np.zeros((4, 3, 2)), 1)


def test_read_names_the_file_and_the_missing_dataset(tmp_path):
    case = small_case()
    path = write_result(tmp_path / "result.h5", case, np.ones(2), case.dose_on_grid(np.ones(2), 1), 1)
    with h5py.File(path, "a") as handle:
        del handle["dose_gy"]
    with pytest.raises(ResultError, match=r"result\.h5.*'/dose_gy' is missing"):
        read_result(path)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ResultError, match="not an HDF5 file"):
        read_result(tmp_path / "text.h5")
    case.save(tmp_path / "case.h5")
    with pytest.raises(ResultError, match="not a specc result file"):
        read_result(tmp_path / "case.h5")
