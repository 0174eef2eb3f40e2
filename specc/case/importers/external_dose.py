"""A dose another planning system computed, on its own grid: what `specc check` judges.

The readers (rtdose.py: DICOM RT Dose; matrad_dose.py: a matRad workspace's resultGUI) turn
their source into one of these, a total dose in Gy over all fractions, so that the check never
needs to know where a dose came from, and nothing downstream can mistake a fraction's dose for
the plan's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import map_coordinates

from specc.case.importers.dicom_ct import PLANE_TOLERANCE_FRACTION, POSITION_TOLERANCE_MM
from specc.case.model import Grid
from specc.errors import CaseError


@dataclass(frozen=True)
class ExternalDose:
    """A total dose in Gy on its own grid (LPS, axes x, y, z), and what its file says of it."""

    format: str  # what was read: "DICOM RT Dose", "matRad resultGUI"
    dose_gy: np.ndarray
    grid: Grid
    path: Path
    sha256: str
    dose_type: str  # PHYSICAL or EFFECTIVE (RBE-weighted)
    summation: str  # DoseSummationType as written (or what the source's dose is a sum of)
    fractions_scaled: int | None  # the file held one fraction; its values were multiplied by this
    attributes: dict[str, str]  # what the file says of where the dose came from
    referenced_plan_uid: str | None
    notes: list[str] = field(default_factory=list)
    # A dose summed from several files (beam doses): each file's name and SHA-256; `path` is
    # then their folder and `sha256` the SHA-256 of these lines ("name\0sha256\n", by name).
    parts: dict[str, str] = field(default_factory=dict)

    @property
    def frame_of_reference_uid(self) -> str | None:
        return self.attributes.get("FrameOfReferenceUID")

    def require_frame(self, frame: str | None, images: str, why: str = "they are not one patient position") -> None:
        """Refuse the dose when it and the images it is judged on (`images`, whose Frame of
        Reference is `frame`) both name one and the two differ."""
        if frame and self.frame_of_reference_uid and frame != self.frame_of_reference_uid:
            raise CaseError(
                f"{self.path}: the dose is in Frame of Reference {self.frame_of_reference_uid}, {images} in {frame}: {why}"
            )

    def placed_on(self, frame: str | None, case_name: str, why: str = "they are not one patient position") -> list[str]:
        """How the dose is placed on a case whose Frame of Reference is `frame`: refused when both name one and
        they differ (`require_frame`), a note when either names none (its coordinates alone place it, so nothing
        shows that it is of this patient position), nothing when both name the same."""
        if frame is None or self.frame_of_reference_uid is None:
            return [
                f"{self.path.name} and {case_name} do not both have a DICOM Frame of Reference: the dose is placed "
                "on the case by its patient coordinates alone"
            ]
        self.require_frame(frame, case_name, why)
        return []

    def has_grid(self, grid: Grid) -> bool:
        """`grid` is the RT Dose's own (to a micrometre): its values need no interpolation."""
        return same_grid(grid, self.grid)

    def taken_as_stored(self, grid: Grid) -> bool:
        """Every voxel centre of `grid` is one of the dose grid's own centres (or where they would go on
        beyond it), to a micrometre: the values are taken as stored, none interpolated, though the grids
        differ (an RT Dose of fewer slices, a case grid of twice its spacing)."""
        return all(
            bool(np.all(np.abs(index - np.round(index)) * spacing <= POSITION_TOLERANCE_MM))
            for index, spacing in zip(self._indices(grid), self.grid.spacing_mm)
        )

    def on_grid(self, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        """The dose at `grid`'s voxel centres and where it is known: the stored values where the centres
        coincide (`taken_as_stored`), else trilinear.

        A centre beyond the RT Dose grid's outer voxel centres has no dose: it is NaN in the first
        array and False in the second, never extrapolated. One within the plane tolerance of the
        outer centres (dicom_ct.PLANE_TOLERANCE_FRACTION of the dose grid's spacing, as a contour
        on its CT slice: the two grids written at different precisions) lies on that outer plane,
        and takes its values.
        """
        if self.has_grid(grid):
            return self.dose_gy.astype(np.float64), np.ones(grid.shape, dtype=bool)
        index_axes = self._indices(grid)
        if self.taken_as_stored(grid):
            return self._stored_on(index_axes)
        inside_axes = []
        for axis, (index, n) in enumerate(zip(index_axes, self.grid.shape)):
            inside = (index >= -PLANE_TOLERANCE_FRACTION) & (index <= n - 1 + PLANE_TOLERANCE_FRACTION)
            index_axes[axis] = np.clip(index, 0, n - 1)
            inside_axes.append(inside)
        known = inside_axes[0][:, None, None] & inside_axes[1][None, :, None] & inside_axes[2][None, None, :]
        coordinates = np.meshgrid(*index_axes, indexing="ij")
        dose = map_coordinates(self.dose_gy.astype(np.float64), coordinates, order=1, mode="nearest")
        dose[~known] = np.nan
        return dose, known

    def _indices(self, grid: Grid) -> list[np.ndarray]:
        """`grid`'s voxel centres along each axis, in the dose grid's voxel indices (fractional between centres)."""
        return [
            (axis - origin) / spacing
            for axis, origin, spacing in zip(grid.axes_mm(), self.grid.origin_mm, self.grid.spacing_mm)
        ]

    def _stored_on(self, index_axes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The stored values at whole indices (`taken_as_stored`), NaN and unknown beyond the dose grid."""
        indices = [np.round(index).astype(np.int64) for index in index_axes]
        inside = [(index >= 0) & (index < n) for index, n in zip(indices, self.grid.shape)]
        clipped = [np.clip(index, 0, n - 1) for index, n in zip(indices, self.grid.shape)]
        known = inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
        dose = self.dose_gy.astype(np.float64)[np.ix_(*clipped)]
        dose[~known] = np.nan
        return dose, known


def same_grid(a: Grid, b: Grid) -> bool:
    """The same voxels: shape, spacing and origin equal to a micrometre."""
    return a.shape == b.shape and all(
        abs(x - y) <= POSITION_TOLERANCE_MM for x, y in zip((*a.spacing_mm, *a.origin_mm), (*b.spacing_mm, *b.origin_mm))
    )
