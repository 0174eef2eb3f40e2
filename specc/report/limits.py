"""A goal's limits in Gy, beside the percentages of the prescription they were written in.

`D2% <= 107%` is judged against 107% of its structure's prescription, a dose the record holds
(`GoalRecord.threshold`) but the goal's text does not show. The report and the terminal show it
next to the goal, "D2% <= 107% (70.62 Gy)", so that a reviewer checks the status against the
value without arithmetic. How the goal was written is its record's `text`, read back with the
protocol's own goal grammar: no second reading of the goal language here. A limit read on the case
from a table by a structure's volume is shown with where it came from (`GoalRecord.limit_source`):
"R50 <= 2.9-5.9 by PTV volume, 1.8-163 cc (4.5, variation 5.5, from the table by PTV volume at 22.00 cc, the
22 cc row)".
"""

from __future__ import annotations

from specc.evaluate import GoalRecord
from specc.protocol.goals import Goal

_MOST_DECIMALS = 6


def resolved_limits(goal: GoalRecord) -> str | None:
    """'70.62 Gy' (', variation 72.60 Gy' with a variation) for a goal written in % of the prescription;
    the limits and their source for one read from a table by volume; None for a goal written in its value's
    own unit, whose text already says its limits."""
    if goal.limit_source is not None:
        return f"{_limits(goal)}, {goal.limit_source}"
    try:
        written = Goal.parse(goal.text, goal.structure)
    except ValueError:  # a record another specc version wrote, in words this one does not read: shown as written
        return None
    if not written.threshold.relative:  # the variation is relative only with the threshold (protocol rule)
        return None
    return _limits(goal)


def _limits(goal: GoalRecord) -> str:
    unit = f" {goal.unit}" if goal.unit else ""
    limits = f"{limit_text(goal.threshold)}{unit}"
    if goal.variation is not None:
        limits += f", variation {limit_text(goal.variation)}{unit}"
    return limits


def limit_text(value: float) -> str:
    """Two decimals, or as many more (up to six) as the limit needs to be shown exactly: 107% of 66.5 Gy
    reads 71.155 Gy, not 71.16 Gy, which a measured value shown as 71.16 Gy could seem to meet."""
    for digits in range(2, _MOST_DECIMALS + 1):
        text = f"{value:.{digits}f}"
        if abs(float(text) - value) < 1e-9:
            return text
    return text
