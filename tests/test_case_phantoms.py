"""The built-in TG-119 phantoms: fixed structure names, volumes, and a plannable case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from specc import Case
from specc.case.phantoms import PHANTOMS, analytic_volumes_cc, build_phantom, density_to_hu, phantom_geometry
from specc.case.shapes import Box, CShape, Difference, EllipseWithKeepout, Ellipsoid, EllipticCylinder
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
    assert volumes["Core"] == pytest.approx(np.pi * 1.0**2 * 10.0)  # 1 cm radius, 10 cm long
    # The AAPM C-shape structure set (3 x 3 x 2.5 mm): PTV 167.8 cc, core 29.7 cc, body a 30 x 15 cm slab.
    assert volumes["PTV"] == pytest.approx(167.8, rel=0.03)
    assert volumes["Body"] == pytest.approx(30.0 * 15.0 * 20.0)
    for name in ("PTV_Central", "PTV_Superior", "PTV_Inferior"):
        assert analytic_volumes_cc("multi-target")[name] == pytest.approx(np.pi * 2.0**2 * 4.0)
    # Prostate 4.0 x 2.6 x 6.5 cm, less the indentation the rectum sits in.
    ellipsoid = 4 / 3 * np.pi * 2.0 * 1.3 * 3.25
    assert 0.95 * ellipsoid < analytic_volumes_cc("prostate")["Prostate"] < ellipsoid


def test_c_shape_wraps_the_core_anteriorly_and_opens_posteriorly():
    geometry = phantom_geometry("c-shape", 3.0)
    ptv, core = geometry.structures["PTV"].mask, geometry.structures["Core"].mask
    ptv_y = geometry.grid.positions_mm(np.flatnonzero(ptv.ravel()))[:, 1]
    assert ptv_y.max() <= 7.0 + 1.5 and ptv_y.min() < -35.0  # arms end 7 mm posterior of the core axis
    core_z = geometry.grid.positions_mm(np.flatnonzero(core.ravel()))[:, 2]
    ptv_z = geometry.grid.positions_mm(np.flatnonzero(ptv.ravel()))[:, 2]
    assert core_z.min() < ptv_z.min() - 8.0 and core_z.max() > ptv_z.max() + 8.0  # core 1 cm longer each end


def test_closed_form_volumes_of_composite_shapes_match_numeric_integration():
    # Independent check of the shape formulas on a fine 2-D lattice (one z unit).
    step = 0.1
    x, y = np.meshgrid(np.arange(-80, 80, step) + step / 2, np.arange(-80, 80, step) + step / 2, indexing="ij")
    z = np.zeros_like(x)
    shapes = (
        CShape(3.0, -2.0, 15.0, 37.0, 7.0, 0.0, 1.0),
        CShape(0.0, 0.0, 15.0, 37.0, 0.0, 0.0, 1.0),
        EllipseWithKeepout(69.0, 59.0, 35.0, 20.0, 0.0, 1.0),
        Box(-30.0, 50.0, -20.0, 10.0, 0.0, 1.0),
    )
    for shape in shapes:
        area = np.count_nonzero(shape.contains(x, y, z)) * step * step
        assert area == pytest.approx(shape.volume_mm3, rel=1e-3)


def test_difference_volume_matches_a_closed_form_case():
    # A cylinder cut out of a longer cylinder around the same axis: the volume is exact.
    outer = EllipticCylinder(0.0, 0.0, 20.0, 20.0, -30.0, 30.0)
    inner = EllipticCylinder(0.0, 0.0, 8.0, 8.0, -10.0, 10.0)
    assert Difference(outer, inner).volume_mm3 == pytest.approx(outer.volume_mm3 - inner.volume_mm3, rel=1e-3)
    apart = Ellipsoid((100.0, 0.0, 0.0), (5.0, 5.0, 5.0))
    assert Difference(outer, apart).volume_mm3 == outer.volume_mm3


def test_overlaps_follow_tg119():
    geometry = phantom_geometry("prostate", 3.0)
    s = {name: structure.mask for name, structure in geometry.structures.items()}
    # TG-119: the PTV includes about a third of the rectal volume.
    rectum_inside = np.count_nonzero(s["Rectum"] & s["PTV"]) / np.count_nonzero(s["Rectum"])
    assert 0.25 < rectum_inside < 0.42
    # The rectum abuts the indented prostate: touching, never inside it.
    assert not (s["Rectum"] & s["Prostate"]).any()
    assert (binary_dilation(s["Rectum"]) & s["Prostate"]).any()
    bladder_inside = np.count_nonzero(s["Bladder"] & s["PTV"]) / np.count_nonzero(s["Bladder"])
    assert 0.05 < bladder_inside < 0.5  # centred on the prostate's superior aspect: partly inside
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


def test_phantom_ct_numbers_map_back_to_its_density(small_case: Case):
    from specc.case.importers.hu_density import hu_to_relative_electron_density

    assert small_case.ct_hu is not None
    body = small_case.structures["Body"].mask
    np.testing.assert_allclose(small_case.ct_hu[body], 0.0, atol=1e-3)  # water
    np.testing.assert_allclose(small_case.ct_hu[~body], -1000.0, atol=1e-3)  # air
    np.testing.assert_allclose(hu_to_relative_electron_density(small_case.ct_hu), small_case.density, rtol=1e-5)
    heads = phantom_geometry("prostate", 8.0).density > 1.1
    assert 400.0 < float(density_to_hu(phantom_geometry("prostate", 8.0).density)[heads].min()) < 700.0  # bone


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
