"""The dose a structure receives when the patient is displaced: the static dose cloud.

A setup error moves the patient, not the beams. For photons the dose distribution barely
changes in the machine's frame (good inside the body, poor near its surface and across
strong heterogeneities), so a structure displaced by an offset receives the nominal dose at
its voxels' positions plus the offset, interpolated trilinearly on the grid; beyond the grid
the nearest edge voxel's dose (as `scipy.ndimage.shift(order=1, mode="nearest")`).

One interpolation serves both uses, so that what robust optimization holds is exactly what
the robustness check measures: `displaced_dose` reads a computed dose, `displaced_influences`
gives the influence rows (W A) whose product with a fluence is that same dose.

Random (day-to-day) errors of standard deviation sigma average, over many fractions, into the
dose convolved with a Gaussian of sigma (Leong 1987; van Herk et al. 2000): `blurred_dose`, on
the same static cloud (beyond the grid, the edge voxel's dose).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from specc.case.model import row_lookup
from specc.errors import CaseError
from specc.protocol.models import SetupScenario, scenario_name, scenario_text

if TYPE_CHECKING:
    from specc.case.model import Beam, Case, Grid


@dataclass(frozen=True)
class Displacement:
    """A rigid displacement of the patient: a shift, and a rotation about `centre_mm`.

    The rotation is about the patient axes through the centre (right-handed, LPS), applied
    about x, then y, then z; the robustness check's scenarios rotate about one axis at a time.
    A voxel at p moves to R (p - c) + c + offset and receives the dose there.
    """

    offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def text(self) -> str:
        """How a report heads the scenario, e.g. "x +3 mm" or "about z +2 deg" ("" for none)."""
        return scenario_text(self.offset_mm, self.rotation_deg)

    @classmethod
    def of(cls, scenario: SetupScenario, centre_mm: tuple[float, float, float] | None) -> Displacement:
        """A robust term copy's displacement; a rotation needs the centre it turns about."""
        if any(scenario.rotation_deg) and centre_mm is None:
            raise CaseError(
                f"{scenario_name(scenario.structure, scenario.offset_mm, scenario.rotation_deg, scenario.random_error_mm)}: "
                "a rotation scenario "
                "turns about the beams' isocentre, and the case's beams do not share one"
            )
        return cls(scenario.offset_mm, scenario.rotation_deg, centre_mm or (0.0, 0.0, 0.0))

    def points(self, grid: Grid, mask: np.ndarray) -> np.ndarray:
        """(n, 3) fractional grid indices where the voxels of `mask` (C order) are displaced to."""
        spacing = np.asarray(grid.spacing_mm)
        index = np.argwhere(mask).astype(np.float64)
        if any(self.rotation_deg):
            positions = np.asarray(grid.origin_mm) + index * spacing
            centre = np.asarray(self.centre_mm)
            moved = (positions - centre) @ rotation_matrix(self.rotation_deg).T + centre
            index = (moved - np.asarray(grid.origin_mm)) / spacing
        return index + np.asarray(self.offset_mm, dtype=np.float64) / spacing


def beams_isocentre(beams: Sequence[Beam]) -> tuple[float, float, float] | None:
    """The isocentre all `beams` share (what rotations turn about), or None."""
    isocentres = {beam.isocenter_mm for beam in beams}
    return next(iter(isocentres)) if len(isocentres) == 1 else None


def rotation_matrix(angles_deg: tuple[float, float, float]) -> np.ndarray:
    """R = Rz Ry Rx for right-handed rotations about x, y and z by `angles_deg`."""
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _samples(grid: Grid, mask: np.ndarray, displacement: Displacement) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8) flat grid indices and trilinear weights of each mask voxel's displaced position."""
    shape = np.asarray(grid.shape)
    points = displacement.points(grid, mask)
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


@dataclass(frozen=True, eq=False)
class DisplacedVoxels:
    """A structure's voxels (C order) with the patient displaced: each one's eight grid voxels and
    trilinear weights, found once and read for its dose and for what the case cannot give it."""

    displacement: Displacement
    corners: np.ndarray  # (n, 8) flat grid indices
    weights: np.ndarray  # (n, 8)

    @classmethod
    def of(cls, grid: Grid, mask: np.ndarray, displacement: Displacement) -> DisplacedVoxels:
        return cls(displacement, *_samples(grid, mask, displacement))

    def dose(self, dose: np.ndarray) -> np.ndarray:
        """The dose each voxel receives displaced."""
        return np.sum(np.asarray(dose, dtype=np.float64).ravel()[self.corners] * self.weights, axis=1)

    def outside(self, voxel_indices: np.ndarray) -> int:
        """How many voxels are displaced (partly) where the case computes no dose.

        The grid holds 0 Gy off the influence matrix's rows (`voxel_indices`, typically the body),
        so there the static dose cloud says the voxel gets nothing, which is the model's error
        near the body surface rather than a dose: the check and the optimization both count it.
        """
        unknown = ~row_lookup(voxel_indices, self.corners)[0] & (self.weights > 0)
        return int(np.count_nonzero(np.any(unknown, axis=1)))


def displaced_dose(dose: np.ndarray, mask: np.ndarray, grid: Grid, displacement: Displacement) -> np.ndarray:
    """The dose each voxel of `mask` (C order) receives with the patient displaced (shifted or rotated)."""
    return DisplacedVoxels.of(grid, mask, displacement).dose(dose)


def blurred_dose(dose: np.ndarray, grid: Grid, sigma_mm: tuple[float, float, float]) -> np.ndarray:
    """The expected dose under random setup errors of `sigma_mm` (one SD per axis; 0: none along it)."""
    return gaussian_filter(np.asarray(dose, dtype=np.float64), sigma=_sigma_voxels(grid, sigma_mm), mode="nearest",
                           truncate=_TRUNCATE)


_TRUNCATE = 4.0  # the Gaussian's reach, in standard deviations


def _sigma_voxels(grid: Grid, sigma_mm: tuple[float, float, float]) -> list[float]:
    return [sigma / spacing for sigma, spacing in zip(sigma_mm, grid.spacing_mm)]


def displaced_influences(
    case: Case, mask: np.ndarray, displacements: Sequence[Displacement],
    blur_mm: tuple[float, float, float] | None = None,
) -> list[sp.csr_matrix]:
    """Influence rows for each of several displacements (shifts or turns) of one structure, one row per
    voxel of `mask` (C order) giving its dose displaced, of the dose blurred by random errors of
    `blur_mm` (SD per axis) when given; the grid voxels' rows they interpolate are found once for all.

    Each row is the interpolation's weighted sum of up to eight grid voxels' rows; with a blur,
    each of those is the Gaussian's weighted sum of its neighbours' rows, along one axis at a
    time (the blur is separable, and `blurred_dose`'s filter applied to unit impulses gives its
    weights, edges included, so both agree to rounding). A grid voxel where the case computes no
    dose (outside its rows) contributes nothing, as its zero dose does in `displaced_dose`
    (`DisplacedVoxels.outside` counts the voxels displaced there). Same dtype as the case's
    matrix. The blurred rows are the costly part (1.0-1.3 s per scenario for the large case's
    PTV), and the scenarios of a structure reach mostly the same voxels, so they are shared.
    """
    dtype = case.influence.dtype
    samples = [_samples(case.grid, mask, displacement) for displacement in displacements]
    reached = np.unique(np.concatenate([corners[weights > 0] for corners, weights in samples]))
    rows = _grid_rows(case, reached, blur_mm)
    blocks = []
    for corners, weights in samples:
        used = weights > 0
        owner = np.broadcast_to(np.arange(len(corners))[:, None], corners.shape)
        # In the matrix's own dtype: a float64 operator would make scipy convert every value of a
        # float32 matrix to float64 for the product (258 MB on the 32 M-nonzero large case).
        interpolation = sp.csr_matrix(
            (weights[used].astype(dtype), (owner[used], np.searchsorted(reached, corners[used]))),
            shape=(len(corners), len(reached)),
        )
        blocks.append((interpolation @ rows).tocsr())
    return blocks


def _grid_rows(case: Case, voxels: np.ndarray, blur_mm: tuple[float, float, float] | None) -> sp.csr_matrix:
    """Influence rows of the grid voxels `voxels` (flat, sorted): the case's (none off its rows), or blurred."""
    dtype = case.influence.dtype
    steps = []
    for axis, sigma in enumerate(_sigma_voxels(case.grid, blur_mm) if blur_mm is not None else ()):
        if sigma > 0:
            step, voxels = _blur_along(voxels, case.grid.shape, axis, sigma, dtype)
            steps.append(step)
    known, rows = row_lookup(case.voxel_indices, voxels)
    gather = sp.csr_matrix(
        (np.ones(int(known.sum()), dtype=dtype), (np.flatnonzero(known), rows[known])),
        shape=(len(voxels), case.influence.shape[0]),
    )
    influence = (gather @ case.influence).tocsr()
    for step in reversed(steps):  # right to left: each product spreads rows over a few neighbours only
        influence = (step @ influence).tocsr()
    return influence


def _blur_along(
    voxels: np.ndarray, shape: tuple[int, int, int], axis: int, sigma: float, dtype: np.dtype
) -> tuple[sp.csr_matrix, np.ndarray]:
    """The blur along `axis` of the grid voxels `voxels` (flat, sorted): its weights on their neighbours
    along the axis, and those neighbours (flat, sorted)."""
    size = shape[axis]
    # Column j: the filter's response to a unit dose at j, so row i weighs each j as `blurred_dose` does.
    kernel = sp.csr_matrix(gaussian_filter1d(np.eye(size), sigma, axis=0, mode="nearest", truncate=_TRUNCATE))
    index = np.unravel_index(voxels, shape)
    taps = kernel[index[axis]].tocoo()
    moved = [position[taps.row] for position in index]
    moved[axis] = taps.col
    neighbours, columns = np.unique(np.ravel_multi_index(tuple(moved), shape), return_inverse=True)
    step = sp.csr_matrix((taps.data.astype(dtype), (taps.row, columns)), shape=(len(voxels), len(neighbours)))
    return step, neighbours


def outside_note(
    voxel_indices: np.ndarray, name: str, displaced: Sequence[DisplacedVoxels],
    blur_mm: tuple[float, float, float] | None = None,
) -> str:
    """What the static dose cloud cannot say of `name`: its voxels displaced where no dose is computed ("" if none).

    Scenarios are named as robust optimization names them (with `blur_mm`, the random errors' SD). Only
    the displaced voxels are counted, not those whose blur alone reaches past the computed dose."""
    counts = {
        scenario_name(name, moved.displacement.offset_mm, moved.displacement.rotation_deg, blur_mm): moved.outside(voxel_indices)
        for moved in displaced
        if moved.displacement.text()  # the blurred dose alone (random errors) displaces nothing
    }
    counts = {scenario: count for scenario, count in counts.items() if count}
    if not counts:
        return ""
    listed = ", ".join(f"{count} in {scenario}" for scenario, count in counts.items())
    return (
        f"{name}: some of its {len(displaced[0].corners)} voxels are displaced where the case computes no dose (outside its "
        f"rows, typically the body): {listed}. The static dose cloud gives them 0 Gy there, its error near the body "
        "surface rather than a plan's dose; a hard limit on them cannot be met in robust optimization"
    )
