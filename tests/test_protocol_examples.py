"""The shipped examples load, templates merge by the documented rules, sources are recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from specc.protocol import Dose, ProtocolError, load_protocol, load_protocol_or_template, parse_protocol_text
from specc.protocol.structures import Difference, Expand, StructureRef

EXAMPLES = Path(__file__).parent.parent / "protocols" / "examples"
PROSTATE = EXAMPLES / "prostate-sib.yaml"


@pytest.fixture(scope="module")
def prostate():
    return load_protocol(PROSTATE)


def _line_of(path: Path, text: str) -> int:
    """The line of the file that holds `text` (the one line that does)."""
    lines = [number for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if text in line]
    assert len(lines) == 1, (path, text, lines)
    return lines[0]


def test_prostate_prescription(prostate) -> None:
    levels = {level.target: level for level in prostate.prescription.levels}
    assert prostate.prescription.fractions == 39
    assert levels["PTV_High"].dose == Dose.parse("78 Gy")
    assert levels["PTV_Low"].dose.gy == pytest.approx(70.2)  # written as 7020 cGy
    assert levels["PTV_High"].dose_per_fraction_gy == pytest.approx(2.0)
    assert levels["PTV_Low"].dose_per_fraction_gy == pytest.approx(1.8)
    assert prostate.prescription_for("PTV_Low") == Dose.parse("70.2 Gy")
    assert prostate.prescription_for("Rectum") is None
    assert str(prostate.prescription.normalization) == "PTV_High D95% = 100% of prescription"


def test_prostate_structures_merge_template_and_derive(prostate) -> None:
    assert {"Body", "Rectum", "Bladder", "Femur_Head_L", "Femur_Head_R"} <= set(prostate.structures)
    assert prostate.structures["Rectum"].aliases == ["rectum_o"]
    low = prostate.structures["PTV_Low"].expression
    assert isinstance(low, Difference) and low.right == StructureRef("PTV_High")
    assert low.names() == ("CTV_SV", "Body", "PTV_High")
    assert isinstance(low.left.operand, Expand) and low.left.operand.margins_mm == (7.0, 7.0, 7.0)
    assert prostate.structures["Ring_PTV"].expression.names() == ("PTV_High", "PTV_Low", "Body")


def test_goal_override_replaces_template_goal_in_place(prostate) -> None:
    rectum = [str(goal) for goal in prostate.goals if goal.structure == "Rectum"]
    assert rectum == [
        "V50Gy[%] <= 50%",
        "V60Gy[%] <= 35%",
        "V65Gy[%] <= 25%",
        "V70Gy[%] <= 20% (variation 25%)",  # from prostate-sib.yaml, replacing the template's
        "V75Gy[%] <= 15%",
        "D2cc <= 76 Gy (priority 2)",  # mapping form, appended
    ]
    override = next(goal for goal in prostate.goals if goal.metric.dose == Dose.parse("70 Gy") and goal.structure == "Rectum")
    assert Path(override.source.file).name == "prostate-sib.yaml"
    assert override.source.line == _line_of(PROSTATE, '"V70Gy[%] <= 20 (variation 25)"')
    inherited = next(goal for goal in prostate.goals if goal.structure == "Bladder")
    assert Path(inherited.source.file).name == "base-pelvis.yaml"
    assert inherited.source.line == _line_of(EXAMPLES / "base-pelvis.yaml", '"V65Gy[%] <= 50"')


def test_relative_thresholds_resolve_against_each_targets_prescription(prostate) -> None:
    hot = {goal.structure: goal for goal in prostate.goals if str(goal.metric) == "D0.03cc"}
    assert hot["PTV_High"].threshold_value == pytest.approx(1.07 * 78)
    assert hot["PTV_High"].variation_value == pytest.approx(1.10 * 78)
    assert hot["PTV_Low"].threshold_value == pytest.approx(1.07 * 70.2)
    coverage = next(goal for goal in prostate.goals if str(goal.metric) == "V95%[%]")
    assert coverage.metric_dose_gy == pytest.approx(0.95 * 78)


def test_terms_carry_their_source(prostate) -> None:
    terms = prostate.optimization.terms
    assert [term.kind for term in terms][:4] == ["uniform_dose", "quadratic_underdose", "quadratic_overdose", "max_dose"]
    assert all(Path(term.source.file).name == "prostate-sib.yaml" for term in terms)
    first = _line_of(PROSTATE, "{kind: uniform_dose")
    assert [term.source.line for term in terms] == [
        line for line, text in enumerate(PROSTATE.read_text(encoding="utf-8").splitlines(), start=1)
        if line >= first and text.lstrip().startswith("- {kind:")
    ]
    assert prostate.optimization.solver.time_limit_s == 300


def test_source_hash_covers_every_file_read(prostate, tmp_path: Path) -> None:
    files = [PROSTATE, EXAMPLES / "base-pelvis.yaml"]
    assert [Path(name).name for name in prostate.source.files] == [path.name for path in files]
    assert prostate.source.sha256 == hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()
    for path in files:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    base = tmp_path / "base-pelvis.yaml"
    base.write_text(base.read_text().replace('"V80Gy[%] <= 15"', '"V80Gy[%] <= 14"'))
    assert load_protocol(tmp_path / PROSTATE.name).source.sha256 != prostate.source.sha256


def test_lists_other_than_goals_are_replaced(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text((EXAMPLES / "base-pelvis.yaml").read_text())
    (tmp_path / "site").mkdir()
    child = PROSTATE.read_text().replace("extends: base-pelvis.yaml", "extends: ../base.yaml")
    child = child.replace("aliases: [CTV_P, CTV_Prost]", "aliases: [CTV_P]")
    (tmp_path / "site" / "child.yaml").write_text(child)
    with pytest.raises(ProtocolError, match="leaves the protocol tree"):
        load_protocol(tmp_path / "site" / "child.yaml")
    protocol = load_protocol(tmp_path / "site" / "child.yaml", root=tmp_path)
    assert protocol.structures["CTV_Prostate"].aliases == ["CTV_P"]
    assert len(protocol.references) == 4  # the child's list, not base + child


def test_protocol_text_without_template() -> None:
    text = """
specc: 1
name: Minimal
site: lung
version: 0.1.0-draft+3
structures:
  PTV: {role: target}
  Lung_Total: {role: oar, aliases: [Lungs]}
prescription: {fractions: 30, levels: [{target: PTV, dose: 60 Gy}]}
goals:
  Lung_Total: "V20Gy[%] <= 30"
  PTV: [{metric: D95%, ">=": 95%, priority: 1}]
"""
    protocol = parse_protocol_text(text, "minimal.yaml")
    assert [str(goal) for goal in protocol.goals] == ["V20Gy[%] <= 30%", "D95% >= 95%"]
    assert protocol.goals[1].threshold_value == pytest.approx(57.0)
    assert protocol.goals[0].source.line == 11
    assert protocol.optimization is None
    # Relative to the highest level for a structure without its own prescription.
    assert protocol.reference_dose("Lung_Total") == Dose.parse("60 Gy")


def test_extends_in_text_needs_a_file() -> None:
    with pytest.raises(ProtocolError, match="extends needs a protocol file"):
        parse_protocol_text("extends: base.yaml\n", "x.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("CTV_SV:\n    role: target", "CTV_SV:\n    role: target\n    expression: PTV_Low | CTV_Prostate"),
         'structure "CTV_SV" is derived from itself: CTV_SV -> PTV_Low -> CTV_SV'),
        (("aliases: [CTV_SemVes", "aliases: [rectum_o"),
         'alias "rectum_o" already names structure "Rectum"'),
        (("normalization: {structure: PTV_High", "normalization: {structure: Rectum"),
         'normalization structure "Rectum" has no dose level'),
        (("- {target: PTV_Low, dose: 7020 cGy}", "- {target: PTV_High, dose: 7020 cGy}"),
         "\"PTV_High\" already has a dose level (prescription.levels[0]): a target has one dose level"),
        (("- \"V95%[%] >= 98\"", "- \"V95%[%] >= 98\"\n    - \"V100%[%] <= 90\"\n    - \"V90Gy[%] >= 95\""),
         'minimum goal "V90Gy[%] >= 95%" is above maximum goal "V100%[%] <= 90%"'),
    ],
)
def test_cross_field_rules(change: tuple[str, str], message: str, tmp_path: Path) -> None:
    (tmp_path / "base-pelvis.yaml").write_text((EXAMPLES / "base-pelvis.yaml").read_text())
    text = PROSTATE.read_text()
    assert text.count(change[0]) == 1
    (tmp_path / "p.yaml").write_text(text.replace(*change))
    with pytest.raises(ProtocolError) as caught:
        load_protocol(tmp_path / "p.yaml")
    assert any(message in d.message for d in caught.value.diagnostics), str(caught.value)
    assert all(d.line > 0 for d in caught.value.diagnostics)


# Other volumes than the organ a template's limits are for (audit b1 F1): a wall, the whole femur, a
# sub-site of the larynx. As an alias, a case holding one would be judged (and optimized) on it.
NOT_THE_ORGAN = {"Rectum_Wall", "Bladder_Wall", "Femur_L", "Femur_R", "Glottis", "Larynx_SG", "Skin", "SpinalCord_PRV"}


@pytest.mark.parametrize("template", ["base-pelvis.yaml", "base-head-neck.yaml", "base-thorax.yaml"])
def test_no_template_alias_is_another_volume_than_its_organ(template: str) -> None:
    protocol = load_protocol_or_template(EXAMPLES / template)
    aliases = {alias for spec in protocol.structures.values() for alias in spec.aliases}
    assert not aliases & NOT_THE_ORGAN


def test_the_pelvis_template_knows_the_bowel_bag_by_its_tg263_names() -> None:
    """Audit b1 F2: a case's TG-263 'Bag_Bowel' read 'not contoured'."""
    aliases = load_protocol_or_template(EXAMPLES / "base-pelvis.yaml").structures["Bowel_Bag"].aliases
    assert {"Bag_Bowel", "Spc_Bowel"} <= set(aliases)
