"""result.h5: what the pipeline writes is what exporters read back, and bad files are named."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from evaluate_fakes import protocol, synthetic_case
from interop_fixtures import small_case
from typer.testing import CliRunner

from specc.case import Case
from specc.cli import app
from specc.export import ResultError, read_result, write_result
from specc.pipeline import plan

TERMS = ["{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
         "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}"]


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[bool, Path]:
    """A plan whose solver converged and one stopped after 3 iterations, each a folder with result.h5."""
    folders = {}
    for converged, solver in ((True, ""), (False, "{max_iterations: 3}")):
        folder = tmp_path_factory.mktemp("plans") / f"converged-{converged}"
        outcome = plan(protocol({"Target": ["D50% >= 55 Gy"]}, terms=TERMS, solver=solver), synthetic_case(), folder)
        assert outcome.record.converged is converged
        folders[converged] = folder
    return folders


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name)) / "result.h5"


def test_round_trip_keeps_dose_fluence_grid_and_identifiers(tmp_path, plans):
    case = small_case({"dicom.FrameOfReferenceUID": "1.2.3"})
    fluence = np.array([2.0, 0.5])
    dose = case.dose_on_grid(fluence, fractions=5)
    case.save(tmp_path / "case.h5")
    record = (plans[True] / "plan.json").read_text()
    write_result(tmp_path / "result.h5", case, fluence, dose, 5, record, case_path=tmp_path / "case.h5",
                 case_roles={"Rückenmark": "oar", "PTV 70": "target"})

    result = read_result(tmp_path / "result.h5")
    assert result.case_roles == {"Rückenmark": "oar", "PTV 70": "target"}  # by case name, any characters
    assert read_result(write_result(tmp_path / "plain.h5", case, fluence, dose, 5)).case_roles == {}
    assert result.fractions == 5
    assert result.grid == case.grid
    np.testing.assert_array_equal(result.fluence, fluence)
    np.testing.assert_allclose(result.dose_gy, dose, rtol=1e-6)
    assert result.metadata_extra["dicom.FrameOfReferenceUID"] == "1.2.3"
    assert result.record_json == record
    assert result.case_sha256 == case.content_hash()
    assert result.load_case().content_hash() == case.content_hash()


# Runs in a child process: an HDF5 write that fails on a full disk crashed the process (rc 139) as it closed the
# file (audit a2 F15). A file-size limit fails the write the way a full disk does, without a small file system.
_WRITE_UNDER_A_SIZE_LIMIT = """
import resource, signal, sys
import numpy as np
from interop_fixtures import small_case
from specc.export import write_result
case = small_case()
dose = np.random.default_rng(0).random(case.grid.shape)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of the signal killing it
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
try:
    write_result(sys.argv[1], case, np.ones(2), dose, 1)
except OSError as error:
    print(f"OSError {error.strerror}")
"""


def _write_under_a_size_limit(path: Path, limit: int) -> subprocess.CompletedProcess[str]:
    tests = Path(__file__).parent
    return subprocess.run(
        [sys.executable, "-c", _WRITE_UNDER_A_SIZE_LIMIT, str(path), str(limit)], capture_output=True, text=True,
        timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent)])},
    )


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ as Linux has them")
@pytest.mark.parametrize("limit", [100, 6000])
def test_a_write_that_fails_part_way_is_an_os_error_that_says_why_not_a_crash(tmp_path, limit):
    """A file that cannot be written whole is an OSError with the OS's reason, which `specc plan` turns into
    'cannot write OUT/result.h5: REASON; no plan written'; the process lives on. Under the limit it is written."""
    failed = _write_under_a_size_limit(tmp_path / "result.h5", limit)
    assert failed.returncode == 0, failed.stderr[-2000:]  # h5py's own write: -11 (a segmentation fault)
    assert failed.stdout.strip() == "OSError File too large"

    whole = _write_under_a_size_limit(tmp_path / "whole.h5", 10**9)
    assert whole.returncode == 0 and whole.stdout == "", whole.stderr[-2000:]
    assert read_result(tmp_path / "whole.h5").grid == small_case().grid

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


def test_the_solver_status_is_a_root_attribute_that_outlives_the_plan_record(tmp_path, plans):
    """A program reading /dose_gy alone, or a result whose optional plan_json is gone, still learns that
    the plan did not converge; a result that says neither reads as unknown, never as converged."""
    for converged, folder in plans.items():
        path = _copy(folder, tmp_path / str(converged))
        status = read_result(path).record.solver.status
        with h5py.File(path, "r+") as handle:
            assert (handle.attrs["converged"], handle.attrs["solver_status"]) == (int(converged), status)
            del handle["plan_json"]
        kept = read_result(path)
        assert kept.record is None and (kept.converged, kept.solver_status) == (converged, status)
    case = small_case()
    bare = read_result(write_result(tmp_path / "bare.h5", case, np.ones(2), case.dose_on_grid(np.ones(2), 1), 1))
    assert (bare.converged, bare.solver_status) == (None, None)


def test_a_record_that_contradicts_the_root_attributes_is_a_damaged_file(tmp_path, plans):
    path = _copy(plans[False], tmp_path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["converged"] = 1
    with pytest.raises(ResultError, match=r"result\.h5: root attribute converged is True and '/plan_json' says False"):
        read_result(path).record


@pytest.mark.parametrize("dataset", ["dose_gy", "prior_dose_gy", "fluence"])
def test_a_dose_or_fluence_that_is_not_finite_is_refused_naming_the_file_and_dataset(tmp_path, dataset):
    """A NaN voxel would reach an RT Dose as 2.1e9 Gy and quantize the rest to whole Gy (audit a2 F17)."""
    case = small_case()
    dose = case.dose_on_grid(np.ones(2), 1)
    path = write_result(tmp_path / "result.h5", case, np.ones(2), dose, 1, prior_dose_gy=dose)
    with h5py.File(path, "r+") as handle:
        values = handle[dataset][...]
        values.flat[1] = np.nan
        handle[dataset][...] = values
    with pytest.raises(ResultError, match=rf"result\.h5: '/{dataset}' contains NaN or Inf"):
        read_result(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f["dose_gy"].attrs.__setitem__("unit", "cGy"), "'/dose_gy' attribute unit is 'cGy', not 'Gy'"),
        (lambda f: f["dose_gy"].attrs.__setitem__("summation", "per fraction"),
         "'/dose_gy' attribute summation is 'per fraction', not 'total over all fractions'"),
        (lambda f: f["prior_dose_gy"].attrs.__delitem__("unit"), "'/prior_dose_gy' has no attribute unit"),
        (lambda f: f.attrs.__setitem__("fractions", 0), "root attribute fractions is 0, not a positive whole number"),
        (lambda f: f.attrs.__setitem__("fractions", 2.5), "root attribute fractions is 2.5"),
        (lambda f: f.attrs.__setitem__("converged", "yes"), "root attribute converged is 'yes', not 1 or 0"),
        (lambda f: f["grid"].attrs.__setitem__("spacing_mm", [2.0, 0.0, 4.0]), "'/grid': grid spacing_mm"),
    ],
)
def test_what_the_attributes_say_of_the_dose_is_checked_on_reading(tmp_path, change, message):
    """unit, summation and fractions were written and never read back: a dose in cGy or per fraction
    was exported as a total in Gy (audit a2 F18)."""
    case = small_case()
    dose = case.dose_on_grid(np.ones(2), 2)
    path = write_result(tmp_path / "result.h5", case, np.ones(2), dose, 2, prior_dose_gy=dose)
    with h5py.File(path, "r+") as handle:
        change(handle)
    with pytest.raises(ResultError, match=rf"result\.h5: {message}"):
        read_result(path)


def test_a_damaged_plan_record_is_refused_naming_the_file_and_no_export_is_written(tmp_path, plans):
    path = _copy(plans[True], tmp_path)
    with h5py.File(path, "r+") as handle:
        del handle["plan_json"]
        handle.create_dataset("plan_json", data="{not json", dtype=h5py.string_dtype("utf-8"))
    with pytest.raises(ResultError, match=r"result\.h5: dataset '/plan_json' is not a plan record .*damaged"):
        read_result(path).record
    runner = CliRunner()
    for format, out in (("rtdose", tmp_path / "RD.dcm"), ("dvh", tmp_path / "dvh"), ("dicom", tmp_path / "study")):
        exported = runner.invoke(app, ["export", format, str(path), "--out", str(out)])
        said = " ".join(exported.output.split())
        assert exported.exit_code == 1 and isinstance(exported.exception, SystemExit), exported.output  # no traceback
        assert f"error: {path}: dataset '/plan_json' is not a plan record" in said and "Traceback" not in said
        assert not out.exists()
