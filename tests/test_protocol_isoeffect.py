"""Goals in EQD2 / BED: the linear-quadratic conversion, the goal language and its refusals."""

from __future__ import annotations

import pytest

from specc.protocol import ProtocolError, parse_protocol_text
from specc.protocol.goals import Goal
from specc.protocol.isoeffect import isoeffective_gy, physical_gy


def test_the_linear_quadratic_conversion_on_textbook_courses() -> None:
    # 2 Gy fractions: EQD2 is the physical dose, whatever the tissue
    assert float(isoeffective_gy(60.0, 30, 3.0, "EQD2")) == pytest.approx(60.0)
    # 30 Gy in 5 fractions to late-responding tissue (alpha/beta 3 Gy): BED 90 Gy, EQD2 54 Gy
    assert float(isoeffective_gy(30.0, 5, 3.0, "BED")) == pytest.approx(90.0)
    assert float(isoeffective_gy(30.0, 5, 3.0, "EQD2")) == pytest.approx(54.0)
    # 54 Gy in 3 fractions to a tumour (alpha/beta 10 Gy): BED 151.2 Gy
    assert float(isoeffective_gy(54.0, 3, 10.0, "BED")) == pytest.approx(151.2)
    for quantity in ("EQD2", "BED"):
        for dose, fractions, ratio in [(50.0, 25, 2.0), (24.0, 3, 3.0), (1e-3, 30, 10.0), (0.0, 5, 3.0)]:
            converted = float(isoeffective_gy(dose, fractions, ratio, quantity))
            assert physical_gy(converted, fractions, ratio, quantity) == pytest.approx(dose, rel=1e-12, abs=1e-15)


def _protocol(goals: str, organ: str = "{role: oar, alpha_beta: 2 Gy}", prior: str = "") -> str:
    """Cord's `goals` (from line 13) beside the PTV's coverage goal, which a goals-only protocol needs."""
    return "\n".join(line for line in [
        "specc: 1", "name: isoeffective", "site: test", "version: 1.0.0",
        "structures:", "  PTV: {role: target}", f"  Cord: {organ}",
        "prescription:", "  fractions: 5", "  levels: [{target: PTV, dose: 30 Gy}]", prior,
        "goals:", "  Cord:", *(f"    - {goal}" for goal in goals.splitlines()), '  PTV: ["D95% >= 28.5 Gy"]',
    ] if line) + "\n"


# A term of the protocol's own: a goal on a composite in EQD2, or on this course alone, has no derived term, so a
# goals-only protocol refuses it (test_protocol_goals_only); these tests are of the goal language.
TERMS = "optimization:\n  terms:\n    - {kind: quadratic_underdose, structure: PTV, dose: 30 Gy, weight: 1}\n"


def test_a_goal_states_its_dose_quantity_in_both_forms_and_prints_it_back() -> None:
    protocol = parse_protocol_text(
        _protocol('"Max <= 50 Gy (EQD2)"\n"V20Gy[cc] <= 1 (BED, priority 2)"\n'
                  '{metric: D0.03cc, "<=": 48 Gy, quantity: EQD2, variation: 50 Gy}'), "p.yaml"
    )
    highest, volume, mapped, _ = protocol.goals
    assert (highest.quantity, volume.quantity, mapped.quantity) == ("EQD2", "BED", "EQD2")
    assert str(highest) == "Max <= 50 Gy (EQD2)" and str(volume) == "V20Gy[cc] <= 1 cc (BED, priority 2)"
    assert str(mapped) == "D0.03cc <= 48 Gy (EQD2, variation 50 Gy)"
    assert Goal.parse(str(mapped), "Cord") == mapped.model_copy(update={"source": None})
    assert (highest.value_unit, volume.value_unit) == ("Gy EQD2", "cc")
    assert Goal.parse("Max <= 50 Gy", "Cord") != Goal.parse("Max <= 50 Gy (EQD2)", "Cord")


@pytest.mark.parametrize("goal, message", [
    ('"Max <= 50 Gy (EQD2, BED)"', "give one dose quantity"),
    ('"Max <= 90% (EQD2)"', "a percentage of the prescription"),
    ('"V95%[%] <= 1 (EQD2)"', "a percentage of the prescription"),
    ('"Max <= 50 Gy (eqd)"', 'did you mean "EQD2"'),
])
def test_an_isoeffective_goal_that_cannot_be_read_is_refused_at_its_line(goal: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as raised:
        parse_protocol_text(_protocol(goal), "p.yaml")
    assert "p.yaml:13" in str(raised.value)


def test_an_isoeffective_goal_needs_the_tissues_ratio_and_a_prior_course_its_fractions() -> None:
    with pytest.raises(ProtocolError, match=r"needs the alpha/beta of Cord: add `alpha_beta`") as raised:
        parse_protocol_text(_protocol('"Max <= 50 Gy (EQD2)"', organ="{role: oar}"), "p.yaml")
    assert "p.yaml:13" in str(raised.value)
    with pytest.raises(ProtocolError, match="alpha_beta must be a positive dose"):
        parse_protocol_text(_protocol('"Max <= 50 Gy"', organ="{role: oar, alpha_beta: 0 Gy}"), "p.yaml")
    with pytest.raises(ProtocolError, match="give the prior course's `fractions`"):
        parse_protocol_text(_protocol('"Max <= 50 Gy (EQD2)"', prior="  prior: {description: earlier course}"), "p.yaml")
    composite = _protocol('"Max <= 50 Gy (EQD2)"', prior="  prior: {description: earlier, fractions: 25}")
    parse_protocol_text(composite + TERMS, "p.yaml")
    # a physical goal needs neither
    parse_protocol_text(_protocol('"Max <= 50 Gy"', organ="{role: oar}", prior="  prior: {description: earlier}"), "p.yaml")


def test_physical_and_isoeffective_goals_are_not_compared_as_one_scale() -> None:
    # "Min >= 40 Gy (EQD2)" with "Max <= 35 Gy" holds together for hypofractionation (40 Gy EQD2 < 35 Gy in 5)
    parse_protocol_text(_protocol('"Min >= 40 Gy (EQD2)"\n"Max <= 35 Gy"'), "p.yaml")
    with pytest.raises(ProtocolError, match="no dose can meet both"):
        parse_protocol_text(_protocol('"Min >= 40 Gy (EQD2)"\n"Max <= 35 Gy (EQD2)"'), "p.yaml")


def test_a_mean_dose_term_in_eqd2_is_refused_on_a_composite_and_with_another_ratio() -> None:
    term = "{kind: mean_dose, structure: Cord, max: 20 Gy, quantity: EQD2, alpha_beta: %s}"
    terms = "optimization:\n  terms:\n    - "
    parse_protocol_text(_protocol('"Max <= 50 Gy"') + terms + term % "2 Gy" + "\n", "p.yaml")
    with pytest.raises(ProtocolError, match="alpha_beta 3 Gy differs from the 2 Gy of structures.Cord"):
        parse_protocol_text(_protocol('"Max <= 50 Gy"') + terms + term % "3 Gy" + "\n", "p.yaml")
    composite = _protocol('"Max <= 50 Gy"', prior="  prior: {description: earlier, fractions: 20}")
    with pytest.raises(ProtocolError, match="on a composite would convert the summed dose"):
        parse_protocol_text(composite + "optimization:\n  terms:\n    - " + term % "2 Gy" + "\n", "p.yaml")


def test_a_mean_dose_term_in_eqd2_takes_its_structures_ratio_and_needs_one() -> None:
    terms = "optimization:\n  terms:\n    - {kind: mean_dose, structure: Cord, max: 20 Gy, quantity: EQD2}\n"
    term = parse_protocol_text(_protocol('"Max <= 50 Gy"') + terms, "p.yaml").optimization.terms[0]
    assert term.alpha_beta.gy == 2.0 and term.label() == "mean_dose Cord (EQD2, alpha/beta 2 Gy) <= 20 Gy"
    with pytest.raises(ProtocolError, match=r"give `alpha_beta` .* here or on structures.Cord") as raised:
        parse_protocol_text(_protocol('"Max <= 50 Gy"', organ="{role: oar}") + terms, "p.yaml")
    assert "p.yaml:17" in str(raised.value)


def test_a_site_template_leaves_alpha_beta_to_the_protocols_that_extend_it(tmp_path) -> None:
    from specc.protocol import load_protocol, load_protocol_or_template

    (tmp_path / "base.yaml").write_text(
        "template: true\nstructures:\n  Cord: {role: oar}\ngoals:\n  Cord: ['D0.03cc <= 50 Gy (EQD2)']\n"
    )
    load_protocol_or_template(tmp_path / "base.yaml")
    protocol = _protocol('"Max <= 45 Gy"', organ="{alpha_beta: 2 Gy}").replace("specc: 1", "extends: base.yaml\nspecc: 1")
    (tmp_path / "p.yaml").write_text(protocol)
    goals = load_protocol(tmp_path / "p.yaml").goals
    assert [goal.text for goal in goals] == ["D0.03cc <= 50 Gy (EQD2)", "Max <= 45 Gy", "D95% >= 28.5 Gy"]
    (tmp_path / "q.yaml").write_text(protocol.replace("Cord: {alpha_beta: 2 Gy}", "Cord: {color: '#ff0000'}"))
    with pytest.raises(ProtocolError, match="needs the alpha/beta of Cord"):
        load_protocol(tmp_path / "q.yaml")


def test_a_goal_on_this_course_alone_is_written_in_both_forms_and_needs_a_prior_course() -> None:
    prior = "  prior: {description: earlier, fractions: 20}"
    protocol = parse_protocol_text(
        _protocol('"Max <= 25 Gy (EQD2, this course)"\n{metric: D0.03cc, "<=": 20 Gy, course: this}', prior=prior)
        + TERMS, "p.yaml",
    )
    eqd2, physical, _ = protocol.goals
    assert (eqd2.course, eqd2.quantity, physical.course) == ("this", "EQD2", "this")
    assert str(eqd2) == "Max <= 25 Gy (EQD2, this course)" and str(physical) == "D0.03cc <= 20 Gy (this course)"
    assert Goal.parse(str(eqd2), "Cord") == eqd2.model_copy(update={"source": None, "reference_dose": None})
    with pytest.raises(ProtocolError, match=r"only a protocol with a prior course .* tells apart") as raised:
        parse_protocol_text(_protocol('"Max <= 25 Gy (this course)"'), "p.yaml")
    assert "p.yaml:13" in str(raised.value)
    # an EQD2 goal on this course alone never converts the prior dose: it needs no prior fractions, and a prior
    # of several courses (or one of other fractions) is no reason to refuse it
    own_only = parse_protocol_text(
        _protocol('"Max <= 25 Gy (EQD2, this course)"', prior="  prior: {description: x}") + TERMS, "p.yaml"
    )
    assert own_only.prior_courses_mismatch(True, [20]) is None
    with pytest.raises(ProtocolError, match='"this course" is given twice'):
        parse_protocol_text(_protocol('"Max <= 25 Gy (this course, this course)"', prior=prior), "p.yaml")


def test_a_goal_on_this_course_in_percent_refers_to_this_courses_share_of_the_level() -> None:
    """A 46 Gy prior and a 78 Gy composite level: "95% (this course)" is 95% of the 32 Gy this plan gives,
    not of 78 Gy (judged on 32 Gy, it could never pass); the unit-slip check measures against 32 Gy too."""
    text = "\n".join([
        "specc: 1", "name: boost", "site: test", "version: 1.0.0", "structures:", "  PTV: {role: target}",
        "prescription:", "  fractions: 16", "  levels: [{target: PTV, dose: 78 Gy}]",
        "  prior: {description: pelvis, dose: 46 Gy, fractions: 23}", "goals:", "  PTV:",
        '    - "D95% >= 95% (this course)"', '    - "V95%[%] >= 98 (this course)"', '    - "D95% >= 95%"', TERMS,
    ])
    own, volume, composite = parse_protocol_text(text, "p.yaml").goals
    assert own.threshold_value == pytest.approx(0.95 * 32) and volume.metric_dose_gy == pytest.approx(0.95 * 32)
    assert composite.threshold_value == pytest.approx(0.95 * 78)
    with pytest.raises(ProtocolError, match=r"4.38 times PTV's share of the dose level from this course \(32 Gy\)"):
        parse_protocol_text(text.replace('"V95%[%] >= 98 (this course)"', '"Max <= 140 Gy (this course)"'), "p.yaml")
