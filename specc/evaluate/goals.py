"""Judging a clinical goal on the measured value: pass, within variation, or fail.

A goal is judged only on a value measured on the full-resolution dose grid (evaluation
never uses the optimizer's sampled voxels). The judgement of the dose is `measured_status`;
the reported `status` equals it only when the solver converged to an optimal point.
Otherwise every goal is reported as `not_converged`: an unconverged fluence is not a plan,
so no goal of it is ever shown as passed, even when its dose happens to meet the goal.
"""

from __future__ import annotations

from typing import Literal

from specc.protocol.judgement import meets

Comparator = Literal["<=", ">=", "<", ">"]
MeasuredStatus = Literal["pass", "variation", "fail", "not_evaluated"]
GoalStatus = Literal["pass", "variation", "fail", "not_evaluated", "not_converged"]


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
