"""Sanity of the pencil-beam engine on water slabs: depth dose, inverse square, profiles."""

from __future__ import annotations

import numpy as np
import pytest

from specc.case.engine import BeamFrame, PencilBeamModel, compute_influence, equispaced_beams
from specc.case.model import Beam, Grid
from specc.errors import CaseError

SURFACE_Y = -61.0  # water for y >= SURFACE_Y (the beam at gantry 0 enters from -y)


def _slab(density_value: float = 1.0, field_mm: float = 100.0, iso_y: float = 0.0, gantry: float = 0.0):
    """A water (or other density) slab with 2 mm voxels along the beam and 5 mm across."""
    shape, spacing = (33, 81, 33), (5.0, 2.0, 5.0)
    grid = Grid(shape, spacing, tuple(-(n - 1) / 2 * s for n, s in zip(shape, spacing)))
    x, y, z = np.meshgrid(*grid.axes_mm(), indexing="ij")
    # Voxel centres sit at even mm, so the surface is the voxel boundary at SURFACE_Y.
    density = np.where(y >= SURFACE_Y, density_value, 0.0).astype(np.float32)
    half = field_mm / 2 - 2.5
    target = (np.abs(x) <= half) & (np.abs(z) <= half) & (np.abs(y - iso_y) <= 1.0)
    beam = Beam(1, gantry, isocenter_mm=(0.0, iso_y, 0.0))
    return grid, density, target, beam


def _open_field_dose(grid, density, target, beam, model=None):
    influence = compute_influence(density, grid, [beam], target, np.ones(grid.shape, bool), model=model)
    dose = np.zeros(grid.n_voxels)
    dose[influence.voxel_indices] = influence.matrix @ np.ones(influence.matrix.shape[1])
    return dose.reshape(grid.shape), influence


@pytest.fixture(scope="module")
def water():
    grid, density, target, beam = _slab()
    dose, influence = _open_field_dose(grid, density, target, beam)
    return grid, dose, influence


def _depths(grid: Grid) -> np.ndarray:
    return grid.axes_mm()[1] - SURFACE_Y


def test_depth_dose_maximum_lies_between_10_and_20_mm(water):
    grid, dose, _ = water
    central_axis = dose[16, :, 16]
    depth_of_max = _depths(grid)[np.argmax(central_axis)]
    assert 10.0 <= depth_of_max <= 20.0
    # Build-up then fall-off: the surface voxel and 100 mm depth are both clearly below the peak.
    depths = _depths(grid)
    surface = central_axis[depths > 0][0]
    deep = central_axis[np.argmin(np.abs(depths - 101.0))]
    assert surface < 0.7 * central_axis.max()
    assert 0.4 * central_axis.max() < deep < 0.8 * central_axis.max()


def test_model_depth_of_maximum_is_its_closed_form():
    model = PencilBeamModel()
    depths = np.linspace(0.0, 50.0, 50001)
    assert abs(depths[np.argmax(model.depth_dose(depths))] - model.dmax_mm) < 1e-2
    assert model.depth_dose(model.dmax_mm) == pytest.approx(1.0)


def test_unit_weights_give_the_documented_dose_at_dmax_on_the_isocentre_plane():
    # SAD set-up: the isocentre at the depth-dose maximum of a 10 x 10 cm field.
    model = PencilBeamModel()
    grid, density, target, beam = _slab(iso_y=SURFACE_Y + 15.0)
    dose, _ = _open_field_dose(grid, density, target, beam, model)
    j = np.argmin(np.abs(grid.axes_mm()[1] - (SURFACE_Y + 15.0)))
    expected = model.dose_at_dmax_gy * float(model.depth_dose(grid.axes_mm()[1][j] - SURFACE_Y))
    expected *= (beam.sad_mm / (beam.sad_mm + grid.axes_mm()[1][j] - beam.isocenter_mm[1])) ** 2
    assert dose[16, j, 16] == pytest.approx(expected, rel=0.01)
    assert dose[16, j, 16] == pytest.approx(1.0, rel=0.02)


def test_inverse_square_on_the_central_axis_in_air():
    grid, density, target, beam = _slab(density_value=0.0)
    dose, _ = _open_field_dose(grid, density, target, beam)
    y = grid.axes_mm()[1]
    near, far = 5, 75
    distance = y - (beam.isocenter_mm[1] - beam.sad_mm)
    assert dose[16, near, 16] / dose[16, far, 16] == pytest.approx((distance[far] / distance[near]) ** 2, rel=2e-3)


def test_lateral_profile_is_symmetric_and_falls_off_outside_the_field(water):
    grid, dose, _ = water
    j = np.argmin(np.abs(_depths(grid) - 51.0))
    for profile in (dose[:, j, 16], dose[16, j, :]):
        np.testing.assert_allclose(profile, profile[::-1], rtol=1e-5, atol=1e-7)
        assert profile[0] < 1e-3 * profile.max()
    inside = grid.axes_mm()[0] <= 35.0
    outside = np.abs(grid.axes_mm()[0]) >= 70.0
    profile = dose[:, j, 16]
    assert profile[outside].max() < 0.01 * profile[inside].max()


def test_equal_beamlet_weights_give_a_flat_central_profile(water):
    grid, dose, _ = water
    j = np.argmin(np.abs(_depths(grid) - 51.0))
    central = np.abs(grid.axes_mm()[0]) <= 30.0
    for profile in (dose[central, j, 16], dose[16, j, central]):
        assert profile.min() / profile.max() > 0.995


def test_dense_slab_shifts_depth_by_its_water_equivalent_thickness():
    # A 20 mm layer of density 2 just under the surface acts as 40 mm of water.
    grid, density, target, beam = _slab()
    y = grid.axes_mm()[1]
    layered = density.copy()
    layered[:, (y >= SURFACE_Y) & (y < SURFACE_Y + 20.0), :] = 2.0
    water_dose, _ = _open_field_dose(grid, density, target, beam)
    layered_dose, _ = _open_field_dose(grid, layered, target, beam)
    model = PencilBeamModel()
    j = np.argmin(np.abs(y - (SURFACE_Y + 61.0)))
    depth = y[j] - SURFACE_Y
    expected = float(model.depth_dose(depth + 20.0) / model.depth_dose(depth))
    assert layered_dose[16, j, 16] / water_dose[16, j, 16] == pytest.approx(expected, rel=0.01)


def test_entries_respect_the_relative_cutoff(water):
    _, _, influence = water
    matrix = influence.matrix.tocsc()
    assert matrix.dtype == np.float32
    assert (matrix.data > 0).all()
    for column in range(0, matrix.shape[1], 7):
        values = matrix.data[matrix.indptr[column] : matrix.indptr[column + 1]]
        assert values.min() >= PencilBeamModel().cutoff * values.max() * (1 - 1e-6)


def test_beamlets_cover_the_target_projection_plus_margin(water):
    _, _, influence = water
    beamlets = influence.beamlets
    # Target |x|, |z| <= 47.5 mm at the isocentre plane: corners reach 50 mm, margin 5 mm.
    assert beamlets.x_mm.min() == pytest.approx(-52.5) and beamlets.x_mm.max() == pytest.approx(52.5)
    assert beamlets.y_mm.min() == pytest.approx(-52.5) and beamlets.y_mm.max() == pytest.approx(52.5)
    assert (beamlets.width_mm == 5.0).all() and (beamlets.beam_id == 1).all()


def test_iec_beam_frames_for_head_first_supine():
    lateral = BeamFrame.of(Beam(1, 90.0, isocenter_mm=(10.0, 20.0, 30.0)))
    np.testing.assert_allclose(lateral.source_mm, [1010.0, 20.0, 30.0], atol=1e-9)  # from the patient's left
    np.testing.assert_allclose(lateral.direction, [-1.0, 0.0, 0.0], atol=1e-12)
    anterior = BeamFrame.of(Beam(2, 0.0))
    np.testing.assert_allclose(anterior.source_mm, [0.0, -1000.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(anterior.x_axis, [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(anterior.y_axis, [0.0, 0.0, 1.0], atol=1e-12)
    collimated = BeamFrame.of(Beam(3, 0.0, collimator_deg=90.0))
    np.testing.assert_allclose(collimated.x_axis, [0.0, 0.0, 1.0], atol=1e-12)
    # Couch 90 with gantry 90: the beam comes from the patient's feet (inferior, -z).
    couch = BeamFrame.of(Beam(4, 90.0, couch_deg=90.0))
    np.testing.assert_allclose(couch.source_mm, [0.0, 0.0, -1000.0], atol=1e-9)


def test_progress_is_reported_per_beam():
    grid, density, target, _ = _slab()
    calls: list[tuple[int, int]] = []
    beams = equispaced_beams(3, (0.0, 0.0, 0.0))
    compute_influence(density, grid, beams, target, target, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert [b.gantry_deg for b in beams] == [0.0, 120.0, 240.0]


def test_bad_inputs_raise_case_errors():
    grid, density, target, beam = _slab()
    rows = np.ones(grid.shape, bool)
    with pytest.raises(CaseError, match="target mask is empty"):
        compute_influence(density, grid, [beam], np.zeros(grid.shape, bool), rows)
    with pytest.raises(CaseError, match="density has shape"):
        compute_influence(density[:-1], grid, [beam], target, rows)
    with pytest.raises(CaseError, match="non-negative"):
        compute_influence(-density, grid, [beam], target, rows)
    with pytest.raises(CaseError, match="unique"):
        compute_influence(density, grid, [beam, beam], target, rows)


def test_beamlets_are_exactly_those_whose_central_ray_passes_within_the_margin():
    """Head-neck PTV, oblique beam: compare with an independent dense projection of the target voxels."""
    from scipy.spatial import cKDTree

    from specc.case.phantoms import phantom_geometry

    geometry = phantom_geometry("head-neck", 5.0)
    target = geometry.structures["PTV"].mask
    beam = Beam(1, 40.0, isocenter_mm=(0.0, 0.0, -10.0))
    margin = 5.0
    beamlets = compute_influence(geometry.density, geometry.grid, [beam], target, target, margin_mm=margin).beamlets
    # Every voxel as a cube: 6 samples per axis (1 mm apart), faces included.
    offsets = np.stack(np.meshgrid(*[np.linspace(-2.5, 2.5, 6)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    points = (geometry.grid.positions_mm(np.flatnonzero(target.ravel()))[:, None, :] + offsets).reshape(-1, 3)
    x, y, _ = BeamFrame.of(beam).project(points)
    tree = cKDTree(np.stack([x, y], axis=1))
    # Candidate beamlet centres on the same 5 mm lattice, well beyond the field.
    cx, cy = np.meshgrid(np.arange(-200, 200, 5.0) + 2.5, np.arange(-200, 200, 5.0) + 2.5, indexing="ij")
    distance, _ = tree.query(np.stack([cx.ravel(), cy.ravel()], axis=1))
    created = np.zeros(cx.shape, dtype=bool)
    created[np.round((beamlets.x_mm + 197.5) / 5).astype(int), np.round((beamlets.y_mm + 197.5) / 5).astype(int)] = True
    tolerance = 1.0  # the 1 mm projection raster and the 1 mm sampling here
    assert created.ravel()[distance <= margin - tolerance].all()
    assert not created.ravel()[distance > margin + tolerance].any()
    assert len(beamlets) == np.count_nonzero(created)
