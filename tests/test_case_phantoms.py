"""The built-in TG-119 phantoms: fixed structure names, volumes, and a plannable case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, distance_transform_edt

from specc import Case
from specc.case.phantoms import (
    PHANTOMS,
    analytic_volumes_cc,
    build_phantom,
    density_to_hu,
    phantom_geometry,
    phantom_spec,
)
from specc.case.shapes import Box, CShape, Difference, EllipseWithKeepout, Ellipsoid, EllipticCylinder, Expansion
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


def _masks(name: str, grid_mm: float) -> dict[str, np.ndarray]:
    return {n: structure.mask for n, structure in phantom_geometry(name, grid_mm).structures.items()}


def _inside_ptv(masks: dict[str, np.ndarray], oar: str) -> tuple[float, float]:
    """(fraction of the OAR inside the PTV, that overlap as a fraction of the PTV)."""
    overlap = np.count_nonzero(masks[oar] & masks["PTV"])
    return overlap / np.count_nonzero(masks[oar]), overlap / np.count_nonzero(masks["PTV"])


def test_prostate_overlaps_are_the_documented_ones():
    # docs/phantoms.md, on the default 5 mm planning grid: the PTV holds the rectum's anterior
    # wall and the bladder's base, a small part of each.
    masks = _masks("prostate", 5.0)
    rectum, bladder = _inside_ptv(masks, "Rectum"), _inside_ptv(masks, "Bladder")
    assert rectum == pytest.approx((0.162, 0.055), abs=0.01)
    assert bladder == pytest.approx((0.028, 0.017), abs=0.01)
    # Without a grid: 15.7% of the rectum and 1.8% of the bladder lie within 6 mm of the prostate.
    spec = phantom_spec("prostate").regions
    for oar, fraction in (("Rectum", 0.157), ("Bladder", 0.018)):
        shape = spec[oar].shape
        inside = 1.0 - Difference(shape, spec["PTV"].shape).volume_mm3 / shape.volume_mm3
        assert inside == pytest.approx(fraction, abs=0.005), oar


def test_prostate_organs_touch_but_never_share_tissue():
    s = _masks("prostate", 3.0)
    # TG-119: the rectum abuts the indented posterior aspect of the prostate.
    assert not (s["Rectum"] & s["Prostate"]).any()
    assert (binary_dilation(s["Rectum"]) & s["Prostate"]).any()
    # The bladder rests on the prostate's superior aspect: touching, never inside it.
    assert not (s["Bladder"] & s["Prostate"]).any()
    assert (binary_dilation(s["Bladder"], iterations=2) & s["Prostate"]).any()
    assert not (s["Bladder"] & s["Rectum"]).any()
    # PTV = prostate + 6 mm: all of the prostate, and nothing farther than the margin from it.
    assert not (s["Prostate"] & ~s["PTV"]).any()
    distance_mm = distance_transform_edt(~s["Prostate"], sampling=3.0)
    assert distance_mm[s["PTV"]].max() <= 6.0 + 3.0  # within a voxel of the margin


def test_prostate_rectum_is_long_and_under_the_chamber_point():
    geometry = phantom_geometry("prostate", 3.0)
    s = {n: structure.mask for n, structure in geometry.structures.items()}
    positions = geometry.grid.positions_mm(np.flatnonzero(s["Rectum"].ravel()))
    ptv_positions = geometry.grid.positions_mm(np.flatnonzero(s["PTV"].ravel()))
    assert np.ptp(positions[:, 2]) > 140.0  # 15 cm (RTOG), twice the PTV length
    assert np.ptp(ptv_positions[:, 2]) < 80.0
    # TG-119's low-dose chamber point, 2.5 cm posterior of the isocentre, lies in the rectum.
    isocentre = ptv_positions.mean(axis=0)
    point = isocentre + np.array([0.0, 25.0, 0.0])
    nearest = np.argmin(np.linalg.norm(positions - point, axis=1))
    assert np.linalg.norm(positions[nearest] - point) < 3.0


def test_head_neck_parotids_sit_beside_the_ptv_at_the_isocentre_depth():
    geometry = phantom_geometry("head-neck", 3.0)
    s = {n: structure.mask for n, structure in geometry.structures.items()}
    assert not (s["Cord"] & s["PTV"]).any()
    # About 1.5 cm between the cord and the PTV (TG-119), to within a 3 mm voxel.
    gap_mm = distance_transform_edt(~s["Cord"], sampling=3.0)[s["PTV"]].min()
    assert 12.0 <= gap_mm <= 18.0
    ptv = geometry.grid.positions_mm(np.flatnonzero(s["PTV"].ravel()))
    isocentre = ptv.mean(axis=0)
    for name in ("Parotid_L", "Parotid_R"):
        assert _inside_ptv(s, name) == (0.0, 0.0)
        assert (binary_dilation(s[name]) & s["PTV"]).any()  # abutting: the PTV wraps it medially
        parotid = geometry.grid.positions_mm(np.flatnonzero(s[name].ravel()))
        # TG-119's film in the coronal plane through the isocentre shows the parotids.
        assert parotid[:, 1].min() < isocentre[1] < parotid[:, 1].max()
        # Beside the PTV's upper part, within its superior-inferior extent: in the beams' path.
        assert ptv[:, 2].min() < parotid[:, 2].min() and parotid[:, 2].max() <= ptv[:, 2].max()
    masks = _masks("head-neck", 5.0)
    for name in ("Parotid_L", "Parotid_R"):
        # Abutting shapes share a rim of voxels on the 5 mm grid (docs/phantoms.md).
        assert _inside_ptv(masks, name) == pytest.approx((0.06, 0.0014), abs=0.01)


def test_c_shape_core_is_outside_the_ptv():
    c = _masks("c-shape", 3.0)
    assert not (c["Core"] & c["PTV"]).any()


def test_expansion_matches_closed_forms():
    # Steiner's formula for convex bodies: V + S m + M m^2 + 4/3 pi m^3.
    sphere = Expansion(Ellipsoid((1.0, -2.0, 3.0), (20.0, 20.0, 20.0)), 6.0)
    assert sphere.volume_mm3 == pytest.approx(4 / 3 * np.pi * 26.0**3, rel=0.02)
    a, b, c, m = 40.0, 26.0, 60.0, 6.0
    box = Expansion(Box(-20.0, 20.0, -13.0, 13.0, -30.0, 30.0), m)
    steiner = a * b * c + 2 * (a * b + b * c + c * a) * m + np.pi * (a + b + c) * m**2 + 4 / 3 * np.pi * m**3
    assert box.volume_mm3 == pytest.approx(steiner, rel=0.02)
    x = np.array([26.5, 27.5, 1.0, 1.0])
    y = np.array([-2.0, -2.0, -2.0, -2.0])
    z = np.array([3.0, 3.0, 3.0 + 25.5, 3.0 - 26.5])
    assert sphere.contains(x, y, z).tolist() == [True, False, True, False]


def test_expansion_of_an_indented_shape_reaches_into_the_indentation_only_by_the_margin():
    plate = Difference(Box(-30.0, 30.0, -30.0, 30.0, -5.0, 5.0), EllipticCylinder(0.0, 0.0, 10.0, 10.0, -50.0, 50.0))
    grown = Expansion(plate, 6.0)
    x = np.array([0.0, 0.0, 5.0, 3.5])
    y = np.zeros(4)
    z = np.zeros(4)
    # The hole (radius 10) keeps its centre out of the PTV; 5 mm from the wall is in, 6.5 mm is not.
    assert grown.contains(x, y, z).tolist() == [False, False, True, False]


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
