"""Which way each goal's marker on the report's DVH points: the side of the point the curve must keep to."""

from __future__ import annotations

from evaluate_fakes import masks_of, protocol, solve_result, synthetic_case
from specc.evaluate import evaluate_plan
from specc.report.figures import dvh_figure

_GOALS = {
    "Target": ["D95% >= 50 Gy", "D2% <= 70 Gy", "DC5% >= 40 Gy", "Min >= 45 Gy"],
    "Organ": ["V20Gy[%] <= 30", "CV20Gy >= 1 cc", "CV20Gy <= 2 cc", "Max <= 70 Gy"],
}
_AT_LEAST = {"D95% >= 50 Gy", "DC5% >= 40 Gy", "Min >= 45 Gy", "CV20Gy <= 2 cc"}


def test_a_cv_goal_marks_the_curve_from_above_as_its_spared_volume_reads() -> None:
    """Audit s19/a1: `CV20Gy >= 20 cc` (spare at least 20 cc) was drawn as "goal: at least" at (20 Gy, 59%),
    where the curve must stay at most 59%; every other metric keeps its comparator's side."""
    case = synthetic_case()
    record = evaluate_plan(protocol(_GOALS), case, masks_of(case), solve_result(case, scale=2.0), {}).record
    points = {goal.dvh_point: goal.text for goal in record.goals if goal.dvh_point is not None}
    assert len(points) == len(_AT_LEAST) + 4  # every goal here has its own point on the plane
    drawn = {}
    for line in dvh_figure(record).axes[0].get_lines():
        xs, ys = line.get_xdata(), line.get_ydata()
        if len(xs) == 1 and (float(xs[0]), float(ys[0])) in points:
            drawn[points[(float(xs[0]), float(ys[0]))]] = line.get_marker()
    assert drawn == {text: "^" if text in _AT_LEAST else "v" for text in points.values()}
    # the legend says which side of the point the curve keeps to, not the comparator's word (review s19/r2 F4)
    legend = {text.get_text() for text in dvh_figure(record).axes[0].get_legend().get_texts()}
    assert {"goal: curve at or above", "goal: curve at or below"} <= legend
