"""Robustness to patient setup errors: the goals measured again on rigidly shifted dose.

A structure displaced by a setup error d receives the nominal dose at its voxels' positions
plus d (`specc.case.shifts`: the static dose cloud, trilinear on the full grid). The scenarios
are the setup error along each patient axis, both ways; a goal's worst value over them,
judged against its thresholds, is what the report shows beside the nominal one. The check is
the same whether the plan was optimized robustly (`robustness.optimize`, over the same
scenarios and interpolation) or made robust by margins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from specc.case.shifts import shifted_dose
from specc.evaluate.dvh import DVH, UndefinedMetric
from specc.evaluate.goals import MeasuredStatus, judge, reported_status
from specc.evaluate.metrics import measure
from specc.evaluate.record import RobustGoalRecord, RobustnessRecord

if TYPE_CHECKING:
    from specc.case import Grid
    from specc.protocol import Dose, Metric, Protocol

MODEL = "static dose cloud: rigid shift of the dose, trilinear interpolation"


def robustness_record(
    protocol: Protocol, dose: np.ndarray, masks: Mapping[str, np.ndarray], grid: Grid, voxel_cc: float,
    converged: bool,
) -> RobustnessRecord:
    """Every goal of the protocol's robustness structures, nominal and in each scenario."""
    robustness = protocol.robustness
    assert robustness is not None, "a robustness record needs a robustness section"
    names = protocol.robust_structures()
    scenarios = robustness.offsets_mm
    goals = []
    for goal in protocol.goals:
        if goal.structure not in names:
            continue
        mask, prescription = masks[goal.structure], protocol.reference_dose(goal.structure)
        doses = [dose[mask], *(shifted_dose(dose, mask, grid, offset) for offset in scenarios)]
        values = [_value(goal.metric, DVH.from_dose(d, voxel_cc), prescription) for d in doses]
        nominal, in_scenarios = values[0], values[1:]
        known = [(value, index) for index, value in enumerate(in_scenarios) if value is not None]
        worst, at = (min(known) if goal.comparator in (">", ">=") else max(known)) if known else (None, None)
        measured: MeasuredStatus = "not_evaluated"
        if worst is not None:
            measured = judge(worst, goal.comparator, goal.threshold_value, goal.variation_value)
        goals.append(
            RobustGoalRecord(
                structure=goal.structure, text=goal.text, unit=goal.metric.unit, nominal=nominal,
                scenario_values=in_scenarios, worst=worst, worst_scenario=at, measured_status=measured,
                status=reported_status(measured, converged) if worst is not None else measured,
            )
        )
    return RobustnessRecord(
        setup_error_mm=robustness.setup_error_mm, model=MODEL, scenarios_mm=scenarios, structures=names,
        optimized=robustness.optimize, goals=goals,
    )


def _value(metric: Metric, dvh: DVH, prescription: Dose | None) -> float | None:
    try:
        return measure(metric, dvh, prescription)
    except UndefinedMetric:
        return None
