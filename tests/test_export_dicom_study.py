"""`specc export dicom`: a plan as a DICOM study, read back by specc's own DICOM readers and by `specc check`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

import specc
from evaluate_fakes import protocol, synthetic_case
from interop_fixtures import dicompyler_dvhcalc
from specc.case import CaseMetadata, Structure
from specc.case.importers.dicom import import_dicom
from specc.case.importers.dicom_ct import read_dicom_folder
from specc.case.importers.hu_density import hu_to_relative_electron_density
from specc.case.importers.rtstruct import rasterize, read_structure_set
from specc.cli import app
from specc.export import read_result
from specc.export.dicom_study import write_dicom_study
from specc.export.rtdose import NO_RT_PLAN_COMMENT, NO_RT_PLAN_NOTE, write_rtdose
from specc.export.rtplan import write_rtplan
from specc.export.segments import read_segments
from specc.pipeline import plan

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Target, dose: 61 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
]
GOALS = {"Target": ["D95% >= 57 Gy", "Max <= 66 Gy"], "Organ": ["Mean <= 30 Gy", "D2cc <= 50 Gy"]}
DELIVERY = "{technique: step_and_shoot, intensity_levels: 4}"


def _case():
    """The synthetic case with a structure that has a hole in every plane (the body around the target)."""
    case = synthetic_case()
    body, target = case.structures["Body"].mask, case.structures["Target"].mask
    shell = Structure(name="Shell", mask=body & ~target, color="#2ca02c")
    return dataclasses.replace(case, structures={**case.structures, "Shell": shell})


def _plan(folder: Path, case, delivery: str = DELIVERY):
    case.save(folder / "case.h5")
    written = protocol(GOALS, terms=TERMS, delivery=delivery)
    outcome = plan(written, folder / "case.h5", folder / "plan")
    assert outcome.succeeded
    return written, outcome


def _study(plan_folder: Path, out: Path):
    result = read_result(plan_folder / "result.h5")
    segments_path = plan_folder / "segments.json"
    segments = (read_segments(segments_path), segments_path) if segments_path.exists() else None
    return write_dicom_study(result, result.load_case(), out, segments)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    case = _case()
    written, outcome = _plan(folder, case)
    study = _study(folder / "plan", folder / "study")
    return folder, case, written, outcome, study


def test_structures_and_ct_read_back_as_the_case_has_them(exported):
    folder, case, _, _, study = exported
    dicom = read_dicom_folder(folder / "study")
    assert dicom.ct.shape == case.grid.shape
    np.testing.assert_allclose(dicom.ct.origin_mm, case.grid.origin_mm)
    np.testing.assert_allclose(dicom.ct.spacing_mm, case.grid.spacing_mm)
    # the case has densities only: HU from the calibration curve read backwards, which gives them back
    np.testing.assert_allclose(hu_to_relative_electron_density(dicom.ct.hu), case.density, atol=2e-3)
    assert any("read backwards" in note for note in study.notes)
    rois, without_volume = read_structure_set(dicom.structure_set, dicom.ct, "RS.dcm")
    assert without_volume == [] and sorted(roi.name for roi in rois) == sorted(case.structures)
    x, y, z = case.grid.axes_mm()
    for roi in rois:
        mask = rasterize(roi, x, y, z, case.grid.spacing_mm[2])
        expected = case.structures[roi.name].mask
        assert np.array_equal(mask, expected), f"{roi.name}: {np.count_nonzero(mask != expected)} voxels differ"
        assert roi.color == case.structures[roi.name].color
    assert all(case.structures["Body"].mask[[0, -1], :, :].any(axis=(1, 2)))  # the body reaches the grid's edge


@pytest.mark.parametrize("grid_mm", [5.0, 10.0])
def test_a_study_imported_back_keeps_every_structure_voxel(exported, grid_mm):
    """Export, then `specc import dicom`: the import grid's centres are the CT's (each of them at the
    CT's spacing, every other one at twice it), so each structure holds the case's voxels there and
    nothing on the centres beyond the case's grid."""
    folder, case, *_ = exported
    back = import_dicom(folder / "study", beams=[0], beamlet_mm=10, grid_mm=grid_mm).case
    index = [np.round((axis - origin) / spacing).astype(int)
             for axis, origin, spacing in zip(back.grid.axes_mm(), case.grid.origin_mm, case.grid.spacing_mm)]
    for axis in range(3):
        np.testing.assert_allclose(back.grid.axes_mm()[axis], case.grid.origin_mm[axis] + index[axis] * case.grid.spacing_mm[axis])
    inside = [(i >= 0) & (i < n) for i, n in zip(index, case.grid.shape)]
    for name, structure in case.structures.items():
        expected = np.zeros(back.grid.shape, dtype=bool)
        expected[np.ix_(*inside)] = structure.mask[np.ix_(*(i[ok] for i, ok in zip(index, inside)))]
        got = back.structures[name].mask
        assert np.array_equal(got, expected), f"{name}: {np.count_nonzero(got != expected)} voxels differ"
        if grid_mm == case.grid.spacing_mm[0]:
            assert back.structures[name].n_voxels == structure.n_voxels, name


def test_the_study_is_one_study_and_the_plan_refers_to_its_structure_set(exported):
    folder, *_ = exported
    files = {path.name: pydicom.dcmread(path, stop_before_pixels=True) for path in (folder / "study").iterdir()}
    assert {"RS.dcm", "RP.dcm", "RD.dcm", "CT_0001.dcm"} <= set(files)
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID"):
        assert len({str(ds[keyword].value) for ds in files.values()}) == 1, keyword
    rs, rp, rd = files["RS.dcm"], files["RP.dcm"], files["RD.dcm"]
    assert rp.RTPlanGeometry == "PATIENT"
    assert rp.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID == rs.SOPInstanceUID
    assert rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == rp.SOPInstanceUID
    slices = {ds.SOPInstanceUID for name, ds in files.items() if name.startswith("CT_")}
    referenced = {image.ReferencedSOPInstanceUID for roi in rs.ROIContourSequence for contour in roi.ContourSequence
                  for image in contour.ContourImageSequence}
    assert referenced <= slices
    types = {int(item.ReferencedROINumber): item.RTROIInterpretedType for item in rs.RTROIObservationsSequence}
    names = {int(item.ROINumber): item.ROIName for item in rs.StructureSetROISequence}
    # a planning system finds the patient outline by EXTERNAL; Organ's role (oar) is the protocol's, in result.h5
    assert {names[number]: kind for number, kind in types.items()} == {
        "Body": "EXTERNAL", "Target": "PTV", "Organ": "ORGAN", "Shell": ""}


def test_a_second_export_writes_the_same_objects_and_the_studys_rt_plan_is_not_the_standalone_one(exported, tmp_path):
    """Same plan, same options: every object, the RT Dose too, is the same SOP Instance in the
    same series, and the study keeps one date (none: it is the case's, shared by every plan on
    it). The study's RT Plan (PATIENT geometry, referring to RS.dcm) is other content than the
    standalone export's (TREATMENT_DEVICE): another SOP Instance UID, and so is its RT Dose."""
    folder, *_ = exported
    _study(folder / "plan", tmp_path / "again")

    def objects(study: Path) -> dict[str, pydicom.Dataset]:
        return {path.name: pydicom.dcmread(path, stop_before_pixels=True) for path in study.iterdir()}

    first, second = objects(folder / "study"), objects(tmp_path / "again")
    assert first.keys() == second.keys()
    for name in sorted(first):
        assert (first[name].SOPInstanceUID, first[name].SeriesInstanceUID) == (
            second[name].SOPInstanceUID, second[name].SeriesInstanceUID), name
        assert (folder / "study" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert {(str(ds.StudyDate), str(ds.StudyTime)) for ds in [*first.values(), *second.values()]} == {("", "")}
    series = [first[name].SeriesInstanceUID for name in ("CT_0001.dcm", "RS.dcm", "RP.dcm", "RD.dcm")]
    assert len(set(series)) == 4  # each object in its own series (the CT slices in one)
    result = read_result(folder / "plan" / "result.h5")
    segments_path = folder / "plan" / "segments.json"
    standalone = write_rtplan(result, read_segments(segments_path), segments_path, result.load_case(), tmp_path / "RP.dcm")
    assert standalone.uid != first["RP.dcm"].SOPInstanceUID
    assert pydicom.dcmread(standalone.path).SeriesInstanceUID != first["RP.dcm"].SeriesInstanceUID
    standalone_dose = pydicom.dcmread(write_rtdose(result, tmp_path / "RD.dcm", standalone.uid))
    assert standalone_dose.SOPInstanceUID != first["RD.dcm"].SOPInstanceUID
    assert first["RD.dcm"].ContentDate == first["RP.dcm"].ContentDate != ""  # dated by the plan's making, as its RT Plan


def test_specc_check_of_the_study_gives_the_plans_goal_values(exported, tmp_path):
    folder, _, written, outcome, _ = exported
    checked = specc.check_export(written, folder / "study", tmp_path / "check").record
    assert [goal.text for goal in checked.goals] == [goal.text for goal in outcome.record.goals]
    for goal, planned in zip(checked.goals, outcome.record.goals):
        assert goal.value == pytest.approx(planned.value, rel=1e-6, abs=1e-6), goal.text
        assert goal.status == planned.status
    assert checked.dose_source.plan["RTPlanLabel"] == "Test protocol"


def test_dicompyler_reads_the_structures_and_the_dose(exported):
    folder, case, _, outcome, _ = exported
    dvhcalc = dicompyler_dvhcalc()
    rs = pydicom.dcmread(folder / "study" / "RS.dcm")
    number = next(int(item.ROINumber) for item in rs.StructureSetROISequence if item.ROIName == "Organ")
    dvh = dvhcalc.get_dvh(str(folder / "study" / "RS.dcm"), str(folder / "study" / "RD.dcm"), number)
    planned = next(s for s in outcome.record.structures if s.structure == "Organ")
    assert dvh.mean == pytest.approx(planned.mean_gy, rel=0.03)


def test_a_fluence_plan_has_no_rt_plan_and_a_dicom_case_no_second_ct(tmp_path):
    _plan(tmp_path, _case(), delivery="")
    study = _study(tmp_path / "plan", tmp_path / "study")
    assert "RP.dcm" not in {path.name for path in study.paths}
    assert any("no RT Plan" in note for note in study.notes)
    rd = pydicom.dcmread(tmp_path / "study" / "RD.dcm")
    assert "ReferencedRTPlanSequence" not in rd and rd.DoseSummationType == "PLAN"
    # audit s18/a3 F4: a PLAN dose without the plan reference PS3.3 makes type 1C says so, in the file and at export
    assert NO_RT_PLAN_NOTE in study.notes and "type 1C" in NO_RT_PLAN_NOTE and "without a plan" in NO_RT_PLAN_NOTE
    # audit s18/r3 F7: said once, with how to get an RT Plan (two notes said 'an optimized fluence, not MLC segments')
    assert [note for note in study.notes if "optimized fluence" in note] == [NO_RT_PLAN_NOTE]
    assert "(a protocol with `delivery: {technique: step_and_shoot}` gives one)" in NO_RT_PLAN_NOTE
    assert rd.ImageComments.endswith(NO_RT_PLAN_COMMENT)

    extra = {"dicom.StudyInstanceUID": "1.2.3.4", "dicom.FrameOfReferenceUID": "1.2.3.5",
             "dicom.StructureSetSOPInstanceUID": "1.2.3.6", "dicom.PatientID": "P1"}
    linked = dataclasses.replace(_case(), metadata=CaseMetadata(source="tests", dose_engine="synthetic", extra=extra))
    (tmp_path / "linked").mkdir()
    _plan(tmp_path / "linked", linked)
    study = _study(tmp_path / "linked" / "plan", tmp_path / "linked-study")
    assert sorted(path.name for path in study.paths) == ["RD.dcm", "RP.dcm"]
    rp = pydicom.dcmread(tmp_path / "linked-study" / "RP.dcm")
    assert rp.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID == "1.2.3.6"


def test_cli_export_dicom(exported, tmp_path):
    folder, *_ = exported
    result = CliRunner().invoke(app, ["export", "dicom", str(folder / "plan"), "--out", str(tmp_path / "study")])
    said = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "CT slices CT_0001.dcm .. CT_0010.dcm" in said and "RS.dcm" in said and "UNAPPROVED" in said


def test_the_protocols_derived_structures_go_into_the_structure_set(tmp_path):
    from specc.protocol import parse_protocol_text

    text = "\n".join([
        "specc: 1", "name: Derived test", "site: test", "version: 1.0.0",
        "structures:",
        "  Target: {role: target}",
        "  Organ: {role: oar}",
        "  Body: {role: other}",
        "  PTV: {role: target, expression: 'crop(expand(Target, 5mm), Body)', color: '#ff00ff'}",
        "  Ring: {role: other, expression: 'crop(ring(PTV, 5mm, 15mm), Body)'}",
        "prescription: {fractions: 30, levels: [{target: PTV, dose: 60 Gy}]}",
        "goals: {PTV: ['D95% >= 57 Gy'], Organ: ['Mean <= 30 Gy']}",
        "optimization:",
        "  terms:",
        "    - {kind: quadratic_underdose, structure: PTV, dose: 60 Gy, weight: 10}",
        "    - {kind: quadratic_overdose, structure: Ring, dose: 40 Gy, weight: 1}",
    ]) + "\n"
    case = _case()
    case.save(tmp_path / "case.h5")
    outcome = plan(parse_protocol_text(text, "derived.yaml"), tmp_path / "case.h5", tmp_path / "plan")
    assert outcome.succeeded
    result = read_result(tmp_path / "plan" / "result.h5")
    assert [(d.name, d.role, d.color) for d in result.derived][0] == ("PTV", "target", "#ff00ff")
    _study(tmp_path / "plan", tmp_path / "study")
    dicom = read_dicom_folder(tmp_path / "study")
    rois, _ = read_structure_set(dicom.structure_set, dicom.ct, "RS.dcm")
    x, y, z = case.grid.axes_mm()
    for derived in result.derived:
        roi = next(roi for roi in rois if roi.name == derived.name)
        assert np.array_equal(rasterize(roi, x, y, z, case.grid.spacing_mm[2]), derived.mask), derived.name
    rs = pydicom.dcmread(tmp_path / "study" / "RS.dcm")
    kinds = {roi.ROIName: obs.RTROIInterpretedType for roi, obs in zip(rs.StructureSetROISequence, rs.RTROIObservationsSequence)}
    assert (kinds["PTV"], kinds["Ring"]) == ("PTV", "CONTROL")
    assert "derived by specc: crop(ring(PTV, 5mm, 15mm), Body)" in {roi.get("ROIDescription") for roi in rs.StructureSetROISequence}


def test_text_beyond_ascii_is_written_as_utf8_and_says_so_in_every_file(exported, tmp_path):
    """A source patient 'Müller^Jörg' (the RT Plan and RT Dose join its study) and a case id beyond
    ASCII (every file of a new study): each file declares ISO_IR 192 and holds the UTF-8 bytes."""
    folder, *_ = exported
    result = read_result(folder / "plan" / "result.h5")
    segments = (read_segments(folder / "plan" / "segments.json"), folder / "plan" / "segments.json")
    source = {"dicom.PatientName": "Müller^Jörg", "dicom.PatientID": "P1", "dicom.StudyInstanceUID": "1.2.3.4",
              "dicom.FrameOfReferenceUID": "1.2.3.5", "dicom.StructureSetSOPInstanceUID": "1.2.3.6"}
    linked = write_dicom_study(dataclasses.replace(result, metadata_extra=source), result.load_case(),
                               tmp_path / "linked", segments)
    new = write_dicom_study(dataclasses.replace(result, case_id="Jörg"), result.load_case(), tmp_path / "new", segments)
    for paths, name in ((linked.paths, "Müller^Jörg"), (new.paths, "Jörg")):
        assert {"RP.dcm", "RD.dcm"} <= {path.name for path in paths}
        for path in paths:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            assert ds.SpecificCharacterSet == "ISO_IR 192", path.name
            assert str(ds.PatientName) == name and name.encode("utf-8") in path.read_bytes(), path.name
    assert "SpecificCharacterSet" not in pydicom.dcmread(folder / "study" / "RD.dcm")  # ASCII needs none


def test_a_ct_written_from_densities_reads_them_back_through_the_table_the_case_was_imported_with() -> None:
    """Review s19/r3 L7: a case imported with its own --hu-table (recorded as import.hu_table since 7664ec8) was
    written back through the default curve, so its exported CT numbers were another scanner's."""
    from specc.case.importers.hu_density import HU_TABLE_KEY, hu_table_record, recorded_hu_table
    from specc.export.dicom_study import _ct_numbers

    table = ((-1000.0, 0.001), (0.0, 1.0), (1000.0, 2.0))  # not the default curve: 1.5 is 500 HU here
    case = synthetic_case()
    density = np.full(case.grid.shape, 1.5)
    imported = dataclasses.replace(case, density=density, ct_hu=None, metadata=dataclasses.replace(
        case.metadata, extra={HU_TABLE_KEY: hu_table_record(table)}))
    assert recorded_hu_table(imported.metadata.extra) == table
    notes: list[str] = []
    assert np.allclose(_ct_numbers(imported, notes), 500.0)
    assert "the calibration curve the case was imported with read backwards" in notes[0]
    default = dataclasses.replace(imported, metadata=dataclasses.replace(case.metadata, extra={}))
    assert not np.allclose(_ct_numbers(default, []), 500.0)  # the default curve says otherwise


def test_a_case_without_a_ct_is_refused_with_the_export_that_works_instead(tmp_path):
    """Audit s20/t3 F1: a matRad case imported with its dij keeps no CT, and `export dicom` of any plan on it said
    only 'neither CT numbers nor densities: there is no CT to write'; `export rtdose` works on the same plan."""
    _plan(tmp_path, dataclasses.replace(_case(), density=None, ct_hu=None), delivery="")
    runner = CliRunner()
    refused = runner.invoke(app, ["export", "dicom", str(tmp_path / "plan"), "--out", str(tmp_path / "study")])
    said = " ".join(refused.output.split())
    assert refused.exit_code == 1, refused.output
    assert "neither CT numbers nor densities" in said and "matRad workspace with its dij" in said
    assert "`specc export rtdose PLAN_FOLDER --out RD.dcm` writes the plan's RT Dose alone" in said
    assert not (tmp_path / "study").exists()  # written whole or not at all
    dose = runner.invoke(app, ["export", "rtdose", str(tmp_path / "plan"), "--out", str(tmp_path / "RD.dcm")])
    assert dose.exit_code == 0, dose.output
    assert pydicom.dcmread(tmp_path / "RD.dcm").Modality == "RTDOSE"
