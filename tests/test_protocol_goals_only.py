"""A protocol planned from its goals alone: what no such plan can honour is found when it is read, every case at
once with its line, for planning to refuse; the protocol stays valid (`specc check` judges by such goals)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specc.protocol import load_protocol_or_template, parse_protocol_text

HEAD = (
    "specc: 1\nname: t\nsite: prostate\nversion: 1.0.0\n"
    "structures:\n  PTV: {role: target}\n  Nodes: {role: target}\n  Rectum: {role: oar, alpha_beta: 3 Gy}\n"
    "  Bladder: {role: oar}\n"
    "prescription:\n  fractions: 39\n  levels:\n    - {target: PTV, dose: 78 Gy}\n"
)  # the level on line 13
TERMS = "optimization:\n  terms:\n    - {kind: quadratic_underdose, structure: PTV, dose: 78 Gy, weight: 1}\n"


def _diagnostics(text: str) -> list[tuple[int | None, str, str]]:
    return [(d.line, d.path, d.message) for d in parse_protocol_text(text, "p.yaml").derivation_refusals]


def _none(text: str) -> None:
    assert parse_protocol_text(text, "p.yaml").derivation_refusals == []


def test_a_dose_level_whose_target_has_no_goal_is_refused_at_the_levels_line() -> None:
    """Goals on the organs alone planned the PTV to a D95% of 79% of its level while every goal passed."""
    organs = 'goals:\n  Rectum: ["V70Gy[%] <= 20"]\n  Bladder: ["V70Gy[%] <= 30 (priority 2)"]\n'
    assert _diagnostics(HEAD + organs) == [(13, "prescription.levels[0]", (
        'PTV has a dose level but no goal: add its coverage goal, e.g. "D95% >= 100%" (without `optimization:` '
        "terms the plan is derived from the goals and judged by them alone, so nothing would judge PTV's coverage)"
    ))]
    _none(HEAD + organs + '  PTV: ["D95% >= 100%"]\n')
    _none(HEAD + organs + TERMS)  # judged by nothing either, but planned as written
    _none(HEAD)  # no goal at all: the plan's summary says "no goals"
    boost = HEAD + "    - {target: Nodes, dose: 56 Gy}\n" + organs + '  PTV: ["D95% >= 100%"]\n'
    assert [(line, path) for line, path, _ in _diagnostics(boost)] == [(14, "prescription.levels[1]")]


def test_goals_no_derived_term_can_aim_for_are_refused_together_in_file_order() -> None:
    """`specc plan` refused them one per run, the first out of file order, and `specc validate` said OK."""
    goals = (
        'goals:\n  PTV: ["D95% >= 78 Gy"]\n'
        '  Rectum: ["Max >= 10 Gy (priority 3)", "Mean >= 1 Gy (EQD2, priority 3)", "Mean <= 40 Gy (EQD2)"]\n'
        '  Bladder: ["Min <= 5 Gy (priority 3)", "Min >= 1 Gy"]\n'
    )
    by_hand = "write an `optimization:` section by hand"
    assert _diagnostics(HEAD + goals) == [
        (16, "goals.Rectum[0]", "goal 'Max >= 10 Gy (priority 3)' on Rectum asks for a hot spot (a maximum at least "
                                f"some dose), which no convex program can aim for: remove the goal, or {by_hand} "
                                "(the goal is still judged on the plan)"),
        (16, "goals.Rectum[1]", "goal 'Mean >= 1 Gy (EQD2, priority 3)' on Rectum is in EQD2, and a lower bound on "
                                "the mean of an isoeffective dose (a convex quadratic of the dose) is not convex: no "
                                f"derived term measures it; {by_hand} (the goal is still judged on the plan)"),
        (17, "goals.Bladder[0]", "goal 'Min <= 5 Gy (priority 3)' on Bladder asks for a cold spot (a minimum at most "
                                 f"some dose), which no convex program can aim for: remove the goal, or {by_hand} "
                                "(the goal is still judged on the plan)"),
    ]
    _none(HEAD + goals + TERMS)  # terms of its own plan any goal


def test_a_goal_in_eqd2_on_a_composite_or_on_this_course_alone_has_no_derived_term() -> None:
    prior = "  prior: {description: pelvis, dose: 46 Gy, fractions: 23}\n"
    goals = 'goals:\n  PTV: ["D95% >= 78 Gy"]\n  Rectum: ["Max <= 80 Gy (EQD2)", "Max <= 30 Gy (this course)"]\n'
    found = _diagnostics(HEAD + prior + goals)
    assert [(line, path) for line, path, _ in found] == [(17, "goals.Rectum[0]"), (17, "goals.Rectum[1]")]
    assert "is in EQD2, and on a composite the prior course's dose changes its physical equivalent" in found[0][2]
    assert "is on this course alone, and the terms see the composite (prior + this plan)" in found[1][2]
    _none(HEAD + prior + goals + TERMS)


def test_a_site_template_leaves_targets_goals_and_terms_to_its_protocols(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "template: true\nstructures:\n  PTV: {role: target}\n  Bladder: {role: oar}\n"
        "prescription: {fractions: 39, levels: [{target: PTV, dose: 78 Gy}]}\n"
        'goals:\n  Bladder: ["Min <= 5 Gy (priority 3)"]\n'
    )
    load_protocol_or_template(tmp_path / "base.yaml")


def test_planning_refuses_them_all_at_once_and_a_check_judges_by_them(tmp_path: Path) -> None:
    from specc.compile.derive import derive_optimization
    from specc.protocol import ProtocolError

    goals = 'goals:\n  Rectum: ["Max >= 10 Gy (priority 3)"]\n  Bladder: ["Min <= 5 Gy (priority 3)"]\n'
    protocol = parse_protocol_text(HEAD + goals, "p.yaml")  # valid: `specc check` judges a dose by these goals
    with pytest.raises(ProtocolError) as raised:
        derive_optimization(protocol)
    assert [(d.line, d.path) for d in raised.value.diagnostics] == [
        (13, "prescription.levels[0]"), (15, "goals.Rectum[0]"), (16, "goals.Bladder[0]"),
    ]


def test_a_protocol_no_loader_read_is_refused_by_the_same_rules() -> None:
    """Built in memory (here: constructed from a loaded one's fields), nothing located its refusals: planning
    checked only some of the rules, and planned a dose level nothing judges."""
    from specc.compile.derive import derive_optimization
    from specc.errors import CompileError
    from specc.protocol.models import Protocol

    goals = 'goals:\n  Rectum: ["Max >= 10 Gy (priority 3)"]\n'
    loaded = parse_protocol_text(HEAD + goals, "p.yaml")
    rebuilt = Protocol.model_construct(**{name: getattr(loaded, name) for name in Protocol.model_fields})
    assert rebuilt.derivation_refusals == []
    with pytest.raises(CompileError) as raised:
        derive_optimization(rebuilt)
    assert str(raised.value).startswith("prescription.levels[0]: PTV has a dose level but no goal")
    assert "; goals.Rectum[0]: goal 'Max >= 10 Gy (priority 3)' on Rectum asks for a hot spot" in str(raised.value)
