"""A V or CV metric written in % of the prescription, shown with the dose it stands for."""

from __future__ import annotations

from evaluate_fakes import masks_of, sib_case, sib_protocol_text, solve_result
from specc.cli.plan import goal_text
from specc.evaluate import GoalRecord, evaluate_plan
from specc.protocol import parse_protocol_text
from specc.report.limits import resolved_limits


def test_a_percent_dose_in_a_metric_is_shown_in_gy_of_the_level_it_was_resolved_against() -> None:
    """Audit s19/a4 F7: with 70 / 63 / 56 Gy levels a parotid's 'V50%[%] <= 50' was shown as written, where
    'Mean <= 40%' showed its 28.00 Gy: which level's 50% was judged only plan.json's dvh_point told."""
    text = sib_protocol_text('["V95%[%] >= 98", "D2% <= 107%"]').replace(
        "goals:\n", 'goals:\n  Body: ["V50%[%] <= 50", "V20Gy[%] <= 50", "CV105%[cc] >= 1"]\n')
    protocol = parse_protocol_text(text, "sib.yaml")
    case = sib_case()
    record = evaluate_plan(protocol, case, masks_of(case), solve_result(case, scale=2.0), {}).record
    shown = {f"{goal.structure} {goal.text}": resolved_limits(goal) for goal in record.goals}
    assert shown == {
        "Body V50%[%] <= 50": "50% = 30.00 Gy",  # a structure without a level: the highest, 60 Gy
        "Body V20Gy[%] <= 50": None,
        "Body CV105%[cc] >= 1": "105% = 63.00 Gy",
        "PTV_Low V95%[%] >= 98": "95% = 38.00 Gy",  # its own level, 40 Gy
        "PTV_Low D2% <= 107%": "42.80 Gy",
    }
    [body] = [goal for goal in record.goals if goal.text == "V50%[%] <= 50"]
    assert goal_text(body).plain == "V50%[%] <= 50 (50% = 30.00 Gy)"
    # a plan.json written before the field reads it as none, and its goal is shown as written
    older = GoalRecord.model_validate({**body.model_dump(), "metric_dose_gy": None})
    assert resolved_limits(older) is None
