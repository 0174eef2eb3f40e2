"""The built-in TG-119 phantoms: fixed structure names, volumes, and a plannable case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from specc import Case
from specc.case.phantoms import PHANTOMS, analytic_volumes_cc, build_phantom, phantom_geometry
from specc.case.shapes import CShape, EllipseWithKeepout
from specc.errors import CaseError

STRUCTURES = {
    "c-shape": {"PTV", "Core", "Body"},
    "multi-target": {"PTV_Central", "PTV_Superior", "PTV_Inferior", "Body"},
    "prostate": {"PTV", "Prostate", "Rectum", "Bladder", "Body", "FemoralHead_L", "FemoralHead_R"},
    "head-neck": {"PTV", "Cord", "Parotid_L", "Parotid_R", "Body"},
}


def test_phantom_names_and_structure_names_are_the_shared_ones():
    assert set(PHANTOMS) == set(STRUCTURES)
    for name, structures in STRUCTURES.items():
        assert set(phantom_geometry(name, 8.0).structures) == structures


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_structure_volumes_are_within_2_percent_of_analytic(name: str):
    geometry = phantom_geometry(name, 3.0)
    for structure_name, volume_cc in analytic_volumes_cc(name).items():
        voxelised = geometry.structures[structure_name].n_voxels * geometry.grid.voxel_volume_cc
        assert voxelised == pytest.approx(volume_cc, rel=0.02), structure_name


def test_tg119_dimensions():
    volumes = analytic_volumes_cc("c-shape")
    assert volumes["Core"] == pytest.approx(np.pi * 1.0**2 * 8.0)  # 1 cm radius, 8 cm long
    for name in ("PTV_Central", "PTV_Superior", "PTV_Inferior"):
        assert analytic_volumes_cc("multi-target")[name] == pytest.approx(np.pi * 2.0**2 * 4.0)
    assert analytic_volumes_cc("prostate")["Prostate"] == pytest.approx(4 / 3 * np.pi * 2.0 * 1.3 * 3.25)


def test_closed_form_volumes_of_composite_shapes_match_numeric_integration():
    # Independent check of the shape formulas on a fine 2-D lattice (one z unit).
    step = 0.1
    x, y = np.meshgrid(np.arange(-80, 80, step) + step / 2, np.arange(-80, 80, step) + step / 2, indexing="ij")
    z = np.zeros_like(x)
    for shape in (CShape(3.0, -2.0, 15.0, 37.0, 12.0, 0.0, 1.0), EllipseWithKeepout(69.0, 59.0, 35.0, 20.0, 0.0, 1.0)):
        area = np.count_nonzero(shape.contains(x, y, z)) * step * step
        assert area == pytest.approx(shape.volume_mm3, rel=1e-3)


def test_overlaps_follow_tg119():
    geometry = phantom_geometry("prostate", 3.0)
    s = {name: structure.mask for name, structure in geometry.structures.items()}
    for organ in ("Rectum", "Bladder"):
        inside = np.count_nonzero(s[organ] & s["PTV"]) / np.count_nonzero(s[organ])
        assert 0.05 < inside < 0.5, organ  # partly inside the PTV
    assert np.count_nonzero(s["Prostate"] & ~s["PTV"]) <= 0.01 * np.count_nonzero(s["Prostate"])
    hn = {name: structure.mask for name, structure in phantom_geometry("head-neck", 3.0).structures.items()}
    assert not (hn["Cord"] & hn["PTV"]).any()
    c = {name: structure.mask for name, structure in phantom_geometry("c-shape", 3.0).structures.items()}
    assert not (c["Core"] & c["PTV"]).any()


@pytest.mark.parametrize("grid_mm", [5.0, 8.0, 10.0])
def test_stacked_targets_share_no_voxel(grid_mm: float):
    s = {name: structure.mask for name, structure in phantom_geometry("multi-target", grid_mm).structures.items()}
    total = s["PTV_Central"].astype(int) + s["PTV_Superior"] + s["PTV_Inferior"]
    assert total.max() == 1


def test_density_is_water_in_the_body_air_outside_bone_in_femoral_heads():
    geometry = phantom_geometry("prostate", 8.0)
    body = geometry.structures["Body"].mask
    heads = geometry.structures["FemoralHead_L"].mask | geometry.structures["FemoralHead_R"].mask
    assert np.all(geometry.density[~body] == np.float32(0.001))
    assert np.all(geometry.density[body & ~heads] == 1.0)
    assert np.all(geometry.density[heads] > 1.1)


@pytest.fixture(scope="module")
def small_case() -> Case:
    return build_phantom("c-shape", beams=5, grid_mm=8.0, beamlet_mm=8.0)


def test_built_phantom_is_a_plannable_case(small_case: Case):
    case = small_case
    assert [beam.gantry_deg for beam in case.beams] == [0.0, 72.0, 144.0, 216.0, 288.0]
    target = case.structures["PTV"].mask
    centroid = case.grid.positions_mm(np.flatnonzero(target.ravel())).mean(axis=0)
    np.testing.assert_allclose(case.beams[0].isocenter_mm, centroid, atol=1e-3)
    # Every body voxel is a row; every beam has beamlets; unit weights dose the target.
    assert len(case.voxel_indices) == case.structures["Body"].n_voxels
    assert set(np.unique(case.beamlets.beam_id)) == {1, 2, 3, 4, 5}
    dose = case.dose_on_grid(np.ones(case.n_beamlets), fractions=1)
    assert dose[target].min() > 0.5 * dose[target].max()
    assert 1.0 < dose[target].mean() < 10.0  # a few Gy per fraction for weights of order 1
    assert case.metadata.source == "phantom:c-shape" and "pencil beam" in case.metadata.dose_engine


def test_unknown_phantom_and_unresolvable_grid():
    with pytest.raises(CaseError, match="unknown phantom 'lung'"):
        phantom_geometry("lung")
    with pytest.raises(CaseError, match="Cord.*too small.*10 mm grid.*finer grid"):
        phantom_geometry("head-neck", 10.0)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from specc.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_lists_and_builds_phantoms(tmp_path: Path):
    listing = _cli("phantom", "--list")
    assert listing.returncode == 0, listing.stderr
    for name in PHANTOMS:
        assert name in listing.stdout
    out = tmp_path / "case.h5"
    built = _cli("phantom", "multi-target", "--out", str(out), "--beams", "3", "--grid", "8", "--beamlet", "8")
    assert built.returncode == 0, built.stderr
    case = Case.load(out)
    assert len(case.beams) == 3 and case.grid.spacing_mm == (8.0, 8.0, 8.0)
    assert set(case.structures) == STRUCTURES["multi-target"]


def test_cli_reports_user_errors_without_traceback(tmp_path: Path):
    result = _cli("phantom", "lung", "--out", str(tmp_path / "x.h5"))
    assert result.returncode == 1
    assert "unknown phantom 'lung'" in result.stderr and "Traceback" not in result.stderr
