"""A displaced structure's dose: one trilinear interpolation, read from a dose or as influence rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import shift as ndimage_shift

from evaluate_fakes import synthetic_case
from specc.case.shifts import Displacement, blurred_dose, displaced_dose, displaced_influences


@pytest.mark.parametrize("offset_mm", [(3.0, 0.0, 0.0), (-7.5, 2.0, 0.0), (0.0, -12.0, 4.0), (40.0, 0.0, -1.0)])
def test_the_shifted_dose_is_the_dose_shifted_by_scipy_with_the_edge_continued(offset_mm) -> None:
    case = synthetic_case()
    rng = np.random.default_rng(3)
    dose = rng.uniform(0.0, 70.0, case.grid.shape)
    everywhere = np.ones(case.grid.shape, dtype=bool)  # edges included: 40 mm leaves the grid
    expected = ndimage_shift(dose, -np.asarray(offset_mm) / np.asarray(case.grid.spacing_mm), order=1, mode="nearest")
    shifted = displaced_dose(dose, everywhere, case.grid, Displacement(offset_mm=offset_mm))
    np.testing.assert_allclose(shifted, expected.ravel(), rtol=1e-12)


def test_a_whole_voxel_shift_reads_the_neighbouring_voxel() -> None:
    case = synthetic_case()
    dose = np.arange(case.grid.n_voxels, dtype=np.float64).reshape(case.grid.shape)
    mask = case.structures["Target"].mask
    (i, j, k) = np.argwhere(mask).T
    shifted = displaced_dose(dose, mask, case.grid, Displacement(offset_mm=(5.0, 0.0, -10.0)))
    np.testing.assert_array_equal(shifted, dose[i + 1, j, k - 2])


@pytest.mark.parametrize("offset_mm", [(3.0, 0.0, 0.0), (0.0, -4.0, 0.0), (0.0, 0.0, 25.0)])
def test_the_shifted_rows_give_the_shifted_dose_of_any_fluence(offset_mm) -> None:
    """Corners outside the body (no influence row) count as the zero dose the grid holds there."""
    case = synthetic_case()
    fluence = np.random.default_rng(5).uniform(0.0, 2.0, case.n_beamlets)
    for name in ("Target", "Organ", "Body"):
        mask = case.structures[name].mask
        rows = displaced_influences(case, mask, [Displacement(offset_mm=offset_mm)])[0]
        assert rows.shape == (int(mask.sum()), case.n_beamlets) and rows.dtype == case.influence.dtype
        expected = displaced_dose(case.dose_on_grid(fluence, 1), mask, case.grid, Displacement(offset_mm=offset_mm))
        np.testing.assert_allclose(rows @ fluence, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("rotation_deg", "moved_to"),
    [
        ((0.0, 0.0, 90.0), (0.0, 10.0, 0.0)),  # about z: +x turns to +y (right-handed)
        ((0.0, 0.0, -90.0), (0.0, -10.0, 0.0)),
        ((0.0, 90.0, 0.0), (0.0, 0.0, -10.0)),  # about y: +x turns to -z
        ((0.0, 0.0, 2.0), (10.0 * np.cos(np.radians(2.0)), 10.0 * np.sin(np.radians(2.0)), 0.0)),
    ],
)
def test_a_rotated_voxel_receives_the_dose_where_the_rotation_about_the_centre_takes_it(rotation_deg, moved_to) -> None:
    """A voxel 10 mm along +x from the centre, in a dose rising 1 Gy/mm along each axis (trilinear is exact)."""
    case = synthetic_case()
    grid = case.grid
    centre = (grid.origin_mm[0] + 5 * grid.spacing_mm[0], grid.origin_mm[1] + 6 * grid.spacing_mm[1],
              grid.origin_mm[2] + 5 * grid.spacing_mm[2])
    x, y, z = np.meshgrid(*grid.axes_mm(), indexing="ij")
    dose = 100.0 + (x - centre[0]) + 2.0 * (y - centre[1]) + 3.0 * (z - centre[2])
    voxel = np.zeros(grid.shape, dtype=bool)
    voxel[5 + 2, 6, 5] = True  # 10 mm along +x from the centre on the 5 mm grid
    received = displaced_dose(dose, voxel, grid, Displacement(rotation_deg=rotation_deg, centre_mm=centre))
    dx, dy, dz = moved_to
    assert received[0] == pytest.approx(100.0 + dx + 2.0 * dy + 3.0 * dz, abs=1e-9)
    assert Displacement(rotation_deg=rotation_deg).text().startswith("about ")
    assert Displacement(offset_mm=(3.0, 0.0, 0.0)).text() == "x +3 mm" and Displacement().text() == ""


@pytest.mark.parametrize(
    ("displacement", "blur_mm"),
    [
        (Displacement(), (5.0, 5.0, 5.0)),  # random errors alone
        (Displacement(offset_mm=(5.0, 0.0, -7.5)), (3.0, 0.0, 7.0)),  # per axis, none along y
        (Displacement(rotation_deg=(0.0, 0.0, 10.0)), (2.5, 2.5, 2.5)),
    ],
)
def test_the_blurred_rows_give_the_checks_blurred_displaced_dose_of_any_fluence(displacement, blur_mm) -> None:
    """Robust optimization over random errors holds what the check measures: the dose blurred on the whole
    grid (`blurred_dose`, zero off the case's rows, the edge continued), then displaced. The body reaches
    the grid's x edges, so the edge handling is exercised."""
    case = synthetic_case()
    fluence = np.random.default_rng(6).uniform(0.0, 2.0, case.n_beamlets)
    blurred = blurred_dose(case.dose_on_grid(fluence, 1), case.grid, blur_mm)
    for name in ("Target", "Organ", "Body"):
        mask = case.structures[name].mask
        rows = displaced_influences(case, mask, [displacement], blur_mm)[0]
        assert rows.dtype == case.influence.dtype and rows.shape == (mask.sum(), case.n_beamlets)
        expected = displaced_dose(blurred, mask, case.grid, displacement)
        np.testing.assert_allclose(rows @ fluence, expected, rtol=1e-5, atol=1e-6 * expected.max())
