"""`specc diff`: what changed between two protocol versions, after templates, units and order."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

import specc.cli  # noqa: F401  (registers the commands)
from specc.cli.app import app
from specc.protocol import load_protocol
from specc.protocol.diff import diff_protocols

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
    assert found.changes == [] and not found.version_unchanged


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
    assert changes[("goal", "PTV_High V95%[%] >=", "threshold, priority")] == ("V95%[%] >= 98", "V95%[%] >= 97 (priority 2)")
    assert changes[("term", "quadratic_underdose PTV_Low", "weight")] == ("100.0", "50.0")
    assert changes[("term", "max_dose Femur_Head_R", "")] == ("max_dose Femur_Head_R <= 50 Gy", None)
    assert changes[("delivery", "delivery", "intensity_levels")] == ("10", "20")
    assert changes[("robustness", "robustness", "optimize")] == ("false", "true")
    assert changes[("structure", "CTV_Prostate", "color")] == ("#ff0000", "#ee0000")
    assert len(changes) == 6
    found = diff_protocols(load_protocol(library / EXAMPLE.name), load_protocol(edited))
    assert found.version_unchanged  # changed, still 1.3.0
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
    _git(library, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "v1.3.0")
    protocol = library / EXAMPLE.name
    runner = CliRunner()
    same = runner.invoke(app, ["diff", str(protocol), "--rev", "HEAD"])
    assert same.exit_code == 0 and "no difference" in same.output
    _edit(library / TEMPLATE.name, '"V65Gy[%] <= 50"', '"V65Gy[%] <= 45"')  # only the template changed
    unbumped = runner.invoke(app, ["diff", str(protocol), "--rev", "HEAD"])
    assert unbumped.exit_code == 1, unbumped.output
    assert "~ goal Bladder V65Gy[%] <= threshold: V65Gy[%] <= 50 -> V65Gy[%] <= 45" in unbumped.output
    assert "its version did not (still 1.3.0)" in unbumped.output
    _edit(protocol, "version: 1.3.0", "version: 1.4.0")
    bumped = runner.invoke(app, ["diff", str(protocol), "--rev", "HEAD"])
    assert bumped.exit_code == 0 and "~ header version: 1.3.0 -> 1.4.0" in bumped.output
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
    rectum = "    aliases: [rectum_o, Rectum_Wall]\n"
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
