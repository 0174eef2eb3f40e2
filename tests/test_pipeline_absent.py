"""`specc plan` on a case without an `if_contoured` organ, or where an overlap does not occur: the plan is
made, the structure's goals read NOT EVALUATED and its terms are left out, each with a note (audit a1 F6/F10,
a4 F5). Needs the wiring in specc/compile/program.py and specc/pipeline.py."""

from __future__ import annotations

from evaluate_fakes import synthetic_case

import specc
from specc.protocol import parse_protocol_text

PROTOCOL = """\
specc: 1
name: absent
site: test
version: 1.0.0
structures:
  Target: {role: target}
  Organ: {role: oar}
  OpticNerve: {role: oar, if_contoured: true}
  Overlap: {role: oar, expression: Target & Organ}
prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}
goals:
  Target: ["D95% >= 50 Gy"]
  Organ: ["Max <= 50 Gy"]
  OpticNerve: ["Max <= 54 Gy"]
  Overlap: ["Mean <= 60 Gy"]
"""
TERMS = """\
optimization:
  terms:
    - {kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 100}
    - {kind: quadratic_overdose, structure: Target, dose: 60 Gy, weight: 10}
    - {kind: max_dose, structure: OpticNerve, dose: 54 Gy}
    - {kind: quadratic_overdose, structure: Overlap, dose: 50 Gy, weight: 1}
"""


def _plan(text, tmp_path):
    outcome = specc.plan(parse_protocol_text(text, "site/p.yaml"), synthetic_case(), tmp_path / "out")
    record = outcome.record
    return record, {goal.structure: goal for goal in record.goals}


def test_a_written_optimization_plans_without_the_absent_structures(tmp_path):
    record, goals = _plan(PROTOCOL + TERMS, tmp_path)
    assert goals["Target"].status in ("pass", "variation", "fail")
    assert (goals["OpticNerve"].status, goals["OpticNerve"].note) == (
        "not_evaluated", "OpticNerve: not contoured on this case (if_contoured: true)")
    assert (goals["Overlap"].status, goals["Overlap"].note) == (
        "not_evaluated", "Overlap: empty on this case (`Target & Organ` has no voxel)")
    assert any(note.startswith("site/p.yaml:20: max_dose OpticNerve") and "left out of the optimization" in note
               for note in record.notes)
    assert any(note.startswith("site/p.yaml:21: quadratic_overdose Overlap") for note in record.notes)
    assert {term.label.split()[1] for term in record.solver.terms} == {"Target"}


def test_goals_only_plans_without_the_absent_structures(tmp_path):
    record, goals = _plan(PROTOCOL, tmp_path)
    assert goals["OpticNerve"].status == goals["Overlap"].status == "not_evaluated"
    assert record.goal_counts()["not_evaluated"] == 2


def test_a_program_whose_every_term_is_on_an_absent_structure_is_refused_with_each_term_named(tmp_path):
    import pytest

    from specc.errors import SpeccError

    only_absent = PROTOCOL + """\
optimization:
  terms:
    - {kind: max_dose, structure: OpticNerve, dose: 54 Gy}
"""
    with pytest.raises(SpeccError, match="every optimization term is on a structure this case lacks") as error:
        _plan(only_absent, tmp_path)
    assert "site/p.yaml:18: max_dose OpticNerve" in str(error.value)


def test_a_priority_step_after_a_term_left_out_keeps_its_priority(tmp_path):
    """The solve took the priorities by the protocol's term indices, but compiling leaves out the terms on an
    absent structure: the priority-3 penalty after a left-out priority-2 one fell into the coverage step."""
    text = PROTOCOL.replace('  OpticNerve: ["Max <= 54 Gy"]\n', "").replace(  # its goal first: its term before Organ's
        "goals:\n", 'goals:\n  OpticNerve: [{metric: Max, "<=": 54 Gy, priority: 2}]\n')
    text = text.replace('  Organ: ["Max <= 50 Gy"]\n', '  Organ: [{metric: Mean, "<=": 20 Gy, priority: 3}]\n')
    record, goals = _plan(text, tmp_path)
    assert goals["OpticNerve"].status == "not_evaluated"
    assert [step["step"] for step in record.solver.steps][:2] == [
        "1. coverage, hot spots, fall-off and other terms", "2. priority 3 penalties"]


def test_strict_stops_on_an_overlap_that_does_not_occur_but_not_on_an_organ_the_case_need_not_contour(tmp_path):
    """--strict passed a priority-1 goal that read NOT EVALUATED, whatever the reason. An overlap that does not occur
    leaves a must-goal unmeasured: exit 2 (`specc plan --strict`, a cohort row). An `if_contoured` organ the case
    does not contour is the protocol's own allowance: its must-goal alone does not stop the plan."""
    met = PROTOCOL.replace('"D95% >= 50 Gy"', '"D95% >= 30 Gy"').replace('"Max <= 50 Gy"', '"Max <= 100 Gy"')
    outcome = specc.plan(parse_protocol_text(met, "site/p.yaml"), synthetic_case(), tmp_path / "overlap")
    goals = {goal.structure: goal for goal in outcome.record.goals}
    assert [goals[name].absence_allowed for name in ("OpticNerve", "Overlap")] == [True, False]
    assert [goal.structure for goal in outcome.record.unevaluated_must_goals()] == ["Overlap"]
    assert not outcome.record.failed_must_goals() and (outcome.exit_code(), outcome.exit_code(strict=True)) == (0, 2)

    allowed_only = met.replace('  Overlap: ["Mean <= 60 Gy"]\n', '  Overlap: [{metric: Mean, "<=": 60 Gy, priority: 2}]\n')
    outcome = specc.plan(parse_protocol_text(allowed_only, "site/p.yaml"), synthetic_case(), tmp_path / "allowed")
    assert {goal.structure: goal.status for goal in outcome.record.goals}["OpticNerve"] == "not_evaluated"
    assert outcome.exit_code(strict=True) == 0

    # a PRV of that organ is empty for the same allowance (docs/protocol-language.md: `expand(OpticNerve_L, 3mm)`
    # is then empty): its must-goal does not stop --strict either, where an overlap of contoured organs does
    with_prv = allowed_only.replace("  Overlap: {role: oar, expression: Target & Organ}\n",
                                    "  Overlap: {role: oar, expression: Target & Organ}\n"
                                    "  OpticNerve_PRV: {role: oar, expression: 'expand(OpticNerve, 3mm)'}\n").replace(
        '  OpticNerve: ["Max <= 54 Gy"]\n', '  OpticNerve: ["Max <= 54 Gy"]\n  OpticNerve_PRV: ["Max <= 56 Gy"]\n')
    outcome = specc.plan(parse_protocol_text(with_prv, "site/p.yaml"), synthetic_case(), tmp_path / "prv")
    prv = next(goal for goal in outcome.record.goals if goal.structure == "OpticNerve_PRV")
    assert (prv.status, prv.absence_allowed) == ("not_evaluated", True)
    assert outcome.exit_code(strict=True) == 0
