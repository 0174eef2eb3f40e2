"""`specc check`: a plan made elsewhere (its RT Dose) judged against a protocol, nothing optimized."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from interop_fixtures import (
    FRAME_OF_REFERENCE,
    CtGeometry,
    body_hu,
    dicompyler_dvhcalc,
    standard_rois,
    write_c_shape_study,
    write_ct_series,
    write_rtdose_file,
    write_rtplan,
    write_rtstruct,
)
from typer.testing import CliRunner

import specc
from specc.case.importers.dicom import import_dicom
from specc.cli import app
from specc.errors import SpeccError
from specc.evaluate.dvh import DVH
from specc.export import read_result
from specc.export.rtdose import write_rtdose

REPO = Path(__file__).resolve().parents[1]

PROTOCOL = """\
specc: 1
name: Check test
site: test
version: 1.0.0
structures:
  Target: {role: target}
  Cord: {role: oar, aliases: [Spinal Cord]}
  Body: {role: other, aliases: [External]}
  Ring: {role: other, expression: "Target - Cord"}
  Halo: {role: other, expression: "ring(Target, 3mm, 15mm)"}
  Shell: {role: other, expression: "Body - Target"}
prescription:
  fractions: 30
  levels:
    - {target: Target, dose: 60 Gy}
goals:
  Target:
    - "D95% >= 57 Gy"
    - "Max <= 66 Gy"
  Cord:
    - "Max <= 45 Gy"
  Ring:
    - "Mean <= 50 Gy"
  Shell:
    - "D2cc <= 60 Gy"
  Halo:
    - "Mean <= 40 Gy"
"""

# The dose grid: x -40..40, y -40..37.5 (2.5 mm), z on CT slices 1..10 of 12: the body and the
# cord run over all 12 slices, so part of each has no dose; the target (slices 2..9) is inside.
DOSE_ORIGIN = (-40.0, -40.0, -12.0)
DOSE_SPACING = (2.5, 2.5, 3.0)
DOSE_SHAPE = (33, 32, 10)


def target_dose(origin=DOSE_ORIGIN, spacing=DOSE_SPACING, shape=DOSE_SHAPE) -> np.ndarray:
    """62 Gy on the target's axis falling off with the distance from it (a smooth, plan-like dose)."""
    x, y, _ = (o + s * np.arange(n) for o, s, n in zip(origin, spacing, shape))
    r = np.hypot(x[:, None] - 5.0, y[None, :] - 3.0)
    plane = 62.0 / (1.0 + np.exp((r - 14.0) / 2.5))
    return np.repeat(plane[:, :, None], shape[2], axis=2)


@pytest.fixture
def export(tmp_path) -> Path:
    """A plan export as a TPS writes it: CT, RTSTRUCT, RT Dose (plan sum) and the RT Plan it references."""
    geometry = CtGeometry()
    folder = tmp_path / "export"
    write_ct_series(folder, geometry, body_hu(geometry))
    write_rtstruct(folder / "RS.dcm", geometry, standard_rois(geometry))
    plan_uid = write_rtplan(folder / "RP.dcm", fractions=30)
    write_rtdose_file(folder / "RD.dcm", target_dose(), DOSE_ORIGIN, DOSE_SPACING, plan_uid=plan_uid,
                      frame_uid=FRAME_OF_REFERENCE)
    return folder


@pytest.fixture
def protocol_file(tmp_path) -> Path:
    path = tmp_path / "check.yaml"
    path.write_text(PROTOCOL)
    return path


def goals_by_text(record) -> dict[tuple[str, str], object]:
    return {(goal.structure, goal.text): goal for goal in record.goals}


def test_an_export_is_judged_on_its_own_dose_grid_and_agrees_with_dicompyler(export, protocol_file, tmp_path):
    outcome = specc.check_export(protocol_file, export, tmp_path / "out")
    record = outcome.record
    goals = goals_by_text(record)
    target = goals[("Target", "D95% >= 57 Gy")]
    assert target.status in ("pass", "fail") and target.value is not None
    assert record.solver is None and record.converged and record.normalization is None
    assert record.case.grid.shape == DOSE_SHAPE
    source = record.dose_source
    assert source.file == str(export / "RD.dcm") and not source.interpolated
    assert source.plan["RTPlanLabel"] == "Plan1" and source.plan["ApprovalStatus"] == "APPROVED"

    # The same RTSTRUCT and RT Dose through dicompyler-core (an independent DVH calculator):
    # mean and maximum of the target agree within 1% (its DVH uses its own voxel rule).
    theirs = dicompyler_dvhcalc().get_dvh(str(export / "RS.dcm"), str(export / "RD.dcm"), 2)
    ours = next(s for s in record.structures if s.structure == "Target")
    assert abs(theirs.mean - ours.mean_gy) <= 0.01 * ours.mean_gy
    assert abs(theirs.max - ours.max_gy) <= 0.01 * ours.max_gy


def test_goals_on_structures_reaching_beyond_the_dose_grid_are_not_evaluated_and_say_why(export, protocol_file, tmp_path):
    record = specc.check_export(protocol_file, export, tmp_path / "out").record
    goals = goals_by_text(record)
    cord = goals[("Cord", "Max <= 45 Gy")]
    assert cord.status == "not_evaluated" and cord.value is None
    assert "outside the RT Dose grid" in cord.note
    # Derived from an incomplete structure: incomplete too; from whole ones only: judged.
    assert goals[("Shell", "D2cc <= 60 Gy")].status == "not_evaluated"
    assert "built from Body" in goals[("Shell", "D2cc <= 60 Gy")].note
    # Inside a whole structure by construction, less one that is cut (the cord): judged.
    assert goals[("Ring", "Mean <= 50 Gy")].status != "not_evaluated"
    # A 15 mm ring around the target reaches beyond the dose grid's first and last planes (3 mm apart).
    assert "reaches the edge of the dose grid" in goals[("Halo", "Mean <= 40 Gy")].note
    assert set(record.dose_source.incomplete) >= {"Cord", "Body", "Shell"}
    # Body over 12 CT slices, the dose grid over 10 of them: 2 of 12 planes have no dose.
    assert "16.7%" in record.dose_source.incomplete["Body"]


def test_an_rtstruct_roi_named_like_a_derived_structure_is_replaced_and_the_note_says_so(export, protocol_file, tmp_path):
    """The protocol's Shell is `Body - Target`; the RTSTRUCT's own Shell (a planner's ring) is another
    volume. Goals on Shell are judged on the protocol's, and the terminal and plan.json say so."""
    from interop_fixtures import CircleRoi

    geometry = CtGeometry()
    z = geometry.z()
    write_rtstruct(export / "RS.dcm", geometry, [*standard_rois(geometry), CircleRoi("Shell", 5.0, 3.0, 20.0, z[2], z[-3])])
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["check", str(protocol_file), str(export), "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "plan.json").read_text())
    note = next(note for note in saved["notes"] if note.startswith("Shell: the case has its own structure 'Shell'"))
    assert "the protocol derives Shell as `Body - Target`" in note and note.endswith("and the protocol's expression is used")
    volumes = [float(cc) for cc in re.findall(r"\(([\d.]+) cc", note)]
    shell = next(s for s in saved["structures"] if s["structure"] == "Shell")
    assert len(volumes) == 2 and volumes[1] == pytest.approx(shell["volume_cc"], abs=0.05) and volumes[0] < volumes[1]
    assert "its own structure 'Shell'" in " ".join(result.output.split())


def test_the_report_is_marked_as_a_check_of_an_external_dose(export, protocol_file, tmp_path):
    outcome = specc.check_export(protocol_file, export, tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Plan check: Check test" in html and 'id="external-dose"' in html
    assert 'id="dose-source"' in html and outcome.record.dose_source.sha256 in html
    assert 'id="optimization"' not in html and 'id="fluence"' not in html
    assert "NOT EVALUATED" in html
    saved = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert saved["solver"] is None and saved["dose_source"]["summation"] == "PLAN"


def test_a_plan_of_other_fractions_than_the_protocol_is_refused(export, protocol_file, tmp_path):
    (export / "RP.dcm").unlink()
    plan_uid = write_rtplan(export / "RP.dcm", fractions=28)
    write_rtdose_file(export / "RD.dcm", target_dose(), DOSE_ORIGIN, DOSE_SPACING, plan_uid=plan_uid)
    with pytest.raises(SpeccError, match="delivers 28 fractions, the protocol prescribes 30"):
        specc.check_export(protocol_file, export, tmp_path / "out")
    assert not (tmp_path / "out" / "report.html").exists()


def test_a_session_dose_is_checked_as_the_total_of_the_protocols_fractions(export, protocol_file, tmp_path):
    whole = specc.check_export(protocol_file, export, tmp_path / "plan-sum").record
    write_rtdose_file(export / "RD.dcm", target_dose() / 30, DOSE_ORIGIN, DOSE_SPACING, summation="FRACTION_SESSION")
    (export / "RP.dcm").unlink()  # the new dose references no plan
    per_fraction = specc.check_export(protocol_file, export, tmp_path / "fraction").record
    for one, other in zip(whole.goals, per_fraction.goals):
        if one.value is not None:
            assert other.value == pytest.approx(one.value, rel=1e-6)
    assert per_fraction.dose_source.fractions_scaled == 30


def test_one_fraction_labelled_as_a_total_is_refused_until_the_user_says_so(export, protocol_file, tmp_path):
    """matRad writes FRACTION (DICOM: a fraction group's total) for one fraction: the target's median at
    2 Gy of a 60 Gy in 30 prescription gives it away; --per-fraction says what the file holds."""
    total = specc.check_export(protocol_file, export, tmp_path / "total").record
    (export / "RP.dcm").unlink()
    write_rtdose_file(export / "RD.dcm", target_dose() / 30, DOSE_ORIGIN, DOSE_SPACING, summation="FRACTION")
    with pytest.raises(SpeccError, match=r"Target receives \d\.\d\d Gy at its median, about one fraction .* --per-fraction"):
        specc.check_export(protocol_file, export, tmp_path / "out")
    stated = specc.check_export(protocol_file, export, tmp_path / "out", per_fraction=True).record
    assert stated.dose_source.fractions_scaled == 30
    d95 = ("Target", "D95% >= 57 Gy")
    assert goals_by_text(stated)[d95].value == pytest.approx(goals_by_text(total)[d95].value, rel=1e-6)
    # The reverse: a total declared as one fraction would be 30 times the prescription.
    write_rtdose_file(export / "RD.dcm", target_dose(), DOSE_ORIGIN, DOSE_SPACING)
    with pytest.raises(SpeccError, match="the file holds the total already .leave out --per-fraction"):
        specc.check_export(protocol_file, export, tmp_path / "out", per_fraction=True)
    # Labelled one fraction by the file itself, no flag given: the label is wrong, not the command (audit a2 F14).
    write_rtdose_file(export / "RD.dcm", target_dose(), DOSE_ORIGIN, DOSE_SPACING, summation="FRACTION_SESSION")
    with pytest.raises(SpeccError, match="FRACTION_SESSION says one fraction: the exporting system labelled it") as error:
        specc.check_export(protocol_file, export, tmp_path / "out")
    assert "--per-fraction" not in str(error.value)


@pytest.mark.parametrize(
    "factor, cause",
    [(100, "about 100 times, as cGy values labelled Gy would be"),
     (30, "about 30 times, as a total multiplied by its 30 fractions once more would be")],
)
def test_a_dose_far_above_any_plans_is_refused_naming_the_fields_to_check(export, protocol_file, tmp_path, factor, cause):
    """cGy values labelled GY (or a total multiplied by the fractions again) would pass every coverage goal; no
    external-beam plan gives its target a median of three times its prescription, so the check stops."""
    write_rtdose_file(export / "RD.dcm", target_dose() * factor, DOSE_ORIGIN, DOSE_SPACING)
    (export / "RP.dcm").unlink()
    with pytest.raises(SpeccError) as error:
        specc.check_export(protocol_file, export, tmp_path / "out")
    message = str(error.value)
    assert message.startswith(f"{export / 'RD.dcm'}: Target receives ")
    assert "times its 60 Gy: no external-beam plan" in message and cause in message
    assert "DoseUnits and DoseGridScaling" in message
    assert not (tmp_path / "out" / "report.html").exists()
    # Up to three times the prescription a plan, however hot, is judged as it stands.
    write_rtdose_file(export / "RD.dcm", target_dose() * 2.5, DOSE_ORIGIN, DOSE_SPACING)
    hot = specc.check_export(protocol_file, export, tmp_path / "hot").record
    assert goals_by_text(hot)[("Target", "Max <= 66 Gy")].status == "fail"


def test_a_dose_in_another_frame_of_reference_is_refused(export, protocol_file, tmp_path):
    write_rtdose_file(export / "RD.dcm", target_dose(), DOSE_ORIGIN, DOSE_SPACING, frame_uid="1.2.3.4")
    with pytest.raises(SpeccError, match="Frame of Reference 1.2.3.4"):
        specc.check_export(protocol_file, export, tmp_path / "out")


def test_frame_offsets_that_contradict_the_image_position_are_refused_naming_both(export, protocol_file, tmp_path):
    """DICOM reads GridFrameOffsetVector as absolute z only when its first value is ImagePositionPatient's z:
    placed by the offsets alone, this file's dose would land 6 mm (two planes) off its true place."""
    import pydicom

    whole = specc.check_export(protocol_file, export, tmp_path / "relative").record
    dose = pydicom.dcmread(export / "RD.dcm")
    z0 = DOSE_ORIGIN[2]
    dose.GridFrameOffsetVector = [z0 + k * DOSE_SPACING[2] for k in range(DOSE_SHAPE[2])]  # the same planes, absolute
    dose.save_as(export / "RD.dcm")
    absolute = specc.check_export(protocol_file, export, tmp_path / "absolute").record
    assert [goal.value for goal in absolute.goals] == [goal.value for goal in whole.goals]
    dose.GridFrameOffsetVector = [z0 + 6.0 + k * DOSE_SPACING[2] for k in range(DOSE_SHAPE[2])]
    dose.save_as(export / "RD.dcm")
    with pytest.raises(SpeccError) as error:
        specc.check_export(protocol_file, export, tmp_path / "out")
    message = str(error.value)
    assert str(export / "RD.dcm") in message
    assert "GridFrameOffsetVector starts at -6 mm and ImagePositionPatient's z is -12 mm" in message
    assert not (tmp_path / "out" / "report.html").exists()


def test_a_finer_evaluation_grid_interpolates_the_dose_over_the_same_box(export, protocol_file, tmp_path):
    coarse = specc.check_export(protocol_file, export, tmp_path / "coarse").record
    fine = specc.check_export(protocol_file, export, tmp_path / "fine", grid_mm=1.25).record
    assert fine.case.grid.spacing_mm == (1.25, 1.25, 1.25) and fine.dose_source.interpolated
    for axis in range(3):  # the same box: the outer voxel centres of both grids coincide
        assert fine.case.grid.origin_mm[axis] == pytest.approx(coarse.case.grid.origin_mm[axis], abs=0.75)
    means = [next(s.mean_gy for s in record.structures if s.structure == "Target") for record in (coarse, fine)]
    # Within 2%: the finer grid also rasterizes the target's edge, where the dose falls steeply, finer.
    assert means[1] == pytest.approx(means[0], rel=0.02)
    assert fine.hot_spot.max_gy <= coarse.hot_spot.max_gy + 1e-9  # interpolation makes no new maximum


def test_a_target_partly_outside_the_dose_grid_cannot_be_checked(export, protocol_file, tmp_path):
    shape = (33, 32, 4)  # z -12..-3: the target (slices 2..9, z -9..12) is cut
    write_rtdose_file(export / "RD.dcm", target_dose(shape=shape), DOSE_ORIGIN, DOSE_SPACING)
    (export / "RP.dcm").unlink()
    with pytest.raises(SpeccError, match="prescription target Target: .* outside the RT Dose grid"):
        specc.check_export(protocol_file, export, tmp_path / "out")


def test_several_doses_in_a_folder_need_the_one_to_check_named(export, protocol_file, tmp_path):
    write_rtdose_file(export / "RD-second-plan.dcm", target_dose() / 2, DOSE_ORIGIN, DOSE_SPACING)
    with pytest.raises(SpeccError, match=r"several RT Doses \(RD-second-plan.dcm \(PLAN\), RD.dcm \(PLAN\)\).*--dose"):
        specc.check_export(protocol_file, export, tmp_path / "out")
    record = specc.check_export(protocol_file, export, tmp_path / "out", dose_file=export / "RD.dcm").record
    assert record.dose_source.file == str(export / "RD.dcm")


def test_the_plan_sum_is_checked_when_the_other_doses_are_per_beam(export, protocol_file, tmp_path):
    for beam in (1, 2):
        write_rtdose_file(export / f"RD-beam{beam}.dcm", target_dose() / 2, DOSE_ORIGIN, DOSE_SPACING, summation="BEAM")
    record = specc.check_export(protocol_file, export, tmp_path / "out").record
    assert record.dose_source.file == str(export / "RD.dcm")
    assert any("RD-beam1.dcm (BEAM), RD-beam2.dcm (BEAM) were not used" in note for note in record.notes)


def test_an_export_without_ct_is_judged_on_its_contours_alone(export, protocol_file, tmp_path):
    with_ct = specc.check_export(protocol_file, export, tmp_path / "with-ct").record
    for path in export.glob("CT_*.dcm"):
        path.unlink()
    without = specc.check_export(protocol_file, export, tmp_path / "without-ct").record
    for goal, reference in zip(without.goals, with_ct.goals):
        assert goal.status == reference.status
        assert goal.value == (None if reference.value is None else pytest.approx(reference.value, abs=1e-9))
    assert any("no CT in the export" in note and "3 mm" in note for note in without.notes)
    assert "no CT" not in " ".join(with_ct.notes)
    assert without.case.source.endswith("(RTSTRUCT + RT Dose)")


def _beam_export(export: Path, beams: tuple[int, ...], doses: tuple[int, ...], summation: str = "BEAM") -> Path:
    """The export with its plan sum replaced by one RT Dose per beam in `doses` (the dose split
    unevenly), and an RT Plan delivering `beams`."""
    (export / "RD.dcm").unlink()
    (export / "RP.dcm").unlink()
    plan_uid = write_rtplan(export / "RP.dcm", fractions=30, beams=beams)
    shares = np.linspace(1.0, 2.0, len(beams)) / np.linspace(1.0, 2.0, len(beams)).sum()
    per = 30 if summation == "BEAM_SESSION" else 1
    for number, share in zip(doses, shares):
        write_rtdose_file(export / f"RD.beam{number}.dcm", target_dose() * share / per, DOSE_ORIGIN, DOSE_SPACING,
                          summation=summation, plan_uid=plan_uid, frame_uid=FRAME_OF_REFERENCE, beam_number=number)
    return export


@pytest.mark.parametrize("summation", ["BEAM", "BEAM_SESSION"])
def test_an_export_of_beam_doses_is_checked_as_their_sum(export, protocol_file, tmp_path, summation):
    whole = specc.check_export(protocol_file, export, tmp_path / "sum").record
    beams = specc.check_export(protocol_file, _beam_export(export, (1, 2, 3), (1, 2, 3), summation), tmp_path / "beams")
    record = beams.record
    for goal, reference in zip(record.goals, whole.goals):
        assert goal.status == reference.status
        assert goal.value == (None if reference.value is None else pytest.approx(reference.value, rel=1e-6, abs=1e-6))
    assert any(goal.value is not None for goal in record.goals)
    source = record.dose_source
    assert source.summation == summation and source.format == "DICOM RT Dose, 3 beam doses summed"
    assert source.file == str(export) and sorted(source.parts) == ["RD.beam1.dcm", "RD.beam2.dcm", "RD.beam3.dcm"]
    assert source.fractions_scaled == (30 if summation == "BEAM_SESSION" else None)
    assert any("sum of 3 beam doses" in note and "RD.beam2.dcm (beam 2)" in note for note in record.notes)
    html = (tmp_path / "beams" / "report.html").read_text()
    assert "Summed file" in html and source.parts["RD.beam3.dcm"] in html


def test_beam_doses_that_are_not_the_whole_plan_are_refused(export, protocol_file, tmp_path):
    _beam_export(export, (1, 2, 3), (1, 3))
    with pytest.raises(SpeccError, match=r"delivers beams \[1, 2, 3\], the beam doses are of \[1, 3\] \(missing \[2\]\)"):
        specc.check_export(protocol_file, export, tmp_path / "out")
    (export / "RP.dcm").unlink()
    with pytest.raises(SpeccError, match="the RT Plan they reference .* is not in it"):
        specc.check_export(protocol_file, export, tmp_path / "out")
    with pytest.raises(SpeccError, match="DoseSummationType BEAM is part of a plan"):
        specc.check_export(protocol_file, export, tmp_path / "out", dose_file=export / "RD.beam1.dcm")


@pytest.fixture
def planned(tmp_path) -> tuple[Path, Path, Path]:
    """A DICOM study imported and planned by specc with the TG-119 C-shape protocol, its dose exported."""
    study = tmp_path / "study"
    write_c_shape_study(study)
    case_path = tmp_path / "case.h5"
    import_dicom(study, beams=5, grid_mm=2.5, targets=["PTV"]).case.save(case_path)
    specc.plan(REPO / "protocols" / "tg119" / "c-shape.yaml", case_path, tmp_path / "plan")
    dose_path = write_rtdose(read_result(tmp_path / "plan" / "result.h5"), tmp_path / "RD.dcm")
    return case_path, dose_path, tmp_path / "plan"


def test_specc_s_own_exported_dose_checked_on_its_case_gives_the_plan_s_goal_values(planned, tmp_path):
    case_path, dose_path, plan_dir = planned
    protocol = REPO / "protocols" / "tg119" / "c-shape.yaml"
    record = specc.check_dose(protocol, case_path, dose_path, tmp_path / "check").record
    plan = json.loads((plan_dir / "plan.json").read_text())
    for theirs, ours in zip(plan["goals"], record.goals):
        # result.h5 keeps the dose in float32 (4e-6 Gy steps at 50 Gy), the RT Dose in 2^32 steps.
        assert ours.value == pytest.approx(theirs["value"], abs=2e-5)
        assert ours.status == theirs["status"]
    assert not record.dose_source.interpolated and record.dose_source.incomplete == {}


def test_a_dose_grid_smaller_than_the_case_leaves_its_outer_structures_unjudged(planned, tmp_path):
    case_path, dose_path, _ = planned
    case = specc.Case.load(case_path)
    result = read_result(dose_path.parent / "plan" / "result.h5")
    # Keep x from the 3rd voxel on: the body's edge at low x loses its dose, the PTV keeps it.
    origin = tuple(o + (2 * s if axis == 0 else 0) for axis, (o, s) in enumerate(zip(case.grid.origin_mm, case.grid.spacing_mm)))
    cut = write_rtdose_file(tmp_path / "RD-cut.dcm", result.dose_gy[2:], origin, case.grid.spacing_mm)
    protocol = REPO / "protocols" / "tg119" / "c-shape.yaml"
    record = specc.check_dose(protocol, case_path, cut, tmp_path / "check").record
    incomplete = record.dose_source.incomplete
    assert "Body" in incomplete and "PTV" not in incomplete
    # its voxel centres are the case's: taken as stored, not interpolated (audit h9 F4)
    assert not record.dose_source.interpolated
    assert any(note.startswith("RD-cut.dcm: taken as stored on the evaluation grid") for note in record.notes)
    body = DVH.from_dose(result.dose_gy[2:][case.structures["External"].mask[2:]], case.voxel_volume_cc)
    measured = next(s for s in record.structures if s.structure == "Body")
    assert measured.volume_cc == pytest.approx(body.volume_cc)


def test_a_check_compares_with_a_specc_plan_of_the_same_case(planned, tmp_path):
    case_path, dose_path, plan_dir = planned
    protocol = REPO / "protocols" / "tg119" / "c-shape.yaml"
    specc.check_dose(protocol, case_path, dose_path, tmp_path / "check")
    result = CliRunner().invoke(app, ["compare", str(plan_dir), str(tmp_path / "check"), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert "external dose from specc" in html  # our own export names specc as its manufacturer


def test_cli_check_prints_the_goals_and_refuses_bad_combinations(export, protocol_file, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["check", str(protocol_file), str(export), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "not evaluated: Cord Max <= 45 Gy" in result.output
    assert "checked" in result.output and "report.html" in result.output
    (export / "RP.dcm").unlink()
    write_rtdose_file(export / "RD.dcm", target_dose() / 30, DOSE_ORIGIN, DOSE_SPACING, summation="FRACTION")
    result = runner.invoke(app, ["check", str(protocol_file), str(export), "--out", str(tmp_path / "f")])
    assert result.exit_code == 1 and "--per-fraction" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["check", str(protocol_file), str(export), "--per-fraction", "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["check", str(protocol_file), "--case", "x.h5", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "--case needs --dose" in result.output
    result = runner.invoke(app, ["check", str(protocol_file), str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output and "nowhere" in result.output


def _renamed_patient(folder: Path, patient_id: str) -> Path:
    import pydicom

    for path in folder.iterdir():
        dataset = pydicom.dcmread(path)
        dataset.PatientID = patient_id
        dataset.save_as(path)
    return folder


def test_a_cohort_of_exports_is_checked_into_one_folder_per_patient_with_a_summary(export, protocol_file, tmp_path):
    import csv
    import shutil

    second = _renamed_patient(shutil.copytree(export, tmp_path / "export-2"), "P-002")
    broken = tmp_path / "export-3"
    broken.mkdir()
    outcome = specc.check_cohort(protocol_file, [export, second, broken], tmp_path / "audit")
    assert [entry.status for entry in outcome.entries] == ["checked", "checked", "error"]
    assert "no RT Structure Set (RTSTRUCT) found (and no CT images)" in outcome.entries[2].error
    assert outcome.exit_code() == 1
    rows = list(csv.DictReader((tmp_path / "audit" / "cohort.csv").open()))
    assert [row["case_id"] for row in rows] == ["SPECC-TEST-001", "P-002", ""]
    assert rows[0]["solver_status"] == "checked" and rows[0]["folder"].endswith("SPECC-TEST-001")
    assert rows[0]["Cord: Max <= 45 Gy [Gy] status"] == "not_evaluated"
    assert (tmp_path / "audit" / "P-002" / "report.html").exists()
    page = (tmp_path / "audit" / "cohort.html").read_text()
    assert outcome.pages == [tmp_path / "audit" / "cohort.html"] and 'href="P-002/report.html"' in page
    assert page.count('class="cohort-case"') == 2 and "1 case without a plan" in page

    # Two audits of the same patients compare as cohorts (here: the same doses, so no difference).
    specc.check_cohort(protocol_file, [export, second], tmp_path / "audit-again")
    runner = CliRunner()
    result = runner.invoke(app, ["compare", str(tmp_path / "audit"), str(tmp_path / "audit-again"), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cmp" / "compare.html").exists()


def test_cli_check_of_several_folders_needs_cohort(export, protocol_file, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["check", str(protocol_file), str(export), str(export), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "add --cohort" in result.output
    result = runner.invoke(app, ["check", str(protocol_file), str(export), "--cohort", "--out", str(tmp_path / "audit")])
    assert result.exit_code == 0, result.output
    assert "1 of 1 exports checked" in result.output and "checked" in result.output


def test_a_checks_dvh_and_goal_tables_export_from_its_folder(export, protocol_file, tmp_path):
    import csv

    record = specc.check_export(protocol_file, export, tmp_path / "out").record
    runner = CliRunner()
    result = runner.invoke(app, ["export", "dvh", str(tmp_path / "out"), "--out", str(tmp_path / "tables")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "tables" / "goals.csv").open()))
    assert [row["status"] for row in rows] == [goal.status for goal in record.goals]
    saved = json.loads((tmp_path / "tables" / "dvh.json").read_text())
    assert saved["dose_file"]["sha256"] == record.dose_source.sha256
    result = runner.invoke(app, ["export", "rtdose", str(tmp_path / "out"), "--out", str(tmp_path / "x.dcm")])
    assert result.exit_code == 1 and "rtdose needs the result.h5" in result.output


def test_outside_zero_counts_the_voxels_beyond_the_dose_grid_at_0_gy_and_says_so(export, protocol_file, tmp_path):
    unknown = specc.check_export(protocol_file, export, tmp_path / "unknown").record
    zero = specc.check_export(protocol_file, export, tmp_path / "zero", outside_zero=True).record
    assert zero.dose_source.outside_zero and zero.dose_source.incomplete == {}
    cord = goals_by_text(zero)[("Cord", "Max <= 45 Gy")]
    assert cord.status != "not_evaluated" and cord.value is not None
    # The body is measured whole: 12 CT slices of 12 instead of 10 (its DVH in the unknown run is of the part).
    volumes = [next(s.volume_cc for s in record.structures if s.structure == "Body") for record in (unknown, zero)]
    assert volumes[1] == pytest.approx(volumes[0] * 12 / 10, rel=0.02)
    assert any("counted at 0 Gy" in note and note.startswith("Body") for note in zero.notes)
    # Voxels inside the dose grid keep their dose: the target's goals are unchanged.
    d95 = ("Target", "D95% >= 57 Gy")
    assert goals_by_text(zero)[d95].value == pytest.approx(goals_by_text(unknown)[d95].value, rel=1e-9)
    html = (tmp_path / "zero" / "report.html").read_text()
    assert "0 Gy, assumed on request (--outside-zero)" in html


def test_rotations_in_a_check_turn_about_the_rt_plans_isocentre(export, protocol_file, tmp_path):
    (export / "RP.dcm").unlink()
    plan_uid = write_rtplan(export / "RP.dcm", fractions=30, isocentre=(5.0, 3.0, 1.5))
    write_rtdose_file(export / "RD.dcm", target_dose(), DOSE_ORIGIN, DOSE_SPACING, plan_uid=plan_uid)
    robust = tmp_path / "robust.yaml"
    robust.write_text(PROTOCOL + "robustness: {rotation_error: 3 deg, structures: [Target]}\n")
    record = specc.check_export(robust, export, tmp_path / "out").record
    assert record.robustness.rotation_centre_mm == (5.0, 3.0, 1.5)
    assert len(record.robustness.scenario_labels) == 6
    # Without the plan's isocentre: about the target's centre, said so.
    (export / "RP.dcm").unlink()
    write_rtdose_file(export / "RD.dcm", target_dose(), DOSE_ORIGIN, DOSE_SPACING)
    record = specc.check_export(robust, export, tmp_path / "out").record
    assert record.robustness.rotation_centre.startswith("the centre of the prescription targets")


def test_ctrl_c_during_a_check_removes_the_earlier_one_and_says_so(export, protocol_file, tmp_path, monkeypatch):
    import specc.check

    out = tmp_path / "out"
    arguments = ["check", str(protocol_file), str(export), "--out", str(out)]
    assert CliRunner().invoke(app, arguments).exit_code == 0 and (out / "report.html").is_file()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(specc.check, "_measure", interrupted)
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 130
    assert f"interrupted: no check written; the earlier plan in {out} was removed" in " ".join(result.output.split())
    assert list(out.iterdir()) == []


def _earlier_check(folder: Path) -> None:
    """An earlier run's check in `folder`, beside a file of the user's."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("plan.json", "report.html", "mine.txt"):
        (folder / name).write_text("earlier", encoding="utf-8")


def test_a_check_that_fails_removes_the_earlier_check_and_says_so(export, protocol_file, tmp_path):
    import shutil

    bad, no_cord = tmp_path / "bad.yaml", tmp_path / "no-cord.yaml"
    bad.write_text(PROTOCOL.replace("fractions: 30", "fractions: 0"))
    no_cord.write_text(PROTOCOL.replace("Cord: {role: oar, aliases: [Spinal Cord]}", "Cord: {role: oar}"))
    damaged, hot = shutil.copytree(export, tmp_path / "damaged"), shutil.copytree(export, tmp_path / "hot")
    (damaged / "RD.dcm").write_bytes(b"not a DICOM file")
    (hot / "RP.dcm").unlink()
    write_rtdose_file(hot / "RD.dcm", target_dose() * 100, DOSE_ORIGIN, DOSE_SPACING)
    runs = {
        "protocol": ([str(bad), str(export)], "fractions"),
        "structure": ([str(no_cord), str(export)], "structure 'Cord'"),
        "dose": ([str(protocol_file), str(damaged), "--dose", str(damaged / "RD.dcm")], "not a readable DICOM file"),
        "implausible": ([str(protocol_file), str(hot)], "no external-beam plan"),
        "option": ([str(protocol_file), "--case", "x.h5"], "--case needs --dose"),
    }
    for name, (given, error) in runs.items():
        out = tmp_path / f"out-{name}"
        _earlier_check(out)
        result = CliRunner().invoke(app, ["check", *given, "--out", str(out), "-q"])
        said = " ".join(result.output.split())
        assert result.exit_code == 1 and error in said, (name, result.output)
        assert f"removed {out / 'plan.json'}, {out / 'report.html'}: they were an earlier run's plan, not this one" in said
        assert [path.name for path in out.iterdir()] == ["mine.txt"], name
    result = CliRunner().invoke(app, ["check", str(bad), str(export), "--out", str(tmp_path / "new")])
    assert result.exit_code == 1 and "removed" not in result.output and not (tmp_path / "new").exists()


def test_a_check_refuses_an_output_folder_no_check_can_go_into_before_reading_anything(export, protocol_file, tmp_path):
    """`specc check --out` found a file given as OUT only when the report was written, after reading the export
    (as `specc plan` did before it checked OUT first): OUT is checked before anything is read, so an export
    folder that does not exist is not what the error names."""
    from specc.pipeline import PlanFolderError

    taken = tmp_path / "taken"
    taken.write_text("a file of the user's", encoding="utf-8")
    missing = tmp_path / "nowhere"
    runs = [[str(missing)], ["--case", str(tmp_path / "no.h5"), "--dose", str(tmp_path / "no.dcm")]]
    for given in runs:
        result = CliRunner().invoke(app, ["check", str(protocol_file), *given, "--out", str(taken)])
        said = " ".join(result.output.split())
        assert result.exit_code == 1 and f"{taken} is a file, not a folder" in said, result.output
        assert "nowhere" not in said and "no.h5" not in said and "Traceback" not in said, result.output
    with pytest.raises(PlanFolderError, match="is a file, not a folder"):
        specc.check_export(protocol_file, missing, taken)
    with pytest.raises(PlanFolderError, match="is a file, not a folder"):
        specc.check_dose(protocol_file, tmp_path / "no.h5", tmp_path / "no.dcm", taken)
    with pytest.raises(PlanFolderError, match="is a file, not a folder"):
        specc.check_cohort(protocol_file, [missing], taken)
    assert taken.read_text(encoding="utf-8") == "a file of the user's"


def test_a_protocol_changed_in_memory_is_recorded_as_such_by_a_check_and_a_cohort_of_checks(export, protocol_file, tmp_path):
    """A check recorded a protocol changed in memory (model_copy) under its file's path and SHA-256, which
    judges by another protocol; checks now record it as `specc.plan` does (`as_planned`), with a note."""
    import csv

    loaded = specc.load_protocol(protocol_file)
    changed = loaded.model_copy(update={"name": "Check test, tuned"})
    said = f"changed in memory after loading {loaded.source.path}"
    single = specc.check_export(changed, export, tmp_path / "one")
    cohort = specc.check_cohort(changed, [export], tmp_path / "audit")
    for record in (single.record, cohort.entries[0].record):
        assert record.protocol.files == [said]
        assert record.protocol.sha256 == loaded.source.fingerprint(changed) != loaded.source.sha256
        assert any(f"not of {loaded.source.path}" in note for note in record.notes)
    with (tmp_path / "audit" / "cohort.csv").open(newline="") as handle:
        assert [row["protocol_sha256"] for row in csv.DictReader(handle)] == [cohort.entries[0].record.protocol.sha256]
    unchanged = specc.check_export(loaded, export, tmp_path / "two")  # a protocol as read is recorded as its file
    assert unchanged.record.protocol.sha256 == loaded.source.sha256
    assert not any("changed in memory" in note for note in unchanged.record.notes)


def test_check_cohort_rows_exit_codes_follow_strict(export, protocol_file, tmp_path):
    import csv

    broken = tmp_path / "broken"
    broken.mkdir()
    arguments = ["check", str(protocol_file), str(export), str(broken), "--cohort", "--out", str(tmp_path / "audit"), "-q"]
    for flags, codes in [([], ["0", "1"]), (["--strict"], ["2", "1"])]:  # Target D95% (priority 1) fails
        result = CliRunner().invoke(app, [*arguments, *flags])
        assert result.exit_code == 1, result.output
        with (tmp_path / "audit" / "cohort.csv").open(newline="") as handle:
            assert [row["exit_code"] for row in csv.DictReader(handle)] == codes  # as `specc check` with the flags


def test_a_goal_a_plan_was_normalized_onto_keeps_its_status_when_its_exported_dose_is_checked(tmp_path):
    """Normalization puts the target's D95% exactly on its goal; read back from result.h5's float32 (and the
    RT Dose written from it) it is a float32 step below when float32 rounds that dose down. That is storage,
    not a shortfall: the goal still passes, as in the plan (with 1e-9 of rounding forgiven, it failed)."""
    from evaluate_fakes import protocol as fake_protocol, synthetic_case

    percent = next(p for p in (100, 99, 101, 98, 102, 97, 103) if float(np.float32(0.6 * p)) < 0.6 * p)
    terms = ["{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
             "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}"]
    normalized = fake_protocol({"Target": [f"D95% >= {percent}%", f"V{percent}%[%] >= 95"]}, terms=terms,
                               normalization=f"{{structure: Target, metric: D95%, percent: {percent}}}")
    case_path = tmp_path / "case.h5"
    synthetic_case().save(case_path)
    planned = specc.plan(normalized, case_path, tmp_path / "plan").record
    assert [goal.status for goal in planned.goals] == ["pass", "pass"]
    assert planned.goals[0].value == pytest.approx(0.6 * percent, rel=1e-12)
    dose_path = write_rtdose(read_result(tmp_path / "plan" / "result.h5"), tmp_path / "RD.dcm")
    checked = specc.check_dose(normalized, case_path, dose_path, tmp_path / "check").record
    assert checked.goals[0].value < planned.goals[0].threshold  # float32 storage moved it below ...
    assert [goal.status for goal in checked.goals] == ["pass", "pass"]  # ... but not its judgement


PARTS_PROTOCOL = """\
specc: 1
name: Parts check
site: test
version: 1.0.0
structures:
  Target: {role: target}
  Cord: {role: oar, aliases: [Spinal Cord], parts: [Cord_Sup, Cord_Inf]}
  Near: {role: other, expression: "Target | Cord"}
prescription:
  fractions: 30
  levels:
    - {target: Target, dose: 60 Gy}
goals:
  Target:
    - "D95% >= 57 Gy"
  Cord:
    - "Max <= 45 Gy"
    - "Mean <= 20 Gy"
  Near:
    - "Mean <= 50 Gy"
"""


@pytest.mark.parametrize("contoured", ["whole", "parts"])
def test_an_organ_read_from_parts_one_of_which_the_dose_grid_cuts_reads_as_a_cut_whole_organ(contoured, tmp_path):
    """The cord as one ROI or as two parts: the dose grid (CT slices 1..10 of 12) cuts the whole cord, and of
    its parts the one reaching slice 0; either way the cord and what is built from it are not judged."""
    geometry = CtGeometry()
    folder = tmp_path / contoured
    write_ct_series(folder, geometry, body_hu(geometry))
    external, target, cord = standard_rois(geometry)
    z = geometry.z()
    rois = [external, target, cord] if contoured == "whole" else [
        external, target,
        dataclasses.replace(cord, name="Cord_Sup", z_low=z[0], z_high=z[4]),   # slice 0 beyond the dose grid
        dataclasses.replace(cord, name="Cord_Inf", z_low=z[5], z_high=z[-2]),  # inside it
    ]
    write_rtstruct(folder / "RS.dcm", geometry, rois)
    write_rtdose_file(folder / "RD.dcm", target_dose(), DOSE_ORIGIN, DOSE_SPACING, frame_uid=FRAME_OF_REFERENCE)
    protocol = tmp_path / "parts.yaml"
    protocol.write_text(PARTS_PROTOCOL)
    record = specc.check_export(protocol, folder, tmp_path / f"out-{contoured}").record
    goals = goals_by_text(record)
    for text in ("Max <= 45 Gy", "Mean <= 20 Gy"):
        assert (goals[("Cord", text)].status, goals[("Cord", text)].value) == ("not_evaluated", None)
        assert "outside the RT Dose grid of RD.dcm" in goals[("Cord", text)].note
    assert goals[("Near", "Mean <= 50 Gy")].status == "not_evaluated"
    assert "built from Cord" in goals[("Near", "Mean <= 50 Gy")].note
    assert goals[("Target", "D95% >= 57 Gy")].status in ("pass", "fail")
    incomplete = record.dose_source.incomplete
    assert set(incomplete) >= {"Cord", "Near"}
    if contoured == "parts":
        assert incomplete["Cord"].startswith("its part 'Cord_Sup': ") and "Cord_Inf" not in incomplete["Cord"]


def test_an_organ_read_from_one_of_its_parts_says_so_on_its_goals_in_a_check(tmp_path):
    """A check judged the cord read from Cord_Inf alone (Cord_Sup not in the structure set) with a plain value in
    its goal rows, as plans did before 983a0c7."""
    geometry = CtGeometry()
    folder = tmp_path / "export"
    write_ct_series(folder, geometry, body_hu(geometry))
    external, target, cord = standard_rois(geometry)
    z = geometry.z()
    write_rtstruct(folder / "RS.dcm", geometry,
                   [external, target, dataclasses.replace(cord, name="Cord_Inf", z_low=z[5], z_high=z[-2])])
    write_rtdose_file(folder / "RD.dcm", target_dose(), DOSE_ORIGIN, DOSE_SPACING, frame_uid=FRAME_OF_REFERENCE)
    protocol = tmp_path / "parts.yaml"
    protocol.write_text(PARTS_PROTOCOL)
    goals = goals_by_text(specc.check_export(protocol, folder, tmp_path / "out").record)
    cord = goals[("Cord", "Max <= 45 Gy")]
    assert cord.status != "not_evaluated" and cord.partial_structure
    assert "'Cord_Inf' alone" in cord.note and "'Cord_Sup' is not in the case" in cord.note


_WRITES_INTO: list[Path] = []  # the folder whose files opened for writing the audit hook below records
_OPENED: list[str] = []


def _record_writes(event: str, args: tuple) -> None:
    import os

    if event == "open" and _WRITES_INTO and isinstance(args[0], (str, os.PathLike)):
        mode = args[1]
        if isinstance(mode, str) and any(flag in mode for flag in "wax+"):
            _OPENED.append(os.fsdecode(args[0]))


def test_a_check_writes_no_file_under_its_name_in_its_folder(tmp_path):
    """A check wrote report.html and plan.json straight into OUT (a kill -9 part way left a report cut short, or a
    whole one without plan.json from an earlier check's folder): it is staged as a plan is (docs/report.md)."""
    import sys

    geometry = CtGeometry()
    folder = tmp_path / "export"
    write_ct_series(folder, geometry, body_hu(geometry))
    write_rtstruct(folder / "RS.dcm", geometry, list(standard_rois(geometry)))
    write_rtdose_file(folder / "RD.dcm", target_dose(), DOSE_ORIGIN, DOSE_SPACING, frame_uid=FRAME_OF_REFERENCE)
    protocol = tmp_path / "parts.yaml"
    protocol.write_text(PARTS_PROTOCOL.replace(", parts: [Cord_Sup, Cord_Inf]", ""))
    out = tmp_path / "out"
    sys.addaudithook(_record_writes)  # hooks stay for the process: it records only while _WRITES_INTO is set
    _WRITES_INTO.append(out)
    try:
        outcome = specc.check_export(protocol, folder, out)
    finally:
        _WRITES_INTO.clear()
    written = [Path(name) for name in _OPENED if Path(name).name in ("report.html", "plan.json")]
    assert written and not [path for path in written if path.parent == out], written
    assert sorted(path.name for path in outcome.paths) == ["plan.json", "report.html"]
    assert all(path.parent == out and path.exists() for path in outcome.paths)


def test_a_cohort_row_of_an_export_read_but_not_checked_keeps_its_case_sha256(export, protocol_file, tmp_path):
    """A check cohort's row of an export that was read but not checked (its folder could not be written) had no
    case SHA-256, so a re-run could not show it was the same data (audit c3 F7, as plan cohorts now keep it)."""
    import csv

    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "SPECC-TEST-001").write_text("not a folder", encoding="utf-8")
    (entry,) = specc.check_cohort(protocol_file, [export], audit).entries
    assert entry.outcome is None and entry.error is not None
    (row,) = csv.DictReader((audit / "cohort.csv").open())
    assert row["case_sha256"] and row["case_sha256"] == entry.read_sha256


def test_a_check_warns_of_a_template_goal_its_protocol_loosened(export, tmp_path):
    """A protocol that raises its template's cord limit (45 -> 50 Gy) and demotes it was checked without a word
    in the record; `specc validate` warns (6582416), and so does the check: a record warning, not a note (audit
    s18/b1 F2), and the cord goal's note names the template goal."""
    template = PROTOCOL.replace("specc: 1\n", "template: true\nspecc: 1\n", 1).replace(
        "prescription:\n  fractions: 30\n  levels:\n    - {target: Target, dose: 60 Gy}\n", "")
    (tmp_path / "base.yaml").write_text(template)
    protocol = tmp_path / "loose.yaml"
    protocol.write_text("extends: base.yaml\nname: Loose\nversion: 1.0.0\n"
                        "prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}\n"
                        'goals:\n  Cord: ["Max <= 50 Gy (priority 2)"]\n')
    record = specc.check_export(protocol, export, tmp_path / "out").record
    [warning] = record.warnings
    assert '"Max <= 50 Gy (priority 2)" replaces the template goal "Max <= 45 Gy"' in warning
    assert "threshold raised from 45 Gy to 50 Gy" in warning
    assert not any("replaces the template goal" in note for note in record.notes), record.notes
    [cord] = [goal for goal in record.goals if goal.structure == "Cord"]
    assert cord.note.endswith(f'; loosens the template goal "Max <= 45 Gy" ({tmp_path / "base.yaml"}:18)')


STRICT_PROTOCOL = """\
specc: 1
name: Strict test
site: test
version: 1.0.0
structures:
  Target: {role: target}
  Cord: {role: oar, aliases: [Spinal Cord]}
  Lens: {role: oar, if_contoured: true}
prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}
goals:
  Target: ["Max <= 66 Gy"]
  Cord: ["Max <= 45 Gy"]
  Lens: ["Max <= 10 Gy"]
"""


def test_strict_stops_on_a_must_goal_beyond_the_dose_grid_but_not_on_an_organ_the_case_need_not_contour(export, tmp_path):
    """--strict passed a priority-1 goal that read NOT EVALUATED: the cord, partly beyond the RT Dose's calculation
    volume, was vouched for by a clinic's automatic gate without a value. It stops the check (exit 2, the goal and
    its reason named, as is each cohort row's exit code); the lens, `if_contoured` and not in the RTSTRUCT, is the
    protocol's own allowance and does not, nor does the cord's goal at priority 2."""
    import csv

    protocol = tmp_path / "strict.yaml"
    protocol.write_text(STRICT_PROTOCOL)
    runner = CliRunner()
    result = runner.invoke(app, ["check", str(protocol), str(export), "--out", str(tmp_path / "out"), "--strict"])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert ("--strict: priority-1 goal not evaluated: Cord Max <= 45 Gy (" + str(protocol) + ":12): Cord: ") in output
    assert "outside the RT Dose grid" in output and "goals failed" not in output
    assert "not evaluated: Lens Max <= 10 Gy: Lens: not contoured" in output  # listed, as every unmeasured goal
    assert "--strict: priority-1 goal not evaluated: Lens" not in output
    goals = goals_by_text(specc.check_export(protocol, export, tmp_path / "again").record)
    assert goals["Lens", "Max <= 10 Gy"].status == goals["Cord", "Max <= 45 Gy"].status == "not_evaluated"
    assert goals["Target", "Max <= 66 Gy"].status == "pass"
    arguments = ["check", str(protocol), str(export), "--cohort", "--out", str(tmp_path / "audit"), "-q", "--strict"]
    assert runner.invoke(app, arguments).exit_code == 2
    with (tmp_path / "audit" / "cohort.csv").open(newline="") as handle:
        assert [row["exit_code"] for row in csv.DictReader(handle)] == ["2"]

    protocol.write_text(STRICT_PROTOCOL.replace('["Max <= 45 Gy"]', '["Max <= 45 Gy (priority 2)"]'))
    result = runner.invoke(app, ["check", str(protocol), str(export), "--out", str(tmp_path / "out"), "--strict"])
    assert result.exit_code == 0, result.output
    assert "--strict" not in result.output


def test_specc_s_own_not_converged_dose_checked_reads_not_converged_stops_strict_and_cannot_be_approved(
        planned, tmp_path):
    """Audit s20/t2 F4: the RT Dose specc writes of a plan that did not converge says NOT CONVERGED in its
    SeriesDescription and DoseComment; checked, it read PASS, passed --strict and was approved, though its plan
    was refused. The check is now labelled as its plan was (goals not_converged, the banner, --strict, approve)."""
    case_path, _, plan_dir = planned
    result = read_result(plan_dir / "result.h5")
    unconverged = dataclasses.replace(result, record_json=None, stored_converged=False,
                                      stored_solver_status="iteration_limit")
    dose_path = write_rtdose(unconverged, tmp_path / "RD-nc.dcm")
    protocol = REPO / "protocols" / "tg119" / "c-shape.yaml"
    runner = CliRunner()
    checked = runner.invoke(app, ["check", str(protocol), "--case", str(case_path), "--dose", str(dose_path),
                                  "--out", str(tmp_path / "check"), "--strict", "-q"])
    said = " ".join(checked.output.split())
    assert checked.exit_code == 2, checked.output
    assert said.startswith(f"NOT CONVERGED: checked {dose_path}"), checked.output
    assert ("--strict: the plan did not converge (its dose file reads 'NOT CONVERGED (solver iteration_limit): not "
            "a usable plan'): none of its goals can be vouched for") in said
    record = json.loads((tmp_path / "check" / "plan.json").read_text())
    assert record["converged"] is False
    assert {goal["status"] for goal in record["goals"]} == {"not_converged"}
    html = (tmp_path / "check" / "report.html").read_text()
    assert 'NOT CONVERGED: the dose file says it comes from a plan whose solver did not\nconverge ("NOT CONVERGED (solver iteration_limit): not a usable plan")' in html
    approved = runner.invoke(app, ["approve", str(tmp_path / "check"), "--reviewer", "Dr. T", "--role", "physicist"])
    assert approved.exit_code == 1 and "did not converge cannot be approved" in approved.output
    compared = runner.invoke(app, ["compare", str(plan_dir), str(tmp_path / "check"), "--out", str(tmp_path / "cmp")])
    assert compared.exit_code == 0, compared.output
    assert ("check: its dose file reads 'NOT CONVERGED (solver iteration_limit): not a usable plan'; not a usable plan"
            in " ".join(compared.output.split()))
    # its DVH tables say so too (review s20/r2 F3: every dvh.csv row read "external dose")
    tables = runner.invoke(app, ["export", "dvh", str(tmp_path / "check"), "--out", str(tmp_path / "dvh")])
    assert tables.exit_code == 0, tables.output
    rows = (tmp_path / "dvh" / "dvh.csv").read_text().splitlines()
    assert rows[0].split(",")[4] == "plan_status" and {row.split(",")[4] for row in rows[1:]} == {"NOT CONVERGED"}
    # a dose whose result.h5 could not say whether its solver converged is not vouched for either (review s20/r2 F5)
    unknown = dataclasses.replace(result, record_json=None, stored_converged=None, stored_solver_status=None)
    record = specc.check_dose(protocol, case_path, write_rtdose(unknown, tmp_path / "RD-u.dcm"), tmp_path / "c3").record
    assert not record.converged
    assert record.why_not_converged() == "its dose file reads 'CONVERGENCE UNKNOWN: no solver status in result.h5'"
    # the converged plan's own export still checks as converged
    assert specc.check_dose(protocol, case_path, write_rtdose(result, tmp_path / "RD.dcm"), tmp_path / "c2").record.converged
