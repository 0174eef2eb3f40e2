"""A protocol goal that asks less than the template goal it replaces is allowed (the merge rule) but said:
`Protocol.loosened_template_goals`, `specc validate` (text and json), a warning of `specc compile`, the warnings of a
plan's or a check's record and the goal's own note (audit c4 F2, s18/b1 F2); no longer among the compile notes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import specc.cli.validate  # noqa: F401  (registers the commands)
from specc.cli.app import app
from specc.protocol import load_protocol, load_protocol_or_template

runner = CliRunner()
TEMPLATE = (
    "template: true\nspecc: 1\nname: base\nsite: t\nversion: 1.0.0\nstructures:\n"
    "  Cord: {role: oar}\n  Lung: {role: oar}\n  PTV: {role: target}\n"
    "goals:\n"  # line 10
    '  Cord: ["Max <= 45 Gy", "D0.03cc <= 44 Gy"]\n'  # line 11
    '  Lung: ["V20Gy[%] <= 30 (variation 35)", "Mean <= 20 Gy"]\n'  # line 12
    '  PTV: ["D95% >= 95%"]\n'  # line 13
)
HEADER = (
    "extends: base.yaml\nname: p\nversion: 1.0.0\n"
    "prescription: {fractions: 30, levels: [{target: PTV, dose: 60 Gy}]}\n"
    "goals:\n"  # goals from line 6
)


def _protocol(tmp_path: Path, goals: str, template: str = TEMPLATE) -> Path:
    (tmp_path / "base.yaml").write_text(template)
    path = tmp_path / "p.yaml"
    path.write_text(HEADER + goals)
    return path


def _warnings(path: Path) -> list[tuple[str, str, str]]:
    return [(f"{Path(w.file).name}:{w.line}", w.path, w.message)
            for w in load_protocol_or_template(path).loosened_template_goals]


def test_a_hard_limit_made_soft_and_higher_is_said_at_its_line_naming_the_templates(tmp_path: Path) -> None:
    """The audit's case: the cord's must-limit replaced by a priority-2 limit 5 Gy higher validated as OK."""
    path = _protocol(tmp_path, '  Cord: ["Max <= 50 Gy (priority 2)"]\n')
    assert _warnings(path) == [(
        "p.yaml:6", "goals.Cord[0]",
        f'"Max <= 50 Gy (priority 2)" replaces the template goal "Max <= 45 Gy" ({tmp_path / "base.yaml"}:11) and '
        "asks less: threshold raised from 45 Gy to 50 Gy, priority demoted from 1 (must) to 2",
    )]
    assert [str(goal) for goal in load_protocol(path).goals if goal.structure == "Cord"] == [
        "Max <= 50 Gy (priority 2)", "D0.03cc <= 44 Gy"  # still the documented merge: allowed, only said
    ]


def test_each_way_of_asking_less_is_named(tmp_path: Path) -> None:
    path = _protocol(tmp_path, (
        '  Lung: ["V20Gy[%] <= 30 (variation 40)", "Mean <= 18 Gy (priority 2)"]\n'
        '  PTV: ["D95% >= 55 Gy"]\n'
        '  Cord: ["D0.03cc <= 44 Gy (variation 46 Gy)"]\n'
    ))
    assert [(line, message.split("asks less: ")[1]) for line, _, message in _warnings(path)] == [
        ("p.yaml:6", "acceptable variation widened from 35% to 40%"),
        ("p.yaml:6", "priority demoted from 1 (must) to 2"),
        ("p.yaml:7", "threshold lowered from 95% (57 Gy) to 55 Gy"),  # a lower limit, compared in Gy
        ("p.yaml:8", "an acceptable variation added (46 Gy)"),
    ]


def test_a_goal_as_strict_or_stricter_is_no_loosening(tmp_path: Path) -> None:
    path = _protocol(tmp_path, (
        '  Cord: ["Max <= 40 Gy"]\n  Lung: ["V20Gy[%] <= 28 (variation 33)", "Mean <= 20 Gy"]\n'
        '  PTV: ["D95% >= 58 Gy"]\n'
    ))
    assert _warnings(path) == []


def test_one_goal_replacing_two_says_which_it_gives_up(tmp_path: Path) -> None:
    template = TEMPLATE.replace('"Max <= 45 Gy", "D0.03cc <= 44 Gy"', '"Max <= 45 Gy", "Max <= 40 Gy (priority 2)"')
    path = _protocol(tmp_path, '  Cord: ["Max <= 45 Gy"]\n', template)
    assert [message.split(" (")[0] + " | " + message.split("asks less: ")[1] for _, _, message in _warnings(path)] == [
        '"Max <= 45 Gy" replaces the template goal "Max <= 40 Gy | threshold raised from 40 Gy to 45 Gy'
    ]


def _table(volumes: str, limits: str, variations: str = "") -> str:
    """A goal on the cord whose maximum is a table by the PTV's volume, as a protocol's goal line."""
    varied = f", variation: [{variations}]" if variations else ""
    return (f'  Cord: [{{metric: Max, "<=": {{by_volume_of: PTV, volume_cc: [{volumes}], limit: [{limits}]{varied}}}}}, '
            '"D0.03cc <= 44 Gy"]\n')


def test_a_table_by_volume_is_compared_with_the_template_goal_row_by_row(tmp_path: Path) -> None:
    """A table replacing a number was never compared (audit s18/r1 F1): the template's must-limit Max <= 45 Gy became
    60-70 Gy by PTV volume without a word. Between two rows a table is the line between them, so the rows say it."""
    loosened = [
        (_table("1.8, 163", "60 Gy, 70 Gy"),
         "threshold raised from 45 Gy to 60-70 Gy by PTV volume at every row of the table"),
        (_table("1.8, 22, 163", "40 Gy, 50 Gy, 60 Gy"),
         "threshold raised from 45 Gy to 40-60 Gy by PTV volume at the table's 22 cc row (45 Gy to 50 Gy) and "
         "163 cc row (45 Gy to 60 Gy)"),
        (_table("1.8, 163", "40 Gy, 45 Gy", "48 Gy, 52 Gy"), "an acceptable variation added (48-52 Gy by PTV volume)"),
        (_table("1.8, 163", "75%, 90%"),  # of the PTV's 60 Gy: 45 Gy, then 54 Gy
         "threshold raised from 45 Gy to 75%-90% by PTV volume at the table's 163 cc row (45 Gy to 54 Gy)"),
    ]
    for goals, reason in loosened:
        [(line, where, message)] = _warnings(_protocol(tmp_path, goals))
        assert (line, where, message.split("asks less: ")[1]) == ("p.yaml:6", "goals.Cord[0]", reason)
    assert _warnings(_protocol(tmp_path, _table("1.8, 163", "40 Gy, 45 Gy"))) == []  # at most 45 Gy at every row


def test_a_number_replacing_a_table_and_a_table_replacing_a_table_are_compared_row_by_row(tmp_path: Path) -> None:
    template = TEMPLATE.replace(
        '"Max <= 45 Gy"', '{metric: Max, "<=": {by_volume_of: PTV, volume_cc: [1.8, 163], limit: [40 Gy, 45 Gy]}}')
    assert _warnings(_protocol(tmp_path, '  Cord: ["Max <= 42 Gy"]\n', template))[0][2].split("asks less: ")[1] == (
        "threshold raised from 40-45 Gy by PTV volume to 42 Gy at the table's 1.8 cc row (40 Gy to 42 Gy)")
    # the rows of both tables are compared, the template's read between its two rows at the protocol's 50 cc row
    [(_, _, message)] = _warnings(_protocol(tmp_path, _table("1.8, 50, 163", "40 Gy, 44 Gy, 45 Gy"), template))
    assert message.split("asks less: ")[1] == (
        "threshold raised from 40-45 Gy by PTV volume to 40-45 Gy by PTV volume at the table's 50 cc row "
        "(41.5 Gy to 44 Gy)")
    assert _warnings(_protocol(tmp_path, _table("1.8, 50, 163", "40 Gy, 41 Gy, 45 Gy"), template)) == []


def test_a_template_between_that_loosens_is_named_and_the_final_goal_is_what_counts(tmp_path: Path) -> None:
    """protocol -> mid template -> base: each replaced goal is compared with the goals the chain ends with."""
    (tmp_path / "mid.yaml").write_text(
        "extends: base.yaml\ntemplate: true\nname: mid\nversion: 1.0.0\ngoals:\n"
        '  Cord: ["Max <= 48 Gy"]\n  Lung: ["Mean <= 22 Gy"]\n'  # lines 6 and 7
    )
    path = _protocol(tmp_path, '  Lung: ["Mean <= 19 Gy"]\n')
    path.write_text(path.read_text().replace("extends: base.yaml", "extends: mid.yaml"))
    found = [(line, message.split(" (")[0]) for line, _, message in _warnings(path)]
    assert found == [("mid.yaml:6", '"Max <= 48 Gy" replaces the template goal "Max <= 45 Gy"')]  # Lung: 19 Gy asks more
    assert [line for line, _, _ in _warnings(tmp_path / "mid.yaml")] == ["mid.yaml:6", "mid.yaml:7"]  # Cord, Lung


def test_one_goal_written_without_a_list_replaces_the_templates_of_its_metric_only(tmp_path: Path) -> None:
    """Written without a list, it replaced the whole list: the template's D0.03cc <= 44 Gy vanished unsaid."""
    path = _protocol(tmp_path, '  Cord: "Max <= 48 Gy"\n')
    assert [str(goal) for goal in load_protocol(path).goals if goal.structure == "Cord"] == [
        "Max <= 48 Gy", "D0.03cc <= 44 Gy"
    ]
    # the path of the file that wrote it, which holds no list there (the merged list holds it at [0])
    assert [(line, where) for line, where, _ in _warnings(path)] == [("p.yaml:6", "goals.Cord")]


def test_validate_warns_in_text_and_json_and_exits_0(tmp_path: Path) -> None:
    path = _protocol(tmp_path, '  Cord: ["Max <= 50 Gy (priority 2)"]\n')
    text = runner.invoke(app, ["validate", str(path)])
    assert text.exit_code == 0
    assert text.output.splitlines()[0] == f"OK {path}"
    assert text.output.splitlines()[1].startswith(f"  warning: {path}:6:10: goals.Cord[0]: \"Max <= 50 Gy (priority 2)\"")
    as_json = runner.invoke(app, ["validate", "--format", "json", str(path)])
    assert as_json.exit_code == 0
    [warning] = json.loads(as_json.stdout)
    assert (warning["severity"], warning["line"], warning["path"]) == ("warning", 6, "goals.Cord[0]")
    assert "priority demoted from 1 (must) to 2" in warning["message"]


def test_each_loosened_goal_reads_as_its_warning_at_its_line(tmp_path: Path) -> None:
    """What a plan's record and `specc compile` print (`Protocol.loosened_template_goals`, as `specc validate`)."""
    path = _protocol(tmp_path, '  Cord: ["Max <= 50 Gy (priority 2)"]\n')
    [note] = _said(load_protocol(path))
    assert note.startswith(f"{path}:6:10: goals.Cord[0]: ") and "threshold raised from 45 Gy to 50 Gy" in note


def _organ_protocol(tmp_path: Path) -> Path:
    """A protocol on the synthetic case's Target and Organ that raises its template's Organ mean 20 -> 25 Gy."""
    template = TEMPLATE.replace("  Cord: {role: oar}\n  Lung: {role: oar}\n  PTV: {role: target}\n",
                                "  Organ: {role: oar}\n  Target: {role: target}\n").replace(
        '  Cord: ["Max <= 45 Gy", "D0.03cc <= 44 Gy"]\n  Lung: ["V20Gy[%] <= 30 (variation 35)", "Mean <= 20 Gy"]\n'
        '  PTV: ["D95% >= 95%"]\n', '  Organ: ["Mean <= 20 Gy"]\n  Target: ["D95% >= 95%"]\n')
    (tmp_path / "base.yaml").write_text(template)
    path = tmp_path / "p.yaml"
    path.write_text(HEADER.replace("PTV", "Target") + '  Organ: ["Mean <= 25 Gy"]\n')
    return path


def _said(protocol) -> list[str]:
    return [str(warning) for warning in protocol.loosened_template_goals]


def test_a_plan_warns_of_a_template_goal_its_protocol_loosened_and_marks_its_row(tmp_path: Path) -> None:
    """validate warned (6582416), but the plan's record, which the physician signs, said nothing; then only a note
    near the end of the report, the goal's row and plan.json goal unmarked (audit s18/b1 F2: a VARIATION there is a
    FAIL by the template). Now a record warning, `specc validate`'s word for word (a red banner above the goals),
    and the goal's note names the template goal it gives up."""
    import specc
    from evaluate_fakes import synthetic_case
    from specc.compile import compile_protocol
    from specc.compile.derive import with_optimization

    path = _organ_protocol(tmp_path)
    said = "replaces the template goal \"Mean <= 20 Gy\""
    protocol, _ = with_optimization(load_protocol(path))
    assert not any(said in note for note in compile_protocol(protocol, synthetic_case()).notes)  # a warning, not a note
    loaded = load_protocol(path)
    record = specc.plan(loaded, synthetic_case(), tmp_path / "out").record
    assert record.warnings == [str(warning) for warning in loaded.loosened_template_goals], record.warnings
    assert len(record.warnings) == 1 and said in record.warnings[0]
    [organ] = [goal for goal in record.goals if goal.structure == "Organ"]
    assert organ.note == f'loosens the template goal "Mean <= 20 Gy" ({tmp_path / "base.yaml"}:10)'  # its line in the template
    assert all("template" not in goal.note for goal in record.goals if goal is not organ)
    assert not any(said in note for note in record.notes), record.notes  # the warning, not a note besides


def test_a_protocol_revised_in_memory_keeps_the_notes_of_the_goals_it_still_loosens(tmp_path: Path) -> None:
    """Review R2 F7: revise_protocol (and a plan of a protocol changed in memory) dropped the warnings, so the
    record of a plan tuned in memory no longer said that the cord's must-limit was raised."""
    from specc import revise_protocol
    from specc.pipeline import as_planned

    path = _protocol(tmp_path, '  Cord: ["Max <= 50 Gy (priority 2)"]\n  Lung: ["Mean <= 22 Gy"]\n')
    protocol = load_protocol(path)
    assert len(_said(protocol)) == 2
    assert _said(revise_protocol(protocol, version="1.0.1")) == _said(protocol)
    assert _said(as_planned(protocol.model_copy(update={"version": "1.0.2"}))) == _said(protocol)
    lung = next(i for i, goal in enumerate(protocol.goals) if str(goal) == "Mean <= 22 Gy")
    goals = list(protocol.goals)
    threshold = goals[lung].threshold.model_copy(update={"value": 20.0})  # the template's: no longer loosened
    goals[lung] = goals[lung].model_copy(update={"threshold": threshold})
    kept = _said(revise_protocol(protocol, goals=goals))
    assert len(kept) == 1 and '"Max <= 50 Gy (priority 2)"' in kept[0]


def test_a_goal_loosened_further_in_memory_keeps_its_note_judged_again(tmp_path: Path) -> None:
    """Review R3 F4: the cord's 45 Gy template limit, 50 Gy in the file, raised to 55 Gy in memory lost its note
    (notes were kept only while the goal's text was unchanged): the record no longer said a must-limit was raised."""
    from specc import revise_protocol

    protocol = load_protocol(_protocol(tmp_path, '  Cord: ["Max <= 50 Gy (priority 2)"]\n'))
    cord = next(i for i, goal in enumerate(protocol.goals) if str(goal) == "Max <= 50 Gy (priority 2)")
    goals = list(protocol.goals)
    goals[cord] = goals[cord].model_copy(update={"threshold": goals[cord].threshold.model_copy(update={"value": 55.0})})
    (note,) = _said(revise_protocol(protocol, goals=goals))
    assert '"Max <= 55 Gy (priority 2)" replaces the template goal "Max <= 45 Gy"' in note
    assert "threshold raised from 45 Gy to 55 Gy, priority demoted from 1 (must) to 2" in note


def test_a_revised_protocol_judges_each_loosened_template_goal_against_its_own(tmp_path: Path) -> None:
    """One goal replacing two template goals (the cord's 45 Gy must-limit and a 40 Gy priority-2 one) has two notes
    at one line; revised in memory, each was judged against the last of them (the notes kept only one per line):
    two copies of the 40 Gy note, the must-limit's gone. A flow list writes several goals on one line: the
    loosened 'Max' goal was judged as the 'D0.03cc' beside it, its note dropped or made nonsense."""
    from specc import revise_protocol

    template = TEMPLATE.replace('"Max <= 45 Gy", "D0.03cc <= 44 Gy"',
                                '"Max <= 45 Gy", "Max <= 40 Gy (priority 2)", "D0.03cc <= 44 Gy"')
    protocol = load_protocol(_protocol(tmp_path, '  Cord: ["Max <= 50 Gy", "D0.03cc <= 44 Gy"]\n', template))
    notes = _said(protocol)
    assert [note.split("replaces ")[1].split(" (")[0] for note in notes] == [
        'the template goal "Max <= 45 Gy"', 'the template goal "Max <= 40 Gy']
    assert _said(revise_protocol(protocol, version="1.0.1")) == notes


def test_a_cohort_says_each_plans_warnings_in_the_terminal_the_page_and_a_comparison(tmp_path: Path) -> None:
    """Review s18 R2: `specc cohort` printed a plan's warnings nowhere (they had been notes until 18ced36 made them
    the record's warnings, which only `specc plan`'s summary printed), nor did cohort.html or a comparison."""
    import html

    from typer.testing import CliRunner

    import specc.cli.plan  # noqa: F401  (registers the commands)
    from evaluate_fakes import synthetic_case
    from specc.cli.app import app
    from specc.report.compare import read_plans, warnings

    path = _organ_protocol(tmp_path)
    synthetic_case().save(tmp_path / "case.h5")
    said = 'replaces the template goal "Mean <= 20 Gy"'
    result = CliRunner().invoke(app, ["cohort", str(path), str(tmp_path / "case.h5"), "--out", str(tmp_path / "out"),
                                      "-q"])
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output and said in " ".join(result.output.split()), result.output
    page = " ".join(html.unescape((tmp_path / "out" / "cohort.html").read_text()).split())
    assert f"synthetic: {path}:6:11: goals.Organ[0]: " in page and said in page, page
    folder = next(path for path in (tmp_path / "out").iterdir() if (path / "plan.json").exists())
    compared = warnings(read_plans([folder, folder]))
    assert sum(said in warning.text for warning in compared) == 2  # each plan's, named by its label
