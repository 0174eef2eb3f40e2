"""A goal's limits in Gy, beside the percentages of the prescription they were written in.

`D2% <= 107%` is judged against 107% of its structure's prescription, a dose the record holds
(`GoalRecord.threshold`) but the goal's text does not show. The report and the terminal show it
next to the goal, "D2% <= 107% (70.62 Gy)", so that a reviewer checks the status against the
value without arithmetic. How the goal was written is its record's `text`, read back with the
protocol's own goal grammar: no second reading of the goal language here. A limit read on the case
from a table by a structure's volume is shown with where it came from (`GoalRecord.limit_source`):
"R50 <= 2.9-5.9 by PTV volume, 1.8-163 cc (4.5, variation 5.5, from the table by PTV volume at 22.00 cc, the
22 cc row)", its limit with two decimals (`read_limit_text`): an interpolated limit has many.
"""

from __future__ import annotations

from specc.evaluate import GoalRecord
from specc.protocol.goals import Goal
from specc.protocol.judgement import meets
from specc.protocol.metrics import Metric
from specc.protocol.units import format_number

_MOST_DECIMALS = 6


def resolved_limits(goal: GoalRecord) -> str | None:
    """'70.62 Gy' (', variation 72.60 Gy' with a variation) for a goal written in % of the prescription;
    '50% = 35.00 Gy' for a V or CV metric whose dose is (`GoalRecord.metric_dose_gy`: with several dose levels
    "V50%" alone does not say which); the limits and their source for one read from a table by volume; None for
    a goal written in its value's own unit, whose text already says its limits."""
    try:
        written: Goal | None = Goal.parse(goal.text, goal.structure)
    except ValueError:  # a record another specc version wrote, or a table by volume: its text as written
        written = None
    shown = []
    percent = Metric.parse(goal.metric).dose_percent if goal.metric_dose_gy is not None else None
    if percent is not None:  # specc sets metric_dose_gy only for a dose in % (`evaluate.plan._relative_metric_dose_gy`)
        shown.append(f"{format_number(percent)}% = {limit_text(goal.metric_dose_gy)} Gy")
    if goal.limit_source is not None:
        shown.append(f"{_limits(goal)}, {goal.limit_source}")
    elif written is not None and written.threshold.relative:  # the variation is relative only with the threshold
        shown.append(_limits(goal))
    return "; ".join(shown) or None


def _limits(goal: GoalRecord) -> str:
    unit = f" {goal.unit}" if goal.unit else ""
    def shown(limit: float) -> str:
        return limit_text(limit) if goal.limit_source is None else read_limit_text(limit, goal)

    limits = f"{shown(goal.threshold)}{unit}"
    if goal.variation is not None:
        limits += f", variation {shown(goal.variation)}{unit}"
    return limits


def read_limit_text(limit: float, goal: GoalRecord) -> str:
    """A limit read from a table by a structure's volume, interpolated between two rows (27.932727... Gy): two
    decimals, as the report's other limits, or as many more (up to six) as it takes for the goal's value as shown
    (`GoalRecord.shown`) to compare with the limit as shown as the goal was judged: "27.94 Gy FAIL" beside a limit
    shown as 27.94 Gy would read as a contradiction. plan.json keeps the whole number."""
    for digits in range(2, _MOST_DECIMALS + 1):
        text = f"{limit:.{digits}f}"
        if goal.value is None or meets(float(goal.shown(goal.value)), goal.comparator, float(text)) == meets(
                goal.value, goal.comparator, limit):
            return text
    return text


def limit_text(value: float) -> str:
    """Two decimals, or as many more (up to six) as the limit needs to be shown exactly: 107% of 66.5 Gy
    reads 71.155 Gy, not 71.16 Gy, which a measured value shown as 71.16 Gy could seem to meet."""
    for digits in range(2, _MOST_DECIMALS + 1):
        text = f"{value:.{digits}f}"
        if abs(float(text) - value) < 1e-9:
            return text
    return text
