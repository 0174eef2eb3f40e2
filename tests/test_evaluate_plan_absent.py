"""A structure without a mask on the case (`ResolvedStructures.absent`): its goals read NOT EVALUATED with
the reason the compile stage gave, and the others are judged; without a reason it stays an error."""

from __future__ import annotations

import pytest
from evaluate_fakes import masks_of, protocol, solve_result, synthetic_case

from specc.evaluate import EvaluationError, evaluate_plan

GOALS = {"Target": ["D95% >= 50 Gy"], "Organ": ["Max <= 40 Gy", "Mean <= 20 Gy"]}
REASON = "not contoured on this case (if_contoured: true)"


def _evaluate(absent):
    case = synthetic_case()
    plan_protocol = protocol(GOALS)
    masks = {name: mask for name, mask in masks_of(case).items() if name != "Organ"}
    return evaluate_plan(plan_protocol, case, masks, solve_result(case, scale=0.65, protocol=plan_protocol), {},
                         absent=absent)


def test_goals_of_an_absent_structure_read_not_evaluated_with_the_reason() -> None:
    record = _evaluate({"Organ": REASON}).record
    organ = [goal for goal in record.goals if goal.structure == "Organ"]
    assert [(goal.status, goal.value, goal.dvh_point) for goal in organ] == [("not_evaluated", None, None)] * 2
    assert {goal.note for goal in organ} == {f"Organ: {REASON}"}
    assert record.goals[0].status == "pass"
    assert record.goal_counts() == {"pass": 1, "not_evaluated": 2}
    assert "Organ" not in {structure.structure for structure in record.structures}


def test_a_structure_without_a_mask_and_without_a_reason_is_an_error() -> None:
    with pytest.raises(EvaluationError, match=r"structure 'Organ' has no mask"):
        _evaluate({})


def test_goals_of_a_structure_read_from_some_of_its_parts_say_so_on_the_goal_itself() -> None:
    """Audit c3 F4: an organ read from one of its two parts (BrachialPlex_L; BrachialPlex_R not in the case) said so
    in the Notes only; its goal read '10.31 Gy PASS' with an empty note in report.html and plan.json, as a whole
    organ's would. Each of its goals is measured and judged as before, and carries what it was judged on."""
    case = synthetic_case()
    plan_protocol = protocol(GOALS)
    judged_on = "judged on the case's 'Organ_L' alone: its part 'Organ_R' is not in the case"
    solve = solve_result(case, scale=0.65, protocol=plan_protocol)
    whole = evaluate_plan(plan_protocol, case, masks_of(case), solve, {}).record
    partial = evaluate_plan(plan_protocol, case, masks_of(case), solve, {}, partial={"Organ": judged_on}).record
    organ = [goal for goal in partial.goals if goal.structure == "Organ"]
    assert [goal.note for goal in organ] == [f"Organ: {judged_on}"] * 2
    assert all(goal.partial_structure for goal in organ)
    assert [(goal.value, goal.status) for goal in organ] == [
        (goal.value, goal.status) for goal in whole.goals if goal.structure == "Organ"]
    assert not any(goal.partial_structure or goal.note for goal in whole.goals)
    assert not partial.goals[0].partial_structure and partial.goals[0].note == ""
