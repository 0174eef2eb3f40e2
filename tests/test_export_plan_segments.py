"""A segments.json is exported only beside the plan it came from: one copied in from another plan, or edited, is refused."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evaluate_fakes import protocol, synthetic_case
from specc.cli import app
from specc.export import ResultError, read_result
from specc.export.result_file import FLUENCE_TOLERANCE
from specc.export.segments import ProtocolEntry, read_segments, segments_fluence
from specc.pipeline import plan

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Target, dose: 61 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
]
GOALS = {"Target": ["D95% >= 57 Gy"], "Organ": ["Mean <= 30 Gy"]}
ACCEPTED = "the test's segments plan misses a goal"  # specc approve's --accept-deviations


def _plan(folder: Path, levels: int) -> Path:
    synthetic_case().save(folder / "case.h5")
    delivery = f"{{technique: step_and_shoot, intensity_levels: {levels}}}"
    assert plan(protocol(GOALS, terms=TERMS, delivery=delivery), folder / "case.h5", folder / "plan").succeeded
    return folder / "plan"


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> tuple[Path, Path]:
    """Two plans of one case, one protocol text apart (intensity levels): the same case hash, other segments."""
    return _plan(tmp_path_factory.mktemp("four"), 4), _plan(tmp_path_factory.mktemp("five"), 5)


def test_the_plans_own_segments_pass(plans):
    own = plans[0]
    read_result(own / "result.h5").check_segments(read_segments(own / "segments.json"), own / "segments.json")


@pytest.mark.parametrize("change, said", [
    ({"case_sha256": "0" * 64}, "case sha256 000000000000"),
    ({"protocol": ProtocolEntry(name="p", version="1", sha256="f" * 64)}, "protocol sha256 ffffffffffff"),
])
def test_segments_of_another_case_or_protocol_are_refused(plans, change, said):
    own = plans[0]
    segments = read_segments(own / "segments.json").model_copy(update=change)
    with pytest.raises(ResultError, match=f"is not from the plan .*{said}"):
        read_result(own / "result.h5").check_segments(segments, own / "segments.json")


def test_segments_of_another_plan_of_the_same_protocol_and_case_are_refused(plans):
    """Same hashes, other weights: the plan record's segments per beam tell them apart."""
    own, other = plans
    segments = read_segments(other / "segments.json")
    result = read_result(own / "result.h5")
    segments = segments.model_copy(update={"protocol": ProtocolEntry(**result.record.protocol.model_dump(
        include={"name", "version", "sha256"}))})
    with pytest.raises(ResultError, match=r"beam \d+: \d+ segments of summed weight"):
        result.check_segments(segments, other / "segments.json")


@pytest.mark.parametrize("format", ["rtdose", "rtplan"])
def test_cli_exports_refuse_a_foreign_segments_file(plans, tmp_path, format):
    folder = Path(shutil.copytree(plans[0], tmp_path / "plan"))
    shutil.copy(plans[1] / "segments.json", folder / "segments.json")
    exported = CliRunner().invoke(app, ["export", format, str(folder), "--out", str(tmp_path / "out.dcm")])
    assert exported.exit_code == 1 and "is not from the plan" in " ".join(exported.output.split())
    assert not (tmp_path / "out.dcm").exists()


def _moved_weight(own: Path, folder: Path) -> tuple[Path, int]:
    """The plan folder copied with 10% of a beam's first segment's weight moved to its second: the same
    segments per beam and summed weights, another fluence (audit s18/a3 F1)."""
    folder = Path(shutil.copytree(own, folder))
    document = json.loads((own / "segments.json").read_text())
    beam = next(beam for beam in document["beams"] if len(beam["segments"]) >= 2)
    moved = 0.1 * beam["segments"][0]["weight"]
    beam["segments"][0]["weight"] -= moved
    beam["segments"][1]["weight"] += moved
    (folder / "segments.json").write_text(json.dumps(document))
    return folder, beam["beam"]


def test_weight_moved_between_segments_of_a_beam_is_refused_naming_the_beam_and_the_difference(plans, tmp_path):
    own = plans[0]
    result = read_result(own / "result.h5")
    case = result.load_case()
    # the plan's own segments rebuild its fluence to float64 rounding
    rebuilt = segments_fluence(read_segments(own / "segments.json"), case.beamlets)
    assert result.fluence.max() > 0
    assert np.abs(rebuilt - result.fluence).max() <= FLUENCE_TOLERANCE * result.fluence.max()
    result.check_segments(read_segments(own / "segments.json"), own / "segments.json", case)

    folder, beam = _moved_weight(own, tmp_path / "plan")
    edited = read_segments(folder / "segments.json")
    result.check_segments(edited, folder / "segments.json")  # count and summed weight alone: it passes
    with pytest.raises(ResultError, match=rf"segments.json: beam {beam}: the fluence its segments deliver differs "
                                          r"from .*result.h5's '/fluence' by up to [\d.e-]+ beamlet weight \([\d.]+% "
                                          r"of the beam's largest"):
        result.check_segments(edited, folder / "segments.json", case)


@pytest.mark.parametrize("format", ["rtplan", "dicom", "rtdose"])  # rtdose: it references that RT Plan
def test_cli_exports_refuse_edited_segment_weights(plans, tmp_path, format):
    folder, beam = _moved_weight(plans[0], tmp_path / "plan")
    out = tmp_path / ("study" if format == "dicom" else "out.dcm")
    exported = CliRunner().invoke(app, ["export", format, str(folder), "--out", str(out)])
    said = " ".join(exported.output.split())
    assert exported.exit_code == 1 and f"beam {beam}: the fluence its segments deliver differs" in said, said
    assert not out.exists()


@pytest.mark.parametrize("format", ["rtplan", "rtdose"])
@pytest.mark.parametrize("edit, said", [
    (lambda document: document.update(fractions=document["fractions"] + 5), r"segments.json is not from the plan .*"
     r"\((\d+) fractions, the plan's (\d+)\)"),
    (lambda document: document["beams"][0].update(beam=99), r"segments.json is not from the plan .*\(beams \[.*99\], "
     r"the plan's \["),
])
def test_cli_exports_refuse_segments_of_other_fractions_or_beams_alike(plans, tmp_path, format, edit, said):
    """Audit s18/r3 F3: a segments.json with its fractions edited was refused by export rtplan, while export rtdose
    exited 0 and wrote an RT Dose referencing the RT Plan that cannot be exported; both now apply one rule
    (`PlanResult.check_segments`)."""
    folder = Path(shutil.copytree(plans[0], tmp_path / "plan"))
    document = json.loads((folder / "segments.json").read_text())
    edit(document)
    (folder / "segments.json").write_text(json.dumps(document))
    exported = CliRunner().invoke(app, ["export", format, str(folder), "--out", str(tmp_path / "out.dcm")])
    text = " ".join(exported.output.split())
    assert exported.exit_code == 1 and re.search(said, text), text
    assert not (tmp_path / "out.dcm").exists()


def test_approve_checks_the_segments_fluence_on_the_plans_case(plans, tmp_path, monkeypatch):
    """Audit s18/r3 F2: specc approve checked segments.json without the case, so weight moved between a beam's
    segments (which every export refuses) was approved and --verify vouched for it. Now approve refuses it, and an
    approval made before (without the check) fails --verify; where the case cannot be found approve refuses, naming
    it, until --case gives it, and --verify says what it could not check."""
    import specc.approval
    from specc.approval import OneRun

    folder, beam = _moved_weight(plans[0], tmp_path / "moved")
    approved = CliRunner().invoke(app, ["approve", str(folder), "--reviewer", "Dr. A. Example", "--accept-deviations", ACCEPTED])
    said = " ".join(approved.output.split())
    assert approved.exit_code == 1 and f"beam {beam}: the fluence its segments deliver differs" in said, said
    assert not (folder / "approval.json").exists()
    monkeypatch.setattr(specc.approval, "of_one_run", lambda files, record, plan_sha256, case=None: OneRun([], []))  # no check at all: the fluence one is what it lacked
    specc.approval.approve(folder, "Dr. A. Example", "", reason=ACCEPTED)  # as approve did before
    monkeypatch.undo()
    verified = CliRunner().invoke(app, ["approve", str(folder), "--verify"])
    said = " ".join(verified.output.split())
    assert verified.exit_code == 1 and f"no longer holds: {folder / 'segments.json'}: beam {beam}: the fluence" in said, said

    (tmp_path / "case-moved").mkdir()
    moved = _plan(tmp_path / "case-moved", 4)
    case = (tmp_path / "case-moved" / "case.h5").rename(tmp_path / "elsewhere.h5")
    refused = CliRunner().invoke(app, ["approve", str(moved), "--reviewer", "Dr. A. Example", "--accept-deviations", ACCEPTED])
    said = " ".join(refused.output.split())
    assert refused.exit_code == 1, said
    assert (f"segments.json's fluence (the beamlet weights its segments deliver) cannot be checked against "
            f"result.h5's without the plan's case ({moved / 'result.h5'}: its case file "
            f"{tmp_path / 'case-moved' / 'case.h5'} does not exist") in said, said
    assert said.endswith("give the plan's case with --case"), said
    given = CliRunner().invoke(app, ["approve", str(moved), "--reviewer", "Dr. A. Example", "--accept-deviations", ACCEPTED,
                                       "--case", str(case)])
    assert given.exit_code == 0, given.output
    unchecked = CliRunner().invoke(app, ["approve", str(moved), "--verify"])
    said = " ".join(unchecked.output.split())
    assert unchecked.exit_code == 0 and "warning: not checked: segments.json's fluence" in said, said
    assert "the plan files of one run as far as checked (see the warning)" in said
    checked = CliRunner().invoke(app, ["approve", str(moved), "--verify", "--case", str(case)])
    assert checked.exit_code == 0 and "not checked" not in checked.output, checked.output


def test_approve_judges_the_segments_it_binds_not_a_file_swapped_in_and_back_while_it_checks(plans, tmp_path,
                                                                                          monkeypatch):
    """As report.html and result.h5 (tests/test_report_approval.py): segments.json is read once, and those bytes are
    judged and bound. Another plan's, in the folder before the check and after it, with this plan's swapped in while
    the files are checked, is refused, not bound unjudged (hashing before the check and after it found both alike)."""
    import specc.approval

    own, other = plans
    folder = Path(shutil.copytree(own, tmp_path / "plan"))
    shutil.copy(other / "segments.json", folder / "segments.json")
    of_one_run = specc.approval.of_one_run

    def checked_while_swapped(*args, **kwargs):
        shutil.copy(own / "segments.json", folder / "segments.json")
        try:
            return of_one_run(*args, **kwargs)
        finally:
            shutil.copy(other / "segments.json", folder / "segments.json")

    monkeypatch.setattr(specc.approval, "of_one_run", checked_while_swapped)
    with pytest.raises(specc.approval.ApprovalError, match=rf"not of one run: {re.escape(str(folder / 'segments.json'))} "
                                                          r"is not from the plan"):
        specc.approval.approve(folder, "Dr. A. Example", "", reason=ACCEPTED)
    assert not (folder / "approval.json").exists()


def _first_open(document: dict) -> tuple[dict, dict, int]:
    """The first beam, its first segment and that segment's first open leaf pair."""
    beam = document["beams"][0]
    segment = beam["segments"][0]
    return beam, segment, next(pair for pair, tip in enumerate(segment["left_mm"]) if tip is not None)


def _tip_by(mm: float):
    def edit(document: dict) -> None:
        _, segment, pair = _first_open(document)
        segment["left_mm"][pair] -= mm
        segment["area_cm2"] = round(segment["area_cm2"] + mm * 0.05, 4)  # 5 mm leaves: kept consistent with the tips
    return edit


def _beyond_the_grid(document: dict) -> None:
    """A leaf tip at the edge of the beam's beamlets (-12.5 or 12.5 mm on the test case) moved 10 mm (two beamlets)
    further out: on a beamlet edge, over cells where the case has no beamlet, which no fluence can see."""
    beam = document["beams"][0]
    for segment in beam["segments"]:
        for side, edge in (("left_mm", -12.5), ("right_mm", 12.5)):
            for pair, tip in enumerate(segment[side]):
                if tip == edge:
                    segment[side][pair] = 2 * edge - math.copysign(2.5, edge)
                    segment["area_cm2"] = round(segment["area_cm2"] + 10 * 0.05, 4)
                    return
    raise AssertionError("no leaf tip at the beamlets' edge")


@pytest.mark.parametrize("edit, said", [
    # audit s19/a2 F2: a tip moved by less than half a beamlet leaves every beamlet centre where it was
    (_tip_by(1.0), r"beam 1 segment 1 leaf pair (\d) \(centred on -?\d+ mm\): left tip -?[\d.]+ mm is not on a beamlet "
                   r"edge \(leaves stop at the beam's beamlet edges, 5 mm apart: -?[\d.]+ or -?[\d.]+ mm here\)"),
    (_tip_by(2.4), r"beam 1 segment 1 leaf pair \d .*: left tip -?[\d.]+ mm is not on a beamlet edge"),
    (_beyond_the_grid, r"beam 1 segment \d+ leaf pair \d .*: tips -?[\d.]+ to -?[\d.]+ mm open cells where the "
                       r"case has no beamlet \(a plan opens only its beamlets\)"),
    (lambda d: _first_open(d)[1].update(area_cm2=_first_open(d)[1]["area_cm2"] + 0.5),
     r"beam 1 segment 1: area_cm2 [\d.]+, its leaf tips open [\d.]+ cm²"),
    (lambda d: d["beams"][0].update(gantry_deg=10.0), r"beam 1: gantry_deg 10.0, the case's 0.0"),
    (lambda d: d["beams"][0].update(isocenter_mm=[0.0, 0.0, 4.0]),
     r"beam 1: isocenter_mm \[0.0, 0.0, 4.0\], the case's"),
    (lambda d: d["beams"][0].update(energy="10 MV"), r"beam 1: energy '10 MV', the case's '6 MV'"),
    (lambda d: d["beams"][0]["leaf_pair_centres_mm"].__setitem__(0, -11.0),
     r"beam 1: leaf pair 1 centred on -11 mm, the case's beamlet row 1 on -10 mm"),
    (lambda d: d["beams"][0].update(leaf_width_mm=4.0), r"beam 1: leaf width 4 mm, the case's beamlet rows 5 mm high"),
    (lambda d: d.update(converged=False), r"is not from the plan .*\(converged false, the plan's true\)"),
    (lambda d: d.update(solver_status="optimal_inaccurate"), r"\(solver_status 'optimal_inaccurate', the plan's '"),
    (lambda d: d.update(case_id="another"), r"\(case_id 'another', the plan's 'synthetic'\)"),
])
def test_edits_the_fluence_cannot_see_are_refused_naming_what_and_where(plans, tmp_path, edit, said):
    """Every field the RT Plan carries is the plan's: leaf tips on the beam's beamlet edges over the case's
    beamlets, leaf pairs its beamlet rows, the beam's angles, isocentre and energy the case's, and what its
    descriptions repeat the plan record's. Each of these edits keeps the fluence rebuilt from the tips."""
    own = plans[0]
    document = json.loads((own / "segments.json").read_text())
    edit(document)
    folder = Path(shutil.copytree(own, tmp_path / "plan"))
    (folder / "segments.json").write_text(json.dumps(document))
    result = read_result(own / "result.h5")
    case = result.load_case()
    edited = read_segments(folder / "segments.json")
    # the fluence the file's segments deliver is the plan's: only the new checks see these edits
    rebuilt = segments_fluence(edited, case.beamlets)
    assert np.abs(rebuilt - result.fluence).max() <= FLUENCE_TOLERANCE * result.fluence.max()
    with pytest.raises(ResultError, match=said):
        result.check_segments(edited, folder / "segments.json", case)


def test_a_weight_unit_other_than_specc_writes_is_refused_as_it_is_read(plans, tmp_path):
    """Review s19/r2 F1: a file edited to say its weights are monitor units passed every check, approve and
    verify, and the RT Plan would carry weights a reader takes for MU."""
    document = json.loads((plans[0] / "segments.json").read_text())
    document["weight_unit"] = "monitor units per fraction"
    edited = tmp_path / "segments.json"
    edited.write_text(json.dumps(document))
    with pytest.raises(ResultError, match=r"segments.json: not a specc segments file: weight_unit"):
        read_segments(edited)


@pytest.mark.parametrize("command", ["export rtplan", "approve"])
def test_a_leaf_tip_moved_by_a_millimetre_is_neither_exported_nor_approved(plans, tmp_path, command):
    """Audit s19/a2 F2: a left tip moved 1 mm (a beamlet is 5 mm; its centre stays inside the opening) was written
    to the RT Plan's MLC positions and approved as the plan's own."""
    folder = Path(shutil.copytree(plans[0], tmp_path / "plan"))
    document = json.loads((folder / "segments.json").read_text())
    _tip_by(1.0)(document)
    (folder / "segments.json").write_text(json.dumps(document))
    out = tmp_path / "RP.dcm"
    arguments = ([*command.split(), str(folder), "--out", str(out)] if command.startswith("export")
                 else ["approve", str(folder), "--reviewer", "Dr. A. Example", "--accept-deviations", ACCEPTED])
    refused = CliRunner().invoke(app, arguments)
    said = " ".join(refused.output.split())
    assert refused.exit_code == 1, said
    assert re.search(rf"{re.escape(str(folder / 'segments.json'))}: beam 1 segment 1 leaf pair \d "
                     r"\(centred on -?\d+ mm\): left tip -?[\d.]+ mm is not on a beamlet edge", said), said
    assert not out.exists() and not (folder / "approval.json").exists()
