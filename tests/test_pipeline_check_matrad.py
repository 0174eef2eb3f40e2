"""`specc check --case ws.h5 --dose ws.mat`: the plan matRad optimized (resultGUI) judged on the imported case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from interop_fixtures import matrad_workspace, save_matrad_v5, save_matrad_v73

import specc
from specc.case.importers.matrad import import_matrad
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
  PTV: ["Mean >= 50 Gy", "Max <= 80 Gy"]
  Body: ["Mean <= 40 Gy"]
"""


def linear_gy_per_fraction(x, y, z):
    """Trilinear interpolation reproduces a linear dose exactly: the expected values need no interpolation."""
    return 1.5 + 0.05 * x + 0.02 * y + 0.03 * z


def workspace_with_result() -> dict:
    workspace = matrad_workspace()
    ct = workspace["ct"]
    x, y, z = (np.asarray(ct[axis]).ravel() for axis in "xyz")
    gy, gx, gz = np.meshgrid(y, x, z, indexing="ij")  # matRad cubes are [Ny Nx Nz]
    workspace["resultGUI"] = {"physicalDose": linear_gy_per_fraction(gx, gy, gz)}
    workspace["pln"] = {"numOfFractions": 30.0}
    return workspace


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


def test_matrads_dose_per_fraction_is_judged_as_the_total_on_the_cases_masks(saved, tmp_path):
    workspace, case_path = saved
    record = specc.check_dose(protocol_file(tmp_path, 30), case_path, workspace, tmp_path / "out").record
    case = specc.Case.load(case_path)
    x, y, z = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
    total = 30 * linear_gy_per_fraction(x, y, z)
    means = {s.structure: s.mean_gy for s in record.structures}
    assert means["PTV"] == pytest.approx(total[case.structures["PTV"].mask].mean(), rel=1e-9)
    assert means["Body"] == pytest.approx(total[case.structures["Body"].mask].mean(), rel=1e-9)
    # The hottest voxel of the whole grid, where x, y and z are largest: a swapped axis would move it.
    assert record.hot_spot.max_gy == pytest.approx(total.max(), rel=1e-9)
    corner = np.unravel_index(np.argmax(total), total.shape)
    assert record.hot_spot.location_mm == pytest.approx([x[corner], y[corner], z[corner]])
    source = record.dose_source
    assert source.format == "matRad resultGUI" and source.fractions_scaled == 30 and source.interpolated
    assert any("one fraction" in note for note in record.notes)


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


def test_a_matrad_plan_as_a_prior_course_is_its_fractions_total(saved, tmp_path):
    from specc.composite import read_prior_dose

    workspace, case_path = saved
    case = specc.Case.load(case_path)
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
