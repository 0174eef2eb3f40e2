"""A dose another planning system computed (DICOM RT Dose), read so that specc can check it.

A plan check judges what the other system computed, as it computed it: the stored values
times DoseGridScaling on the RT Dose's own grid, never renormalized. What the file says of
its dose decides what a value means, so everything that could change a number is checked
here and refused with the file named: DoseUnits must be GY (RELATIVE doses have no Gy to
judge); DoseSummationType PLAN or MULTI_PLAN holds the plan's total over all fractions and
FRACTION one fraction (scaled by the fractions the caller gives, and said so in the notes);
BEAM, CONTROL_POINT and the other partial sums are refused. Only axis-aligned grids (prone
and feet-first flips included) are read; oblique ones would need an interpolation the check
should not hide.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from scipy.ndimage import map_coordinates

from specc.case.importers.dicom_ct import POSITION_TOLERANCE_MM
from specc.case.model import Grid
from specc.errors import CaseError

_TOTAL_SUMMATIONS = ("PLAN", "MULTI_PLAN")
_DOSE_TYPES = ("PHYSICAL", "EFFECTIVE")
# What the report shows of the file, when the file has it.
_DESCRIBING_ATTRIBUTES = (
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "SeriesDescription",
    "DoseComment",
    "InstanceCreationDate",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "PatientID",
)


@dataclass(frozen=True)
class ExternalDose:
    """A total dose in Gy on its own grid (LPS, axes x, y, z), and what its file says of it."""

    dose_gy: np.ndarray
    grid: Grid
    path: Path
    sha256: str
    dose_type: str  # PHYSICAL or EFFECTIVE (RBE-weighted)
    summation: str  # DoseSummationType as written
    fractions_scaled: int | None  # the file held one fraction; its values were multiplied by this
    attributes: dict[str, str]  # _DESCRIBING_ATTRIBUTES the file has
    referenced_plan_uid: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def frame_of_reference_uid(self) -> str | None:
        return self.attributes.get("FrameOfReferenceUID")

    def has_grid(self, grid: Grid) -> bool:
        """`grid` is the RT Dose's own (to a micrometre): its values need no interpolation."""
        return grid.shape == self.grid.shape and all(
            abs(a - b) <= POSITION_TOLERANCE_MM
            for a, b in zip((*grid.spacing_mm, *grid.origin_mm), (*self.grid.spacing_mm, *self.grid.origin_mm))
        )

    def on_grid(self, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        """The dose at `grid`'s voxel centres (trilinear) and where it is known.

        A centre beyond the RT Dose grid's outer voxel centres (more than a micrometre) has
        no dose: it is NaN in the first array and False in the second, never extrapolated.
        """
        if self.has_grid(grid):
            return self.dose_gy.astype(np.float64), np.ones(grid.shape, dtype=bool)
        index_axes = [
            (axis - origin) / spacing
            for axis, origin, spacing in zip(grid.axes_mm(), self.grid.origin_mm, self.grid.spacing_mm)
        ]
        inside_axes = []
        for axis, (index, n, spacing) in enumerate(zip(index_axes, self.grid.shape, self.grid.spacing_mm)):
            tolerance = POSITION_TOLERANCE_MM / spacing
            inside = (index >= -tolerance) & (index <= n - 1 + tolerance)
            index_axes[axis] = np.clip(index, 0, n - 1)
            inside_axes.append(inside)
        known = inside_axes[0][:, None, None] & inside_axes[1][None, :, None] & inside_axes[2][None, None, :]
        coordinates = np.meshgrid(*index_axes, indexing="ij")
        dose = map_coordinates(self.dose_gy.astype(np.float64), coordinates, order=1, mode="nearest")
        dose[~known] = np.nan
        return dose, known


def read_rtdose(path: str | Path, fractions: int) -> ExternalDose:
    """Read an RT Dose file as the total dose of a plan of `fractions` fractions (see module docstring)."""
    path = Path(path)
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError) as error:
        raise CaseError(f"{path}: not a readable DICOM file ({error})") from None
    modality = str(dataset.get("Modality", ""))
    if modality != "RTDOSE":
        raise CaseError(f"{path}: modality {modality or 'unknown'}, not an RT Dose (RTDOSE)")
    for keyword in ("DoseUnits", "DoseSummationType", "DoseGridScaling", "ImagePositionPatient",
                    "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
        if keyword not in dataset:
            raise CaseError(f"{path}: the RT Dose has no {keyword}")
    units = str(dataset.DoseUnits).upper()
    if units != "GY":
        raise CaseError(
            f"{path}: DoseUnits {units}: only absolute doses in Gy can be judged against a protocol's goals"
        )
    dose_type = str(dataset.get("DoseType", "PHYSICAL")).upper()
    if dose_type not in _DOSE_TYPES:
        raise CaseError(f"{path}: DoseType {dose_type} is not a dose to judge (PHYSICAL or EFFECTIVE)")
    summation = str(dataset.DoseSummationType).upper()
    notes: list[str] = []
    if summation in _TOTAL_SUMMATIONS:
        scaled = None
        if summation == "MULTI_PLAN":
            notes.append(f"{path.name}: DoseSummationType MULTI_PLAN: the sum of several plans, checked as one total")
    elif summation == "FRACTION":
        scaled = int(fractions)
        notes.append(
            f"{path.name} holds the dose of one fraction (DoseSummationType FRACTION): "
            f"multiplied by the protocol's {scaled} fractions"
        )
    else:
        raise CaseError(
            f"{path}: DoseSummationType {summation} is part of a plan (a beam or a control point); "
            "export the plan sum (PLAN) to check it against a protocol"
        )
    if dose_type == "EFFECTIVE":
        notes.append(f"{path.name}: DoseType EFFECTIVE: the values are weighted doses (e.g. RBE), judged as written")

    grid, stored = _grid_and_values(dataset, path)
    scaling = float(dataset.DoseGridScaling)
    if not (np.isfinite(scaling) and scaling > 0):
        raise CaseError(f"{path}: DoseGridScaling {scaling} is not a positive number")
    dose = stored.astype(np.float64) * scaling * (scaled or 1)
    if dose.min() < 0:
        raise CaseError(f"{path}: the RT Dose has negative values (a dose difference?), not a planned dose")
    referenced = dataset.get("ReferencedRTPlanSequence")
    attributes = {
        keyword: str(dataset.get(keyword)) for keyword in _DESCRIBING_ATTRIBUTES if dataset.get(keyword) not in (None, "")
    }
    return ExternalDose(
        dose_gy=dose,
        grid=grid,
        path=path,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        dose_type=dose_type,
        summation=summation,
        fractions_scaled=scaled,
        attributes=attributes,
        referenced_plan_uid=str(referenced[0].ReferencedSOPInstanceUID) if referenced else None,
        notes=notes,
    )


def _grid_and_values(dataset: Dataset, path: Path) -> tuple[Grid, np.ndarray]:
    """The grid in LPS with ascending axes, and the stored values indexed [x, y, z] on it."""
    orientation = np.array([float(v) for v in dataset.ImageOrientationPatient])
    row_direction, column_direction = orientation[:3], orientation[3:]
    signs = []
    for direction, axis, label in ((row_direction, 0, "rows"), (column_direction, 1, "columns")):
        sign = float(np.sign(direction[axis])) if direction[axis] else 0.0
        expected = np.zeros(3)
        expected[axis] = sign
        if not sign or not np.allclose(direction, expected, atol=1e-4):
            raise CaseError(
                f"{path}: ImageOrientationPatient {orientation.tolist()} is not axis-aligned ({label} along "
                f"{direction.tolist()}); oblique dose grids are not supported"
            )
        signs.append(sign)
    normal_sign = signs[0] * signs[1]  # the slice normal, row x column direction, along z
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom raises many types for undecodable pixel data
        raise CaseError(f"{path}: cannot decode the RT Dose pixel data ({error})") from None
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    pixels = np.asarray(pixels).reshape(frames, int(dataset.Rows), int(dataset.Columns))
    values = np.transpose(pixels, (2, 1, 0))  # (columns = x, rows = y, frames = z)

    position = [float(v) for v in dataset.ImagePositionPatient]
    row_spacing, column_spacing = (float(v) for v in dataset.PixelSpacing)
    offsets = _frame_offsets(dataset, frames, path)
    z = position[2] + normal_sign * offsets if offsets[0] == 0 else offsets
    spacing_z = _uniform_spacing(z, path)
    # Voxel centres along each axis in LPS, in storage order, then flipped to ascending.
    axes = [
        position[0] + signs[0] * column_spacing * np.arange(values.shape[0]),
        position[1] + signs[1] * row_spacing * np.arange(values.shape[1]),
        z,
    ]
    for axis in range(3):
        if len(axes[axis]) > 1 and axes[axis][1] < axes[axis][0]:
            values = np.flip(values, axis=axis)
            axes[axis] = axes[axis][::-1]
    grid = Grid(
        shape=values.shape,  # type: ignore[arg-type]
        spacing_mm=(column_spacing, row_spacing, spacing_z),
        origin_mm=(float(axes[0][0]), float(axes[1][0]), float(axes[2][0])),
    )
    return grid, np.ascontiguousarray(values)


def _frame_offsets(dataset: Dataset, frames: int, path: Path) -> np.ndarray:
    """GridFrameOffsetVector: relative to the first frame when it starts at 0, else absolute positions."""
    if frames == 1 and "GridFrameOffsetVector" not in dataset:
        return np.zeros(1)
    if "GridFrameOffsetVector" not in dataset:
        raise CaseError(f"{path}: {frames} frames but no GridFrameOffsetVector to place them")
    offsets = np.array([float(v) for v in np.atleast_1d(dataset.GridFrameOffsetVector)])
    if len(offsets) != frames:
        raise CaseError(f"{path}: GridFrameOffsetVector has {len(offsets)} values for {frames} frames")
    return offsets


def _uniform_spacing(z: np.ndarray, path: Path) -> float:
    """The frame spacing; the check needs one, and a single frame has none to give."""
    if len(z) == 1:
        raise CaseError(f"{path}: a single-frame RT Dose (one plane) has no volume to judge DVH goals on")
    gaps = np.abs(np.diff(z))
    if gaps.min() < POSITION_TOLERANCE_MM or np.ptp(gaps) > 10 * POSITION_TOLERANCE_MM:
        raise CaseError(
            f"{path}: RT Dose frames are not uniformly spaced (gaps from {gaps.min():g} to {gaps.max():g} mm); "
            "resample the dose to uniform planes first"
        )
    return float(gaps.mean())
