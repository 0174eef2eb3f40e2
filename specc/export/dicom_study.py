"""A plan as a DICOM study: CT, RT Structure Set, RT Plan and RT Dose in one folder.

A case that did not come from DICOM (a phantom, a matRad or PortPy case) has no study a
planning system or a DICOM viewer could open the plan in. This writes one: the case's grid as
an axial CT (its CT numbers, or, for a case that has only relative electron densities, HU
from the default calibration curve read backwards), every case structure as closed planar
contours on those slices (typed for a planning system by `roi_types`: the body EXTERNAL, the
targets PTV), and the plan's RT Plan (when it has MLC segments) and RT Dose, all
in one study and Frame of Reference, the RT Plan referring to the structure set.

Contours are the 50% level of each mask between voxel centres (contourpy), so that the rule
every importer here rasterizes by (a voxel is inside when its centre is inside the polygon)
gives back the very mask on the same grid: `specc check` on the folder measures the plan on
the structures it was planned on.

A case imported from DICOM already has its study: then only the RT Plan and RT Dose are
written, in the source study, referring to its structure set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import contourpy
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, RTStructureSetStorage

from specc.case import Case
from specc.case.importers.hu_density import DEFAULT_HU_TABLE, recorded_hu_table
from specc.export.dicom_identity import DicomIdentity, monochrome_pixels, save, sop_reference
from specc.export.result_file import PlanResult, ResultError
from specc.export.roi_types import body_structure, derived_type, target_type
from specc.export.rtdose import NO_RT_PLAN_NOTE, write_rtdose
from specc.export.rtplan import write_rtplan
from specc.export.segments import SegmentsDocument

_CT_NUMBER_RANGE = (-1024, 3071)  # a 12-bit CT's range, stored as signed 16-bit HU


@dataclass
class StudyExport:
    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def write_dicom_study(
    result: PlanResult,
    case: Case,
    out_dir: str | Path,
    segments: tuple[SegmentsDocument, Path] | None = None,
    machine: str = "",
) -> StudyExport:
    """Write the plan `result` holds (and its `segments`, with their file) as a study in `out_dir`."""
    out = Path(out_dir)
    export = StudyExport()
    identity = DicomIdentity.of(result)
    if identity.linked:
        export.notes.append(
            "the case came from DICOM: the RT Plan and RT Dose join the source study and refer to its "
            "structure set; no CT or structure set is written again"
        )
    else:
        rois = _rois(case, result, export.notes)
        identity = _study_identity(identity, result, rois)
        export.paths += _write_ct(case, identity, out, export.notes)
        export.paths.append(_write_structure_set(case, rois, identity, out))
    plan_uid = None
    if segments is not None:
        document, segments_path = segments
        written = write_rtplan(result, document, segments_path, case, out / "RP.dcm", machine, identity=identity)
        export.paths.append(written.path)
        export.notes += written.notes
        plan_uid = written.uid
    else:
        export.notes.append(NO_RT_PLAN_NOTE)
    export.paths.append(write_rtdose(result, out / "RD.dcm", plan_uid, identity=identity))
    if result.prior_dose_gy is not None:
        export.notes.append("a composite plan: RD.dcm is this plan's own dose, without the prior course")
    return export


def _study_identity(derived: DicomIdentity, result: PlanResult, rois: list[_Roi]) -> DicomIdentity:
    """The identifiers of the study written here, fixed once so that every file carries the same.

    The study is the case's, shared by every plan on it, so it has no date (type 2, empty): a
    plan's would change under one Study Instance UID from plan to plan. The structure set's UID
    depends on what it holds besides the case's structures: the derived structures (their mask,
    expression, colour, role) and every ROI's name and type (which depend on the prescription's
    targets, `roi_types`); two plans of one case with other margins or targets write two
    structure sets, never two under one UID."""
    structures = [
        f"{d.name}\0{d.expression}\0{d.color}\0{d.role}\0"
        f"{hashlib.sha256(np.packbits(d.mask.ravel()).tobytes()).hexdigest()}"
        for d in result.derived
    ]
    identifiers = {
        "PatientID": derived.case_id,
        "PatientName": derived.case_id,
        "StudyInstanceUID": derived.derived_uid("study"),
        "StudyID": "specc",
        "FrameOfReferenceUID": derived.derived_uid("frame of reference"),
        "StructureSetSOPInstanceUID": derived.derived_uid(
            "structure set", *structures, f"types={[(roi.name, roi.interpreted_type) for roi in rois]}"
        ),
        "PatientPosition": "HFS",
    }
    return DicomIdentity(identifiers, derived.case_id, derived.case_sha256)


def _ct_numbers(case: Case, notes: list[str]) -> np.ndarray:
    if case.ct_hu is not None:
        return np.asarray(case.ct_hu, dtype=np.float64)
    if case.density is None:  # a matRad case imported with its dij keeps no CT (docs/formats/matrad.md)
        raise ResultError(
            f"case {case.case_id!r} has neither CT numbers nor densities (a case imported with its influence matrix, "
            "as from a matRad workspace with its dij, keeps no CT): there is no CT to write a study with; "
            "`specc export rtdose PLAN_FOLDER --out RD.dcm` writes the plan's RT Dose alone (docs/formats/rtdose.md; "
            "`specc export rtplan` its RT Plan, for a plan with `delivery`)"
        )
    recorded = recorded_hu_table(case.metadata.extra)
    table = np.asarray(DEFAULT_HU_TABLE if recorded is None else recorded, dtype=np.float64)
    curve = "default calibration curve" if recorded is None else "calibration curve the case was imported with"
    notes.append(
        f"the case has relative electron densities, no CT: the CT's numbers are the {curve} read backwards "
        "(docs/formats/dicom.md), for display and for a planning system's own dose"
    )
    return np.interp(case.density, table[:, 1], table[:, 0])


def _write_ct(case: Case, identity: DicomIdentity, out: Path, notes: list[str]) -> list[Path]:
    hu = np.clip(np.rint(_ct_numbers(case, notes)), *_CT_NUMBER_RANGE).astype(np.int16)
    grid = case.grid
    series_uid = identity.derived_uid("ct series")
    paths = []
    for k, z in enumerate(grid.axes_mm()[2]):
        path = out / f"CT_{k + 1:04d}.dcm"
        ds = identity.new_dataset(path, CTImageStorage, _slice_uid(identity, k), "CT")
        ds.SeriesInstanceUID = series_uid
        ds.SeriesDescription = f"specc case {case.case_id}"[:64]
        ds.InstanceNumber = k + 1
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.PatientPosition = "HFS"
        ds.ImagePositionPatient = [float(grid.origin_mm[0]), float(grid.origin_mm[1]), float(z)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [float(grid.spacing_mm[1]), float(grid.spacing_mm[0])]
        ds.SliceThickness = float(grid.spacing_mm[2])
        ds.SliceLocation = float(z)
        ds.Rows, ds.Columns = grid.shape[1], grid.shape[0]
        monochrome_pixels(ds, bits=16, signed=True)
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.KVP = ""
        ds.PixelData = np.ascontiguousarray(hu[:, :, k].T).astype("<i2").tobytes()  # rows are y
        paths.append(save(ds, path))
    return paths


def _slice_uid(identity: DicomIdentity, k: int) -> str:
    return identity.derived_uid("ct slice", str(k))


def _write_structure_set(case: Case, rois: list[_Roi], identity: DicomIdentity, out: Path) -> Path:
    path = out / "RS.dcm"
    ds = identity.new_dataset(path, RTStructureSetStorage, identity.identifiers["StructureSetSOPInstanceUID"], "RTSTRUCT")
    ds.SeriesDescription = f"specc case {case.case_id} structures"[:64]
    ds.StructureSetLabel = "specc"
    ds.StructureSetName = case.case_id[:64]
    ds.StructureSetDate = ""  # type 2: one structure set may serve several plans, made at other times
    ds.StructureSetTime = ""
    frame = identity.identifiers["FrameOfReferenceUID"]
    z_axis = case.grid.axes_mm()[2]
    slices = [_slice_uid(identity, k) for k in range(len(z_axis))]
    ds.ReferencedFrameOfReferenceSequence = [_referenced_frame(identity, slices)]
    items, contours, observations = [], [], []
    for number, roi_spec in enumerate(rois, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame
        roi.ROIName = roi_spec.name
        if roi_spec.description:
            roi.ROIDescription = roi_spec.description[:1024]
        roi.ROIGenerationAlgorithm = "AUTOMATIC" if roi_spec.description else ""
        items.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = [int(roi_spec.color[i : i + 2], 16) for i in (1, 3, 5)]
        item.ContourSequence = _contours(roi_spec.mask, case, slices)
        contours.append(item)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = roi_spec.interpreted_type
        observation.ROIInterpreter = ""
        observations.append(observation)
    ds.StructureSetROISequence = items
    ds.ROIContourSequence = contours
    ds.RTROIObservationsSequence = observations
    return save(ds, path)


@dataclass(frozen=True)
class _Roi:
    name: str
    mask: np.ndarray
    color: str
    interpreted_type: str  # RTROIInterpretedType (`roi_types`): EXTERNAL, PTV, ORGAN, CONTROL, ...; empty: none
    description: str = ""  # how specc derived it, for a derived structure


def _rois(case: Case, result: PlanResult, notes: list[str]) -> list[_Roi]:
    """The case's structures, then the protocol's derived ones as planned (PTV margins, rings)."""
    record = result.record
    targets = {level.target for level in record.prescription.levels} if record else set()
    body = body_structure(case.structures, targets, notes)

    def case_type(name: str) -> str:
        if name in targets or result.case_roles.get(name) == "target":  # by name, or through an alias
            return target_type(name)
        return "EXTERNAL" if name == body else "ORGAN" if result.case_roles.get(name) == "oar" else ""

    rois = [
        _Roi(name, structure.mask, structure.color, case_type(name))
        for name, structure in sorted(case.structures.items())
    ]
    for derived in result.derived:
        name = derived.name
        if name in case.structures:
            name = f"{name}_specc"
            notes.append(f"the protocol's derived {derived.name} is written as {name}: the case has a structure of that name")
        kind = derived_type(derived.name, derived.role)
        rois.append(_Roi(name, derived.mask, derived.color, kind, f"derived by specc: {derived.expression}"))
    return rois


def _referenced_frame(identity: DicomIdentity, slices: list[str]) -> Dataset:
    series = Dataset()
    series.SeriesInstanceUID = identity.derived_uid("ct series")
    series.ContourImageSequence = [sop_reference(CTImageStorage, uid) for uid in slices]
    # The study is referred to by the (retired) Detached Study Management class, as planning systems write it.
    study = sop_reference("1.2.840.10008.3.1.2.3.1", identity.identifiers["StudyInstanceUID"])
    study.RTReferencedSeriesSequence = [series]
    frame = Dataset()
    frame.FrameOfReferenceUID = identity.identifiers["FrameOfReferenceUID"]
    frame.RTReferencedStudySequence = [study]
    return frame


def _contours(mask: np.ndarray, case: Case, slices: list[str]) -> list[Dataset]:
    """Each plane's rings at the mask's 50% level; the mask is padded with empty voxels so
    that a structure reaching the grid's edge still closes (half a voxel beyond the centres)."""
    x, y, z = case.grid.axes_mm()
    sx, sy = case.grid.spacing_mm[:2]
    padded_x = np.concatenate([[x[0] - sx], x, [x[-1] + sx]])
    padded_y = np.concatenate([[y[0] - sy], y, [y[-1] + sy]])
    items = []
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        plane = np.zeros((len(x) + 2, len(y) + 2))
        plane[1:-1, 1:-1] = mask[:, :, k]
        generator = contourpy.contour_generator(padded_x, padded_y, plane.T, line_type="Separate")
        for ring in generator.lines(0.5):
            points = ring[:-1] if np.allclose(ring[0], ring[-1]) else ring
            item = Dataset()
            item.ContourImageSequence = [sop_reference(CTImageStorage, slices[k])]
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(points)
            item.ContourData = [
                f"{value:.4f}".rstrip("0").rstrip(".") for point in points for value in (point[0], point[1], z[k])
            ]
            items.append(item)
    return items
