"""`specc.plan` end to end on a small synthetic case: files, timings, exit codes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from evaluate_fakes import protocol, synthetic_case
from specc.export import read_result
from specc.pipeline import plan
from specc.protocol import parse_protocol_text
import specc.solve.clinical
from specc.solve.clinical import solve_clinical

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Target, dose: 61 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
]


def test_a_plan_writes_report_plan_json_and_result_with_stage_timings(tmp_path: Path) -> None:
    events: list[tuple[str, float | None]] = []
    case = synthetic_case()
    goals = {"Target": ["D50% >= 50 Gy"], "Organ": ["Mean <= 1 Gy"]}  # the organ goal cannot be met
    outcome = plan(protocol(goals, terms=TERMS), case, tmp_path, progress=lambda s, t: events.append((s, t)))
    assert outcome.succeeded and outcome.exit_code() == 0
    assert sorted(p.name for p in outcome.paths) == ["plan.json", "report.html", "result.h5"]
    assert [s for s, t in events if t is None] == ["compile", "solve", "evaluate", "report"]
    assert set(outcome.timings_s) == {"compile", "solve", "evaluate", "report"}

    record = json.loads((tmp_path / "plan.json").read_text())
    statuses = {goal["text"]: goal["status"] for goal in record["goals"]}
    assert statuses == {"D50% >= 50 Gy": "pass", "Mean <= 1 Gy": "fail"}
    assert set(record["timings_s"]) == {"compile", "solve", "evaluate"}
    assert outcome.exit_code(strict=True) == 2  # a failed priority-1 goal
    assert [goal.text for goal in outcome.record.failed_must_goals()] == ["Mean <= 1 Gy"]
    result = read_result(tmp_path / "result.h5")
    np.testing.assert_allclose(result.fluence, outcome.solve.fluence, rtol=1e-12)
    np.testing.assert_allclose(result.dose_gy, case.dose_on_grid(outcome.solve.fluence, 30), rtol=1e-5, atol=1e-4)



def test_a_solve_in_priority_steps_reports_each_step_within_the_solve_stage(tmp_path: Path) -> None:
    """Each step of a solve by priorities is told to `progress` as it starts and ends, between the solve
    stage's own start and end (audit a1 F11: a goals-only solve of minutes was silent), and not timed as a stage."""
    events: list[tuple[str, float | None]] = []
    ranked = [term.replace("}", f", priority: {priority}}}") for term, priority in zip(TERMS, [2, 2, 1])]
    goals = {"Target": ["D50% >= 50 Gy"], "Organ": ["Mean <= 1 Gy"]}
    outcome = plan(protocol(goals, terms=ranked), synthetic_case(), tmp_path, progress=lambda s, t: events.append((s, t)))
    assert outcome.succeeded
    solved = [row["step"].split(". ", 1) for row in outcome.solve.steps if row["step"][0].isdigit()]
    assert len(solved) == 2, outcome.solve.steps
    labels = [f"step {number}/{len(solved)}: {name}" for number, name in solved]
    within = events[events.index(("solve", None)) + 1: next(i for i, (s, t) in enumerate(events) if s == "solve" and t)]
    assert [(label, seconds is None) for label, seconds in within] == [
        (label, started) for label in labels for started in (True, False)
    ]
    assert set(outcome.timings_s) == {"compile", "solve", "evaluate", "report"}

def test_an_infeasible_protocol_writes_nothing_and_exits_non_zero(tmp_path: Path) -> None:
    terms = ["{kind: min_dose, structure: Target, dose: 60 Gy}", "{kind: max_dose, structure: Body, dose: 10 Gy}"]
    outcome = plan(protocol({"Target": ["D95% >= 50 Gy"]}, terms=terms), synthetic_case(), tmp_path / "out")
    assert not outcome.succeeded and outcome.record is None
    assert outcome.exit_code() == 1 and outcome.exit_code(strict=True) == 1
    assert outcome.paths == [] and not (tmp_path / "out").exists()
    assert "min_dose Target >= 60 Gy" in outcome.solve.message


def test_a_failed_plan_removes_an_earlier_plan_from_its_folder(tmp_path: Path) -> None:
    case = synthetic_case()
    first = plan(protocol({"Target": ["D50% >= 50 Gy"]}, terms=TERMS), case, tmp_path)
    assert first.succeeded and (tmp_path / "report.html").exists()
    terms = ["{kind: min_dose, structure: Target, dose: 60 Gy}", "{kind: max_dose, structure: Body, dose: 10 Gy}"]
    second = plan(protocol({"Target": ["D95% >= 50 Gy"]}, terms=terms), case, tmp_path)
    assert not second.succeeded
    assert sorted(path.name for path in tmp_path.iterdir()) == []
    assert any("earlier run" in note for note in second.notes)


def test_compile_notes_reach_plan_json_and_the_report(tmp_path: Path) -> None:
    text = (
        "specc: 1\nname: t\nsite: t\nversion: 1.0.0\n"
        "structures:\n  Target: {role: target}\n  Body: {role: other}\n"
        "  Wide: {role: other, expression: 'expand(Body, 10mm)'}\n"  # reaches beyond the dose rows
        "prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}\n"
        "goals: {Target: ['D50% >= 50 Gy']}\n"
        "optimization:\n  terms:\n"
        "    - {kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}\n"
        "    - {kind: quadratic_overdose, structure: Wide, dose: 20 Gy, weight: 1}\n"
    )
    outcome = plan(parse_protocol_text(text, "notes.yaml"), synthetic_case(), tmp_path)
    clipped = [note for note in outcome.notes if note.startswith("Wide:") and "left out" in note]
    assert len(clipped) == 1
    assert outcome.record is not None and outcome.record.notes == outcome.notes
    assert json.loads((tmp_path / "plan.json").read_text())["notes"] == outcome.notes
    html = (tmp_path / "report.html").read_text()
    assert f'<li class="note">{escape(clipped[0])}</li>' in html


def test_a_solver_fallback_is_a_note_in_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import specc.planning

    def solved_by_another(program, settings, *args):
        result = solve_clinical(program, settings, *args)
        return dataclasses.replace(result, solver="OTHER", message=f"{settings.name} refused; OTHER solved it")

    monkeypatch.setattr(specc.planning, "solve_clinical", solved_by_another)
    outcome = plan(protocol({"Target": ["D50% >= 50 Gy"]}, terms=TERMS), synthetic_case(), tmp_path, solver="CLARABEL")
    fallback = [note for note in outcome.notes if note.startswith("solver: CLARABEL was chosen, but OTHER")]
    assert len(fallback) == 1 and outcome.record is not None and fallback[0] in outcome.record.notes


def test_a_plan_says_what_its_sample_cost_and_finishes_on_every_voxel_when_it_cost_too_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = synthetic_case()
    terms = TERMS + ["{kind: quadratic_overdose, structure: Body, dose: 20 Gy, weight: 1}"]
    goals = {"Target": ["D50% >= 50 Gy"]}
    monkeypatch.setattr(specc.solve.clinical, "DEFAULT_SAMPLE_LIMIT", 20)  # a default far too small for this body
    tiny = plan(protocol(goals, terms=terms), case, tmp_path / "tiny")
    every = plan(protocol(goals, terms=terms, solver="{sample_voxels: all}"), case, tmp_path / "every")
    assert tiny.succeeded and every.succeeded and tiny.solve.status == "optimal"
    notes = json.loads((tmp_path / "tiny" / "plan.json").read_text())["notes"]
    assert any("sample of 20" in note for note in notes)
    assert any(note.startswith("Sampling:") and "finished on every voxel" in note for note in notes)
    assert "compiled on every voxel" in tiny.solve.message
    assert tiny.solve.objective == pytest.approx(every.solve.objective, rel=5e-4)
    assert not any(stats.sampled for stats in tiny.stats.structures)  # the program that gave the plan

    # A protocol that sets its own sample keeps it, and its notes say what the sample cost; as that is more than
    # the optimizer's accuracy, the plan warns (plan.json, the report's banner), not only notes (audit s19/b2 F1).
    chosen = plan(protocol(goals, terms=terms, solver="{sample_voxels: 20}"), case, tmp_path / "chosen")
    assert chosen.succeeded and "compiled on every voxel" not in chosen.solve.message
    assert any(stats.sampled for stats in chosen.stats.structures)
    assert any(note.startswith("Sampling: on every voxel the sampled terms add") for note in chosen.notes)
    (warning,) = json.loads((tmp_path / "chosen" / "plan.json").read_text())["warnings"]
    assert warning.startswith("The plan was optimized on a sample of the voxels of Body, Organ, and kept so (the "
                              "protocol sets its own optimization.solver.sample_voxels)")
    assert "a goal on Body, Organ may fail because of the sample" in warning
    assert str(escape(warning)) in (tmp_path / "chosen" / "report.html").read_text()
    assert not every.record.warnings and not tiny.record.warnings


def test_a_plan_of_priority_steps_whose_sample_cost_too_much_is_solved_again_on_every_voxel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit s19/b2 F1/F3: a plan solved by CLARABEL (priority steps, the exact refinement) kept its sample, and a
    sampled soft max ended far above its goal (prostate 10 mm: 56.78 Gy for 35 Gy, 34.96 Gy on every voxel)."""
    case = synthetic_case()
    text = (
        "specc: 1\nname: t\nsite: t\nversion: 1.0.0\n"
        "structures:\n  Target: {role: target}\n  Body: {role: other}\n"
        "  Tissue: {role: oar, expression: 'Body - expand(Target, 5mm)'}\n"
        "prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}\n"
        'goals:\n  Target: ["D95% >= 57 Gy"]\n  Tissue: ["Max <= 40 Gy (priority 2)", "Mean <= 5 Gy (priority 3)"]\n'
    )
    monkeypatch.setattr(specc.solve.clinical, "CVXPY_SAMPLE_LIMIT", 20)  # a default far too small for this tissue
    tiny = plan(parse_protocol_text(text, "p.yaml"), case, tmp_path / "tiny")
    monkeypatch.setattr(specc.solve.clinical, "CVXPY_SAMPLE_LIMIT", None)  # every voxel from the start
    every = plan(parse_protocol_text(text, "p.yaml"), case, tmp_path / "every")
    assert tiny.succeeded and every.succeeded and tiny.solve.status == "optimal"
    assert "compiled on every voxel and solved again" in tiny.solve.message
    assert not any(stats.sampled for stats in tiny.stats.structures) and not tiny.record.warnings
    assert any(note.startswith("Sampling:") and "solved again on every voxel" in note for note in tiny.notes)
    assert [goal.value for goal in tiny.record.goals] == pytest.approx([goal.value for goal in every.record.goals],
                                                                       abs=0.01)


def test_ctrl_c_removes_the_earlier_plan_and_a_half_written_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import specc.pipeline

    case, planned = synthetic_case(), protocol({"Target": ["D50% >= 50 Gy"]}, terms=TERMS)
    assert plan(planned, case, tmp_path).succeeded

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(specc.pipeline, "evaluate_plan", interrupted)  # before anything is written
    with pytest.raises(KeyboardInterrupt):
        plan(planned, case, tmp_path)
    assert list(tmp_path.iterdir()) == []  # as for a solve that gives no plan

    monkeypatch.undo()
    session = specc.pipeline.PlanSession(case, tmp_path)  # as `specc plan --watch`, which keeps its last plan
    assert session.plan(planned).succeeded
    monkeypatch.setattr(specc.pipeline, "write_result", interrupted)  # report.html and plan.json written, then stopped
    with pytest.raises(KeyboardInterrupt):
        session.plan(planned)
    assert list(tmp_path.iterdir()) == []  # never half a plan


def _earlier_plan(folder: Path) -> list[str]:
    """An earlier run's plan files in `folder` (a whitelisted name is what is removed, whatever it holds),
    beside a file of the user's; returns the folder's names."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("plan.json", "report.html", "result.h5", "mine.txt"):
        (folder / name).write_text("earlier", encoding="utf-8")
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize("failure", ["protocol", "case", "compile"])
def test_an_error_before_the_solve_removes_the_earlier_plan_as_a_failed_solve_does(tmp_path: Path, failure: str) -> None:
    from specc.errors import SpeccError

    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(b"not an HDF5 file")
    bad_protocol = tmp_path / "bad.yaml"
    bad_protocol.write_text("specc: 1\nname: [\n", encoding="utf-8")
    given = {
        "protocol": (bad_protocol, synthetic_case()),
        "case": (protocol({"Target": ["D50% >= 50 Gy"]}, terms=TERMS), damaged),
        "compile": (protocol({"Target": ["D50% >= 50 Gy"]}, terms=TERMS), synthetic_case(oar_name="Rectum_wall")),
    }
    out = tmp_path / "out"
    _earlier_plan(out)
    with pytest.raises(SpeccError):
        plan(*given[failure], out)
    assert [path.name for path in out.iterdir()] == ["mine.txt"]  # only specc's plan files go


def test_an_error_leaves_an_approved_plan_and_makes_no_folder(tmp_path: Path) -> None:
    from specc.errors import SpeccError

    bad_protocol = tmp_path / "bad.yaml"
    bad_protocol.write_text("specc: 1\nname: [\n", encoding="utf-8")
    approved = tmp_path / "approved"
    names = _earlier_plan(approved)
    (approved / "approval.json").write_text("{}", encoding="utf-8")
    with pytest.raises(SpeccError):
        plan(bad_protocol, synthetic_case(), approved)
    assert sorted(path.name for path in approved.iterdir()) == sorted([*names, "approval.json"])
    with pytest.raises(SpeccError):
        plan(bad_protocol, synthetic_case(), tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_session_keeps_its_last_plan_when_a_change_gives_none(tmp_path: Path) -> None:
    """`specc plan --watch`: an infeasible experiment leaves the tuning's last good plan in the folder (audit
    h7 F4); before the session's first plan, a failed solve removes an earlier run's plan as `plan` does."""
    import specc.pipeline

    case = synthetic_case()
    good = protocol({"Target": ["D50% >= 50 Gy"]}, terms=TERMS)
    infeasible = protocol({"Target": ["D95% >= 50 Gy"]}, terms=[
        "{kind: min_dose, structure: Target, dose: 60 Gy}", "{kind: max_dose, structure: Body, dose: 10 Gy}"])
    assert plan(good, case, tmp_path).succeeded
    session = specc.pipeline.PlanSession(case, tmp_path)
    assert session.last_plan is None and not session.plan(infeasible).succeeded
    assert list(tmp_path.iterdir()) == []  # not this session's plan: removed

    first = session.plan(good)
    written = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    failed = session.plan(infeasible)
    assert not failed.succeeded and not any("earlier run" in note for note in failed.notes)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == written
    assert session.last_plan is first
    (tmp_path / "result.h5").unlink()  # a plan stopped while writing removes the last one's files
    assert session.last_plan is None


def test_a_target_that_is_its_source_on_the_grid_is_a_warning_of_the_plan(tmp_path) -> None:
    """Audit s18/b1 F3: 'PTV_Boost is CTV_Prostate itself' (a 7 mm margin on a 10 mm grid) was a note only, below
    the figures, while page 1 read the PTV's coverage PASS. The compile stage hands the target on
    (`ResolvedStructures.collapsed_targets`) and the plan's record warns of it, above the goals; an organ's PRV that
    is its organ stays a note."""
    text = (
        "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n"
        "  CTV: {role: target}\n  Organ: {role: oar}\n"
        "  PTV: {role: target, expression: 'expand(CTV, 3mm)'}\n"
        "  PRV: {role: oar, expression: 'expand(Organ, 3mm)'}\n"
        "prescription: {fractions: 2, levels: [{target: PTV, dose: 4 Gy}]}\n"
        'goals:\n  PTV: ["D95% >= 3.8 Gy"]\n  PRV: ["Max <= 4 Gy (priority 2)"]\n'
    )
    record = plan(parse_protocol_text(text, "p.yaml"), synthetic_case(target_name="CTV"), tmp_path / "out").record
    assert record.warnings == [
        "target PTV = `expand(CTV, 3mm)` is CTV itself on this 5 mm grid: its margin gives 0 mm (a margin keeps the "
        "voxels whose centre lies within it), so its goals and coverage are CTV's, with no margin for setup error; "
        "plan on a finer grid, or write the margins in whole voxel spacings"
    ]
    assert any("PRV is Organ itself" in note for note in record.notes)


def test_a_sequenced_plan_keeps_the_warning_of_the_fluence_sample_it_was_cut_from(tmp_path: Path) -> None:
    """The sampling warning is the fluence solve's; a step-and-shoot plan is the segment-weight solve's result,
    which carries it on, once."""
    terms = TERMS + ["{kind: quadratic_overdose, structure: Body, dose: 20 Gy, weight: 1}"]
    sequenced = plan(protocol({"Target": ["D50% >= 50 Gy"]}, terms=terms, solver="{sample_voxels: 20}",
                              delivery="{technique: step_and_shoot, intensity_levels: 5}"),
                     synthetic_case(), tmp_path / "sequenced")
    assert sequenced.succeeded and sequenced.record.delivery is not None
    warnings = json.loads((tmp_path / "sequenced" / "plan.json").read_text())["warnings"]
    assert len([warning for warning in warnings if warning.startswith("The plan was optimized on a sample")]) == 1
