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
