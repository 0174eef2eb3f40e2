"""RT Structure Set contours, and their rasterization onto a dose grid.

Boundary rule (docs/formats/dicom.md): a voxel belongs to a structure when its centre lies
inside the structure's contours on the plane that voxel is on. All closed contours of one
structure on one plane combine by the even-odd rule (a contour inside another is a hole),
which is also how dicompyler-core computes DVHs, so the two agree on the same dose. A
contoured CT plane at z holds for its slice, [z - t/2, z + t/2) for a slice thickness t, and
a dose-grid plane takes the contours of the slice it lies in; there is no interpolation
between contoured planes. Boundaries are half-open in all three axes: a centre exactly on an
edge, or on the border between two slices, is decided as the point a hair (`_TIE_STEP_MM`)
towards +x, -y and +z is, so a box [x0, x1] x [y0, y1] on slices from z0 to z1 holds the
centres of [x0, x1) x (y0, y1] x [z0 - t/2, z1 + t/2), whichever way its contour winds. A
finer evaluation grid whose centres fall on contour edges and slice borders (a 2.5 mm grid over
a study drawn on 5 mm voxels) thus counts each border once, not on both sides; matplotlib alone
decides a tie on a vertical edge by the winding. In y the rule is matplotlib's own (ymin
excluded), so ties on horizontal edges fall as dicompyler-core puts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from matplotlib.path import Path as PolygonPath
from pydicom.dataset import Dataset

from specc.case.importers.dicom_ct import POSITION_TOLERANCE_MM, CtSeries, plane_tolerance_mm, plane_tolerance_text
from specc.errors import CaseError

# How far a voxel centre is moved (+x, -y, +z) before it is tested, so that one on a boundary
# falls on one side. In-plane the step leans off the diagonal (slope -1/pi: no contour edge
# runs along it), so that the moved point never lies on the edge it started from.
_TIE_STEP_MM = POSITION_TOLERANCE_MM
_TIE_STEP_XY_MM = np.array([_TIE_STEP_MM, -_TIE_STEP_MM / np.pi])


@dataclass
class RoiContours:
    """One ROI's closed planar contours, grouped by plane z (mm): polygons of (x, y) points."""

    number: int
    name: str
    color: str
    planes: dict[float, list[np.ndarray]] = field(default_factory=dict)
    # The largest distance (mm) a contour point lay from the CT slice its contour was placed on
    # (ContourData written at another precision than ImagePositionPatient): for the import report.
    off_slice_mm: float = 0.0


def read_structure_set(dataset: Dataset, ct: CtSeries | None, source: str) -> tuple[list[RoiContours], list[str]]:
    """ROIs with closed planar contours, checked against the CT; and the ROIs that have none.

    An ROI without CLOSED_PLANAR contours (a point marker, an empty ROI) has no volume to
    rasterize: it is returned in the second list with the reason, for the import report.
    Without a CT (`ct` None: a plan export of structures and dose only) the contours keep
    their own planes and nothing is checked against images.
    """
    frame = ct.identifiers.get("FrameOfReferenceUID") if ct is not None else None
    referenced = [str(item.FrameOfReferenceUID) for item in dataset.get("ReferencedFrameOfReferenceSequence", [])]
    if frame and referenced and frame not in referenced:
        raise CaseError(
            f"{source}: the structure set references Frame of Reference {', '.join(referenced)}, "
            f"the CT series is in {frame}"
        )
    names = {int(item.ROINumber): str(item.ROIName) for item in dataset.get("StructureSetROISequence", [])}
    if not names:
        raise CaseError(f"{source}: StructureSetROISequence is empty: no structures to import")
    if frame:
        _check_roi_frames(dataset, frame, source)
    rois: list[RoiContours] = []
    without_volume: list[str] = []
    seen: set[int] = set()
    for roi_contour in dataset.get("ROIContourSequence", []):
        number = int(roi_contour.ReferencedROINumber)
        if number not in names:
            raise CaseError(f"{source}: ROIContourSequence refers to ROI number {number}, which has no name")
        seen.add(number)
        roi = RoiContours(number=number, name=names[number], color=_color(roi_contour))
        kinds: set[str] = set()
        for contour in roi_contour.get("ContourSequence", []):
            kind = str(contour.get("ContourGeometricType", ""))
            kinds.add(kind)
            if kind != "CLOSED_PLANAR":
                continue
            points = np.asarray([float(v) for v in contour.ContourData], dtype=np.float64).reshape(-1, 3)
            # Points of one axial contour share its z, to a hundredth of a millimetre, or within the
            # plane tolerance of the CT slice it is placed on (z written at another precision).
            axial_mm = 10 * POSITION_TOLERANCE_MM
            if ct is not None:
                axial_mm = max(axial_mm, plane_tolerance_mm(ct.spacing_mm[2]))
            if np.ptp(points[:, 2]) > axial_mm:
                raise CaseError(
                    f"{source}: ROI '{roi.name}' has a CLOSED_PLANAR contour that is not axial (its points' z span "
                    f"{points[:, 2].min():g} to {points[:, 2].max():g} mm)"
                )
            if ct is not None:
                _check_inside_ct(points, roi.name, ct, source)
                z, off = _ct_plane(points[:, 2], roi.name, ct, source)
                roi.off_slice_mm = max(roi.off_slice_mm, off)
            else:
                z = round(float(points[0, 2]), 3)
            roi.planes.setdefault(z, []).append(points[:, :2])
        if roi.planes:
            ignored = kinds - {"CLOSED_PLANAR"}
            if ignored:
                raise CaseError(
                    f"{source}: ROI '{roi.name}' mixes CLOSED_PLANAR with {', '.join(sorted(ignored))} contours"
                )
            rois.append(roi)
        else:
            kind_text = ", ".join(sorted(k or "untyped" for k in kinds)) or "no"
            without_volume.append(f"{roi.name}: {kind_text} contours, no closed planar contour to rasterize")
    for number in sorted(set(names) - seen):
        without_volume.append(f"{names[number]}: no contours")
    duplicates = sorted({r.name for r in rois if sum(o.name == r.name for o in rois) > 1})
    if duplicates:
        raise CaseError(f"{source}: ROI name(s) used twice: {', '.join(duplicates)}")
    return rois, without_volume


def rasterize(roi: RoiContours, x_mm: np.ndarray, y_mm: np.ndarray, z_mm: np.ndarray, slice_mm: float) -> np.ndarray:
    """Boolean mask of shape (len(x), len(y), len(z)) by the boundary rule of this module."""
    mask = np.zeros((len(x_mm), len(y_mm), len(z_mm)), dtype=bool)
    if not roi.planes:
        return mask
    contoured = np.array(sorted(roi.planes))
    grid_x, grid_y = np.meshgrid(x_mm, y_mm, indexing="ij")
    centres = np.column_stack([grid_x.ravel(), grid_y.ravel()]) + _TIE_STEP_XY_MM
    for k, z in enumerate(z_mm):
        offsets = z + _TIE_STEP_MM - contoured
        holding = np.flatnonzero((offsets >= -slice_mm / 2) & (offsets < slice_mm / 2))
        if not len(holding):
            continue
        plane = contoured[holding[np.argmin(np.abs(offsets[holding]))]]  # contour planes closer than a slice: the nearest
        inside = np.zeros(len(centres), dtype=bool)
        for polygon in roi.planes[float(plane)]:
            inside ^= PolygonPath(polygon).contains_points(centres)
        mask[:, :, k] = inside.reshape(len(x_mm), len(y_mm))
    return mask


def _check_roi_frames(dataset: Dataset, frame: str, source: str) -> None:
    """Each ROI names its Frame of Reference (Type 1), whether or not the optional
    ReferencedFrameOfReferenceSequence is there to say it for the whole set: contours in another
    frame are in other coordinates than the CT's, and would land on the wrong voxels."""
    for item in dataset.StructureSetROISequence:
        roi_frame = str(item.get("ReferencedFrameOfReferenceUID", "") or "")
        if roi_frame and roi_frame != frame:
            raise CaseError(
                f"{source}: ROI '{item.ROIName}' is in Frame of Reference {roi_frame} "
                f"(StructureSetROISequence ReferencedFrameOfReferenceUID), the CT series is in {frame}"
            )


def _color(roi_contour: Dataset) -> str:
    rgb = roi_contour.get("ROIDisplayColor")
    if rgb is None or len(rgb) != 3:
        return "#808080"
    return "#{:02x}{:02x}{:02x}".format(*(max(0, min(255, int(c))) for c in rgb))


def _check_inside_ct(points: np.ndarray, name: str, ct: CtSeries, source: str) -> None:
    """Contour points beyond the CT's outer voxel edges cannot be mapped to the images."""
    for axis, label in ((0, "x"), (1, "y")):
        centres = ct.axis_mm(axis)
        half = ct.spacing_mm[axis] / 2
        low, high = centres[0] - half, centres[-1] + half
        outside = (points[:, axis] < low - POSITION_TOLERANCE_MM) | (points[:, axis] > high + POSITION_TOLERANCE_MM)
        if outside.any():
            point = points[np.argmax(outside)]
            raise CaseError(
                f"{source}: ROI '{name}' has a contour point ({point[0]:g}, {point[1]:g}, {point[2]:g}) mm "
                f"outside the CT images ({label} from {low:g} to {high:g} mm)"
            )


def _ct_plane(z_mm: np.ndarray, name: str, ct: CtSeries, source: str) -> tuple[float, float]:
    """The CT slice a contour (its points' z) lies on, as the grid places it, and how far the contour lies from
    that slice's own z: the nearest slice, when every point lies within the plane tolerance of it
    (dicom_ct.PLANE_TOLERANCE_FRACTION of the slice spacing: ContourData is often written at another
    precision than ImagePositionPatient). The slice's own z counts, not the uniform plane the grid puts it on
    (a scanner's jitter, within the same tolerance): a contour drawn on a slice lies on it. A contour farther
    off lies between slices: drawn on other images than this CT's, so refused."""
    planes = ct.axis_mm(2)
    slices = ct.slice_positions_mm()
    z = float(np.mean(z_mm))
    nearest = int(np.argmin(np.abs(slices - z)))
    spacing = ct.spacing_mm[2]
    if abs(slices[nearest] - z) > spacing / 2:
        raise CaseError(
            f"{source}: ROI '{name}' has a contour at z = {z:g} mm, outside the CT slices "
            f"({slices[0]:g} to {slices[-1]:g} mm)"
        )
    off = float(np.abs(z_mm - slices[nearest]).max())
    if off > max(POSITION_TOLERANCE_MM, plane_tolerance_mm(spacing)):
        raise CaseError(
            f"{source}: ROI '{name}' has a contour at z = {z:g} mm, {off:.3g} mm from the nearest CT slice "
            f"({slices[nearest]:g} mm): between CT slices, since a contour must lie within "
            f"{plane_tolerance_text(spacing)} of a slice; was the structure set drawn on another CT series?"
        )
    return float(planes[nearest]), off


def off_slice_notes(rois: list[RoiContours], ct: CtSeries | None) -> list[str]:
    """A note naming the ROIs whose contours lay off their CT slices (within the tolerance), and how far."""
    moved = [roi for roi in rois if roi.off_slice_mm > POSITION_TOLERANCE_MM]
    if ct is None or not moved:
        return []
    names = ", ".join(f"{roi.name} ({roi.off_slice_mm:.3g} mm)" for roi in moved)
    return [f"contours lying off their CT slice, within {plane_tolerance_text(ct.spacing_mm[2])}, placed on it: {names}"]


def contour_planes(rois: list[RoiContours]) -> np.ndarray:
    """Every plane (z, mm) some ROI has a contour on, increasing."""
    return np.array(sorted({z for roi in rois for z in roi.planes}))


def contour_box(rois: list[RoiContours]) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The lowest and highest contour point (x, y) and plane (z) of all `rois`, in mm."""
    points = np.concatenate([polygon for roi in rois for polygons in roi.planes.values() for polygon in polygons])
    planes = contour_planes(rois)
    return (points[:, 0].min(), points[:, 1].min(), planes[0]), (points[:, 0].max(), points[:, 1].max(), planes[-1])


def contour_spacing(rois: list[RoiContours], source: str) -> float:
    """The distance between contour planes (the most common one), which stands for the slice
    thickness when there is no CT: each plane's contour then holds for half of it either side."""
    planes = contour_planes(rois)
    gaps = np.round(np.diff(planes), 2)
    gaps = gaps[gaps > POSITION_TOLERANCE_MM]
    if not len(gaps):
        raise CaseError(f"{source}: every contour lies on one plane, so the slice thickness is unknown without the CT")
    values, counts = np.unique(gaps, return_counts=True)
    return float(values[np.argmax(counts)])
