"""A structure without a mask on the case (`ResolvedStructures.absent`): its goals read NOT EVALUATED with
the reason the compile stage gave, and the others are judged; without a reason it stays an error."""

from __future__ import annotations

import json

import pytest
from evaluate_fakes import masks_of, protocol, solve_result, synthetic_case

from specc.compile.structures import NOT_CONTOURED
from specc.evaluate import EvaluationError, PlanRecord, evaluate_plan

GOALS = {"Target": ["D95% >= 50 Gy"], "Organ": ["Max <= 40 Gy", "Mean <= 20 Gy"]}
REASON = "not contoured on this case (if_contoured: true)"


def _evaluate(absent, allowed=()):
    case = synthetic_case()
    plan_protocol = protocol(GOALS)
    masks = {name: mask for name, mask in masks_of(case).items() if name != "Organ"}
    return evaluate_plan(plan_protocol, case, masks, solve_result(case, scale=0.65, protocol=plan_protocol), {},
                         absent=absent, allowed_absent=allowed)


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


def test_strict_lets_pass_only_a_must_goal_on_an_organ_the_protocol_allows_the_case_to_lack() -> None:
    """--strict passed a priority-1 goal that read NOT EVALUATED, whatever the reason: a clinic's automatic gate let
    through a must-goal nobody measured. Only the protocol's own allowance (`if_contoured: true`, not contoured on
    the case: the compile stage's `allowed_absent`) passes; an organ absent for any other reason stops it."""
    allowed = _evaluate({"Organ": NOT_CONTOURED}, allowed={"Organ"}).record
    assert [goal.absence_allowed for goal in allowed.goals] == [False, True, True]
    assert allowed.unevaluated_must_goals() == [] and not allowed.stops_strict()

    empty = "empty on this case (`Target & Organ` has no voxel)"  # an overlap that does not occur
    stopped = _evaluate({"Organ": empty}).record
    assert not any(goal.absence_allowed for goal in stopped.goals)
    assert [goal.text for goal in stopped.unevaluated_must_goals()] == ["Max <= 40 Gy", "Mean <= 20 Gy"]
    assert [stopped.not_evaluated_reason(goal) for goal in stopped.unevaluated_must_goals()] == [f"Organ: {empty}"] * 2
    assert stopped.stops_strict() and not stopped.failed_must_goals()


def test_strict_stops_on_a_must_goal_whose_metric_volume_is_larger_than_its_structure() -> None:
    """A D10cc on the 8 cc Organ has no value (NOT EVALUATED, its reason in the note): a must-goal --strict stops on;
    the same goal at priority 2 does not."""
    case = synthetic_case()
    for goals, stops in [({"Target": ["D95% >= 50 Gy"], "Organ": ["D10cc <= 40 Gy"]}, True),
                         ({"Target": ["D95% >= 50 Gy"], "Organ": ["D10cc <= 40 Gy (priority 2)"]}, False)]:
        plan_protocol = protocol(goals)
        record = evaluate_plan(plan_protocol, case, masks_of(case),
                               solve_result(case, scale=0.65, protocol=plan_protocol), {}).record
        organ = record.goals[1]
        assert (organ.measured_status, organ.absence_allowed) == ("not_evaluated", False) and "10" in organ.note
        assert record.stops_strict() is stops and not record.failed_must_goals()
        assert [record.not_evaluated_reason(goal) for goal in record.unevaluated_must_goals()] == (
            [organ.note] if stops else [])


def test_a_plan_json_written_before_absence_allowed_is_read_with_it_false() -> None:
    record = _evaluate({"Organ": NOT_CONTOURED}, allowed={"Organ"}).record
    document = json.loads(record.model_dump_json())
    for goal in document["goals"]:
        del goal["absence_allowed"]
    old = PlanRecord.model_validate(document)
    assert [goal.absence_allowed for goal in old.goals] == [False] * 3
    assert [goal.status for goal in old.goals] == [goal.status for goal in record.goals]
