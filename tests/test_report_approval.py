"""`specc approve`: an approval bound to the plan's files, refused where a plan is not fit to approve."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from evaluate_fakes import protocol, synthetic_case
from specc.cli import app
from specc.evaluate import PlanRecord
from specc.evaluate.record import RobustGoalRecord, RobustnessRecord
from specc.pipeline import plan
from specc.approval import ApprovalError, OneRun, approve, verify
from specc.report.identity import record_json, record_sha256

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Target, dose: 61 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
]
MET = {"Target": ["D50% >= 55 Gy"], "Organ": ["Mean <= 40 Gy"]}
FAILING = {"Target": ["D50% >= 55 Gy"], "Organ": ["Mean <= 1 Gy"]}


def _plan(folder: Path, goals: dict[str, list[str]]) -> Path:
    outcome = plan(protocol(goals, terms=TERMS), synthetic_case(), folder)
    assert outcome.succeeded
    return folder


@pytest.fixture(scope="module")
def met(tmp_path_factory) -> Path:
    return _plan(tmp_path_factory.mktemp("met") / "plan", MET)


@pytest.fixture(scope="module")
def failing(tmp_path_factory) -> Path:
    return _plan(tmp_path_factory.mktemp("failing") / "plan", FAILING)


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "plan"))


def _rewrite(folder: Path, **changes) -> None:
    """The plan as if written with `changes` to its record: plan.json, result.h5's copy and the report's digest."""
    path = folder / "plan.json"
    record = PlanRecord.model_validate_json(path.read_text())
    changed = record.model_copy(update=changes)
    path.write_text(record_json(changed))
    report = folder / "report.html"
    report.write_text(report.read_text().replace(record_sha256(record), record_sha256(changed)))
    with h5py.File(folder / "result.h5", "r+") as result:
        del result["plan_json"]
        result.create_dataset("plan_json", data=record_json(changed), dtype=h5py.string_dtype("utf-8"))


def test_an_approval_binds_the_files_and_verify_finds_a_change(met, tmp_path):
    folder = _copy(met, tmp_path)
    approved = approve(folder, "Dr. A. Example", "Radiation oncologist")
    approval, written = approved.approval, approved.written
    assert [path.name for path in written] == ["approval.json", "approval.html"]
    assert approval.decision == "approved" and approval.accepted_deviations == [] and approval.reason is None
    assert sorted(approval.files) == ["plan.json", "report.html", "result.h5"]
    assert list(approval.pages) == ["approval.html"] and approval.sha256 == approval.content_sha256()
    assert approval.goals == {"pass": 2}
    html = (folder / "approval.html").read_text()
    assert "Dr. A. Example" in html and approval.files["result.h5"] in html and "APPROVED" in html
    assert verify(folder).intact

    with (folder / "result.h5").open("ab") as handle:
        handle.write(b"\0")
    (folder / "report.html").unlink()
    checked = verify(folder)
    assert (checked.changed, checked.missing, checked.appeared) == (["result.h5"], ["report.html"], [])
    with pytest.raises(ApprovalError, match="already approved by Dr. A. Example"):
        approve(folder, "Someone Else", "")


def test_failed_goals_need_a_reason_and_are_recorded(failing, tmp_path):
    folder = _copy(failing, tmp_path)
    with pytest.raises(ApprovalError, match=r"1 goals are not met or not measured \(Organ Mean <= 1 Gy: FAIL\).*--accept-deviations"):
        approve(folder, "Dr. A. Example", "")
    assert not (folder / "approval.json").exists()
    reason = "palliative intent; organ sparing traded for coverage"
    approval = approve(folder, "Dr. A. Example", "", reason=reason).approval
    [deviation] = approval.accepted_deviations
    assert (deviation.structure, deviation.goal, deviation.status) == ("Organ", "Mean <= 1 Gy", "fail")
    assert deviation.value is not None and deviation.value > 1
    assert "palliative intent" in (folder / "approval.html").read_text()


def test_a_goal_failing_only_under_setup_errors_is_a_deviation_too(met, tmp_path):
    folder = _copy(met, tmp_path)
    robust = RobustnessRecord(
        setup_error_mm=(5.0, 5.0, 5.0), model="static dose cloud", scenarios_mm=[(5.0, 0.0, 0.0)],
        scenario_labels=["x +5 mm"], structures=["Target"],
        goals=[RobustGoalRecord(structure="Target", text="D50% >= 55 Gy", unit="Gy", nominal=57.8,
                                scenario_values=[50.0], worst=50.0, worst_scenario=0, measured_status="fail",
                                status="fail")],
    )
    _rewrite(folder, robustness=robust)
    with pytest.raises(ApprovalError, match=r"Target D50% >= 55 Gy: FAIL \(under setup errors, worst: x \+5 mm\)"):
        approve(folder, "Dr. A. Example", "")


def test_a_plan_that_did_not_converge_cannot_be_approved(met, tmp_path):
    folder = _copy(met, tmp_path)
    _rewrite(folder, converged=False)
    with pytest.raises(ApprovalError, match="NOT CONVERGED"):
        approve(folder, "Dr. A. Example", "", reason="any")


def test_nothing_is_planned_over_an_approved_plan(met, tmp_path):
    folder = _copy(met, tmp_path)
    approve(folder, "Dr. A. Example", "")
    with pytest.raises(ApprovalError, match="holds an approved plan"):
        plan(protocol(MET, terms=TERMS), synthetic_case(), folder)
    assert verify(folder).intact


def test_cli_approve_and_verify(met, tmp_path):
    folder = _copy(met, tmp_path)
    runner = CliRunner()
    missing = runner.invoke(app, ["approve", str(folder)])
    assert missing.exit_code == 1 and "--reviewer" in missing.output
    approved = runner.invoke(app, ["approve", str(folder), "--reviewer", "Dr. A. Example", "--role", "RO"])
    assert approved.exit_code == 0 and "approved by Dr. A. Example" in approved.output
    assert runner.invoke(app, ["approve", str(folder), "--verify"]).exit_code == 0
    (folder / "plan.json").write_text((folder / "plan.json").read_text().replace('"pass"', '"fail"', 1))
    changed = runner.invoke(app, ["approve", str(folder), "--verify"])
    assert changed.exit_code == 1 and "plan.json changed" in " ".join(changed.output.split())


def test_cli_verify_names_an_added_file(met, tmp_path):
    folder = _copy(met, tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["approve", str(folder), "--reviewer", "Dr. A. Example"]).exit_code == 0
    intact = runner.invoke(app, ["approve", str(folder), "--verify"])
    said = " ".join(intact.output.split())
    assert intact.exit_code == 0 and "3 plan files and approval.html unchanged, no plan file added, the plan files of one run" in said
    (folder / "report.pdf").write_bytes(b"%PDF-")
    added = runner.invoke(app, ["approve", str(folder), "--verify"])
    assert added.exit_code == 1 and "no longer holds: report.pdf appeared" in " ".join(added.output.split())


def test_a_plan_file_added_after_approval_breaks_it(met, failing, tmp_path):
    folder = _copy(met, tmp_path)
    approve(folder, "Dr. A. Example", "")
    (folder / "report.pdf").write_bytes(b"%PDF- another plan's report")
    shutil.copy(failing / "plan.json", folder / "segments.json")  # any foreign file under a plan file's name
    checked = verify(folder)
    assert not checked.intact and checked.appeared == ["report.pdf", "segments.json"]
    assert checked.problems[:2] == ["report.pdf appeared", "segments.json appeared"]
    assert checked.problems[2].startswith("report.pdf names no plan record")  # nor are they of this plan's run
    assert checked.problems[3].startswith(f"{folder / 'segments.json'}: not a specc segments file")


def _edit_json(folder: Path, **changes) -> None:
    path = folder / "approval.json"
    approval = json.loads(path.read_text())
    approval.update(changes)
    path.write_text(json.dumps(approval, indent=2))


def test_an_edited_approval_page_or_record_fails_verification(met, tmp_path):
    folder = _copy(met, tmp_path)
    approve(folder, "Dr. A. Example", "")
    page = folder / "approval.html"
    original = page.read_text()
    page.write_text(original.replace("Dr. A. Example", "Dr. B. Other"))
    assert verify(folder).changed == ["approval.html"]
    page.write_text(original)

    _edit_json(folder, reviewer="Dr. B. Other")
    assert verify(folder).disagreements == ["approval.json edited since approval (its content no longer has the SHA-256 it recorded)"]


def test_goal_counts_are_checked_against_the_plan(met, tmp_path):
    """Even with its own hash recomputed, approval.json must say what plan.json says."""
    folder = _copy(met, tmp_path)
    approval = approve(folder, "Dr. A. Example", "").approval
    forged = approval.model_copy(update={"goals": {"pass": 5}})
    forged = forged.model_copy(update={"sha256": forged.content_sha256()})
    (folder / "approval.json").write_text(forged.model_dump_json(indent=2))
    assert verify(folder).disagreements == ["approval.json says goal counts (pass 5) but plan.json (pass 2)"]


def test_an_approval_that_binds_nothing_of_its_own_cannot_be_verified(met, tmp_path):
    folder = _copy(met, tmp_path)
    approve(folder, "Dr. A. Example", "")
    _edit_json(folder, version=1, pages={}, sha256="")
    assert "binds neither its own content nor approval.html" in verify(folder).disagreements[0]


def test_a_report_or_a_dose_of_another_run_is_refused(met, failing, tmp_path):
    """The approval's goal counts and deviation gate come from plan.json: the report read and the dose
    exported must be of its run (audit h7 F1: a report with a FAIL was approved as all-pass)."""
    mixed_report = _copy(met, tmp_path / "report")
    shutil.copy(failing / "report.html", mixed_report)
    with pytest.raises(ApprovalError, match=r"not of one run: report\.html was rendered from another plan record "
                                            r"\(SHA-256 [0-9a-f]{12}\) than plan\.json \([0-9a-f]{12}\)"):
        approve(mixed_report, "Dr. A. Example", "")
    assert not (mixed_report / "approval.json").exists()

    mixed_dose = _copy(met, tmp_path / "dose")
    shutil.copy(failing / "result.h5", mixed_dose)
    with pytest.raises(ApprovalError, match=r"result\.h5 is another run's dose: its plan record and plan\.json differ in "
                                            r".*protocol \(result\.h5 Test protocol v1\.0\.0 SHA-256 [0-9a-f]{12}, "
                                            r"plan\.json Test protocol v1\.0\.0 SHA-256 [0-9a-f]{12}\)"):
        approve(mixed_dose, "Dr. A. Example", "")


def test_verify_finds_files_of_another_run_bound_by_an_earlier_approval(met, failing, tmp_path, monkeypatch):
    """An approval made before files were checked to be of one run: --verify says what it binds."""
    import specc.approval

    folder = _copy(met, tmp_path)
    shutil.copy(failing / "report.html", folder)
    monkeypatch.setattr(  # as approve did before
        specc.approval, "of_one_run", lambda files, record, plan_sha256, case=None: OneRun([], [])
    )
    approve(folder, "Dr. A. Example", "")
    monkeypatch.undo()
    checked = verify(folder)
    assert (checked.changed, checked.missing, checked.appeared) == ([], [], [])  # every hash as approved
    assert [problem.split(" (")[0] for problem in checked.disagreements] == ["report.html was rendered from another plan record"]
    result = CliRunner().invoke(app, ["approve", str(folder), "--verify"])
    assert result.exit_code == 1 and "report.html was rendered from another plan record" in " ".join(result.output.split())


def test_report_pdf_names_its_plan_record(met, failing, tmp_path):
    from specc.report.write import html_to_pdf

    own = _copy(met, tmp_path / "own")
    html_to_pdf((met / "report.html").read_text(), own / "report.pdf")  # as write_report prints it
    approval = approve(own, "Dr. A. Example", "").approval
    assert "report.pdf" in approval.files

    other = _copy(met, tmp_path / "other")
    html_to_pdf((failing / "report.html").read_text(), other / "report.pdf")
    with pytest.raises(ApprovalError, match=r"report\.pdf was rendered from another plan record"):
        approve(other, "Dr. A. Example", "")


def test_a_folder_holding_a_killed_runs_staging_folder_is_not_approved(met, tmp_path):
    """Audit d1 F6: a run killed while it staged inside the folder (a mount point) leaves a hidden staging folder,
    which may hold another run's whole plan; approve took the folder without a word."""
    folder = _copy(met, tmp_path)
    leftover = folder / ".specc-plan-0a1b2c3d.partial"
    shutil.copytree(met, leftover)
    with pytest.raises(ApprovalError, match=r"holds \.specc-plan-0a1b2c3d\.partial, left by a run killed while it "
                                            r"wrote its files .*: remove it, then approve"):
        approve(folder, "Dr. A. Example", "Radiation oncologist")
    shutil.rmtree(leftover)
    assert approve(folder, "Dr. A. Example", "Radiation oncologist").approval.decision == "approved"


HOT_SPOT = "hot spot outside the targets 114% (D0.03cc 57.25 Gy)"


def test_a_deviation_is_recorded_with_its_priority_and_line_and_the_page_shows_the_plans_warnings(failing, tmp_path):
    """Audit s18/b1 F7: the approval page and approval.json listed 'Core | D10% <= 10 Gy | 14.07 Gy | FAIL' without
    saying it is a must-goal (priority 1) or where the protocol states it, and left out the hot spot outside the
    targets the report's header names; the record's warnings, what the signer was told first, are kept too."""
    folder = _copy(failing, tmp_path)
    record = PlanRecord.model_validate_json((folder / "plan.json").read_text())
    [organ] = [goal for goal in record.goals if goal.structure == "Organ"]
    warning = "target PTV = `expand(CTV, 3mm)` is CTV itself on this 5 mm grid"
    _rewrite(folder, warnings=[warning], outside_hot_spot=HOT_SPOT)
    approval = approve(folder, "Dr. A. Example", "", reason="organ sparing traded for coverage").approval
    [deviation] = approval.accepted_deviations
    assert (deviation.priority, deviation.source) == (1, organ.source) and organ.source.endswith(".yaml:16")
    assert (approval.warnings, approval.outside_hot_spot) == ([warning], HOT_SPOT)
    saved = json.loads((folder / "approval.json").read_text())
    assert (saved["accepted_deviations"][0]["priority"], saved["accepted_deviations"][0]["source"]) == (1, organ.source)
    page = (folder / "approval.html").read_text()
    assert '<td class="num">1 (must)</td>' in page and f'<td class="mono">{organ.source}</td>' in page
    assert f"WARNING: {warning}." in page and HOT_SPOT in page
    assert verify(folder).intact


def test_an_approval_written_before_deviations_had_a_priority_still_verifies(failing, tmp_path):
    """approval.json binds its own content by SHA-256 (`Approval.content_sha256`): fields added since (a deviation's
    priority and line, the warnings, the hot spot) must not change the hash of a file written without them."""
    folder = _copy(failing, tmp_path)
    approve(folder, "Dr. A. Example", "", reason="organ sparing traded for coverage")
    path = folder / "approval.json"
    saved = json.loads(path.read_text())
    for added in ("warnings", "outside_hot_spot"):
        saved.pop(added, None)
    for deviation in saved["accepted_deviations"]:
        del deviation["priority"], deviation["source"]
    content = {key: value for key, value in saved.items() if key != "sha256"}  # the hash as approvals then wrote it
    saved["sha256"] = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"),
                                                ensure_ascii=False).encode("utf-8")).hexdigest()
    path.write_text(json.dumps(saved, indent=2))
    assert verify(folder).intact, verify(folder).problems


def test_a_goal_on_an_organ_the_protocol_allows_the_case_to_lack_is_no_deviation_to_accept(met, tmp_path):
    """Review s18 R2: an if_contoured organ the case does not contour (its goal NOT EVALUATED, absence_allowed) asked
    --accept-deviations and was listed as a must-goal not measured, though --strict lets it pass; a goal not
    measured for any other reason still needs the reason."""
    folder = _copy(met, tmp_path)
    record = PlanRecord.model_validate_json((folder / "plan.json").read_text())
    organ = next(goal for goal in record.goals if goal.structure == "Organ")
    absent = organ.model_copy(update={"value": None, "measured_status": "not_evaluated", "status": "not_evaluated",
                                      "note": "Organ: not contoured on this case (if_contoured: true)"})
    _rewrite(folder, goals=[absent.model_copy(update={"absence_allowed": True}) if goal is organ else goal
                            for goal in record.goals])
    approval = approve(folder, "Dr. A. Example", "").approval
    assert approval.accepted_deviations == [] and approval.reason is None
    unmeasured = _copy(met, tmp_path / "unmeasured")
    _rewrite(unmeasured, goals=[absent if goal is organ else goal for goal in record.goals])
    with pytest.raises(ApprovalError, match=r"Organ Mean <= 40 Gy: NOT EVALUATED.*--accept-deviations"):
        approve(unmeasured, "Dr. A. Example", "")


def _swapped_during_the_check(monkeypatch, folder: Path, name: str, during: Path) -> None:
    """`of_one_run` run while `folder`'s `name` holds `during`'s bytes, and the file put back after: a file swapped
    for another and swapped back while the plan files are checked."""
    import specc.approval

    of_one_run = specc.approval.of_one_run

    def checked_while_swapped(*args, **kwargs):
        kept = (folder / name).read_bytes()
        shutil.copy(during, folder / name)
        try:
            return of_one_run(*args, **kwargs)
        finally:
            (folder / name).write_bytes(kept)

    monkeypatch.setattr(specc.approval, "of_one_run", checked_while_swapped)


@pytest.mark.parametrize("name", ["report.html", "result.h5"])
def test_approve_judges_the_bytes_it_binds_not_a_file_swapped_in_and_back_while_it_checks(met, failing, tmp_path,
                                                                                          monkeypatch, name):
    """Each plan file is read once, and `of_one_run` judges those bytes: another run's file, swapped for this run's
    while the files are checked and back after, is judged, and refused, not bound unjudged (hashing before the check
    and after it, as approve did, found both hashes alike and bound it)."""
    folder = _copy(met, tmp_path)
    shutil.copy(failing / name, folder / name)  # another run's, on disk before the check and after it
    _swapped_during_the_check(monkeypatch, folder, name, met / name)
    with pytest.raises(ApprovalError, match=f"not of one run: {re.escape(name)} "):
        approve(folder, "Dr. A. Example", "")
    assert not (folder / "approval.json").exists()


def test_verify_judges_the_bytes_it_hashes_not_a_file_swapped_in_and_back_while_it_checks(met, failing, tmp_path,
                                                                                         monkeypatch):
    """As approve: an approval that bound another run's report.html (made before files were checked to be of one run)
    is found by `verify` even while this run's report.html is swapped in for the check and back after it."""
    import specc.approval

    folder = _copy(met, tmp_path)
    shutil.copy(failing / "report.html", folder)
    monkeypatch.setattr(specc.approval, "of_one_run", lambda files, record, plan_sha256, case=None: OneRun([], []))
    approve(folder, "Dr. A. Example", "")
    monkeypatch.undo()
    _swapped_during_the_check(monkeypatch, folder, "report.html", met / "report.html")
    checked = verify(folder)
    assert (checked.changed, checked.missing, checked.appeared) == ([], [], [])
    assert [problem.split(" (")[0] for problem in checked.disagreements] == ["report.html was rendered from another plan record"]


@pytest.mark.parametrize(("name", "said"), [
    ("report.html", "changed"), ("plan.json", "changed"), ("segments.json", "appeared"), ("result.h5", "was removed"),
])
def test_a_plan_file_changed_while_approve_runs_is_refused_and_nothing_is_written(met, failing, tmp_path, monkeypatch,
                                                                                  name, said):
    """Approve binds the bytes it read and judged, and hashes the files on disk again before it writes anything:
    another run's report.html or plan.json written after the check, a segments.json that appeared or a result.h5
    removed meanwhile is refused, and nothing is written. An approval.json bound to what the folder no longer holds
    failed `verify` at once, and approve then refused the folder as approved: approval.json to delete by hand."""
    import specc.approval

    folder = _copy(met, tmp_path)
    of_one_run = specc.approval.of_one_run

    def checked_then_moved(*args, **kwargs):
        run = of_one_run(*args, **kwargs)
        if said == "was removed":
            (folder / name).unlink()
        else:  # another run's file (any file, for a plan file that appears)
            shutil.copy(failing / ("plan.json" if name == "segments.json" else name), folder / name)
        return run

    monkeypatch.setattr(specc.approval, "of_one_run", checked_then_moved)
    with pytest.raises(ApprovalError, match=rf"^{re.escape(str(folder / name))} {said} while the plan was being "
                                            r"approved: approve again$"):
        approve(folder, "Dr. A. Example", "")
    assert not (folder / "approval.json").exists() and not (folder / "approval.html").exists()
    monkeypatch.undo()
    (folder / name).unlink(missing_ok=True)
    if name != "segments.json":
        shutil.copy(met / name, folder / name)
    assert approve(folder, "Dr. A. Example", "").approval.decision == "approved"  # approved again, as the error says


@pytest.mark.parametrize("when", ["as it is read", "after it is read"])
def test_verify_says_missing_and_appeared_of_its_one_read(met, failing, tmp_path, monkeypatch, when):
    """`missing` and `appeared` are of the one read whose bytes are hashed, not of a look at the folder again:
    report.html removed as it is read is said unreadable, not missing besides; removed after it was read, and its
    SHA-256 found as bound, it is not said missing, nor is a segments.json that appeared after the read said to have
    appeared. An approval.pdf there before the read did appear."""
    import specc.approval

    folder = _copy(met, tmp_path)
    approve(folder, "Dr. A. Example", "")
    (folder / "approval.pdf").write_bytes(b"%PDF- not this approval's")
    report = folder / "report.html"
    if when == "as it is read":
        read_bytes = Path.read_bytes

        def removed_first(path: Path) -> bytes:
            if path == report:
                path.unlink()
            return read_bytes(path)

        monkeypatch.setattr(Path, "read_bytes", removed_first)
    else:
        read = specc.approval.PlanFiles.read

        def read_then_moved(cls, *args):
            files = read(*args)
            report.unlink()
            shutil.copy(failing / "plan.json", folder / "segments.json")
            return files

        monkeypatch.setattr(specc.approval.PlanFiles, "read", classmethod(read_then_moved))
    checked = verify(folder)
    assert (checked.changed, checked.missing, checked.appeared) == ([], [], ["approval.pdf"])
    unreadable = [f"{report}: cannot be read (No such file or directory)"] if when == "as it is read" else []
    assert [problem for problem in checked.disagreements if "cannot be read" in problem] == unreadable


def _unreadable(monkeypatch, name: str) -> None:
    """`name` in the plan folder as a file whose bytes cannot be read (permissions, I/O): root reads through chmod."""
    read_bytes = Path.read_bytes

    def read_or_denied(path: Path) -> bytes:
        if path.name == name:
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", read_or_denied)


def test_an_unreadable_plan_file_is_a_problem_named_never_a_traceback(met, tmp_path, monkeypatch):
    folder = _copy(met, tmp_path)
    approve(folder, "Dr. A. Example", "")
    _unreadable(monkeypatch, "plan.json")
    checked = verify(folder)
    assert not checked.intact and checked.changed == ["plan.json"]
    assert f"{folder / 'plan.json'}: cannot be read (Permission denied)" in checked.problems
    result = CliRunner().invoke(app, ["approve", str(folder), "--verify"])
    assert result.exit_code == 1 and "plan.json: cannot be read (Permission denied)" in " ".join(result.output.split())

    monkeypatch.undo()
    _unreadable(monkeypatch, "result.h5")
    checked = verify(folder)
    assert not checked.intact and checked.changed == [] and checked.missing == []
    assert checked.unchecked == ["whether the plan files are of one run: result.h5 cannot be read"]
    assert f"{folder / 'result.h5'}: cannot be read (Permission denied)" in checked.problems
    fresh = _copy(met, tmp_path / "fresh")
    with pytest.raises(ApprovalError, match=r"result\.h5: cannot be read \(Permission denied\)"):
        approve(fresh, "Dr. A. Example", "")


@pytest.mark.parametrize(("content", "problem"), [
    ("not json", "plan.json: not a specc plan record"),
    (None, "plan.json: plan record format 999; this specc reads format 1"),
])
def test_a_plan_json_replaced_by_no_plan_record_breaks_the_approval_and_says_what_went_unchecked(met, tmp_path, content,
                                                                                                 problem):
    folder = _copy(met, tmp_path)
    approve(folder, "Dr. A. Example", "")
    path = folder / "plan.json"
    if content is None:
        content = json.dumps(json.loads(path.read_text()) | {"format": 999})
    path.write_text(content)
    checked = verify(folder)
    assert not checked.intact and checked.changed == ["plan.json"] and "plan.json changed" in checked.problems
    assert any(said.startswith(f"{folder / problem}") for said in checked.problems), checked.problems
    assert checked.unchecked == ["whether the plan files are of one run: plan.json, which they are checked against, is "
                                 "no plan record this specc reads"]
