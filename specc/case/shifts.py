"""The dose a structure receives when the patient is displaced: the static dose cloud.

A setup error moves the patient, not the beams. For photons the dose distribution barely
changes in the machine's frame (good inside the body, poor near its surface and across
strong heterogeneities), so a structure displaced by an offset receives the nominal dose at
its voxels' positions plus the offset, interpolated trilinearly on the grid; beyond the grid
the nearest edge voxel's dose (as `scipy.ndimage.shift(order=1, mode="nearest")`).

One interpolation serves both uses, so that what robust optimization holds is exactly what
the robustness check measures: `shifted_dose` reads a computed dose, `shifted_influence`
gives the influence rows (W A) whose product with a fluence is that same dose.

Random (day-to-day) errors of standard deviation sigma average, over many fractions, into the
dose convolved with a Gaussian of sigma (Leong 1987; van Herk et al. 2000): `blurred_dose`, on
the same static cloud (beyond the grid, the edge voxel's dose).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import gaussian_filter

from specc.case.model import row_lookup
from specc.protocol.models import scenario_name

if TYPE_CHECKING:
    from specc.case.model import Case, Grid


def _samples(grid: Grid, mask: np.ndarray, offset_mm: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8) flat grid indices and trilinear weights of each mask voxel's position + offset."""
    shape = np.asarray(grid.shape)
    points = np.argwhere(mask) + np.asarray(offset_mm, dtype=np.float64) / np.asarray(grid.spacing_mm)
    floor = np.floor(points)
    fraction = points - floor
    low = floor.astype(np.int64)
    corners = np.empty((len(points), 8), dtype=np.int64)
    weights = np.empty((len(points), 8), dtype=np.float64)
    for corner in range(8):
        upper = np.array([(corner >> axis) & 1 for axis in range(3)], dtype=bool)
        # Clamping both corners to the grid reproduces mode="nearest" beyond its edges.
        index = np.clip(low + upper, 0, shape - 1)
        corners[:, corner] = np.ravel_multi_index(tuple(index.T), grid.shape)
        weights[:, corner] = np.prod(np.where(upper, fraction, 1.0 - fraction), axis=1)
    return corners, weights


def shifted_dose(dose: np.ndarray, mask: np.ndarray, grid: Grid, offset_mm: tuple[float, float, float]) -> np.ndarray:
    """The dose each voxel of `mask` (C order) receives with the patient displaced by `offset_mm`."""
    corners, weights = _samples(grid, mask, offset_mm)
    return np.sum(np.asarray(dose, dtype=np.float64).ravel()[corners] * weights, axis=1)


def blurred_dose(dose: np.ndarray, grid: Grid, sigma_mm: tuple[float, float, float]) -> np.ndarray:
    """The expected dose under random setup errors of `sigma_mm` (one SD per axis; 0: none along it)."""
    sigma_voxels = [sigma / spacing for sigma, spacing in zip(sigma_mm, grid.spacing_mm)]
    return gaussian_filter(np.asarray(dose, dtype=np.float64), sigma=sigma_voxels, mode="nearest", truncate=4.0)


def outside_rows(voxel_indices: np.ndarray, grid: Grid, mask: np.ndarray, offset_mm: tuple[float, float, float]) -> int:
    """How many voxels of `mask` are displaced (partly) where the case computes no dose.

    The grid holds 0 Gy off the influence matrix's rows (`voxel_indices`, typically the body),
    so there the static dose cloud says the voxel gets nothing, which is the model's error
    near the body surface rather than a dose: the check and the optimization both count it.
    """
    corners, weights = _samples(grid, mask, offset_mm)
    return int(np.count_nonzero(np.any(~row_lookup(voxel_indices, corners)[0] & (weights > 0), axis=1)))


def shifted_influence(case: Case, mask: np.ndarray, offset_mm: tuple[float, float, float]) -> sp.csr_matrix:
    """Influence rows, one per voxel of `mask` (C order), giving its dose when displaced by `offset_mm`.

    Each row is the interpolation's weighted sum of up to eight rows of the case; a corner
    where the case computes no dose (outside its rows) contributes nothing, as its zero dose
    does in `shifted_dose` (`outside_rows` counts the voxels concerned). Same dtype as the
    case's matrix.
    """
    corners, weights = _samples(case.grid, mask, offset_mm)
    known, rows = row_lookup(case.voxel_indices, corners)
    known &= weights > 0
    owner = np.broadcast_to(np.arange(len(corners))[:, None], corners.shape)
    # In the matrix's own dtype: a float64 interpolation would make scipy convert every value
    # of a float32 matrix to float64 for the product (258 MB on the 32 M-nonzero large case).
    interpolation = sp.csr_matrix(
        (weights[known].astype(case.influence.dtype), (owner[known], rows[known])),
        shape=(len(corners), case.influence.shape[0]),
    )
    return (interpolation @ case.influence).tocsr()


def outside_note(
    voxel_indices: np.ndarray, grid: Grid, name: str, mask: np.ndarray, offsets: list[tuple[float, float, float]]
) -> str:
    """What the static dose cloud cannot say of `name`: its voxels displaced where no dose is computed ("" if none)."""
    counts = {scenario_name(name, offset): outside_rows(voxel_indices, grid, mask, offset) for offset in offsets}
    counts = {scenario: count for scenario, count in counts.items() if count}
    if not counts:
        return ""
    listed = ", ".join(f"{count} in {scenario}" for scenario, count in counts.items())
    return (
        f"{name}: some of its {int(mask.sum())} voxels are displaced where the case computes no dose (outside its "
        f"rows, typically the body): {listed}. The static dose cloud gives them 0 Gy there, its error near the body "
        "surface rather than a plan's dose; a hard limit on them cannot be met in robust optimization"
    )
