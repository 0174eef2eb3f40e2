"""The planned total dose as a DICOM RT Dose, so treatment-planning and research tools can read it.

When the case was imported from DICOM, the dose joins the source study: same patient, study
and Frame of Reference (the identifiers the importer kept under `dicom.*` in the case
metadata), so it overlays the CT and structure set without registration. Otherwise the study
and Frame of Reference are the case's own (`dicom_identity`) and the SeriesDescription says the
dose is not linked to a source CT. The dose of a plan whose solver did not converge says NOT
CONVERGED in its SeriesDescription and DoseComment, as its RT Plan does in its label; one whose
result.h5 cannot say (no convergence attribute, no plan record) says CONVERGENCE UNKNOWN there:
an unlabelled dose would read as a usable one. Both are LO (64 characters): the label leads, and
what does not fit after it is in ImageComments (LT), which says all of it (`DoseText`).

Its SOP Instance UID is derived (`_uid`) from what the object holds: the stored dose, the
RT Plan it references, the plan's creation time and the study it joins; and it is dated by the
plan's creation time. So the same export twice writes the same file, and another dose (or the
dose of the same plan referring to another RT Plan) is another object.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.tag import Tag
from pydicom.uid import RTDoseStorage, RTPlanStorage

from specc.evaluate.record import CONVERGENCE_UNKNOWN_LABEL, NOT_CONVERGED_LABEL
from specc.export.dicom_identity import DicomIdentity, monochrome_pixels, plan_created, save, sop_reference
from specc.export.result_file import PlanResult, ResultError

# What an RT Dose without an RT Plan says of itself (ImageComments) and what the export prints: DICOM PS3.3's
# RT Dose module requires the Referenced RT Plan Sequence (type 1C) for DoseSummationType PLAN, and for
# every other summation type that means a planned dose (MULTI_PLAN, FRACTION, BEAM, ... CONTROL_POINT);
# only RECORD (a treatment record's dose) goes without, which this dose is not. specc makes up no plan.
NO_RT_PLAN_COMMENT = "references no RT Plan: the plan is an optimized fluence, not deliverable"
NO_RT_PLAN_NOTE = (
    "the RT Dose references no RT Plan: the plan is an optimized fluence, not MLC segments, and has no deliverable "
    "RT Plan (a protocol with `delivery: {technique: step_and_shoot}` gives one). DICOM requires that reference for a dose of DoseSummationType PLAN (PS3.3 RT Dose module, type 1C): "
    "a planning system may file this dose without a plan (an orphan dose), or refuse it"
)
_UINT32_MAX = 2**32 - 1
# The largest dose is stored as this value: nearly the whole uint32 range, with headroom so
# that rounding DoseGridScaling to its 16-character decimal string never overflows.
_STORED_MAX = 4_000_000_000


def dose_grid_scaling(max_dose_gy: float) -> float:
    """Gy per stored unit, written exactly as it will appear in the DS string. An all-zero dose is
    stored as zeros under any scaling (1.0); a maximum that is not a finite dose (NaN, Inf, negative)
    has no scaling, and a fallback would quantize the whole dose to whole Gy."""
    if not (math.isfinite(max_dose_gy) and max_dose_gy >= 0):
        raise ValueError(f"no DoseGridScaling stores a dose whose maximum is {max_dose_gy!r} Gy")
    return float(f"{max_dose_gy / _STORED_MAX:.9e}") if max_dose_gy > 0 else 1.0


def write_rtdose(
    result: PlanResult, path: str | Path, rtplan_uid: str | None = None, identity: DicomIdentity | None = None
) -> Path:
    """Write `result.dose_gy` (total over all fractions, Gy) as a multi-frame RT Dose.

    `rtplan_uid`: the RT Plan whose dose this is (`specc.export.rtplan.rtplan_uid`), when the
    plan has MLC segments; a planning system attaches the dose to that plan. Without one the dose
    is still DoseSummationType PLAN, with no Referenced RT Plan Sequence and `NO_RT_PLAN_COMMENT`
    in its image comments: the caller prints `NO_RT_PLAN_NOTE`. `identity`: the
    study it joins (`dicom_study`), else the case's own (`DicomIdentity.of`).
    """
    dose = np.asarray(result.dose_gy, dtype=np.float64)
    if not np.all(np.isfinite(dose)):  # read_result refuses these; a PlanResult built otherwise is checked too
        raise ResultError(f"{result.path}: '/dose_gy' contains NaN or Inf; an RT Dose cannot store it")
    if dose.min() < 0:
        raise ResultError(f"{result.path}: '/dose_gy' has negative values; an RT Dose cannot store them")
    spacing = result.grid.spacing_mm
    if min(spacing) <= 0:
        raise ResultError(f"{result.path}: grid spacing {spacing} is not positive")
    identity = identity or DicomIdentity.of(result)
    path = Path(path)
    scaling = f"{dose_grid_scaling(float(dose.max())):.9e}"
    stored = np.rint(np.transpose(dose, (2, 1, 0)) / float(scaling))  # (frames=z, rows=y, columns=x)
    pixels = np.clip(stored, 0, _UINT32_MAX).astype("<u4").tobytes()
    text = _description(result, identity, planned=rtplan_uid is not None)
    uid = _uid(identity, result, pixels, scaling, rtplan_uid, text)
    ds = identity.new_dataset(path, RTDoseStorage, uid, "RTDOSE", plan_created(result))
    ds.SeriesDescription = text.series_description
    if text.dose_comment:
        ds.DoseComment = text.dose_comment
    ds.ImageComments = text.image_comments
    if rtplan_uid is not None:
        ds.ReferencedRTPlanSequence = [sop_reference(RTPlanStorage, rtplan_uid)]

    # Image plane: the grid is axis-aligned in patient LPS; rows run along y, columns along x.
    nx, ny, nz = dose.shape
    ds.ImagePositionPatient = [float(v) for v in result.grid.origin_mm]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
    ds.SliceThickness = float(spacing[2])
    ds.Rows, ds.Columns = ny, nx
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = Tag("GridFrameOffsetVector")
    ds.GridFrameOffsetVector = [float(k * spacing[2]) for k in range(nz)]

    monochrome_pixels(ds, bits=32, signed=False)

    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    ds.DoseGridScaling = scaling
    ds.PixelData = pixels

    return save(ds, path)


def _uid(
    identity: DicomIdentity, result: PlanResult, pixels: bytes, scaling: str, rtplan_uid: str | None, text: DoseText
) -> str:
    """The RT Dose's SOP Instance UID, from everything the object holds but its UIDs: the stored
    dose (pixels and DoseGridScaling as written: a change below their resolution is no other
    content), the RT Plan it references, the plan's creation time, its description and comments
    (fractions, convergence) and the study it joins. The grid is the case's, in the case's hash."""
    created = result.record.created if result.record is not None else ""
    sources = [hashlib.sha256(pixels).hexdigest(), f"scaling={scaling}", f"rt plan={rtplan_uid or ''}", created,
               text.series_description, text.dose_comment, text.image_comments]
    return identity.object_uid("rt dose", *sources)


# SeriesDescription and DoseComment are LO: 64 characters at most (DICOM PS3.5 6.2).
LO_MAX = 64


@dataclass(frozen=True)
class DoseText:
    """What the RT Dose says of itself. A planning system lists the series by its description and
    shows the comment beside the dose, each 64 characters at most: the convergence label leads both,
    and what does not fit after it is in the image comments (LT), which always say everything."""

    series_description: str
    dose_comment: str  # empty: none (a converged plan's dose needs no warning)
    image_comments: str


def _description(result: PlanResult, identity: DicomIdentity, planned: bool) -> DoseText:
    """`planned`: whether the dose references its RT Plan; one that does not says so in its image comments."""
    converged = result.converged
    status = result.solver_status or "unknown"
    label = {True: "", False: f"{NOT_CONVERGED_LABEL} ", None: f"{CONVERGENCE_UNKNOWN_LABEL} "}[converged]
    # What sets this dose apart: (in the description, in the image comments), most needed first. A composite
    # plan's dose is not the dose its goals were judged on; a planning system shows the study anyway.
    qualifiers: list[tuple[str, str]] = []
    if result.prior_dose_gy is not None:
        qualifiers.append((", without prior dose",
                           "this course's own dose, without the prior course's (its goals were judged on the sum)"))
    if not identity.linked:
        qualifiers.append(("; not linked to a CT",
                           "not linked to a source CT: the study and Frame of Reference are the case's own"))
    description = label + f"specc plan dose, {result.fractions} fx"
    for short, _ in qualifiers:
        if len(description + short) <= LO_MAX:
            description += short
    if converged is None:
        warning = comment = f"{CONVERGENCE_UNKNOWN_LABEL}: no solver status in result.h5"
    elif not converged:
        warning = f"{NOT_CONVERGED_LABEL} (solver {status}): not a usable plan"
        # a status longer than any solver gives is said in the image comments alone
        comment = warning if len(warning) <= LO_MAX else f"{NOT_CONVERGED_LABEL}: not a usable plan"
    else:
        warning = comment = ""
    said = [warning] if warning else []
    said.append(f"specc plan dose: the total over {result.fractions} fractions, in Gy")
    said += [full for _, full in qualifiers]
    if not planned:
        said.append(NO_RT_PLAN_COMMENT)
    return DoseText(description, comment, "; ".join(said))
