"""Judging a clinical goal on the measured value: pass, within variation, or fail.

A goal is judged only on a value measured on the full-resolution dose grid (evaluation
never uses the optimizer's sampled voxels). The judgement of the dose is `measured_status`;
the reported `status` equals it only when the solver converged to an optimal point.
Otherwise every goal is reported as `not_converged`: an unconverged fluence is not a plan,
so no goal of it is ever shown as passed, even when its dose happens to meet the goal.
"""

from __future__ import annotations

from typing import Literal

# Only the rounding of stored doses is forgiven, never a clinical tolerance: a plan normalized so
# that a goal's metric is exactly its threshold must keep its status when its dose is read back
# from float32 (result.h5, and the RT Dose exported from it: 6e-8 of each value; a D95% of exactly
# 75.6 Gy read back as 75.599998 Gy failed the goal its plan had passed). 1e-6 of the threshold is
# 0.08 mGy at 80 Gy, a thousandth of the 0.1% hard limits are held to.
DOSE_ROUNDING = 1e-6

Comparator = Literal["<=", ">=", "<", ">"]
MeasuredStatus = Literal["pass", "variation", "fail", "not_evaluated"]
GoalStatus = Literal["pass", "variation", "fail", "not_evaluated", "not_converged"]


def meets(value: float, comparator: str, threshold: float) -> bool:
    """Whether `value comparator threshold` holds (<= and >= forgive rounding noise only)."""
    slack = DOSE_ROUNDING * max(abs(threshold), 1e-12)
    if comparator == "<=":
        return value <= threshold + slack
    if comparator == ">=":
        return value >= threshold - slack
    if comparator == "<":
        return value < threshold
    if comparator == ">":
        return value > threshold
    raise ValueError(f"unknown comparator {comparator!r}")


def judged_text(value: float, comparator: str, threshold: float, variation: float | None, digits: int = 2) -> str:
    """`value` with `digits` decimals, or with as many more (up to 6) as it takes for the shown number to
    meet the goal's threshold and variation exactly when the value does: a hard limit met within its
    tolerance can leave a goal failed by 1e-4 Gy, and "72.00 Gy  FAIL" against "Min >= 72 Gy" reads as
    a contradiction; "71.9999 Gy  FAIL" does not."""
    limits = [threshold] if variation is None else [threshold, variation]
    places = digits
    while places < 6 and any(meets(round(value, places), comparator, limit) != meets(value, comparator, limit)
                             for limit in limits):
        places += 1
    return f"{value:.{places}f}"


def judge(value: float, comparator: str, threshold: float, variation: float | None) -> MeasuredStatus:
    """Pass if the threshold is met, variation if only the acceptable-variation threshold is."""
    if meets(value, comparator, threshold):
        return "pass"
    if variation is not None and meets(value, comparator, variation):
        return "variation"
    return "fail"


def reported_status(measured: MeasuredStatus, converged: bool) -> GoalStatus:
    """The status a report shows: the measured one only for a converged plan."""
    return measured if converged else "not_converged"
