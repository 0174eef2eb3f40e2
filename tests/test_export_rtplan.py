"""RT Plan export: the control points deliver the planned fluence, and the plan links to its RT Dose and study."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy.interpolate import RegularGridInterpolator
from typer.testing import CliRunner

from evaluate_fakes import protocol, synthetic_case
from interop_fixtures import dicompyler_dvhcalc
from specc.case import Beamlets, CaseMetadata
from specc.cli import app
from specc.export import ResultError, read_result
from specc.export.rtdose import write_rtdose
from specc.export.rtplan import (
    CLOSED_PAIR_SETBACK_MM, PhotonEnergy, covers_isocentre, photon_energy, rtplan_uid, write_rtplan,
)
from specc.export.segments import BeamSegmentsEntry, SegmentEntry, read_segments
from specc.pipeline import plan

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Target, dose: 61 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
]
GOALS = {"Target": ["D95% >= 57 Gy"], "Organ": ["Mean <= 30 Gy"]}
DELIVERY = "{technique: step_and_shoot, intensity_levels: 4}"
SOURCE_STUDY = {
    "dicom.PatientID": "P-007",
    "dicom.PatientName": "Doe^Jane",
    "dicom.StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1",
    "dicom.FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.2",
    "dicom.StructureSetSOPInstanceUID": "1.2.826.0.1.3680043.8.498.3",
}


def _planned(folder: Path, case, delivery: str = DELIVERY) -> Path:
    case.save(folder / "case.h5")
    outcome = plan(protocol(GOALS, terms=TERMS, delivery=delivery), folder / "case.h5", folder / "plan")
    assert outcome.succeeded
    return folder / "plan"


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    return _planned(tmp_path_factory.mktemp("rtplan"), synthetic_case())


@pytest.fixture(scope="module")
def forward(tmp_path_factory) -> Path:
    """Forward planned: each beam's aperture is the target's projection, over the isocentre (the sequenced
    plan's fluence on this toy case leaves the central axis blocked in every beam)."""
    return _planned(tmp_path_factory.mktemp("forward"), synthetic_case(), "{technique: forward}")


def _export(plan_folder: Path, name: str = "RP.dcm", machine: str = "", **changes) -> tuple[pydicom.Dataset, object]:
    result = read_result(plan_folder / "result.h5")
    segments = read_segments(plan_folder / "segments.json")
    if changes:
        segments = segments.model_copy(update=changes)
    exported = write_rtplan(result, segments, plan_folder / "segments.json", result.load_case(), plan_folder / name, machine)
    return pydicom.dcmread(exported.path), exported


def _fluence_from_rtplan(rp: pydicom.Dataset, case) -> np.ndarray:
    """Beamlet weights from the control points: a beamlet is open where its centre lies between its pair's leaves."""
    beamlets = case.beamlets
    fluence = np.zeros(case.n_beamlets)
    for beam in rp.BeamSequence:
        beam_id = int(beam.BeamDescription.split()[2].rstrip(","))
        members = np.flatnonzero(beamlets.beam_id == beam_id)
        boundaries = np.asarray(beam.BeamLimitingDeviceSequence[2].LeafPositionBoundaries, dtype=float)
        pair = np.searchsorted(boundaries, beamlets.y_mm[members]) - 1
        points = beam.ControlPointSequence
        for start, end in zip(points[::2], points[1::2]):
            devices = {d.RTBeamLimitingDeviceType: np.asarray(d.LeafJawPositions, dtype=float)
                       for d in start.BeamLimitingDevicePositionSequence}
            bank1, bank2 = np.split(devices["MLCX"], 2)
            x = beamlets.x_mm[members]
            y = beamlets.y_mm[members]
            inside_jaws = (x > devices["ASYMX"][0]) & (x < devices["ASYMX"][1])
            inside_jaws &= (y > devices["ASYMY"][0]) & (y < devices["ASYMY"][1])
            open_ = (x > bank1[pair]) & (x < bank2[pair]) & inside_jaws
            fluence[members[open_]] += float(end.CumulativeMetersetWeight) - float(start.CumulativeMetersetWeight)
    return fluence


def test_control_points_deliver_the_planned_fluence(planned: Path) -> None:
    rp, _ = _export(planned)
    result = read_result(planned / "result.h5")
    case = result.load_case()
    assert result.fluence.max() > 0
    np.testing.assert_allclose(_fluence_from_rtplan(rp, case), result.fluence, rtol=1e-8, atol=1e-12)
    for beam in rp.BeamSequence:
        points = beam.ControlPointSequence
        assert int(beam.NumberOfControlPoints) == len(points) and len(points) % 2 == 0
        assert float(points[-1].CumulativeMetersetWeight) == pytest.approx(float(beam.FinalCumulativeMetersetWeight))
        weights = [float(point.CumulativeMetersetWeight) for point in points]
        assert weights[0] == 0 and np.all(np.diff(weights) >= 0)
        # PS3.3 C.8.8.14.5: what changes at any control point of a beam is given at all of them; the
        # closing control point of a segment repeats its leaves and jaws, which stand still while the beam is on
        for start, end in zip(points[::2], points[1::2]):
            assert [list(d.LeafJawPositions) for d in end.BeamLimitingDevicePositionSequence] == [
                list(d.LeafJawPositions) for d in start.BeamLimitingDevicePositionSequence
            ]
        mlc = beam.BeamLimitingDeviceSequence[2]
        assert mlc.RTBeamLimitingDeviceType == "MLCX"
        assert len(mlc.LeafPositionBoundaries) == int(mlc.NumberOfLeafJawPairs) + 1
        np.testing.assert_allclose(np.diff(np.asarray(mlc.LeafPositionBoundaries, dtype=float)), 5.0)
        for point in points[::2]:
            bank1, bank2 = np.split(np.asarray(point.BeamLimitingDevicePositionSequence[2].LeafJawPositions, dtype=float), 2)
            assert np.all(bank1 <= bank2)


def test_closed_leaf_pairs_meet_behind_the_x1_jaw_and_open_ones_lie_between_the_jaws(planned: Path) -> None:
    """Audit s18/a3 F2: a closed pair inside the Y jaws' opening met at the X1 jaw's edge, in the penumbra."""
    rp, _ = _export(planned)
    segments = read_segments(planned / "segments.json")
    closed_inside_y = 0
    for beam, entry in zip(rp.BeamSequence, segments.beams):
        boundaries = np.asarray(beam.BeamLimitingDeviceSequence[2].LeafPositionBoundaries, dtype=float)
        grid_x1 = min(tip for segment in entry.segments for tip in segment.left_mm if tip is not None)
        for point in beam.ControlPointSequence:
            devices = {d.RTBeamLimitingDeviceType: np.asarray(d.LeafJawPositions, dtype=float)
                       for d in point.BeamLimitingDevicePositionSequence}
            (x1, x2), (y1, y2) = devices["ASYMX"], devices["ASYMY"]
            bank1, bank2 = np.split(devices["MLCX"], 2)
            closed = bank1 == bank2
            assert np.all(bank1[closed] == x1 - CLOSED_PAIR_SETBACK_MM) and CLOSED_PAIR_SETBACK_MM > 0
            assert np.all(bank1[~closed] >= x1) and np.all(bank2[~closed] <= x2) and np.all(bank1[~closed] < bank2[~closed])
            assert bank1.min() >= grid_x1 - CLOSED_PAIR_SETBACK_MM  # the leaf travel docs/formats/rtplan.md declares
            inside_y = (boundaries[:-1] >= y1) & (boundaries[1:] <= y2)
            closed_inside_y += int(np.count_nonzero(closed & inside_y))
    assert closed_inside_y > 0  # the plan has closed pairs between open ones: what the rule is about


def test_beam_doses_add_up_to_the_plan_dose_at_the_isocentre(forward: Path) -> None:
    rp, exported = _export(forward)
    result = read_result(forward / "result.h5")
    assert exported.notes == []
    points = [item for item in rp.DoseReferenceSequence if item.DoseReferenceStructureType == "COORDINATES"]
    assert len(points) == 1  # the three beams share one isocentre
    iso = np.asarray(points[0].DoseReferencePointCoordinates, dtype=float)
    per_fraction = RegularGridInterpolator(result.grid.axes_mm(), result.dose_gy / result.fractions)(iso)[0]
    referenced = rp.FractionGroupSequence[0].ReferencedBeamSequence
    assert {item.ReferencedDoseReferenceUID for item in referenced} == {points[0].DoseReferenceUID}
    assert sum(float(item.BeamDose) for item in referenced) == pytest.approx(per_fraction, rel=1e-5)
    assert all(item.BeamDoseMeaning == "BEAM_LEVEL" and "BeamMeterset" not in item for item in referenced)


def test_plan_attributes_and_the_rt_dose_that_references_it(planned: Path) -> None:
    rp, exported = _export(planned)
    again, _ = _export(planned, "RP-again.dcm")
    result = read_result(planned / "result.h5")
    rd = pydicom.dcmread(write_rtdose(result, planned / "RD.dcm", rtplan_uid(result, planned / "segments.json")))
    assert rp.SOPInstanceUID == again.SOPInstanceUID == exported.uid
    assert rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == rp.SOPInstanceUID
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID"):
        assert rd[keyword].value == rp[keyword].value
    assert rp.SeriesInstanceUID != rd.SeriesInstanceUID
    assert (rp.Modality, rp.ApprovalStatus, rp.RTPlanGeometry) == ("RTPLAN", "UNAPPROVED", "TREATMENT_DEVICE")
    assert "ReferencedStructureSetSequence" not in rp
    assert rp.RTPlanLabel == "Test protocol" and "NOT CONVERGED" not in rp.RTPlanDescription
    assert "not monitor units" in rp.RTPlanDescription
    assert int(rp.FractionGroupSequence[0].NumberOfFractionsPlanned) == 30
    assert int(rp.FractionGroupSequence[0].NumberOfBeams) == len(rp.BeamSequence) == 3
    assert rp.PatientSetupSequence[0].PatientPosition == "HFS"
    first = rp.BeamSequence[1].ControlPointSequence[0]
    assert (float(first.GantryAngle), float(first.NominalBeamEnergy)) == (120.0, 6.0)
    prescription = rp.DoseReferenceSequence[0]
    assert (prescription.DoseReferenceType, float(prescription.TargetPrescriptionDose)) == ("TARGET", 60.0)
    # dicompyler-core, a reader other tools use, reads the plan and its prescription in cGy
    dicompyler_dvhcalc()
    from dicompylercore import dicomparser

    assert dicomparser.DicomParser(str(planned / "RP.dcm")).GetPlan()["rxdose"] == pytest.approx(6000)


def test_one_plan_exported_with_the_same_options_is_one_object_and_other_content_another(planned: Path) -> None:
    """A SOP Instance UID names one content in one series: the same export twice writes the same
    file; a machine name set at a second export (other content) gets another SOP Instance and
    series, which an RT Dose can reference (`rtplan_uid` with the machine)."""
    first, exported = _export(planned, "RP-1.dcm")
    again, _ = _export(planned, "RP-2.dcm")
    named, named_export = _export(planned, "RP-TB1.dcm", machine="TB1")
    assert (planned / "RP-1.dcm").read_bytes() == (planned / "RP-2.dcm").read_bytes()
    assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (again.SOPInstanceUID, again.SeriesInstanceUID)
    assert named.SOPInstanceUID != first.SOPInstanceUID and named.SeriesInstanceUID != first.SeriesInstanceUID
    assert named.StudyInstanceUID == first.StudyInstanceUID  # the case's study either way
    result = read_result(planned / "result.h5")
    assert rtplan_uid(result, planned / "segments.json") == exported.uid
    assert rtplan_uid(result, planned / "segments.json", "TB1") == named_export.uid == named.SOPInstanceUID
    # dated by the plan's making (plan.json `created`, UTC), not by the export's clock
    created = datetime.fromisoformat(result.record.created).astimezone(timezone.utc)
    assert (first.RTPlanDate, first.RTPlanTime) == (created.strftime("%Y%m%d"), created.strftime("%H%M%S"))
    assert (first.ContentDate, first.ContentTime) == (first.RTPlanDate, first.RTPlanTime)
    assert first.TimezoneOffsetFromUTC == "+0000"
    assert (first.StudyDate, first.StudyTime) == ("", "")  # the case's study, shared by every plan on it, has no date


@pytest.mark.parametrize(
    ("label", "energy"),
    [
        ("6 MV", PhotonEnergy(6.0, None)), ("6MV", PhotonEnergy(6.0, None)), ("6X", PhotonEnergy(6.0, None)),
        ("6 X", PhotonEnergy(6.0, None)), ("15 mv", PhotonEnergy(15.0, None)), ("10 MV FFF", PhotonEnergy(10.0, "FFF")),
        ("6FFF", PhotonEnergy(6.0, "FFF")), ("6X-FFF", PhotonEnergy(6.0, "FFF")), ("10X FFF", PhotonEnergy(10.0, "FFF")),
        ("6 MV SRS", PhotonEnergy(6.0, "SRS")), ("6x-srs", PhotonEnergy(6.0, "SRS")),
        ("unknown", None), ("6", None), ("6 MeV", None), ("6 MV FFF boost", None), ("", None),
    ],
)
def test_photon_energy_labels_are_read_with_their_fluence_mode(label: str, energy: PhotonEnergy | None) -> None:
    assert photon_energy(label) == energy


def test_fff_and_srs_beams_say_their_fluence_mode_and_an_unread_energy_is_a_note(tmp_path: Path) -> None:
    """A "6 MV FFF" beam exported as a plain 6 MV one reads as a flattened beam: the fluence mode
    goes with the energy (beam level, Primary Fluence Mode Sequence). A label specc cannot read
    gives no energy and no fluence mode, and the command names the beam and the label."""
    case = synthetic_case()
    labels = {1: "6 MV FFF", 2: "6X", 3: "unknown"}
    case = dataclasses.replace(case, beams=[dataclasses.replace(beam, energy=labels[beam.id]) for beam in case.beams])
    folder = _planned(tmp_path, case)
    written = CliRunner().invoke(app, ["export", "rtplan", str(folder), "--out", str(tmp_path / "RP.dcm")])
    assert written.exit_code == 0, written.output
    said = " ".join(written.output.split())
    assert "note: beam 3: energy 'unknown' is not a photon energy specc reads" in said
    assert "beam 1" not in said and "beam 2" not in said
    beams = {int(beam.BeamDescription.split()[2].rstrip(",")): beam for beam in pydicom.dcmread(tmp_path / "RP.dcm").BeamSequence}
    fff, plain, unread = beams[1], beams[2], beams[3]
    assert float(fff.ControlPointSequence[0].NominalBeamEnergy) == 6.0
    assert [(m.FluenceMode, m.FluenceModeID) for m in fff.PrimaryFluenceModeSequence] == [("NON_STANDARD", "FFF")]
    assert float(plain.ControlPointSequence[0].NominalBeamEnergy) == 6.0
    assert [m.FluenceMode for m in plain.PrimaryFluenceModeSequence] == ["STANDARD"]
    assert "FluenceModeID" not in plain.PrimaryFluenceModeSequence[0]
    assert "NominalBeamEnergy" not in unread.ControlPointSequence[0] and "PrimaryFluenceModeSequence" not in unread


def test_a_plan_that_did_not_converge_says_so(planned: Path) -> None:
    """A plan whose result.h5 and segments.json both say it did not converge (segments.json alone saying so is an
    edited file, which `PlanResult.check_segments` refuses)."""
    result = read_result(planned / "result.h5")
    solver = result.record.solver.model_copy(update={"status": "optimal_inaccurate"})
    record = result.record.model_copy(update={"converged": False, "solver": solver})
    result = dataclasses.replace(result, record_json=record.model_dump_json(), stored_converged=False,
                                 stored_solver_status="optimal_inaccurate")
    segments = read_segments(planned / "segments.json").model_copy(
        update={"converged": False, "solver_status": "optimal_inaccurate"})
    exported = write_rtplan(result, segments, planned / "segments.json", result.load_case(), planned / "RP-nc.dcm", "")
    rp = pydicom.dcmread(exported.path)
    assert rp.RTPlanLabel.startswith("NC ")
    assert rp.RTPlanName.startswith("NOT CONVERGED")
    assert rp.RTPlanDescription.startswith("NOT CONVERGED (solver status optimal_inaccurate)")


def test_segments_of_another_plan_are_refused(planned: Path) -> None:
    with pytest.raises(ResultError, match="is not from the plan"):
        _export(planned, "RP-other.dcm", case_sha256="0" * 64)
    with pytest.raises(ResultError, match="2 fractions"):
        _export(planned, "RP-other.dcm", fractions=2)


def test_a_plan_on_a_dicom_case_joins_the_source_study(tmp_path: Path) -> None:
    case = synthetic_case()
    case = dataclasses.replace(case, metadata=CaseMetadata(source="tests", dose_engine="synthetic", extra=SOURCE_STUDY))
    rp, _ = _export(_planned(tmp_path, case))
    assert rp.PatientID == "P-007" and rp.StudyInstanceUID == SOURCE_STUDY["dicom.StudyInstanceUID"]
    assert rp.FrameOfReferenceUID == SOURCE_STUDY["dicom.FrameOfReferenceUID"]
    assert rp.RTPlanGeometry == "PATIENT"
    assert rp.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID == SOURCE_STUDY["dicom.StructureSetSOPInstanceUID"]


def test_a_ct_not_head_first_supine_is_refused(tmp_path: Path) -> None:
    extra = {**SOURCE_STUDY, "dicom.PatientPosition": "FFS"}
    case = dataclasses.replace(synthetic_case(), metadata=CaseMetadata(source="tests", dose_engine="synthetic", extra=extra))
    with pytest.raises(ResultError, match="patient position is FFS"):
        _export(_planned(tmp_path, case))


def test_no_beam_dose_where_the_isocentre_has_no_computed_dose(tmp_path: Path) -> None:
    case = synthetic_case()
    outside = [dataclasses.replace(beam, isocenter_mm=(70.0, 0.0, 0.0)) for beam in case.beams]  # beyond the body
    rp, exported = _export(_planned(tmp_path, dataclasses.replace(case, beams=outside)))
    assert len(exported.notes) == 3 and "Beam Dose omitted" in exported.notes[0]
    assert all("BeamDose" not in item for item in rp.FractionGroupSequence[0].ReferencedBeamSequence)
    assert [item.DoseReferenceStructureType for item in rp.DoseReferenceSequence] == ["SITE"]


def _beam_of(*segments: tuple[list[float | None], list[float | None]]) -> BeamSegmentsEntry:
    """A beam of two 5 mm leaf pairs centred at Y_b -2.5 and 2.5 mm (the axis on their boundary)."""
    return BeamSegmentsEntry(
        beam=1, gantry_deg=0, couch_deg=0, collimator_deg=0, isocenter_mm=(0, 0, 0), energy="6 MV", leaf_width_mm=5,
        leaf_pair_centres_mm=[-2.5, 2.5],
        segments=[SegmentEntry(weight=1, area_cm2=1, quanta_as_sequenced=1, left_mm=left, right_mm=right)
                  for left, right in segments],
    )


@pytest.mark.parametrize("segments, covers", [
    ([([-5.0, None], [5.0, None])], True),  # the axis inside the lower pair's gap, on its edge in Y
    ([([None, 0.0], [None, 10.0])], True),  # on the upper pair's X1 tip: a field edge
    ([([5.0, None], [15.0, None]), ([None, -20.0], [None, -0.5])], False),  # beside it in every segment
    ([([None, None], [None, None])], False),
])
def test_a_beam_covers_its_isocentre_where_a_segment_opens_over_the_central_axis(segments, covers) -> None:
    assert covers_isocentre(_beam_of(*segments)) is covers


def test_a_beam_whose_segments_all_leave_the_isocentre_blocked_has_no_beam_dose_and_a_note(tmp_path: Path) -> None:
    """Audit s18/a3 F3: such a beam had a BeamDose of 0 (or a few mGy of scatter) beside its meterset."""
    case = synthetic_case()
    b = case.beamlets  # beam 1's grid moved 20 mm along X_b: the target's projection opens it beside the axis
    off_axis = Beamlets(b.beam_id, np.where(b.beam_id == 1, b.x_mm + 20.0, b.x_mm), b.y_mm, b.width_mm, b.height_mm)
    rp, exported = _export(_planned(tmp_path, dataclasses.replace(case, beamlets=off_axis), "{technique: forward}"))
    doses = {int(item.ReferencedBeamNumber): item.get("BeamDose") for item in rp.FractionGroupSequence[0].ReferencedBeamSequence}
    numbers = {int(beam.BeamDescription.split()[2].rstrip(",")): int(beam.BeamNumber) for beam in rp.BeamSequence}
    assert 1 in numbers and len(numbers) > 1
    assert doses[numbers[1]] is None and all(doses[number] is not None for beam, number in numbers.items() if beam != 1)
    assert float(rp.BeamSequence[numbers[1] - 1].FinalCumulativeMetersetWeight) > 0
    assert len(exported.notes) == 1
    assert exported.notes[0].startswith("beam 1: no segment opens over its isocentre (the beam dose point)")
    assert "Beam Dose omitted" in exported.notes[0]
    # audit s18/r3 F8: the dose there is said as measured, not called scatter
    assert re.search(r": the beam's dose computed there, [\d.e-]+ Gy per fraction, comes from beamlets not open over "
                     "the point, so it cannot set monitor units: Beam Dose omitted", exported.notes[0]), exported.notes[0]
    assert "scatter" not in exported.notes[0]


def test_cli_exports_the_plan_and_says_what_it_is(planned: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    written = runner.invoke(app, ["export", "rtplan", str(planned), "--out", str(tmp_path / "RP.dcm"), "--machine", "TB1"])
    assert written.exit_code == 0, written.output
    said = " ".join(written.output.split())
    assert "UNAPPROVED" in said and "not monitor units" in said
    assert pydicom.dcmread(tmp_path / "RP.dcm").BeamSequence[0].TreatmentMachineName == "TB1"

    # a standalone RT Dose references the RT Plan exported with the same --machine, and says which
    rp = pydicom.dcmread(tmp_path / "RP.dcm")
    named = runner.invoke(app, ["export", "rtdose", str(planned), "--out", str(tmp_path / "RD-TB1.dcm"), "--machine", "TB1"])
    assert named.exit_code == 0, named.output
    said = " ".join(named.output.split())
    assert f"it references the RT Plan {rp.SOPInstanceUID}, the one `specc export rtplan --machine TB1` writes" in said
    referenced = pydicom.dcmread(tmp_path / "RD-TB1.dcm").ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID
    assert referenced == rp.SOPInstanceUID
    dose = runner.invoke(app, ["export", "rtdose", str(planned / "result.h5"), "--out", str(tmp_path / "RD.dcm")])
    unnamed = rtplan_uid(read_result(planned / "result.h5"), planned / "segments.json")
    said = " ".join(dose.output.split())
    assert dose.exit_code == 0 and f"references the RT Plan {unnamed}, the one `specc export rtplan` writes" in said
    assert "give the same --machine here" in said and unnamed != rp.SOPInstanceUID
    misplaced = runner.invoke(app, ["export", "dvh", str(planned), "--out", str(tmp_path / "dvh"), "--machine", "TB1"])
    assert misplaced.exit_code == 1 and "--machine is for rtdose, rtplan and dicom only" in " ".join(misplaced.output.split())

    fluence_only = tmp_path / "fluence"
    fluence_only.mkdir()
    shutil.copy(planned / "result.h5", fluence_only / "result.h5")
    missing = runner.invoke(app, ["export", "rtplan", str(fluence_only), "--out", str(tmp_path / "y.dcm")])
    assert missing.exit_code == 1 and "segments.json" in missing.output and "step_and_shoot" in " ".join(missing.output.split())
    no_plan = runner.invoke(app, ["export", "rtdose", str(fluence_only), "--out", str(tmp_path / "z.dcm"), "--machine", "TB1"])
    assert no_plan.exit_code == 1 and "has no segments.json beside it" in " ".join(no_plan.output.split())
    assert not (tmp_path / "z.dcm").exists()


def test_a_broken_segments_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "segments.json"
    path.write_text('{"format": "specc-segments", "version": 1, "case_id": "x"}')
    with pytest.raises(ResultError, match=r"segments.json: not a specc segments file: case_sha256: Field required"):
        read_segments(path)


def test_a_segments_file_that_is_not_utf8_is_named_not_a_traceback(tmp_path: Path) -> None:
    """read_segments parses the bytes read (as approve reads each plan file once): one not UTF-8 text (a Latin-1
    case name) is a ResultError naming the file, as a broken field is, not a UnicodeDecodeError's traceback."""
    path = tmp_path / "segments.json"
    path.write_bytes('{"format": "specc-segments", "version": 1, "case_id": "Müller"}'.encode("latin-1"))
    with pytest.raises(ResultError, match=rf"^{re.escape(str(path))}: not a specc segments file: .*Invalid JSON"):
        read_segments(path)
    with pytest.raises(ResultError, match=rf"^{re.escape(str(path))}: not a specc segments file: .*Invalid JSON"):
        read_segments(path, path.read_bytes())


def test_a_plan_without_its_case_path_says_how_to_get_the_case(tmp_path: Path) -> None:
    outcome = plan(protocol(GOALS, terms=TERMS, delivery=DELIVERY), synthetic_case(), tmp_path / "plan")
    assert outcome.succeeded
    exported = CliRunner().invoke(app, ["export", "rtplan", str(tmp_path / "plan"), "--out", str(tmp_path / "RP.dcm")])
    assert exported.exit_code == 1 and "pass it with --case" in " ".join(exported.output.split())

    result = read_result(tmp_path / "plan" / "result.h5")
    record = json.loads(result.record_json)
    record["case"].update(source="phantom:c-shape", n_beams=9)
    record["case"]["grid"]["spacing_mm"] = [5.0, 5.0, 5.0]
    phantom = dataclasses.replace(result, record_json=json.dumps(record))
    with pytest.raises(ResultError, match=r"specc phantom c-shape --grid 5 --beams 9 --out c-shape.h5`"):
        phantom.load_case()


def test_segments_that_no_mlc_can_form_are_named(planned: Path, tmp_path: Path) -> None:
    document = json.loads((planned / "segments.json").read_text())
    segment = document["beams"][0]["segments"][0]
    segment["left_mm"] = [None] * len(segment["left_mm"])
    segment["right_mm"] = [None] * len(segment["right_mm"])
    path = tmp_path / "segments.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ResultError, match=r"segments.json: beam \d+ segment 1: every leaf pair is closed"):
        read_segments(path)
