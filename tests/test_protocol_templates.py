"""Site templates (`template: true`): checked on their own, never planned, not inherited."""

from __future__ import annotations

from pathlib import Path

import pytest

from specc.protocol import (
    Protocol,
    ProtocolError,
    SiteTemplate,
    load_protocol,
    load_protocol_or_template,
    parse_protocol_text,
    revise_protocol,
)

EXAMPLES = Path(__file__).parent.parent / "protocols" / "examples"
# The pelvic site template as shipped at 1.0.0, frozen: these tests pin line numbers and edits of its text,
# which the shipped library's later versions would move.
BASE = Path(__file__).parent / "data" / "base-pelvis-1.0.0.yaml"
PROSTATE = EXAMPLES / "prostate-sib.yaml"


def diagnostics_of(path: Path, loader=load_protocol_or_template) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ProtocolError) as caught:
        loader(path)
    return [(d.line, d.path, d.message) for d in caught.value.diagnostics]


def write_base(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "base-pelvis.yaml"
    path.write_text(text)
    return path


def test_shipped_template_is_checked_on_its_own() -> None:
    template = load_protocol_or_template(EXAMPLES / "base-pelvis.yaml")
    assert isinstance(template, SiteTemplate) and not isinstance(template, Protocol)
    assert template.prescription is None and template.site == "pelvis"
    assert {"Rectum", "Bladder"} <= set(template.structures)
    assert [str(goal) for goal in template.goals if goal.structure == "Femur_Head_L"] == ["V50Gy[%] <= 5%"]
    assert [Path(name).name for name in template.source.files] == ["base-pelvis.yaml"]


def test_a_template_is_not_planned() -> None:
    assert diagnostics_of(BASE, load_protocol) == [
        (7, "template", "this file is a site template (template: true); plan a protocol that extends it")
    ]
    with pytest.raises(ProtocolError, match="is a site template"):
        parse_protocol_text(BASE.read_text(), "base.yaml")


def test_refusal_comes_with_the_templates_own_problems(tmp_path: Path) -> None:
    base = write_base(tmp_path, BASE.read_text().replace('"V50Gy[%] <= 5"', '"V50 <= 5"', 1))
    messages = [message for _, _, message in diagnostics_of(base, load_protocol)]
    assert messages[0].startswith("this file is a site template")
    assert messages[1] == 'unknown metric "V50" (did you mean "V50Gy"?)'


def test_extending_protocol_does_not_inherit_template() -> None:
    protocol = load_protocol(PROSTATE)
    assert isinstance(protocol, Protocol) and protocol.prescription.fractions == 39
    assert isinstance(load_protocol_or_template(PROSTATE), Protocol)


def test_an_incomplete_protocol_extending_a_template_is_still_incomplete(tmp_path: Path) -> None:
    write_base(tmp_path, BASE.read_text())
    child = tmp_path / "child.yaml"
    child.write_text("extends: base-pelvis.yaml\nname: Child\nversion: 1.0.0\n")
    assert diagnostics_of(child) == [(1, "prescription", 'missing required key "prescription"')]


def test_a_protocol_states_its_own_name_version_and_approval(tmp_path: Path) -> None:
    """Inherited, they called a protocol "... (site template) v1.0.0" in its plan and its diff, and gave it
    the template's approval; the site is the template's unless the protocol says otherwise."""
    approved = "version: 1.0.0\napproval: {by: Dr. T, date: 2024-01-15}\n"  # a valid template: its own errors count
    write_base(tmp_path, BASE.read_text().replace("version: 1.0.0\n", approved))
    body = (
        "extends: base-pelvis.yaml\nstructures:\n  PTV: {role: target}\n"
        "prescription: {fractions: 25, levels: [{target: PTV, dose: 50 Gy}]}\ngoals: {PTV: ['D95% >= 47.5 Gy']}\n"
    )
    child = tmp_path / "child.yaml"
    child.write_text(body)
    note = "(each file states its own {}: it is not taken from the template it extends)"
    assert diagnostics_of(child) == [
        (1, "name", f'missing required key "name" {note.format("name")}'),
        (1, "version", f'missing required key "version" {note.format("version")}'),
    ]
    child.write_text(body + "name: Child\nversion: 2.0.0\n")
    protocol = load_protocol(child)
    assert (protocol.name, protocol.version, protocol.site, protocol.approval) == ("Child", "2.0.0", "pelvis", None)
    hypo = tmp_path / "pelvis-hypo.yaml"
    hypo.write_text("extends: base-pelvis.yaml\ntemplate: true\n")
    template = load_protocol_or_template(hypo)
    assert isinstance(template, SiteTemplate) and (template.name, template.version) == (None, None)


def _two_files(tmp_path: Path, template_goals: str, protocol_goals: str) -> list[tuple[str, str]]:
    """The merged goals of a protocol over a template, each as (text, file:line), but the PTV's coverage goal
    (written after `protocol_goals`, from line 10)."""
    (tmp_path / "base.yaml").write_text(
        "template: true\nstructures:\n  Core: {role: oar}\n  Body: {role: other}\ngoals:\n" + template_goals
    )
    (tmp_path / "p.yaml").write_text(
        "extends: base.yaml\nspecc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n  PTV: {role: target}\n"
        "prescription: {fractions: 25, levels: [{target: PTV, dose: 50 Gy}]}\ngoals:\n" + protocol_goals
        + '  PTV: ["D95% >= 47.5 Gy"]\n'
    )
    goals = [goal for goal in load_protocol(tmp_path / "p.yaml").goals if goal.structure != "PTV"]
    return [(goal.text, f"{Path(goal.source.file).name}:{goal.source.line}") for goal in goals]


def test_the_goals_of_one_metric_and_side_replace_the_templates_as_a_group(tmp_path: Path) -> None:
    """Matched one to one, the second of two limits on one metric replaced the first (in one file), and a
    template's pair lost one goal to a protocol's single one: a priority-1 limit vanished without a word."""
    template = '  Core: ["D10% <= 10 Gy", "Max <= 40 Gy", "Mean <= 8 Gy"]\n  Body: ["Max <= 60 Gy (priority 2)"]\n'
    two = '  Core: ["Max <= 45 Gy", "D10% <= 12 Gy", "Max <= 35 Gy (priority 2)"]\n'
    assert _two_files(tmp_path, template, two) == [
        ("D10% <= 12 Gy", "p.yaml:10"),
        ("Max <= 45 Gy", "p.yaml:10"),  # both of the protocol's, in the place of the template's one
        ("Max <= 35 Gy (priority 2)", "p.yaml:10"),
        ("Mean <= 8 Gy", "base.yaml:6"),
        ("Max <= 60 Gy (priority 2)", "base.yaml:7"),
    ]
    pair = '  Core: ["Max <= 45 Gy", "Mean <= 8 Gy", "Max <= 35 Gy (priority 2)"]\n'
    assert _two_files(tmp_path, pair, '  Core: ["D2% <= 30 Gy"]\n') == [  # kept together when not overridden
        ("Max <= 45 Gy", "base.yaml:6"), ("Mean <= 8 Gy", "base.yaml:6"), ("Max <= 35 Gy (priority 2)", "base.yaml:6"),
        ("D2% <= 30 Gy", "p.yaml:10"),
    ]
    assert _two_files(tmp_path, pair, '  Core: ["Max <= 30 Gy (priority 3)"]\n') == [  # the protocol's Max goals
        ("Max <= 30 Gy (priority 3)", "p.yaml:10"), ("Mean <= 8 Gy", "base.yaml:6"),
    ]


def test_a_protocol_goal_equal_to_its_templates_replaces_it_and_is_no_repeat(tmp_path: Path) -> None:
    """A goal written twice in one file is refused (test_protocol_errors); restating a template's goal in the
    protocol replaces it under the group rule, so the merged protocol holds it once."""
    template = '  Core: ["Max <= 40 Gy", "V20Gy[%] <= 30 (priority 2)"]\n'
    assert _two_files(tmp_path, template, '  Core: ["Max <= 40 Gy", "V20Gy[%] <= 30 (priority 3)"]\n') == [
        ("Max <= 40 Gy", "p.yaml:10"), ("V20Gy[%] <= 30 (priority 3)", "p.yaml:10"),
    ]


def test_an_empty_goal_list_does_not_pass_for_removing_the_templates_goals(tmp_path: Path) -> None:
    """Every other list is replaced as a whole, so `Body: []` read as "no goals" while it kept them all."""
    with pytest.raises(ProtocolError) as caught:
        _two_files(tmp_path, '  Body: ["Max <= 60 Gy (priority 2)"]\n', '  Body: []\n  Core: []\n')
    (found,) = caught.value.diagnostics
    assert (Path(found.file).name, found.line, found.column, found.path) == ("p.yaml", 10, 9, "goals.Body")
    assert found.message.startswith(
        f"an empty list would keep the template's goals of Body ({tmp_path / 'base.yaml'}:6): a protocol's goals are "
        "merged with its template's, not replaced. To change a template goal, write goals of its metric and side"
    )


def test_a_goal_or_margin_on_a_part_says_it_is_a_part_and_how_to_define_the_side(tmp_path: Path) -> None:
    """Audit c4 F4: a goal on BrachialPlex_L, or expand(BrachialPlex_L, 5mm), where the side is only a part of the
    template's plexus, was answered 'did you mean "BrachialPlexus"?': following it put the one-side limit or PRV on
    both sides."""
    (tmp_path / "base.yaml").write_text(
        "template: true\nstructures:\n  BrachialPlexus: {role: oar, parts: [BrachialPlex_L, BrachialPlex_R]}\n"
    )
    head = (
        "extends: base.yaml\nspecc: 1\nname: t\nsite: t\nversion: 1.0.0\n"
        "prescription: {fractions: 25, levels: [{target: PTV, dose: 50 Gy}]}\nstructures:\n  PTV: {role: target}\n"
    )
    (tmp_path / "p.yaml").write_text(head + "  PlexL_PRV: {role: oar, expression: 'expand(brachialplex_l, 5mm)'}\n"
                                     + 'goals:\n  BrachialPlex_L: ["Max <= 45 Gy"]\n  PTV: ["D95% >= 47.5 Gy"]\n')
    part = (" (a case structure that, with its other parts, stands for it), not a structure of the protocol; a goal or "
            "margin on one side needs the side defined as a structure of its own ({}: {{role: oar}}), which reads the "
            "same case structure")
    assert diagnostics_of(tmp_path / "p.yaml") == [
        (9, "structures.PlexL_PRV.expression",
         'undefined structure "brachialplex_l": it is a part of "BrachialPlexus"' + part.format("brachialplex_l")),
        (11, "goals.BrachialPlex_L",
         'undefined structure "BrachialPlex_L": it is a part of "BrachialPlexus"' + part.format("BrachialPlex_L")),
    ]


def test_a_goal_on_an_alias_and_an_alias_clash_point_at_what_to_change(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "template: true\nstructures:\n  Core: {role: oar, aliases: [SpinalCord, Cord]}\n"
    )
    head = (
        "extends: base.yaml\nspecc: 1\nname: t\nsite: t\nversion: 1.0.0\n"
        "prescription: {fractions: 25, levels: [{target: PTV, dose: 50 Gy}]}\nstructures:\n  PTV: {role: target}\n"
    )
    (tmp_path / "p.yaml").write_text(head + 'goals:\n  spinalcord: ["Max <= 45 Gy"]\n  PTV: ["D95% >= 47.5 Gy"]\n')
    assert diagnostics_of(tmp_path / "p.yaml") == [(10, "goals.spinalcord", (
        'undefined structure "spinalcord": it is an alias of "Core" (a name a case may give it); '
        'write its goals under "Core"'
    ))]
    (tmp_path / "p.yaml").write_text(head + "  Cord: {role: oar}\n")
    assert diagnostics_of(tmp_path / "p.yaml") == [(3, "structures.Core.aliases[1]", (
        'alias "Cord" already names structure "Cord" (names and aliases are matched ignoring case); '
        f"structures.Cord is at {tmp_path / 'p.yaml'}:9:3"
    ))]


def test_a_template_extending_a_template_says_so(tmp_path: Path) -> None:
    write_base(tmp_path, BASE.read_text())
    child = tmp_path / "pelvis-hypo.yaml"
    child.write_text("extends: base-pelvis.yaml\ntemplate: true\nname: Pelvis, hypofractionated\n")
    template = load_protocol_or_template(child)
    assert isinstance(template, SiteTemplate) and template.name == "Pelvis, hypofractionated"
    assert "Rectum" in template.structures


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("role: oar\n    aliases: [rectum_o", "rol: oar\n    aliases: [rectum_o"),
         (23, "structures.Rectum.rol", 'unknown key "rol" (did you mean "role"?)')),
        (('"V60Gy[%] <= 35"', '"V60Gy[%] <= 135"'),
         (42, "goals.Rectum[1]", 'threshold "135" of V60Gy[%]: a volume cannot exceed 100%')),
        (("  Bladder:\n    - \"V65Gy", "  Bladdr:\n    - \"V65Gy"),
         (46, "goals.Bladdr", 'undefined structure "Bladdr" (did you mean "Bladder"?)')),
        (('color: "#ffd700"', 'color: "#ffd700"\n    expression: Rectum | Prostate'),
         (30, "structures.Bladder.expression", 'undefined structure "Prostate"')),
        (("version: 1.0.0", "version: 1.0"),
         (11, "version", 'version must be text in semantic versioning, e.g. "1.0.0" (quote it), got 1.0')),
        (("\ntemplate: true\n", "\ntemplate: yes please\n"),
         (7, "template", 'template is true (a site template) or false (a complete protocol), got "yes please"')),
        (("\ntemplate: true\n", "\ntemplte: true\n"),
         (7, "templte", 'unknown key "templte" (did you mean "template"?)')),
    ],
)
def test_a_template_is_checked_for_everything_but_completeness(
    change: tuple[str, str], expected: tuple[int, str, str], tmp_path: Path
) -> None:
    text = BASE.read_text()
    assert text.count(change[0]) == 1
    found = diagnostics_of(write_base(tmp_path, text.replace(*change)))
    if "templte" in change[1]:  # no longer a template: incomplete as a protocol too
        assert found[0] == (7, "prescription", 'missing required key "prescription"')
        found = found[1:]
    assert found == [expected]


def test_goals_in_percent_wait_for_the_extending_protocols_prescription(tmp_path: Path) -> None:
    text = BASE.read_text() + '  Body: ["D0.03cc <= 110%", "D0.03cc >= 50%"]\n'
    template = load_protocol_or_template(write_base(tmp_path, text))
    hot = [goal for goal in template.goals if goal.structure == "Body"]
    assert [goal.reference_dose for goal in hot] == [None, None]
    child = tmp_path / "prostate-sib.yaml"
    child.write_text(PROSTATE.read_text())
    body = [goal for goal in load_protocol(child).goals if goal.structure == "Body"]
    assert [goal.threshold_value for goal in body] == pytest.approx([1.10 * 78, 0.50 * 78])  # the highest level


def test_a_template_with_a_prescription_is_checked_against_its_own_structures(tmp_path: Path) -> None:
    text = BASE.read_text() + "prescription: {fractions: 39, levels: [{target: Rectum, dose: 78 Gy}]}\n"
    assert diagnostics_of(write_base(tmp_path, text)) == [
        (55, "prescription.levels[0].target", '"Rectum" has role oar; a dose level needs a structure with role: target')
    ]


def test_goals_are_matched_by_the_goal_grammar_whatever_their_form(tmp_path: Path) -> None:
    """A mapping goal overrides the template's of the same metric, side and dose, whatever its priority; a
    compact one in another quantity or on this course alone is another goal."""
    (tmp_path / "base.yaml").write_text(
        "template: true\nstructures:\n  Rectum: {role: oar, alpha_beta: 3 Gy}\ngoals:\n  Rectum:\n"
        "    - {metric: D2cc, '<=': 76 Gy, priority: 2}\n    - 'Max <= 80 Gy'\n"
    )
    (tmp_path / "p.yaml").write_text(
        "extends: base.yaml\nspecc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n  PTV: {role: target}\n"
        "prescription: {fractions: 39, levels: [{target: PTV, dose: 78 Gy}]}\ngoals:\n  Rectum:\n"
        "    - {metric: D2cc, '<=': 75 Gy, priority: 3}\n    - 'Max <= 82 Gy (EQD2)'\n  PTV: ['D95% >= 74.1 Gy']\n"
    )
    assert [goal.text for goal in load_protocol(tmp_path / "p.yaml").goals] == [
        "D2cc <= 75 Gy (priority 3)", "Max <= 80 Gy", "Max <= 82 Gy (EQD2)", "D95% >= 74.1 Gy",
    ]


def test_goals_the_grammar_reads_only_once_yaml_has_typed_them_still_override(tmp_path: Path) -> None:
    """`5_0`, `0x1E` are YAML numbers; a goal the grammar refuses (a unit typo) still overrides by its metric
    and side as written, and validation then reports it."""
    (tmp_path / "base.yaml").write_text(
        "template: true\nstructures:\n  Lung: {role: oar}\ngoals:\n  Lung:\n"
        "    - {metric: 'V50Gy[%]', '<=': 5_0}\n    - {metric: Max, '<=': 80 Gy, '>=': null}\n    - 'Mean <= 20 Gy'\n"
    )
    protocol = (
        "extends: base.yaml\nspecc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n  PTV: {role: target}\n"
        "prescription: {fractions: 30, levels: [{target: PTV, dose: 60 Gy}]}\ngoals:\n  Lung:\n"
        "    - {metric: 'V50Gy[%]', '<=': 40}\n    - {metric: Max, '<=': 76 Gy}\n    - MEAN\n"
        "  PTV: ['D95% >= 57 Gy']\n"
    )
    (tmp_path / "p.yaml").write_text(protocol.replace("MEAN", "'Mean <= 18 Gy'"))
    assert [goal.text for goal in load_protocol(tmp_path / "p.yaml").goals] == [
        "V50Gy[%] <= 40%", "Max <= 76 Gy", "Mean <= 18 Gy", "D95% >= 57 Gy",
    ]
    (tmp_path / "q.yaml").write_text(protocol.replace("MEAN", "'Mean <= 18 Gray'"))
    found = diagnostics_of(tmp_path / "q.yaml", load_protocol)
    assert len(found) == 1 and 'unknown unit "Gray"' in found[0][2]  # the typo replaced the template's goal


def _fractionated(tmp_path: Path, fractions: int, limits: str = "[1.8 Gy, 2.2 Gy]", own: str = "") -> Path:
    """A template stating the dose per fraction of its limits (the key at line 3) and a protocol of 35 Gy in
    `fractions` extending it (`extends:` at line 1), with `own` keys of its own after its prescription."""
    (tmp_path / "base.yaml").write_text(
        f"template: true\nstructures: {{Cord: {{role: oar}}}}\nlimits_for_dose_per_fraction: {limits}\n"
        'goals:\n  Cord: ["Max <= 45 Gy"]\n'
    )
    path = tmp_path / "p.yaml"
    path.write_text(
        "extends: base.yaml\nspecc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n  PTV: {role: target}\n"
        f"prescription: {{fractions: {fractions}, levels: [{{target: PTV, dose: 35 Gy}}]}}\n{own}"
        'goals:\n  PTV: ["D95% >= 95%"]\n'
    )
    return path


def test_a_protocol_at_another_dose_per_fraction_than_its_templates_limits_is_warned_at_extends(tmp_path) -> None:
    """A 5-fraction protocol extending a 2 Gy-per-fraction template took its organ limits silently (audit s19/a4
    F2): the template states the dose per fraction its limits are for, and the protocol is warned, valid."""
    assert load_protocol(_fractionated(tmp_path, 17)).template_warnings == []  # 2.06 Gy per fraction
    protocol = load_protocol(_fractionated(tmp_path, 5))
    [warning] = protocol.template_warnings
    assert (Path(warning.file).name, warning.line, warning.column, warning.path) == ("p.yaml", 1, 10, "extends")
    assert warning.message.startswith(
        "PTV's 35 Gy in 5 fractions is 7 Gy per fraction, but the physical dose limits taken are for 1.8-2.2 Gy per "
        "fraction (limits_for_dose_per_fraction): at 7 Gy per fraction the same physical dose does more to an organ, "
        "so they limit less than they were set to. State the limits this course needs in this protocol, in EQD2 or BED"
    )
    assert warning.message.endswith(f"limits_for_dose_per_fraction is at {tmp_path / 'base.yaml'}:3:1")
    hyper = load_protocol(_fractionated(tmp_path, 30)).template_warnings  # 1.17 Gy per fraction
    assert "1.167 Gy per fraction" in hyper[0].message and "they limit more than they were set to" in hyper[0].message
    # judged on the protocol as it is: one revised in memory to 2 Gy fractions is no longer warned
    assert revise_protocol(protocol, prescription=protocol.prescription.model_copy(
        update={"fractions": 17})).template_warnings == []


def test_a_protocol_stating_the_key_itself_is_warned_at_the_key(tmp_path) -> None:
    own = "limits_for_dose_per_fraction: [5 Gy, 8 Gy]\n"  # line 9
    protocol = load_protocol(_fractionated(tmp_path, 35, own=own))
    [warning] = protocol.template_warnings
    assert (Path(warning.file).name, warning.line, warning.path) == ("p.yaml", 9, "limits_for_dose_per_fraction")
    assert load_protocol(_fractionated(tmp_path, 5, own=own)).template_warnings == []


@pytest.mark.parametrize(("limits", "message"), [
    ("[1.8 Gy, 2 Gy, 2.2 Gy]", "the lowest and highest dose per fraction the limits are for, two doses ([1.8 Gy, "
                               "2.2 Gy]), got 3"),
    ("[2.2 Gy, 1.8 Gy]", "the lowest dose per fraction comes first: [2.2 Gy, 1.8 Gy] is empty"),
    ("[180 Gy, 220 Gy]", "220 Gy per fraction is more than any external-beam course gives (100 Gy): cGy written as "
                         "Gy? (e.g. 220 cGy, or 2.2 Gy)"),
    ("2 Gy", "expected a list, got \"2 Gy\""),
])
def test_the_limits_dose_per_fraction_is_refused_at_its_line(tmp_path, limits: str, message: str) -> None:
    found = diagnostics_of(_fractionated(tmp_path, 35, limits=limits))
    assert found[0] == (3, "limits_for_dose_per_fraction", message), found


def test_the_shipped_templates_state_the_dose_per_fraction_of_their_limits() -> None:
    """Their headers say conventional fractionation, about 2 Gy per fraction; the shipped protocols extending them
    give 2 Gy, and are not warned."""
    for name in ("base-head-neck", "base-pelvis", "base-thorax"):
        template = load_protocol_or_template(EXAMPLES / f"{name}.yaml")
        assert [dose.gy for dose in template.limits_for_dose_per_fraction] == [1.8, 2.2]
    for name in ("oropharynx-sib", "lung-60-in-30", "prostate-sib", "prostate-boost-after-pelvis"):
        protocol = load_protocol(EXAMPLES / f"{name}.yaml")
        assert protocol.template_warnings == protocol.loosened_template_goals


def test_the_dose_per_fraction_warning_reaches_validate_compile_and_the_plans_record(tmp_path) -> None:
    """eb43cfd put the warning in `Protocol.template_warnings`, but validate, compile and the plan's record read
    only the loosened template goals: the CLI said OK and nothing more, the signed record nothing."""
    import json

    from typer.testing import CliRunner

    import specc
    from evaluate_fakes import synthetic_case
    from specc.cli import app

    path = _fractionated(tmp_path, 5)
    said = "PTV's 35 Gy in 5 fractions is 7 Gy per fraction"
    text = CliRunner().invoke(app, ["validate", str(path)], terminal_width=10_000)
    assert text.exit_code == 0 and f"  warning: {path}:1:10: extends: {said}" in text.output, text.output
    listed = json.loads(CliRunner().invoke(app, ["validate", "--format", "json", str(path)]).output)
    assert [(entry["severity"], entry["line"], entry["message"][: len(said)]) for entry in listed] == [
        ("warning", 1, said)]
    case = synthetic_case(target_name="PTV", oar_name="Cord")
    case.save(tmp_path / "case.h5")
    compiled = CliRunner().invoke(app, ["compile", str(path), "--case", str(tmp_path / "case.h5")],
                                  terminal_width=10_000)
    assert compiled.exit_code == 0 and said in compiled.output, compiled.output
    record = specc.plan(load_protocol(path), case, tmp_path / "out").record
    assert [warning for warning in record.warnings if said in warning] == [str(load_protocol(path).template_warnings[0])]


@pytest.mark.parametrize(("dose", "fractions"), [("64.8 Gy", 36), ("6660 cGy", 37), ("59.4 Gy", 27), ("66 Gy", 30)])
def test_a_course_exactly_on_a_bound_of_the_limits_dose_per_fraction_is_not_warned(
    tmp_path: Path, dose: str, fractions: int
) -> None:
    """64.8 Gy / 36 is 1.7999999999999998 in binary floating point: a standard 1.8 Gy salvage course was warned as
    outside 1.8-2.2 Gy (review s19/r1 F1). The dose per fraction is compared at 0.001 Gy, as the message shows it."""
    path = _fractionated(tmp_path, fractions)
    path.write_text(path.read_text().replace("dose: 35 Gy", f"dose: {dose}"))
    assert load_protocol(path).template_warnings == []


@pytest.mark.parametrize(("dose", "fractions", "shown"), [("64.7 Gy", 36, "1.797"), ("66.1 Gy", 30, "2.203")])
def test_a_course_just_outside_a_bound_is_still_warned(tmp_path: Path, dose: str, fractions: int, shown: str) -> None:
    path = _fractionated(tmp_path, fractions)
    path.write_text(path.read_text().replace("dose: 35 Gy", f"dose: {dose}"))
    [warning] = load_protocol(path).template_warnings
    assert f"is {shown} Gy per fraction" in warning.message


def test_a_protocol_without_a_template_writing_the_key_is_not_told_of_templates(tmp_path: Path) -> None:
    """A protocol with no `extends:` that states the key itself was told to "write this course's limits without
    `extends:`", and where the key is, which is the warning's own place (review s19/r1 F5)."""
    path = tmp_path / "own.yaml"
    path.write_text(
        "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n  PTV: {role: target}\n  Cord: {role: oar}\n"
        "prescription: {fractions: FRACTIONS, levels: [{target: PTV, dose: 35 Gy}]}\n"
        'goals:\n  PTV: ["D95% >= 95%"]\n  Cord: ["Max <= 45 Gy"]\nlimits_for_dose_per_fraction: [1.8 Gy, 2.2 Gy]\n'
    )
    text = path.read_text()
    for fractions, said in ((5, "they limit less than they were set to. State the limits this course needs in this "
                                "protocol, in EQD2 or BED with the organ's alpha_beta (\"Max <= 45 Gy (EQD2)\" converts "
                                "from this fractionation)"),
                            (30, "they limit more than they were set to: state the limits this course needs, in EQD2 "
                                 "or BED with the organ's alpha_beta (\"Max <= 45 Gy (EQD2)\" converts from this "
                                 "fractionation) or in physical dose for this fractionation")):
        path.write_text(text.replace("FRACTIONS", str(fractions)))
        [warning] = load_protocol(path).template_warnings
        assert (warning.line, warning.path) == (12, "limits_for_dose_per_fraction")
        assert "physical dose limits are for 1.8-2.2 Gy per fraction" in warning.message
        assert warning.message.endswith(said), warning.message
        assert "extends" not in warning.message and "template" not in warning.message and " is at " not in warning.message


def _prostate_over(tmp_path: Path, template: str, protocol: str | None = None) -> list[tuple[str, int, int, str, str]]:
    """Every diagnostic of the shipped prostate protocol (or `protocol`) over the frozen pelvic template `template`."""
    write_base(tmp_path, template)
    child = tmp_path / "prostate-sib.yaml"
    child.write_text(PROSTATE.read_text() if protocol is None else protocol)
    with pytest.raises(ProtocolError) as caught:
        load_protocol(child)
    return [(Path(d.file).name, d.line or 0, d.column or 0, d.path, d.message) for d in caught.value.diagnostics]


def test_a_template_goal_the_protocol_replaces_is_validated_all_the_same(tmp_path: Path) -> None:
    """Audit s20/t1 F5: the protocol's Rectum "V70Gy[%] <= 20 (variation 25)" replaces the template's goal of that
    metric and side, so the merge dropped the template's "20 %%" before validation: the protocol was OK (and
    planned) while `specc validate` of its template failed. Named at the template's line, by its path there."""
    broken = BASE.read_text().replace('"V70Gy[%] <= 20"', '"V70Gy[%] <= 20 %%"', 1)
    alone = " (found checking that template on its own, as `specc validate` checks it)"  # review s20/r1 F5
    assert _prostate_over(tmp_path, broken) == [
        ("base-pelvis.yaml", 44, 7, "goals.Rectum[3]",
         'unknown unit "%%" in threshold "20 %%" of V70Gy[%] (expected %)' + alone)
    ]
    # what else the merge drops of a template: its own keys (a protocol states its own version)
    assert _prostate_over(tmp_path, BASE.read_text().replace("version: 1.0.0", "version: 1.0", 1)) == [
        ("base-pelvis.yaml", 11, 10, "version",
         'version must be text in semantic versioning, e.g. "1.0.0" (quote it), got 1.0' + alone)
    ]


def test_a_base_extended_without_template_true_is_told_how_to_mark_it(tmp_path: Path) -> None:
    """Review s20/r1 F5: a partial base file without `template: true` is checked as the complete protocol it then
    claims to be; its missing keys now say so, and how to mark it, instead of reading as the protocol's own."""
    partial = BASE.read_text().replace("template: true\n", "", 1)
    assert partial != BASE.read_text()
    said = _prostate_over(tmp_path, partial)
    assert said and all(file != "base-pelvis.yaml" or message.endswith(
        "(found checking that file on its own: without `template: true` it is a protocol that must be complete; "
        "mark a partial base `template: true`)") for file, _, _, _, message in said), said


def test_a_template_problem_the_merged_protocol_names_is_said_once(tmp_path: Path) -> None:
    """A broken template goal the protocol keeps is found both merged and in the template alone: one line."""
    broken = BASE.read_text().replace('"V65Gy[%] <= 25"', '"V65Gy[%] <= 25 Gy"', 1)
    assert _prostate_over(tmp_path, broken) == [
        ("base-pelvis.yaml", 43, 7, "goals.Rectum[2]",
         'unknown unit "Gy" in threshold "25 Gy" of V65Gy[%] (expected %)')
    ]


def test_a_goal_after_template_goals_is_named_by_its_path_in_its_own_file(tmp_path: Path) -> None:
    """Audit s20/t1 F3: the protocol's Rectum goals follow the template's five in the merged list, and the field
    path named their index there (`goals.Rectum[5]`, `[3]`), not in the file named beside it: a tool resolving
    the path in that file pointed at another goal, or at none."""
    protocol = PROSTATE.read_text().replace('"<=": 76 Gy, priority: 2}', '"<=": 76 Gy, priority: 0}', 1)
    assert _prostate_over(tmp_path, BASE.read_text(), protocol) == [
        ("prostate-sib.yaml", 68, 45, "goals.Rectum[1].priority", "must be greater than or equal to 1, got 0")
    ]
    (child := tmp_path / "prostate-sib.yaml").write_text(PROSTATE.read_text())
    (warning,) = [w for w in load_protocol(child).loosened_template_goals if w.line == 67]
    assert warning.path == "goals.Rectum[0]"  # the file's first Rectum goal; merged, it replaces the template's [3]


def test_a_per_case_note_names_a_goal_by_its_path_in_its_own_file(tmp_path: Path) -> None:
    """The note on a limit read on each case by a volume named the goal by the merged list (`goals.Rectum[5]`)."""
    table = '{metric: D2cc, "<=": {by_volume_of: PTV_High, volume_cc: [50, 150], limit: [74 Gy, 76 Gy]}, priority: 2}'
    protocol = PROSTATE.read_text().replace('{metric: D2cc, "<=": 76 Gy, priority: 2}', table, 1)
    write_base(tmp_path, BASE.read_text())
    (child := tmp_path / "prostate-sib.yaml").write_text(protocol)
    revised = revise_protocol(loaded := load_protocol(child), description="tuned in memory")
    for protocol in (loaded, revised):
        assert [(note.line, note.path) for note in protocol.per_case_goals()] == [(68, "goals.Rectum[1]")]
