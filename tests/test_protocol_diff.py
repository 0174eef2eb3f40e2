"""`specc diff`: what changed between two protocol versions, after templates, units and order."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import specc.cli  # noqa: F401  (registers the commands)
from specc.cli import validate as validate_command
from specc.cli.app import app
from specc.protocol import load_protocol, load_protocol_or_template
from specc.protocol.diff import TemplateFile, diff_protocols, version_precedence

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "protocols" / "examples" / "prostate-sib.yaml"
TEMPLATE = ROOT / "protocols" / "examples" / "base-pelvis.yaml"


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A copy of the example protocol and the site template it extends."""
    for source in (EXAMPLE, TEMPLATE):
        shutil.copy(source, tmp_path / source.name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def _changes(old: Path, new: Path) -> dict[tuple[str, str, str], tuple[str | None, str | None]]:
    found = diff_protocols(load_protocol(old), load_protocol(new))
    return {(change.section, change.item, change.field): (change.old, change.new) for change in found.changes}


def test_units_spelling_and_order_are_no_change(library: Path) -> None:
    edited = library / "edited.yaml"
    shutil.copy(library / EXAMPLE.name, edited)
    _edit(edited, "dose: 7020 cGy", "dose: 70.2 Gy")
    _edit(edited, '"D95% >= 78 Gy (variation 76 Gy)"', '"D95% >= 7800 cGy (variation 7600 cGy)"')
    found = diff_protocols(load_protocol(library / EXAMPLE.name), load_protocol(edited))
    assert found.changes == [] and found.version_problem is None


def test_goals_terms_and_sections_that_change_are_listed_with_their_values(library: Path) -> None:
    edited = library / "edited.yaml"
    shutil.copy(library / EXAMPLE.name, edited)
    _edit(edited, '"V95%[%] >= 98"', '"V95%[%] >= 97 (priority 2)"')
    _edit(edited, "{kind: quadratic_underdose, structure: PTV_Low, dose: 70.2 Gy, weight: 100}",
          "{kind: quadratic_underdose, structure: PTV_Low, dose: 70.2 Gy, weight: 50}")
    _edit(edited, "    - {kind: max_dose, structure: Femur_Head_R, dose: 50 Gy}\n", "")
    _edit(edited, "  intensity_levels: 10", "  intensity_levels: 20")
    _edit(edited, "  structures: [CTV_Prostate]", "  structures: [CTV_Prostate]\n  optimize: true")
    _edit(edited, 'color: "#ff0000"', 'color: "#ee0000"')
    changes = _changes(library / EXAMPLE.name, edited)
    assert changes[("goal", "PTV_High V95%[%] >=", "threshold, priority")] == (
        "V95%[%] >= 98 (priority 1)", "V95%[%] >= 97 (priority 2)")  # both priorities shown, the default too
    assert changes[("term", "quadratic_underdose PTV_Low", "weight")] == ("100", "50")
    assert changes[("term", "max_dose Femur_Head_R", "")] == ("max_dose Femur_Head_R <= 50 Gy", None)
    assert changes[("delivery", "delivery", "intensity_levels")] == ("10", "20")
    assert changes[("robustness", "robustness", "optimize")] == ("false", "true")
    assert changes[("structure", "CTV_Prostate", "color")] == ("#ff0000", "#ee0000")
    assert len(changes) == 6
    found = diff_protocols(load_protocol(library / EXAMPLE.name), load_protocol(edited))
    assert found.version_problem is not None  # changed, still 1.3.0
    assert [change.cosmetic for change in found.changes].count(True) == 1  # the colour


def test_a_goal_changed_in_the_template_shows_though_the_protocol_file_did_not_change(library: Path) -> None:
    before = load_protocol(library / EXAMPLE.name)
    _edit(library / TEMPLATE.name, '"V65Gy[%] <= 50"', '"V65Gy[%] <= 45"')
    after = load_protocol(library / EXAMPLE.name)
    found = diff_protocols(before, after)
    (change,) = [change for change in found.changes if change.section == "goal"]
    assert change.item == "Bladder V65Gy[%] <=" and change.field == "threshold"


def _git(folder: Path, *arguments: str) -> None:
    subprocess.run(["git", "-C", str(folder), *arguments], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_command_compares_with_a_git_revision_and_asks_for_a_new_version(library: Path) -> None:
    _git(library, "init", "-q")
    _git(library, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(library, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "as shipped")
    protocol = library / EXAMPLE.name
    version = load_protocol(protocol).version  # as shipped; the library's versions move with its protocols
    major, minor, _ = version.split("-")[0].split("+")[0].split(".")
    raised = f"{major}.{int(minor) + 1}.0"  # greater in semantic-versioning precedence whatever the shipped one is
    runner = CliRunner()
    same = runner.invoke(app, ["diff", str(protocol), "--rev", "HEAD"])
    assert same.exit_code == 0 and "no difference" in same.output
    _edit(library / TEMPLATE.name, '"V65Gy[%] <= 50"', '"V65Gy[%] <= 45"')  # only the template changed
    unbumped = runner.invoke(app, ["diff", str(protocol), "--rev", "HEAD"])
    assert unbumped.exit_code == 1, unbumped.output
    assert "~ goal Bladder V65Gy[%] <= threshold: V65Gy[%] <= 50 -> V65Gy[%] <= 45" in unbumped.output
    assert f"its version did not (still {version})" in unbumped.output
    _edit(protocol, f"version: {version}", f"version: {raised}")
    bumped = runner.invoke(app, ["diff", str(protocol), "--rev", "HEAD"])
    assert bumped.exit_code == 0 and f"~ header version: {version} -> {raised}" in bumped.output
    unknown = runner.invoke(app, ["diff", str(protocol), "--rev", "no-such-revision"])
    assert unknown.exit_code == 1 and "git archive" in unknown.output and "Traceback" not in unknown.output


def test_site_templates_are_compared_too(library: Path) -> None:
    edited = library / "edited-template.yaml"
    shutil.copy(library / TEMPLATE.name, edited)
    _edit(edited, '"V65Gy[%] <= 50"', '"V65Gy[%] <= 45"')
    result = CliRunner().invoke(app, ["diff", str(library / TEMPLATE.name), str(edited)])
    assert "~ goal Bladder V65Gy[%] <= threshold: V65Gy[%] <= 50 -> V65Gy[%] <= 45" in result.output
    assert result.exit_code == 1 and "its version did not" in result.output


def test_a_physical_and_an_eqd2_goal_on_one_metric_are_two_goals(library: Path) -> None:
    """Keyed without the quantity, a rectum's "V70Gy[%] <= 20" and "V70Gy[%] <= 15 (EQD2)" were one key:
    the EQD2 goal hid the other, and turning a goal into EQD2 showed no change at all."""
    template = library / TEMPLATE.name
    rectum = "    aliases: [rectum_o]\n"
    _edit(template, rectum, rectum + "    alpha_beta: 3 Gy\n")
    both = library / "both.yaml"
    shutil.copy(library / EXAMPLE.name, both)
    _edit(both, '    - "V70Gy[%] <= 20 (variation 25)"\n',
          '    - "V70Gy[%] <= 20 (variation 25)"\n    - "V70Gy[%] <= 15 (EQD2)"\n')
    assert _changes(library / EXAMPLE.name, both) == {
        ("goal", "Rectum V70Gy[%] <= (EQD2)", ""): (None, "V70Gy[%] <= 15 (EQD2)"),
    }
    turned = library / "turned.yaml"
    shutil.copy(library / EXAMPLE.name, turned)
    _edit(turned, '"V70Gy[%] <= 20 (variation 25)"', '"V70Gy[%] <= 20 (EQD2, variation 25)"')
    changes = _changes(library / EXAMPLE.name, turned)
    assert changes[("goal", "Rectum V70Gy[%] <= (EQD2)", "")] == (None, "V70Gy[%] <= 20 (EQD2, variation 25)")
    # the protocol's goal no longer overrides the template's physical one, which comes back as written there
    assert changes[("goal", "Rectum V70Gy[%] <=", "variation")] == ("V70Gy[%] <= 20 (variation 25)", "V70Gy[%] <= 20")


# The PTV's coverage goal: a goals-only protocol judges each level's target by a goal of its own.
COVERAGE = '  PTV: ["D95% >= 47.5 Gy"]\n'


def _protocol(folder: Path, name: str, levels: str, goals: str, version: str = "1.0.0") -> Path:
    """A stand-alone protocol: PTV (and PTV_Boost, Core) with the given levels and goals."""
    path = folder / name
    path.write_text(
        f"specc: 1\nname: SIB\nsite: phantom\nversion: {version}\nstructures:\n  PTV: {{role: target}}\n"
        "  PTV_Boost: {role: target}\n  Core: {role: oar}\n"
        f"prescription:\n  fractions: 25\n  levels: [{levels}]\ngoals:\n{goals}"
    )
    return path


def _lines(old: Path, new: Path) -> list[str]:
    return [change.line() for change in diff_protocols(load_protocol(old), load_protocol(new)).changes]


def test_a_goal_in_percent_is_listed_when_its_reference_level_moves_it(tmp_path: Path) -> None:
    """A boost level added (or a level's dose changed) moved every goal in % of it, in Gy, but only the level
    was listed: a cord-type limit relaxed from 40 to 56 Gy without a line."""
    goals = (
        '  PTV: ["D95% >= 100%", "D2% <= 107% (variation 110%)", "V95%[%] >= 98"]\n'
        '  Core: ["Max <= 80%", "Mean <= 20 Gy"]\n'
        '  PTV_Boost: ["D95% >= 66.5 Gy"]\n'  # a level's target needs a goal, here one that no level moves
    )
    old = _protocol(tmp_path, "old.yaml", "{target: PTV, dose: 50 Gy}", goals)
    boost = _protocol(tmp_path, "boost.yaml", "{target: PTV, dose: 50 Gy}, {target: PTV_Boost, dose: 70 Gy}", goals)
    assert _lines(old, boost) == [
        "+ prescription level PTV_Boost: dose: 70 Gy (2.8 Gy per fraction)",
        "~ goal Core Max <= limit: Max <= 80% [80% = 40 Gy] -> Max <= 80% [80% = 56 Gy] "
        "(its reference level changed: PTV 50 Gy -> PTV_Boost 70 Gy)",
    ]
    higher = _protocol(tmp_path, "higher.yaml", "{target: PTV, dose: 60 Gy}", goals)
    assert _lines(old, higher)[1:] == [
        "~ goal PTV D95% >= limit: D95% >= 100% [100% = 50 Gy] -> D95% >= 100% [100% = 60 Gy] "
        "(its reference level changed: PTV 50 Gy -> PTV 60 Gy)",
        "~ goal PTV D2% <= limit: D2% <= 107% (variation 110%) [107% = 53.5 Gy, 110% = 55 Gy] -> "
        "D2% <= 107% (variation 110%) [107% = 64.2 Gy, 110% = 66 Gy] "
        "(its reference level changed: PTV 50 Gy -> PTV 60 Gy)",
        "~ goal PTV V95%[%] >= limit: V95%[%] >= 98 [95% = 47.5 Gy] -> V95%[%] >= 98 [95% = 57 Gy] "
        "(its reference level changed: PTV 50 Gy -> PTV 60 Gy)",
        "~ goal Core Max <= limit: Max <= 80% [80% = 40 Gy] -> Max <= 80% [80% = 48 Gy] "
        "(its reference level changed: PTV 50 Gy -> PTV 60 Gy)",
    ]


def test_a_threshold_rewritten_in_percent_of_the_same_dose_is_a_change_of_the_same_limit(tmp_path: Path) -> None:
    """The plan is judged alike today, but the goal now follows its level: listed (and a new version asked for),
    saying the limit is the same."""
    level = "{target: PTV, dose: 50 Gy}"
    gray = _protocol(tmp_path, "gray.yaml", level, '  PTV: ["D95% >= 50 Gy"]\n')
    percent = _protocol(tmp_path, "percent.yaml", level, '  PTV: ["D95% >= 100%"]\n')
    assert _lines(gray, percent) == [
        "~ goal PTV D95% >= threshold: D95% >= 50 Gy -> D95% >= 100% [100% = 50 Gy] "
        "(the same limit: the goal now follows the level PTV 50 Gy)"
    ]
    assert _lines(percent, gray)[0].endswith("(the same limit: the goal no longer follows the level PTV 50 Gy)")
    assert diff_protocols(load_protocol(gray), load_protocol(percent)).version_problem is not None


def test_a_table_in_percent_is_listed_when_its_reference_level_moves_every_row(tmp_path: Path) -> None:
    """Audit s18/r1 F9: a table by volume in % of a level that changed moved every row, but only the fixed % goal
    beside it was listed; a table rewritten in Gy of the same doses is the same limit, as a number is."""
    def table(limits: str) -> str:
        return ("  Core:\n    - metric: Max\n"
                f'      "<=": {{by_volume_of: PTV, volume_cc: [1.8, 163], limit: [{limits}], variation: [90%, 95%]}}\n')

    old = _protocol(tmp_path, "old.yaml", "{target: PTV, dose: 50 Gy}", table("60%, 77%"))
    higher = _protocol(tmp_path, "higher.yaml", "{target: PTV, dose: 60 Gy}", table("60%, 77%"))
    assert _lines(old, higher)[1:] == [
        "~ goal Core Max <= limit: Max <= 60%-77% by PTV volume, 1.8-163 cc (variation 90%-95%) [60%-77% = 30-38.5 Gy, "
        "90%-95% = 45-47.5 Gy] -> Max <= 60%-77% by PTV volume, 1.8-163 cc (variation 90%-95%) [60%-77% = 36-46.2 Gy, "
        "90%-95% = 54-57 Gy] (its reference level changed: PTV 50 Gy -> PTV 60 Gy)",
    ]
    same = _protocol(tmp_path, "same.yaml", "{target: PTV, dose: 50 Gy}", table("60%, 77%").replace(
        "[60%, 77%], variation: [90%, 95%]", "[30 Gy, 38.5 Gy], variation: [45 Gy, 47.5 Gy]"))
    assert [line.split(" (")[-1] for line in _lines(old, same)] == [
        "the same limit: the goal no longer follows the level PTV 50 Gy)"]


def test_several_goals_of_one_metric_and_side_are_compared_one_by_one(tmp_path: Path) -> None:
    """Keyed by structure, metric and side alone, the second of two such goals hid the first: removing one
    showed as the other changed."""
    level = "{target: PTV, dose: 50 Gy}"
    both = _protocol(tmp_path, "both.yaml", level, COVERAGE + '  Core: ["Max <= 45 Gy", "Max <= 35 Gy (priority 2)"]\n')
    one = _protocol(tmp_path, "one.yaml", level, COVERAGE + '  Core: ["Max <= 45 Gy"]\n')
    assert _lines(both, one) == ["- goal Core Max <=: Max <= 35 Gy (priority 2)"]
    assert _lines(one, both) == ["+ goal Core Max <=: Max <= 35 Gy (priority 2)"]
    lower = _protocol(
        tmp_path, "lower.yaml", level, COVERAGE + '  Core: ["Max <= 30 Gy (priority 2)", "Max <= 45 Gy"]\n'
    )
    assert _lines(both, lower) == [
        "~ goal Core Max <= threshold: Max <= 35 Gy (priority 2) -> Max <= 30 Gy (priority 2)"
    ]
    three = _protocol(
        tmp_path, "three.yaml", level, COVERAGE + '  Core: ["Max <= 40 Gy", "Max <= 30 Gy (priority 3)"]\n'
    )
    assert sorted(_lines(both, three)) == [
        "+ goal Core Max <=: Max <= 30 Gy (priority 3)", "+ goal Core Max <=: Max <= 40 Gy",
        "- goal Core Max <=: Max <= 35 Gy (priority 2)", "- goal Core Max <=: Max <= 45 Gy",
    ]


def test_a_strict_comparator_is_the_same_goal_changed(tmp_path: Path) -> None:
    """Keyed by comparator, "Max <= 45 Gy" -> "Max < 45 Gy" read as one goal removed and another added,
    where a site template's override (keyed by side) replaces the one by the other."""
    level = "{target: PTV, dose: 50 Gy}"
    plain = _protocol(tmp_path, "plain.yaml", level, COVERAGE + '  Core: ["Max <= 45 Gy"]\n')
    strict = _protocol(tmp_path, "strict.yaml", level, COVERAGE + '  Core: ["Max < 45 Gy"]\n')
    assert _lines(plain, strict) == ["~ goal Core Max <= comparator: Max <= 45 Gy -> Max < 45 Gy"]


def test_versions_are_ordered_by_semantic_versioning_precedence() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"]
    assert sorted(reversed(ordered), key=version_precedence) == ordered
    assert version_precedence("1.0.2+b1") == version_precedence("1.0.2") == version_precedence("1.0.2+b2")


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        ("1.0.3", None),
        ("1.1.0-rc.1", None),
        ("1.0.2", "the protocol changed but its version did not (still 1.0.2)"),
        ("1.0.0", "the protocol changed but its version was not raised: 1.0.0 is lower than 1.0.2 in "
                  "semantic-versioning precedence"),
        ('"1.0.2+b1"', "the protocol changed but its version was not raised: 1.0.2+b1 differs from 1.0.2 only in "
                       "build metadata, which semantic-versioning precedence ignores"),
        ("1.0.2-rc.1", "the protocol changed but its version was not raised: 1.0.2-rc.1 is lower than 1.0.2 in "
                       "semantic-versioning precedence"),
    ],
)
def test_a_changed_protocol_needs_a_greater_version(tmp_path: Path, version: str, problem: str | None) -> None:
    """Any different version passed the gate, a lower one too: two different protocols could carry one version."""
    level = "{target: PTV, dose: 50 Gy}"
    old = _protocol(tmp_path, "old.yaml", level, COVERAGE + '  Core: ["Max <= 45 Gy"]\n', version="1.0.2")
    new = _protocol(tmp_path, "new.yaml", level, COVERAGE + '  Core: ["Max <= 40 Gy"]\n', version=version)
    found = diff_protocols(load_protocol(old), load_protocol(new))
    assert found.version_problem == problem
    result = CliRunner().invoke(app, ["diff", str(old), str(new)])
    assert result.exit_code == (0 if problem is None else 1), result.output
    if problem is not None and version != "1.0.2":
        assert problem.split(": ", 1)[1] in result.output  # on the version's line


def test_a_goals_only_protocol_says_that_priority_1_makes_a_goal_a_hard_limit_and_shows_it(tmp_path: Path) -> None:
    """Audit s19/b2 F4: "D10% <= 40 Gy (priority 2) -> D10% <= 45 Gy" hid that the new priority is 1, which in a
    goals-only protocol turns a penalty into a hard limit of the derived program (that one made it infeasible)."""
    head = ("specc: 1\nname: t\nsite: t\nversion: {version}\nstructures:\n  PTV: {{role: target}}\n"
            "  Rectum: {{role: oar}}\nprescription: {{fractions: 42, levels: [{{target: PTV, dose: 75.6 Gy}}]}}\n"
            'goals:\n  PTV: ["D95% >= 75.6 Gy"]\n  Rectum: [{goal}]\n')
    soft = tmp_path / "soft.yaml"
    soft.write_text(head.format(version="1.0.0", goal='"D10% <= 40 Gy (priority 2)"'))
    hard = tmp_path / "hard.yaml"
    hard.write_text(head.format(version="1.1.0", goal='"D10% <= 45 Gy"'))
    (change,) = [c for c in diff_protocols(load_protocol(soft), load_protocol(hard)).changes if c.section == "goal"]
    assert change.line() == (
        "~ goal Rectum D10% <= threshold, priority: D10% <= 40 Gy (priority 2) -> D10% <= 45 Gy (priority 1) "
        "(asks less: threshold raised from 40 Gy to 45 Gy; "
        "now a hard limit of the program derived from the goals, no longer a penalty)"
    )
    (back,) = [c for c in diff_protocols(load_protocol(hard), load_protocol(soft)).changes if c.section == "goal"]
    assert back.note == ("asks less: priority demoted from 1 (must) to 2; no longer a hard limit of the program "
                         "derived from the goals: a penalty, which may give way")
    # with optimization terms of its own, a goal's priority does not make the program: no such note
    with_terms = "optimization:\n  terms:\n    - {kind: quadratic_underdose, structure: PTV, dose: 75.6 Gy, weight: 1}\n"
    soft.write_text(soft.read_text() + with_terms)
    hard.write_text(hard.read_text() + with_terms)
    (written,) = [c for c in diff_protocols(load_protocol(soft), load_protocol(hard)).changes if c.section == "goal"]
    assert written.new == "D10% <= 45 Gy (priority 1)"
    assert written.note == "asks less: threshold raised from 40 Gy to 45 Gy"


def test_a_priority_change_beside_another_note_still_shows_both_priorities(tmp_path: Path) -> None:
    """Review s19/r4 F4: with a reference-level or "same limit" note the new default priority was dropped again:
    "Max <= 80% (priority 2) [80% = 48 Gy] -> Max <= 80% [80% = 52.8 Gy]" under a field saying priority changed."""
    goals = '  PTV: ["D95% >= 95%"]\n  Core: ["{goal}"]\n'
    old = _protocol(tmp_path, "old.yaml", "{target: PTV, dose: 60 Gy}", goals.format(goal="Max <= 80% (priority 2)"))
    new = _protocol(tmp_path, "new.yaml", "{target: PTV, dose: 66 Gy}", goals.format(goal="Max <= 80%"))
    assert "~ goal Core Max <= priority: Max <= 80% (priority 2) [80% = 48 Gy] -> Max <= 80% (priority 1) "\
        "[80% = 52.8 Gy] (its reference level changed: PTV 60 Gy -> PTV 66 Gy; now a hard limit" in "\n".join(
            _lines(old, new))
    gy = _protocol(tmp_path, "gy.yaml", "{target: PTV, dose: 60 Gy}", goals.format(goal="Max <= 48 Gy (priority 2)"))
    same = _protocol(tmp_path, "same.yaml", "{target: PTV, dose: 60 Gy}", goals.format(goal="Max <= 80%"))
    (line,) = [line for line in _lines(gy, same) if line.startswith("~ goal")]
    assert line.startswith("~ goal Core Max <= threshold, priority: Max <= 48 Gy (priority 2) -> Max <= 80% "
                           "(priority 1) [80% = 48 Gy] (the same limit: the goal now follows the level PTV 60 Gy")


def test_fractions_and_levels_say_what_each_level_gives_per_fraction(tmp_path: Path) -> None:
    """35 -> 30 fractions read "~ prescription prescription fractions: 35 -> 30" and not that 70 Gy became 2.333 Gy
    per fraction (audit s19/a4), what the organ limits in physical dose were set for."""
    goals = '  PTV: ["D95% >= 95%"]\n  PTV_Boost: ["D95% >= 95%"]\n'
    old = _protocol(tmp_path, "old.yaml", "{target: PTV_Boost, dose: 70 Gy}, {target: PTV, dose: 56 Gy}", goals)
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text(old.read_text().replace("fractions: 25", "fractions: 30").replace("dose: 70 Gy", "dose: 72 Gy"))
    old.write_text(old.read_text().replace("fractions: 25", "fractions: 35"))
    assert _lines(old, fewer)[:2] == [
        "~ prescription fractions: 35 -> 30 (per fraction: PTV_Boost 2 -> 2.4 Gy, PTV 1.6 -> 1.867 Gy)",
        "~ prescription level PTV_Boost dose: 70 Gy -> 72 Gy (2 -> 2.4 Gy per fraction)",
    ]


def test_limits_for_dose_per_fraction_is_a_change_and_says_when_the_warning_goes(tmp_path: Path) -> None:
    """A protocol writing the key over its template's turned the warning off, and `specc diff` showed nothing
    (review s19/r1 F2)."""
    goals = '  PTV: ["D95% >= 95%"]\n  PTV_Boost: ["D95% >= 95%"]\n'
    old = _protocol(tmp_path, "old.yaml", "{target: PTV_Boost, dose: 36.25 Gy}, {target: PTV, dose: 30 Gy}", goals)
    old.write_text(old.read_text().replace("fractions: 25", "fractions: 5")
                   + "limits_for_dose_per_fraction: [1.8 Gy, 2.2 Gy]\n")
    wide = tmp_path / "wide.yaml"
    wide.write_text(old.read_text().replace("[1.8 Gy, 2.2 Gy]", "[600 cGy, 8 Gy]"))
    assert _lines(old, wide) == [
        "~ header limits_for_dose_per_fraction: [1.8 Gy, 2.2 Gy] -> [6 Gy, 8 Gy] (this protocol is no longer warned "
        "of its dose per fraction)",
    ]
    assert _lines(wide, old)[0].endswith("(this protocol is now warned of its dose per fraction)")
    none = tmp_path / "none.yaml"
    none.write_text(old.read_text().replace("limits_for_dose_per_fraction: [1.8 Gy, 2.2 Gy]\n", ""))
    assert _lines(old, none) == [
        "- header limits_for_dose_per_fraction: [1.8 Gy, 2.2 Gy] (this protocol is no longer warned of its dose per "
        "fraction)"]


def test_fractions_moving_the_dose_per_fraction_out_of_the_templates_limits_say_it_is_now_warned(library: Path) -> None:
    """The prostate SIB's fractions cut to 20 (its highest level well above 2.2 Gy per fraction, outside
    base-pelvis's 1.8-2.2 Gy): the diff says the protocol is now warned, not only the new dose per fraction."""
    edited = library / "edited.yaml"
    shutil.copy(library / EXAMPLE.name, edited)
    fractions = load_protocol(edited).prescription.fractions
    _edit(edited, f"fractions: {fractions}", "fractions: 20")
    [line] = [text for text in _lines(library / EXAMPLE.name, edited) if text.startswith("~ prescription fractions")]
    assert line.endswith("; now outside limits_for_dose_per_fraction 1.8-2.2 Gy: warned)"), line
    assert _lines(edited, library / EXAMPLE.name)[0].endswith("; now inside limits_for_dose_per_fraction 1.8-2.2 Gy: "
                                                              "no longer warned)")


def _line_of(path: Path, text: str) -> int:
    """The line of `path` that holds `text` (1-based)."""
    (line,) = [number for number, written in enumerate(path.read_text().splitlines(), 1) if text in written]
    return line


def test_single_item_sections_are_named_once_and_numbers_as_the_file_wrote_them(library: Path) -> None:
    """Audit s20/t1 F2: "~ solver solver time_limit_s: 300.0 -> 30.0", "~ delivery delivery ...", "~ robustness
    robustness ..." named the section twice, and a weight the file wrote as 100 read 100.0."""
    edited = library / "edited.yaml"
    shutil.copy(library / EXAMPLE.name, edited)
    _edit(edited, "  intensity_levels: 10", "  intensity_levels: 20")
    _edit(edited, "  structures: [CTV_Prostate]", "  structures: [CTV_Prostate]\n  optimize: true")
    _edit(edited, "{kind: quadratic_underdose, structure: PTV_Low, dose: 70.2 Gy, weight: 100}",
          "{kind: quadratic_underdose, structure: PTV_Low, dose: 70.2 Gy, weight: 50}")
    _edit(edited, "solver: {time_limit_s: 300}", "solver: {time_limit_s: 30}")
    lines = _lines(library / EXAMPLE.name, edited)
    assert "~ delivery intensity_levels: 10 -> 20" in lines
    assert "~ robustness optimize: false -> true" in lines
    assert "~ term quadratic_underdose PTV_Low weight: 100 -> 50" in lines
    assert "~ solver time_limit_s: 300 -> 30" in lines, lines


def _template_versions(library: Path, name: str, template_version: str) -> Path:
    """A copy of the library in `name`/, the template stating `template_version`."""
    folder = library / name
    folder.mkdir()
    for source in (EXAMPLE, TEMPLATE):
        shutil.copy(library / source.name, folder / source.name)
    shipped = load_protocol_or_template(folder / TEMPLATE.name).version
    _edit(folder / TEMPLATE.name, f"version: {shipped}", f"version: {template_version}")
    return folder


def test_a_goal_from_a_template_names_the_template_file_and_its_versions(library: Path) -> None:
    """Audit s20/t1 F7: a goal changed in the site template read "~ goal Bladder ... threshold: ..." with no word of
    the file it is written in or of the template's versions; the header lines named the protocol's file alone."""
    before = _template_versions(library, "before", "2.0.0")
    after = _template_versions(library, "after", "2.1.0")
    _edit(after / TEMPLATE.name, '"V65Gy[%] <= 50"', '"V65Gy[%] <= 45"')
    line = _line_of(after / TEMPLATE.name, '"V65Gy[%] <= 45"')
    found = diff_protocols(load_protocol(before / EXAMPLE.name), load_protocol(after / EXAMPLE.name))
    assert [change.line() for change in found.changes] == [
        f"~ template {TEMPLATE.name} version: v2.0.0 -> v2.1.0",
        "~ goal Bladder V65Gy[%] <= threshold: V65Gy[%] <= 50 -> V65Gy[%] <= 45 "
        f"(from {TEMPLATE.name}:{line}, template v2.0.0 -> v2.1.0)",
    ]
    assert found.new_templates == [TemplateFile(TEMPLATE.name, "2.1.0")]
    result = CliRunner().invoke(app, ["diff", str(before / EXAMPLE.name), str(after / EXAMPLE.name)])
    assert f"(sha256 {load_protocol(after / EXAMPLE.name).source.sha256[:12]}), extends {TEMPLATE.name} v2.1.0\n" \
        in result.output, result.output


def test_a_change_of_extends_is_listed_and_alone_asks_for_no_new_version(library: Path) -> None:
    """Audit s20/t1 F7: a protocol switched to another template showed only what that changed, never `extends`."""
    shutil.copy(library / TEMPLATE.name, library / "pelvis-copy.yaml")  # the same content under another name
    moved = library / "moved.yaml"
    shutil.copy(library / EXAMPLE.name, moved)
    _edit(moved, f"extends: {TEMPLATE.name}", "extends: pelvis-copy.yaml")
    version = load_protocol(moved).version
    found = diff_protocols(load_protocol(library / EXAMPLE.name), load_protocol(moved))
    assert [change.line() for change in found.changes] == [
        f"~ header extends: {TEMPLATE.name} v{version_of(TEMPLATE)} -> pelvis-copy.yaml v{version_of(TEMPLATE)}"]
    assert found.version_problem is None and version  # the same content: what the protocol states did not change


def version_of(path: Path) -> str | None:
    return load_protocol_or_template(path).version


def test_a_goal_that_asks_less_says_how_in_validates_words(library: Path) -> None:
    """Audit s20/t1 F7: a raised upper limit, a demoted priority, read in the diff like any other change, though
    `specc validate` warns of the same thing in a protocol overriding its template."""
    loosened = library / "loosened.yaml"
    shutil.copy(library / EXAMPLE.name, loosened)
    _edit(loosened, "  Bladder:\n", '  Bladder:\n    - "V65Gy[%] <= 55 (priority 2)"\n')
    protocol = load_protocol(loosened)
    (warning,) = [w for w in protocol.template_warnings if '"V65Gy[%] <= 55 (priority 2)"' in w.message]
    said = warning.message.split(" and asks less: ")[1]
    assert said == "threshold raised from 50% to 55%, priority demoted from 1 (must) to 2"
    (change,) = [c for c in diff_protocols(load_protocol(library / EXAMPLE.name), protocol).changes
                 if c.section == "goal"]
    assert change.note == f"asks less: {said}"
    line = _line_of(library / TEMPLATE.name, '"V65Gy[%] <= 50"')
    assert change.origin == (f"from {TEMPLATE.name}:{line}, template v{version_of(TEMPLATE)}; "
                             f"now from loosened.yaml:{_line_of(loosened, 'V65Gy[%] <= 55')}")
    (back,) = [c for c in diff_protocols(protocol, load_protocol(library / EXAMPLE.name)).changes
               if c.section == "goal"]
    assert "asks less" not in back.line()  # tightened back


def _renamed(library: Path, name: str, *edits: tuple[str, str]) -> Path:
    path = library / name
    path.write_text((library / EXAMPLE.name).read_text().replace("PTV_High", "PTV_78"))
    for old, new in edits:
        _edit(path, old, new)
    return path


def test_a_renamed_structure_is_one_line_that_says_what_it_does_to_contoured_cases(library: Path) -> None:
    """Audit s20/t1 F1: PTV_High renamed PTV_78 everywhere read as 16 lines removing and adding the structure, its
    level, goals, terms and the expressions naming it, with no word that cases contoured PTV_High stop matching."""
    renamed = _renamed(library, "renamed.yaml")
    lines = _lines(library / EXAMPLE.name, renamed)
    assert lines == ["~ structure PTV_High renamed PTV_78 (definition, goals and terms unchanged; a case contoured "
                     "PTV_High no longer matches: add PTV_High to the aliases of PTV_78 to keep such cases)"]
    assert diff_protocols(load_protocol(library / EXAMPLE.name), load_protocol(renamed)).version_problem is not None
    aliased = _renamed(library, "aliased.yaml", ("  PTV_78:\n    role: target\n",
                                                  "  PTV_78:\n    role: target\n    aliases: [PTV_High]\n"))
    assert _lines(library / EXAMPLE.name, aliased) == [
        "~ structure PTV_High renamed PTV_78 (definition, goals and terms unchanged; cases contoured PTV_High still "
        "match it: an alias of PTV_78)"]


def test_a_rename_with_anything_else_changed_keeps_every_line(library: Path) -> None:
    """The rename line says nothing else changed: a goal of the renamed structure changed too keeps the removal and
    addition of each item, so the changed threshold is seen; a change elsewhere stays beside the rename line."""
    tightened = _renamed(library, "tightened.yaml", ('"D95% >= 78 Gy', '"D95% >= 77 Gy'))
    lines = _lines(library / EXAMPLE.name, tightened)
    assert not any("renamed" in line for line in lines)
    assert "+ goal PTV_78 D95% >=: D95% >= 77 Gy (variation 76 Gy)" in lines
    assert "- prescription level PTV_High: dose: 78 Gy (2 Gy per fraction)" in lines  # as the added one says it
    elsewhere = _renamed(library, "elsewhere.yaml", ("  intensity_levels: 10", "  intensity_levels: 20"))
    lines = _lines(library / EXAMPLE.name, elsewhere)
    assert len(lines) == 2 and lines[0].startswith("~ structure PTV_High renamed PTV_78 ") \
        and lines[1] == "~ delivery intensity_levels: 10 -> 20", lines


def test_no_line_is_wrapped_off_a_terminal(library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit s20/t1 F4: `specc diff ... > log` split a header line longer than 80 columns before its hash (rich
    wraps at 80 off a terminal), so a grep of the log for the hash missed the file it belongs to."""
    monkeypatch.setattr(validate_command, "console", Console(markup=False, width=80, force_terminal=False))
    edited = library / ("a-protocol-file-name-long-enough-to-pass-eighty-columns-" * 2 + ".yaml")
    shutil.copy(library / EXAMPLE.name, edited)
    _edit(edited, "  intensity_levels: 10", "  intensity_levels: 20")
    result = CliRunner().invoke(app, ["diff", str(library / EXAMPLE.name), str(edited)])
    header = f"{edited}: {load_protocol(edited).name} v{load_protocol(edited).version} (sha256 "
    assert header in result.output and len(max(result.output.splitlines(), key=len)) > 80, result.output


_TWO_FEMURS = """\
specc: 1
name: Femurs
site: pelvis
version: {version}
structures:
  PTV: {{role: target}}
  {first}: {{role: oar}}
  {second}: {{role: oar}}
prescription:
  fractions: 25
  levels:
    - {{target: PTV, dose: 50 Gy}}
goals:
  PTV:
    - "D95% >= 50 Gy"
  {first}:
    - "Max <= 45 Gy"
  {second}:
    - "Max <= 45 Gy"
"""


def test_two_structures_renamed_alike_are_not_paired_by_guess(tmp_path: Path) -> None:
    """Review s20/r1 F1: Femur_L and Femur_R (the same definition and goals) renamed FemoralHead_R and FemoralHead_L
    were paired in file order, "Femur_L renamed FemoralHead_R", advising the left femur's name as an alias of the
    right one. Where either name could pair with another, the removals and additions stay, each on its line."""
    before, after = tmp_path / "before.yaml", tmp_path / "after.yaml"
    before.write_text(_TWO_FEMURS.format(version="1.0.0", first="Femur_L", second="Femur_R"))
    after.write_text(_TWO_FEMURS.format(version="1.1.0", first="FemoralHead_R", second="FemoralHead_L"))
    lines = _lines(before, after)
    assert not any("renamed" in line for line in lines), lines
    assert {"- structure Femur_L: role: oar, if_contoured: false", "+ structure FemoralHead_R: role: oar, "
            "if_contoured: false", "- goal Femur_L Max <=: Max <= 45 Gy"} <= set(lines), lines
    one = tmp_path / "one.yaml"  # one of them renamed: the pairing is the one possible
    one.write_text(_TWO_FEMURS.format(version="1.1.0", first="FemoralHead_L", second="Femur_R"))
    assert [line for line in _lines(before, one) if "renamed" in line][0].startswith(
        "~ structure Femur_L renamed FemoralHead_L ")


def test_template_versions_are_those_read_with_the_protocol(library: Path) -> None:
    """Review s20/r1 F4: the diff read each template's `version:` again from its file, so a template gone (or
    edited) between loading and diffing failed the diff, or showed another version than the one planned with."""
    old, new = load_protocol(library / EXAMPLE.name), load_protocol(library / EXAMPLE.name)
    stated = {Path(file).name: version for file, version in old.source.template_versions.items()}
    assert stated == {TEMPLATE.name: load_protocol_or_template(TEMPLATE).version}
    (library / TEMPLATE.name).unlink()
    diff = diff_protocols(old, new)
    assert diff.changes == [] and [template.version for template in diff.old_templates] == [stated[TEMPLATE.name]]
