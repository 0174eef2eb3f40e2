"""A plan's MLC segments as a DICOM RT Plan, for a planning system to import, recompute and approve.

specc's segments are apertures on the case's beamlet grid, with weights in the case's beamlet
unit: not monitor units. So the RT Plan carries what a planning system needs to set monitor
units with its own beam model, and nothing that would pass for a calibrated meterset:

- one static beam per beam that delivers fluence, step-and-shoot control points (two per
  segment, both giving its leaves and jaws, which stand still while the meterset rises by
  the segment's weight);
- each beam's nominal energy and fluence mode (Primary Fluence Mode: STANDARD, or FFF and
  SRS as NON_STANDARD) read from the case's energy label (`photon_energy`); a label it cannot
  read is left out, with a note, never written as a standard beam;
- a virtual MLC (MLCX) whose leaf pairs are the case's beamlet rows (width = beamlet height),
  with X and Y jaws around each segment's opening; closed leaf pairs meet behind the X1 jaw
  (`CLOSED_PAIR_SETBACK_MM` under it);
- each beam's Final Cumulative Meterset Weight is its summed segment weight in the case's
  beamlet unit, so the beams' relative weights survive; no Beam Meterset (monitor units);
- each beam's dose per fraction at its isocentre (Beam Dose, linked to a coordinate dose
  reference there), computed from the case's influence matrix, for a planning system that
  sets monitor units from a point dose; omitted, with a note, where no dose is computed, and
  where no segment of the beam opens over the isocentre (`covers_isocentre`): its dose there
  comes from beamlets not open over the point (the case's dose model and the trilinear reading
  between voxel centres; up to 0.26 Gy per fraction of a 2 Gy fraction on the 10 mm C-shape),
  so it sets no monitor units;
- Approval Status UNAPPROVED; a plan that did not converge says so in its label, name and
  description.

Study and Frame of Reference: see `dicom_identity`. docs/formats/rtplan.md.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import RTPlanStorage, RTStructureSetStorage

from specc.case import Case
from specc.case.model import row_lookup
from specc.evaluate import PlanRecord
from specc.evaluate.record import NOT_CONVERGED_LABEL
from specc.export.dicom_identity import DicomIdentity, dicom_date_time, plan_created, save, sop_reference
from specc.export.result_file import PlanResult, ResultError
from specc.export.segments import BeamSegmentsEntry, SegmentsDocument
from specc.hashing import file_sha256

# specc's beam angles are IEC 61217 for a head-first supine patient (specc.case.Beam).
PATIENT_POSITION = "HFS"
# A photon energy label as cases and planning systems write it: "6 MV", "6MV", "6X", "6 X",
# "10 MV FFF", "6FFF", "6X-FFF", "10X FFF", "6 MV SRS". A number alone ("6") is not read:
# it could be an electron energy in MeV.
# How far behind the X1 jaw's edge a closed leaf pair's two tips meet (mm, isocentre plane). A closed pair
# between open ones lies inside the Y jaws' opening, so only the X1 jaw can shield it; its abutment (the
# rounded leaf ends, where an MLC leaks most) meeting at the jaw's edge would lie in the field's penumbra,
# computed by a planning system as leakage into the dose. Planning systems park such pairs under the jaw:
# 10 mm puts the abutment past the jaw's penumbra (80-20% about 3-5 mm wide at 6 MV) and the leaf ends'
# own few millimetres of rounding. The export's leaves therefore travel from this far behind the X1
# edge of the beam's beamlet grid to its X2 edge (docs/formats/rtplan.md).
CLOSED_PAIR_SETBACK_MM = 10.0
# segments.json writes its millimetres to 3 decimals: a point this close to an opening's edge is on it.
_FILE_RESOLUTION_MM = 1e-3
_PHOTON_ENERGY = re.compile(r"(?P<mv>\d+(?:\.\d+)?)\s*(?P<unit>MV|X)?[\s-]*(?P<mode>FFF|SRS)?", re.IGNORECASE)


@dataclass
class RtPlanExport:
    path: Path
    uid: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PhotonEnergy:
    """A beam's nominal energy (MV) and its fluence mode: None for the standard (flattened)
    beam, else the machine's name of the non-standard one: FFF (flattening filter free) or
    SRS (Varian's high dose-rate radiosurgery mode)."""

    nominal_mv: float
    fluence_mode_id: str | None


def photon_energy(label: str) -> PhotonEnergy | None:
    """The energy a case's beam label names (`_PHOTON_ENERGY`); None when it is not one of those."""
    match = _PHOTON_ENERGY.fullmatch(label.strip())
    if match is None or not (match["unit"] or match["mode"]):
        return None
    return PhotonEnergy(float(match["mv"]), match["mode"].upper() if match["mode"] else None)


def rtplan_uid(result: PlanResult, segments_path: Path, machine: str = "", identity: DicomIdentity | None = None) -> str:
    """The RT Plan's SOP Instance UID, from everything its content depends on: the plan (its
    segments.json and creation time), the machine name and the study it joins (`identity`, as
    for `write_rtplan`). Every export of one plan with the same options gives the same UID, so an
    RT Dose exported by another command can reference it; any other content gets another UID."""
    identity = identity or DicomIdentity.of(result)
    created = result.record.created if result.record is not None else ""
    return identity.object_uid("rt plan", file_sha256(Path(segments_path)), created, f"machine={machine}")


def write_rtplan(
    result: PlanResult,
    segments: SegmentsDocument,
    segments_path: Path,
    case: Case,
    path: str | Path,
    machine: str = "",
    identity: DicomIdentity | None = None,
) -> RtPlanExport:
    """Write the segments of the plan `result` holds as an RT Plan at `path`; `identity`: the
    study it joins (`dicom_study`), else the case's own (`DicomIdentity.of`). `case`: the plan's,
    as `result.load_case()` gives it (that checks its content hash; it is not hashed again here)."""
    _check_same_plan(result, segments, segments_path, case)
    identity = identity or DicomIdentity.of(result)
    position = identity.identifiers.get("PatientPosition", PATIENT_POSITION)
    if position != PATIENT_POSITION:
        raise ResultError(
            f"{result.path}: the source CT's patient position is {position}; specc's beam angles are "
            f"for {PATIENT_POSITION}, so an RT Plan written from them would be turned wrongly"
        )
    path = Path(path)
    uid = rtplan_uid(result, segments_path, machine, identity)
    export = RtPlanExport(path, uid)
    created = plan_created(result)
    ds = identity.new_dataset(path, RTPlanStorage, uid, "RTPLAN", created)
    record = result.record
    _general_plan(ds, identity, segments, record, created)

    beams_by_id = {beam.id: beam for beam in case.beams}
    dose_points = _beam_doses_at_isocentre(case, result.fluence, [entry.beam for entry in segments.beams])
    references = _prescription_references(identity, record)
    beams, referenced = [], []
    points: dict[tuple[float, float, float], Dataset] = {}  # one dose point per isocentre
    blocked: dict[int, float] = {}  # beams no segment of which opens over the isocentre: their dose there (Gy)
    for number, entry in enumerate(segments.beams, start=1):
        beam = beams_by_id[entry.beam]
        energy = photon_energy(entry.energy)
        if energy is None:
            export.notes.append(
                f"beam {entry.beam}: energy {entry.energy!r} is not a photon energy specc reads (\"6 MV\", \"6X\", "
                "\"10 MV FFF\", \"6 MV SRS\"): NominalBeamEnergy and the fluence mode are left out; set them in the "
                "planning system"
            )
        beams.append(_beam(number, entry, beam.sad_mm, machine, energy))
        item = Dataset()
        item.ReferencedBeamNumber = number
        beam_dose = dose_points.get(entry.beam)
        if beam_dose is None:
            export.notes.append(
                f"beam {entry.beam}: no dose is computed at its isocentre {tuple(beam.isocenter_mm)} mm "
                "(outside the case's dose rows); Beam Dose omitted"
            )
        elif not covers_isocentre(entry):
            blocked[entry.beam] = beam_dose
        else:
            point = points.get(beam.isocenter_mm)
            if point is None:
                point = points[beam.isocenter_mm] = _dose_point(identity, beam.isocenter_mm, len(references) + 1)
                references.append(point)
            item.BeamDose = _ds(beam_dose)
            item.BeamDoseMeaning = "BEAM_LEVEL"
            item.ReferencedDoseReferenceUID = point.DoseReferenceUID
        referenced.append(item)
    if blocked:
        many = len(blocked) > 1
        export.notes.append(
            f"beam{'s' if many else ''} {', '.join(map(str, blocked))}: no segment opens over {'their' if many else 'its'} "
            f"isocentre (the beam dose point): the beam's dose computed there, "
            f"{', '.join(f'{dose:.3g}' for dose in blocked.values())} Gy per fraction, comes from beamlets not open "
            "over the point, so it cannot set monitor units: Beam Dose omitted (the planning system sets them from "
            "another point)"
        )
    if references:
        ds.DoseReferenceSequence = references

    setup = Dataset()
    setup.PatientSetupNumber = 1
    setup.PatientPosition = PATIENT_POSITION
    setup.SetupTechnique = "ISOCENTRIC"
    ds.PatientSetupSequence = [setup]

    group = Dataset()
    group.FractionGroupNumber = 1
    group.NumberOfFractionsPlanned = segments.fractions
    group.NumberOfBeams = len(beams)
    group.NumberOfBrachyApplicationSetups = 0
    group.ReferencedBeamSequence = referenced
    ds.FractionGroupSequence = [group]
    ds.BeamSequence = beams

    save(ds, path)
    return export


def covers_isocentre(entry: BeamSegmentsEntry) -> bool:
    """Whether a segment of the beam opens over its isocentre: the central axis, (0, 0) in the beam's
    own X_b, Y_b at the isocentre plane, inside or on the edge of an open leaf pair's gap. An edge counts
    (a planning system computes a dose there, half the field's); a beam all of whose segments leave the
    axis under the leaves or jaws gives a dose there that no monitor units can be scaled to."""
    half = entry.leaf_width_mm / 2 + _FILE_RESOLUTION_MM
    pairs = [index for index, centre in enumerate(entry.leaf_pair_centres_mm) if abs(centre) <= half]
    return any(
        segment.left_mm[pair] is not None
        and segment.left_mm[pair] - _FILE_RESOLUTION_MM <= 0.0 <= segment.right_mm[pair] + _FILE_RESOLUTION_MM
        for segment in entry.segments
        for pair in pairs
    )


def _check_same_plan(result: PlanResult, segments: SegmentsDocument, segments_path: Path, case: Case) -> None:
    """The plan's own segments (`PlanResult.check_segments`, the rule `specc export rtdose` and `specc approve`
    share), with a beam to export."""
    result.check_segments(segments, segments_path, case)
    if not segments.beams:
        raise ResultError(f"{segments_path}: no beam delivers fluence; there is no plan to export")


def _general_plan(
    ds: Dataset, identity: DicomIdentity, segments: SegmentsDocument, record: PlanRecord | None, created: dt.datetime | None
) -> None:
    protocol = segments.protocol
    marker = "" if segments.converged else f"{NOT_CONVERGED_LABEL} "
    ds.SeriesDescription = f"specc plan, {segments.fractions} fractions" + (
        "" if identity.linked else " (not linked to a source CT)"
    )
    ds.RTPlanLabel = (("NC " if marker else "") + protocol.name)[:16]
    ds.RTPlanName = f"{marker}{protocol.name} {protocol.version}"[:64]
    # The plan was last changed when it was made, not when it is exported; unknown: empty (type 2).
    ds.RTPlanDate, ds.RTPlanTime = dicom_date_time(created) if created is not None else ("", "")
    levels = ", ".join(f"{level.target} {level.total_gy:g} Gy" for level in record.prescription.levels) if record else ""
    if record is not None and record.prior_dose is not None:
        levels += f" composite, {record.prior_dose.prescribed_gy:g} Gy of it from a prior course ({record.prior_dose.description}),"
    ds.RTPlanDescription = (
        (f"{NOT_CONVERGED_LABEL} (solver status {segments.solver_status}): not a plan to deliver. " if marker else "")
        + f"specc plan of case {segments.case_id} with protocol {protocol.name} {protocol.version} "
        f"(sha256 {protocol.sha256[:12]}); {levels + ' in ' if levels else ''}{segments.fractions} fractions. "
        "MLC: the case's beamlet grid (virtual). Meterset weights are beamlet weights per fraction "
        "(the case's unit), not monitor units: the planning system computes the dose and sets them."
    )[:1024]
    if identity.structure_set_uid is not None:
        ds.RTPlanGeometry = "PATIENT"
        ds.ReferencedStructureSetSequence = [sop_reference(RTStructureSetStorage, identity.structure_set_uid)]
    else:
        # PATIENT geometry needs a structure set to refer to; a case from elsewhere has none.
        ds.RTPlanGeometry = "TREATMENT_DEVICE"
    ds.ApprovalStatus = "UNAPPROVED"


def _prescription_references(identity: DicomIdentity, record: PlanRecord | None) -> list[Dataset]:
    if record is None:
        return []
    references = []
    for number, level in enumerate(record.prescription.levels, start=1):
        item = Dataset()
        item.DoseReferenceNumber = number
        item.DoseReferenceUID = identity.derived_uid("dose reference", level.target, str(level.total_gy))
        item.DoseReferenceStructureType = "SITE"
        # This plan's own prescription: a composite's level less its prior course (docs/composite.md).
        item.DoseReferenceDescription = f"{level.target}: prescription{' (this course)' if record.prior_dose else ''}"[:64]
        item.DoseReferenceType = "TARGET"
        item.TargetPrescriptionDose = _ds(record.plan_dose_gy(level))
        references.append(item)
    return references


def _dose_point(identity: DicomIdentity, isocentre: tuple[float, float, float], number: int) -> Dataset:
    item = Dataset()
    item.DoseReferenceNumber = number
    item.DoseReferenceUID = identity.derived_uid("beam dose point", repr(tuple(isocentre)))
    item.DoseReferenceStructureType = "COORDINATES"
    item.DoseReferenceDescription = "beam dose point: isocentre"
    item.DoseReferencePointCoordinates = [_ds(value) for value in isocentre]
    item.DoseReferenceType = "TARGET"  # DICOM: a target "actual or virtual"; here the beam's dose point
    return item


def _beam(number: int, entry: BeamSegmentsEntry, sad_mm: float, machine: str, energy: PhotonEnergy | None) -> Dataset:
    pairs = len(entry.leaf_pair_centres_mm)
    order = np.argsort(entry.leaf_pair_centres_mm)
    centres = np.asarray(entry.leaf_pair_centres_mm)[order]
    width = entry.leaf_width_mm
    boundaries = np.concatenate([centres - width / 2, [centres[-1] + width / 2]])

    beam = Dataset()
    beam.BeamNumber = number
    beam.BeamName = f"B{entry.beam} G{entry.gantry_deg:g}"[:64]
    beam.BeamDescription = f"specc beam {entry.beam}, {entry.energy}"[:64]
    beam.BeamType = "STATIC"
    beam.RadiationType = "PHOTON"
    beam.TreatmentMachineName = machine
    beam.PrimaryDosimeterUnit = "MU"
    if energy is not None:  # unread: no fluence mode either, rather than a standard beam it may not be
        mode = Dataset()
        mode.FluenceMode = "STANDARD" if energy.fluence_mode_id is None else "NON_STANDARD"
        if energy.fluence_mode_id is not None:
            mode.FluenceModeID = energy.fluence_mode_id
        beam.PrimaryFluenceModeSequence = [mode]
    beam.SourceAxisDistance = _ds(sad_mm)
    beam.TreatmentDeliveryType = "TREATMENT"
    beam.NumberOfWedges = 0
    beam.NumberOfCompensators = 0
    beam.NumberOfBoli = 0
    beam.NumberOfBlocks = 0
    devices = []
    for kind, count in (("ASYMX", 1), ("ASYMY", 1), ("MLCX", pairs)):
        device = Dataset()
        device.RTBeamLimitingDeviceType = kind
        device.NumberOfLeafJawPairs = count
        if kind == "MLCX":
            device.LeafPositionBoundaries = [_ds(value) for value in boundaries]
        devices.append(device)
    beam.BeamLimitingDeviceSequence = devices

    weights = [segment.weight for segment in entry.segments]
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    beam.FinalCumulativeMetersetWeight = _ds(cumulative[-1])
    points = []
    for index, segment in enumerate(entry.segments):
        for step in (0, 1):
            point = Dataset()
            point.ControlPointIndex = 2 * index + step
            if point.ControlPointIndex == 0:
                _first_control_point(point, entry, energy)
            # Every control point: the leaves and jaws change within the beam (PS3.3 C.8.8.14.5).
            point.BeamLimitingDevicePositionSequence = _positions(segment.left_mm, segment.right_mm, order, boundaries)
            point.CumulativeMetersetWeight = _ds(cumulative[index + step])
            points.append(point)
    beam.NumberOfControlPoints = len(points)
    beam.ControlPointSequence = points
    return beam


def _first_control_point(point: Dataset, entry: BeamSegmentsEntry, energy: PhotonEnergy | None) -> None:
    if energy is not None:
        point.NominalBeamEnergy = _ds(energy.nominal_mv)
    point.GantryAngle = _ds(entry.gantry_deg % 360)
    point.GantryRotationDirection = "NONE"
    point.BeamLimitingDeviceAngle = _ds(entry.collimator_deg % 360)
    point.BeamLimitingDeviceRotationDirection = "NONE"
    point.PatientSupportAngle = _ds(entry.couch_deg % 360)
    point.PatientSupportRotationDirection = "NONE"
    point.TableTopEccentricAngle = _ds(0.0)
    point.TableTopEccentricRotationDirection = "NONE"
    point.IsocenterPosition = [_ds(value) for value in entry.isocenter_mm]


def _positions(left: list[float | None], right: list[float | None], order: np.ndarray, boundaries: np.ndarray) -> list[Dataset]:
    """Jaws around the opening and the MLC's 2N leaf tips (bank X1, then bank X2, pairs in +Y order); a
    closed pair's tips meet `CLOSED_PAIR_SETBACK_MM` behind the X1 jaw, under it."""
    left_tips = np.array([np.nan if left[pair] is None else left[pair] for pair in order], dtype=float)
    right_tips = np.array([np.nan if right[pair] is None else right[pair] for pair in order], dtype=float)
    open_pairs = np.flatnonzero(~np.isnan(left_tips))
    x1, x2 = float(np.nanmin(left_tips)), float(np.nanmax(right_tips))
    y1, y2 = float(boundaries[open_pairs[0]]), float(boundaries[open_pairs[-1] + 1])
    parked = x1 - CLOSED_PAIR_SETBACK_MM
    bank1 = np.where(np.isnan(left_tips), parked, left_tips)
    bank2 = np.where(np.isnan(right_tips), parked, right_tips)
    devices = []
    for kind, values in (("ASYMX", [x1, x2]), ("ASYMY", [y1, y2]), ("MLCX", [*bank1, *bank2])):
        device = Dataset()
        device.RTBeamLimitingDeviceType = kind
        device.LeafJawPositions = [_ds(value) for value in values]
        devices.append(device)
    return devices


def _beam_doses_at_isocentre(case: Case, fluence: np.ndarray, beam_ids: list[int]) -> dict[int, float]:
    """Each beam's dose per fraction (Gy) at its isocentre, trilinear between the eight voxel
    centres around it; a beam is left out where one of those voxels has no computed dose."""
    beams = {beam.id: beam for beam in case.beams}
    grid = case.grid
    doses = {}
    for beam_id in beam_ids:
        position = (np.asarray(beams[beam_id].isocenter_mm) - grid.origin_mm) / grid.spacing_mm
        lower = np.floor(position).astype(int)
        fraction = position - lower
        corners, weights = [], []
        for offset in np.ndindex(2, 2, 2):
            index = lower + offset
            weight = float(np.prod(np.where(offset, fraction, 1 - fraction)))
            if weight == 0:
                continue
            if np.any(index < 0) or np.any(index >= grid.shape):
                break
            corners.append(int(np.ravel_multi_index(tuple(index), grid.shape)))
            weights.append(weight)
        else:
            found, rows = row_lookup(case.voxel_indices, np.asarray(corners, dtype=np.int64))
            if found.all():
                columns = case.beamlets.of_beam(beam_id)
                corner_doses = case.influence[rows][:, columns] @ np.asarray(fluence, dtype=np.float64)[columns]
                doses[beam_id] = float(np.dot(weights, corner_doses))
    return doses


def _ds(value: float) -> str:
    """A DS value within its 16 characters."""
    text = f"{float(value):.10g}"
    return text if len(text) <= 16 else f"{float(value):.9e}"
