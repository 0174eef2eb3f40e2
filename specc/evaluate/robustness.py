"""Robustness to patient setup errors: the goals measured again on rigidly shifted dose.

A setup error moves the patient, not the beams. For photons the dose distribution barely
changes in the machine's frame (the static dose cloud approximation: good inside the body,
poor near its surface and across strong heterogeneities), so a structure displaced by d
receives the nominal dose at its voxels' positions plus d: dose_d(v) = D(v + d), trilinearly
interpolated on the full grid (beyond the grid, the nearest edge voxel's dose). The scenarios
are the setup error along each patient axis, both ways; a goal's worst value over them, judged
against its thresholds, is what the report shows beside the nominal one. This evaluates a
plan; it optimizes nothing (margins are what make a plan robust in specc today).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import shift as shifted

from specc.evaluate.dvh import DVH, UndefinedMetric
from specc.evaluate.goals import MeasuredStatus, judge, reported_status
from specc.evaluate.metrics import measure
from specc.evaluate.record import RobustGoalRecord, RobustnessRecord

if TYPE_CHECKING:
    from specc.case import Grid
    from specc.protocol import Dose, Metric, Protocol

MODEL = "static dose cloud: rigid shift of the dose, trilinear interpolation"


def scenarios_mm(setup_error_mm: tuple[float, float, float]) -> list[tuple[float, float, float]]:
    """The setup error along x, y and z, each both ways (axes with no error give no scenario)."""
    out: list[tuple[float, float, float]] = []
    for axis, size in enumerate(setup_error_mm):
        if size > 0:
            for sign in (1.0, -1.0):
                offset = [0.0, 0.0, 0.0]
                offset[axis] = sign * size
                out.append((offset[0], offset[1], offset[2]))
    return out


def robustness_record(
    protocol: Protocol, dose: np.ndarray, masks: Mapping[str, np.ndarray], grid: Grid, voxel_cc: float,
    converged: bool,
) -> RobustnessRecord:
    """Every goal of the protocol's robustness structures, nominal and in each scenario."""
    robustness = protocol.robustness
    assert robustness is not None, "a robustness record needs a robustness section"
    names = robustness.structures if robustness.structures is not None else [
        level.target for level in protocol.prescription.levels
    ]
    scenarios = scenarios_mm(robustness.setup_error_mm)
    spacing = np.asarray(grid.spacing_mm, dtype=np.float64)
    doses = [shifted(dose, -np.asarray(offset) / spacing, order=1, mode="nearest") for offset in scenarios]
    goals = []
    for goal in protocol.goals:
        if goal.structure not in names:
            continue
        mask, prescription = masks[goal.structure], protocol.reference_dose(goal.structure)
        values = [_value(goal.metric, DVH.from_dose(d[mask], voxel_cc), prescription) for d in [dose, *doses]]
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
        setup_error_mm=robustness.setup_error_mm, model=MODEL, scenarios_mm=scenarios, structures=list(names),
        goals=goals,
    )


def _value(metric: Metric, dvh: DVH, prescription: Dose | None) -> float | None:
    try:
        return measure(metric, dvh, prescription)
    except UndefinedMetric:
        return None
