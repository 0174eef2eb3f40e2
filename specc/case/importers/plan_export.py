"""A plan exported from another planning system (CT + RTSTRUCT + RT Dose, and its RT Plan) as a
case to check: the structures rasterized on the RT Dose grid, no influence matrix. The CT is
optional: an export of structures and dose alone is judged the same way (each contour then
holds for the distance between contour planes about its plane, and the report shows no CT).

The evaluation grid is the RT Dose's own (as the exporting system's DVHs are computed), or a
finer one over the same box on request, where the dose is interpolated (trilinear). Contours
reaching beyond the dose grid are the usual clinical case (a body contour longer than the
calculation volume): the part outside has no dose, so such a structure is `incomplete` and no
goal on it may be judged. A ROI wholly outside has no voxel on the grid and is no structure of the
case; `outside_grid` says why, for its goals to read NOT EVALUATED rather than 'not contoured'.
When the RT Plan is in the folder, its fractions must be the protocol's: a plan of 28 fractions
is not an implementation of a 39-fraction protocol, and a per-fraction dose must never be scaled
by the wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import scipy.sparse as sp

from specc.case.importers.dicom_ct import (
    IDENTIFYING_ATTRIBUTES, POSITION_TOLERANCE_MM, DicomFolder, present_attributes, read_dicom_folder,
)
from specc.case.importers.report import build_case
from specc.case.importers.external_dose import ExternalDose
from specc.case.importers.rtdose import read_rtdose, sum_beam_doses
from specc.case.importers.rtstruct import (
    RoiContours, contour_box, contour_spacing, off_slice_notes, rasterize, read_structure_set,
)
from specc.case.model import Beamlets, Case, CaseMetadata, Grid, Structure
from specc.errors import CaseError

# What the report shows of the RT Plan, when it has it.
_PLAN_ATTRIBUTES = ("RTPlanLabel", "RTPlanName", "RTPlanDate", "ApprovalStatus", "ReviewerName", "ReviewDate")
_BEAM_SUMMATIONS = ("BEAM", "BEAM_SESSION")


@dataclass
class ExportedPlan:
    """The case to evaluate on, the dose, and what the folder said of the plan."""

    case: Case
    dose: ExternalDose
    incomplete: dict[str, str]  # case structure name -> why some of it has no dose
    plan_attributes: dict[str, str]  # _PLAN_ATTRIBUTES of the RT Plan, when the folder has one
    notes: list[str] = field(default_factory=list)
    isocentre_mm: tuple[float, float, float] | None = None  # the RT Plan's, when all its beams share one
    left_out: list[str] = field(default_factory=list)  # why each ROI with no voxel on the grid is not a structure
    # ROI name -> why it has no dose, for each ROI wholly outside the RT Dose grid (a distant organ beyond the
    # calculation volume): not a structure of the case, since it has no voxel on the grid, yet contoured, so a
    # goal on it reads NOT EVALUATED with this reason, as `specc check --case --dose` reads one (never "not contoured").
    outside_grid: dict[str, str] = field(default_factory=dict)


def read_plan_export(
    folder: str | Path,
    fractions: int,
    *,
    dose_file: str | Path | None = None,
    grid_mm: float | None = None,
    outside_zero: bool = False,
    per_fraction: bool = False,
) -> ExportedPlan:
    """Read a plan export for checking a protocol of `fractions` fractions (see module docstring).

    `dose_file`: the RT Dose to check when the folder has several; `grid_mm`: a finer isotropic
    evaluation grid than the RT Dose's (small structures, sharper DVHs); `outside_zero`: the
    grid is grown on the same lattice to hold every contour whole, for the caller to give the
    voxels beyond the RT Dose 0 Gy (its assumption to state), and no structure is incomplete.
    """
    folder = Path(folder)
    dicom = read_dicom_folder(folder, require_ct=False)
    dose, dose_notes = _dose(folder, dicom, dose_file, fractions, per_fraction)
    identifiers = _identifiers(dicom)
    dose.require_frame(identifiers.get("FrameOfReferenceUID"), "the CT" if dicom.ct is not None else "the structure set")
    plan_attributes, isocentre, notes = _plan(folder, dicom, dose, fractions)
    notes = [*dose_notes, *dose.notes, *notes]
    grid = dose.grid if grid_mm is None else _finer_grid(dose.grid, grid_mm)
    if grid_mm is not None:
        notes.append(
            f"evaluated on a {grid_mm:g} mm grid over the RT Dose grid ({' x '.join(f'{s:g}' for s in dose.grid.spacing_mm)} mm): "
            "dose interpolated trilinearly"
        )

    source = str(dicom.structure_set_file)
    rois, without_volume = read_structure_set(dicom.structure_set, dicom.ct, source)
    notes += [f"ROI {item}: not evaluated" for item in without_volume]
    notes += [*off_slice_notes(rois, dicom.ct), *dicom.notes]
    if dicom.ct is not None:
        slice_mm = dicom.ct.spacing_mm[2]
    elif rois:
        slice_mm = contour_spacing(rois, source)
        notes.append(
            f"no CT in the export: each contour holds for {slice_mm:g} mm (the distance between contour planes) "
            "about its plane, and the report's images show no CT"
        )
    if outside_zero and rois:
        grid = _holding(grid, rois, slice_mm)
    structures: dict[str, Structure] = {}
    incomplete: dict[str, str] = {}
    left_out: list[str] = []
    outside_grid: dict[str, str] = {}
    for roi in rois:
        mask, outside = _rasterize_with_outside(roi, grid, slice_mm)
        if not mask.any() and outside:
            outside_grid[roi.name] = f"all its voxels ({outside}) lie outside the dose grid of {dose.path.name}: they have no dose"
            left_out.append(f"ROI {roi.name}: {outside_grid[roi.name]}; left out")
            continue
        if not mask.any():
            left_out.append(
                f"ROI {roi.name}: no voxel centre of the {_spacing_text(grid)} mm evaluation grid lies inside it "
                "(smaller than a voxel: a finer --grid samples it); left out"
            )
            continue
        structures[roi.name] = Structure(name=roi.name, mask=mask, color=roi.color)
        if outside:
            total = outside + int(np.count_nonzero(mask))
            incomplete[roi.name] = (
                f"{outside} of its {total} voxels ({100.0 * outside / total:.1f}%, {outside * grid.voxel_volume_cc:.1f} cc) "
                f"lie outside the RT Dose grid of {dose.path.name}: they have no dose"
            )
    if not structures:
        raise CaseError(f"{source}: no ROI covers a voxel of the RT Dose grid of {dose.path.name}")

    extra = {f"dicom.{key}": value for key, value in identifiers.items()}
    extra["dicom.StructureSetSOPInstanceUID"] = str(dicom.structure_set.get("SOPInstanceUID", ""))
    voxels = grid.n_voxels
    case = build_case(
        source,
        case_id=str(identifiers.get("PatientID", folder.name)),
        grid=grid,
        voxel_indices=np.arange(voxels, dtype=np.int64),
        influence=sp.csr_matrix((voxels, 0), dtype=np.float32),
        beams=[],
        beamlets=Beamlets(beam_id=[], x_mm=[], y_mm=[], width_mm=[], height_mm=[]),
        structures=structures,
        ct_hu=dicom.ct.on_grid(grid) if dicom.ct is not None else None,
        metadata=CaseMetadata(
            source=f"DICOM plan export {folder.name} ({'CT + ' if dicom.ct is not None else ''}RTSTRUCT + RT Dose)",
            dose_engine=f"none: the dose is the RT Dose {dose.path.name}",
            extra=extra,
        ),
    )
    return ExportedPlan(
        case=case, dose=dose, incomplete=incomplete, plan_attributes=plan_attributes, notes=[*notes, *left_out],
        isocentre_mm=isocentre, left_out=left_out, outside_grid=outside_grid,
    )


def _identifiers(dicom: DicomFolder) -> dict[str, str]:
    """Patient, study and Frame of Reference: the CT's, else the structure set's (an export without CT)."""
    if dicom.ct is not None:
        return dict(dicom.ct.identifiers)
    structure_set = dicom.structure_set
    # the structure set's own series is not the CT's (which the identifiers name)
    found = present_attributes(structure_set, [k for k in IDENTIFYING_ATTRIBUTES if k != "SeriesInstanceUID"])
    frames = structure_set.get("ReferencedFrameOfReferenceSequence", [])
    if len(frames) == 1 and frames[0].get("FrameOfReferenceUID"):
        found["FrameOfReferenceUID"] = str(frames[0].FrameOfReferenceUID)
    return found


def _dose(
    folder: Path, dicom: DicomFolder, dose_file: str | Path | None, fractions: int, per_fraction: bool
) -> tuple[ExternalDose, list[str]]:
    """The dose to check, and a note of the files left aside: the one plan sum when the others
    are partial, or the sum of the beam doses when the folder holds only those."""
    if dose_file is not None:
        return read_rtdose(dose_file, fractions, per_fraction), []
    headers = dicom.by_modality.get("RTDOSE", [])
    if not headers:
        raise CaseError(f"{folder}: no RT Dose (RTDOSE) found: nothing to check")
    summations = {path: str(header.get("DoseSummationType", "")).upper() for path, header in headers}
    beam_doses = [path for path, summation in summations.items() if summation in _BEAM_SUMMATIONS]
    if len(beam_doses) == len(headers):
        plan_path, plan = _plan_of_beam_doses(folder, dicom, headers)
        return sum_beam_doses(beam_doses, plan, plan_path, fractions, per_fraction), []
    doses = [path for path, _ in headers]
    if len(doses) == 1:
        return read_rtdose(doses[0], fractions, per_fraction), []
    sums = [path for path, summation in summations.items() if summation in ("PLAN", "MULTI_PLAN")]
    partial = [path for path, summation in summations.items() if summation in (*_BEAM_SUMMATIONS, "CONTROL_POINT")]
    if len(sums) == 1 and len(sums) + len(partial) == len(doses):
        names = ", ".join(f"{path.name} ({summations[path]})" for path in partial)
        notes = [f"checked the plan sum {sums[0].name}; the partial doses {names} were not used"]
        return read_rtdose(sums[0], fractions, per_fraction), notes
    listed = ", ".join(f"{path.name} ({summations[path] or 'no DoseSummationType'})" for path in doses)
    raise CaseError(f"{folder}: several RT Doses ({listed}); name the plan sum to check with --dose")


def _plan_of_beam_doses(folder: Path, dicom: DicomFolder, headers: list[tuple[Path, pydicom.Dataset]]) -> tuple[Path, pydicom.Dataset]:
    """The one RT Plan every beam dose references; without it no sum can be shown to be the plan's."""
    referenced = {
        str(header.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID) if header.get("ReferencedRTPlanSequence") else ""
        for _, header in headers
    }
    if len(referenced) != 1 or "" in referenced:
        raise CaseError(
            f"{folder}: the folder holds beam doses only, and they do not all reference one RT Plan; "
            "export the plan sum (PLAN) or the beam doses of one plan"
        )
    uid = referenced.pop()
    for path, plan in dicom.by_modality.get("RTPLAN", []):
        if str(plan.get("SOPInstanceUID", "")) == uid:
            return path, plan
    raise CaseError(
        f"{folder}: the folder holds beam doses only, and the RT Plan they reference ({uid}) is not in it: "
        "without it they cannot be shown to be every beam of the plan; add the RT Plan or export the plan sum"
    )


def _plan(
    folder: Path, dicom: DicomFolder, dose: ExternalDose, fractions: int
) -> tuple[dict[str, str], tuple[float, float, float] | None, list[str]]:
    """The RT Plan the dose belongs to (its fractions checked, its isocentre), or a note that there is none."""
    plans = dicom.by_modality.get("RTPLAN", [])  # read whole: an RT Plan has no pixel data
    if dose.referenced_plan_uid is not None:
        plans = [(path, plan) for path, plan in plans if str(plan.get("SOPInstanceUID", "")) == dose.referenced_plan_uid]
    if len(plans) != 1:
        why = "not in the folder" if not plans else "not identified (several, none referenced by the dose)"
        return {}, None, [f"RT Plan {why}: the fractions could not be checked against the protocol's {fractions}"]
    path, plan = plans[0]
    groups = plan.get("FractionGroupSequence", [])
    if dose.summation == "FRACTION" and len(groups) > 1 and dose.fractions_scaled is None:
        raise CaseError(
            f"{dose.path}: DoseSummationType FRACTION is the dose of one fraction group, and the RT Plan {path.name} "
            f"has {len(groups)}: export the plan sum (PLAN) to check the whole plan"
        )
    planned = sum(int(group.get("NumberOfFractionsPlanned", 0) or 0) for group in groups)
    if planned and planned != fractions:
        raise CaseError(
            f"{path}: the RT Plan delivers {planned} fractions, the protocol prescribes {fractions}: "
            "the plan does not implement this protocol's fractionation"
        )
    attributes = present_attributes(plan, _PLAN_ATTRIBUTES)
    attributes["file"] = path.name
    notes = [] if planned else [f"{path.name}: no NumberOfFractionsPlanned; fractions not checked"]
    return attributes, _isocentre(plan), notes


def _isocentre(plan: pydicom.Dataset) -> tuple[float, float, float] | None:
    """The isocentre every beam's first control point names, when they name one and the same."""
    found = {
        tuple(round(float(v), 3) for v in beam.ControlPointSequence[0].IsocenterPosition)
        for beam in plan.get("BeamSequence", [])
        if beam.get("ControlPointSequence") and "IsocenterPosition" in beam.ControlPointSequence[0]
    }
    return next(iter(found)) if len(found) == 1 else None  # type: ignore[return-value]


def _finer_grid(dose_grid: Grid, spacing_mm: float) -> Grid:
    """An isotropic grid of `spacing_mm` whose centres span the dose grid's centres."""
    if not spacing_mm > 0:
        raise CaseError(f"--grid must be a positive spacing in mm, got {spacing_mm:g}")
    extent = [(n - 1) * s for n, s in zip(dose_grid.shape, dose_grid.spacing_mm)]
    shape = tuple(int(np.floor(length / spacing_mm + 1e-6)) + 1 for length in extent)
    origin = tuple(o + 0.5 * (length - (n - 1) * spacing_mm) for o, length, n in zip(dose_grid.origin_mm, extent, shape))
    return Grid(shape=shape, spacing_mm=(spacing_mm,) * 3, origin_mm=origin)  # type: ignore[arg-type]


def _rasterize_with_outside(roi: RoiContours, grid: Grid, slice_mm: float) -> tuple[np.ndarray, int]:
    """The ROI's mask on `grid`, and how many voxels of the same lattice it covers beyond the grid."""
    extended, lead = _extended_axes(grid, [roi], slice_mm)
    whole = rasterize(roi, *extended, slice_mm)
    inside = tuple(slice(start, start + n) for start, n in zip(lead, grid.shape))
    mask = whole[inside]
    return np.ascontiguousarray(mask), int(np.count_nonzero(whole)) - int(np.count_nonzero(mask))


def _holding(grid: Grid, rois: list[RoiContours], slice_mm: float) -> Grid:
    """`grid` grown on its own lattice until every ROI's contours lie inside it."""
    extended, _ = _extended_axes(grid, rois, slice_mm)
    return Grid(
        shape=tuple(len(axis) for axis in extended),  # type: ignore[arg-type]
        spacing_mm=grid.spacing_mm,
        origin_mm=tuple(float(axis[0]) for axis in extended),  # type: ignore[arg-type]
    )


def _extended_axes(grid: Grid, rois: list[RoiContours], slice_mm: float) -> tuple[list[np.ndarray], list[int]]:
    """The grid's axes extended on its lattice over the ROIs' contours, and how many centres were put before each."""
    (x0, y0, z0), (x1, y1, z1) = contour_box(rois)
    low, high = (x0, y0, z0 - slice_mm / 2), (x1, y1, z1 + slice_mm / 2)
    extended, lead = [], []
    for axis, centres in enumerate(grid.axes_mm()):
        spacing, first, last = grid.spacing_mm[axis], centres[0], centres[-1]
        before = max(0, int(np.ceil((first - low[axis] - POSITION_TOLERANCE_MM) / spacing)))
        after = max(0, int(np.ceil((high[axis] - last - POSITION_TOLERANCE_MM) / spacing)))
        extended.append(first + spacing * np.arange(-before, len(centres) + after))
        lead.append(before)
    return extended, lead


def _spacing_text(grid: Grid) -> str:
    return " x ".join(f"{s:g}" for s in grid.spacing_mm)
