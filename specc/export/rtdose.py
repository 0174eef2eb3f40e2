"""The planned total dose as a DICOM RT Dose, so treatment-planning and research tools can read it.

When the case was imported from DICOM, the dose joins the source study: same patient, study
and Frame of Reference (the identifiers the importer kept under `dicom.*` in the case
metadata), so it overlays the CT and structure set without registration. Otherwise a new
study and Frame of Reference are generated and the file says so in its SeriesDescription.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, RTDoseStorage, generate_uid

from specc import __version__
from specc.export.result_file import PlanResult, ResultError

# DICOM identifiers the dicom importer keeps in CaseMetadata.extra, under this prefix.
DICOM_METADATA_PREFIX = "dicom."
_UINT32_MAX = 2**32 - 1
# The largest dose is stored as this value: nearly the whole uint32 range, with headroom so
# that rounding DoseGridScaling to its 16-character decimal string never overflows.
_STORED_MAX = 4_000_000_000


def dose_grid_scaling(max_dose_gy: float) -> float:
    """Gy per stored unit, written exactly as it will appear in the DS string."""
    return float(f"{max_dose_gy / _STORED_MAX:.9e}") if max_dose_gy > 0 else 1.0


def write_rtdose(result: PlanResult, path: str | Path) -> Path:
    """Write `result.dose_gy` (total over all fractions, Gy) as a multi-frame RT Dose."""
    dose = np.asarray(result.dose_gy, dtype=np.float64)
    if dose.min() < 0:
        raise ResultError(f"{result.path}: '/dose_gy' has negative values; an RT Dose cannot store them")
    spacing = result.grid.spacing_mm
    if min(spacing) <= 0:
        raise ResultError(f"{result.path}: grid spacing {spacing} is not positive")
    identifiers = {
        key[len(DICOM_METADATA_PREFIX) :]: value
        for key, value in result.metadata_extra.items()
        if key.startswith(DICOM_METADATA_PREFIX)
    }
    linked = "FrameOfReferenceUID" in identifiers and "StudyInstanceUID" in identifiers

    path = Path(path)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTDoseStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    now = dt.datetime.now()

    ds.SOPClassUID = RTDoseStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTDOSE"
    ds.Manufacturer = "specc"
    ds.SoftwareVersions = __version__
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.InstanceNumber = 1

    # Patient and study: the source CT's when known, otherwise the case id and a new study.
    ds.PatientID = identifiers.get("PatientID", result.case_id)
    ds.PatientName = identifiers.get("PatientName", result.case_id)
    ds.PatientBirthDate = identifiers.get("PatientBirthDate", "")
    ds.PatientSex = identifiers.get("PatientSex", "")
    ds.StudyInstanceUID = identifiers.get("StudyInstanceUID", generate_uid())
    ds.StudyID = identifiers.get("StudyID", "")
    ds.StudyDate = identifiers.get("StudyDate", ds.ContentDate)
    ds.StudyTime = identifiers.get("StudyTime", ds.ContentTime)
    ds.AccessionNumber = identifiers.get("AccessionNumber", "")
    ds.ReferringPhysicianName = identifiers.get("ReferringPhysicianName", "")
    ds.FrameOfReferenceUID = identifiers.get("FrameOfReferenceUID", generate_uid())
    ds.PositionReferenceIndicator = identifiers.get("PositionReferenceIndicator", "")
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDescription = f"specc plan dose, {result.fractions} fractions" + (
        "" if linked else " (not linked to a source CT)"
    )

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

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 32
    ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0

    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    scaling = dose_grid_scaling(float(dose.max()))
    ds.DoseGridScaling = f"{scaling:.9e}"
    stored = np.rint(np.transpose(dose, (2, 1, 0)) / scaling)  # (frames=z, rows=y, columns=x)
    ds.PixelData = np.clip(stored, 0, _UINT32_MAX).astype("<u4").tobytes()

    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
