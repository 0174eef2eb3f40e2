"""Robustness to patient setup errors: the goals measured again on rigidly shifted dose.

A structure displaced by a setup error d receives the nominal dose at its voxels' positions
plus d (`specc.case.shifts`: the static dose cloud, trilinear on the full grid). The scenarios
are the setup error along each patient axis, both ways; a goal's worst value over them and the
nominal position, judged against its thresholds, is what the report shows beside the nominal one. The check is
the same whether the plan was optimized robustly (`robustness.optimize`, over the same
scenarios and interpolation) or made robust by margins.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import numpy as np

from specc.case.shifts import Displacement, DisplacedVoxels, blurred_dose, outside_note
from specc.evaluate.dvh import DVH, UndefinedMetric
from specc.evaluate.goals import MeasuredStatus, judge, reported_status
from specc.evaluate.isoeffective import dose_key, judged_dose
from specc.evaluate.metrics import measure
from specc.evaluate.record import DVHBand, RobustGoalRecord, RobustnessRecord
from specc.protocol.models import scenario_name

if TYPE_CHECKING:
    from specc.case import Grid
    from specc.protocol import Dose, Metric, Protocol
    from specc.protocol.goals import Goal

MODEL = "static dose cloud: rigid shift of the dose, trilinear interpolation"
RANDOM_MODEL = "random errors: the dose blurred by a Gaussian of their standard deviation (the expected dose over many fractions)"
FIXED_MODEL = "the prior course's dose stays with the anatomy: only this plan's dose is displaced"


def robustness_record(
    protocol: Protocol, dose: np.ndarray, masks: Mapping[str, np.ndarray], grid: Grid, voxel_cc: float,
    converged: bool, voxel_indices: np.ndarray, incomplete: Collection[str] = (),
    isocentre_mm: tuple[float, float, float] | None = None, fixed_gy: np.ndarray | None = None,
) -> RobustnessRecord:
    """Every goal of the protocol's robustness structures, nominal and in each scenario, and their DVH bands.

    `voxel_indices`: the grid voxels the case computes dose on; displaced voxels reaching
    beyond them are noted (`DisplacedVoxels.outside`). Goals on `incomplete` structures (part of them
    has no dose) are not judged. Rotations turn the patient about `isocentre_mm` (the beams',
    when they share one), or without one about the centre of the prescription targets.

    `fixed_gy`: the part of `dose` that stays with the anatomy (a composite plan's prior course,
    delivered before): a setup error of this course displaces its own dose only, so a scenario's
    voxel receives this plan's dose displaced (and blurred) plus the prior dose where it is."""
    robustness = protocol.robustness
    assert robustness is not None, "a robustness record needs a robustness section"
    names = protocol.robust_structures()
    random, blur = robustness.random_error_mm, robustness.blur_mm
    rotated = bool(robustness.rotations_deg)
    # Only rotations need a centre (the targets' one costs a pass over their masks).
    centre, centre_source = _rotation_centre(protocol, masks, grid, isocentre_mm) if rotated else ((0.0, 0.0, 0.0), "")
    scenarios = [Displacement(offset, turn, centre) for offset, turn in robustness.scenarios]
    moving = dose if fixed_gy is None else dose - fixed_gy
    scenario_dose = moving if blur is None else blurred_dose(moving, grid, blur)
    model = MODEL if blur is None else f"{MODEL}; {RANDOM_MODEL}"
    if fixed_gy is not None:
        model += f"; {FIXED_MODEL}"
    # Nominal first, then each scenario: the DVHs every goal and band of a structure is read from.
    displaced = {name: [DisplacedVoxels.of(grid, masks[name], moved) for moved in scenarios] for name in names}
    priors = {name: None if fixed_gy is None else fixed_gy[masks[name]] for name in names}
    physical = {
        name: [
            DVH.from_dose(values, voxel_cc)
            for values in [dose[masks[name]], *(moved.dose(scenario_dose) + _or_zero(priors[name])
                                                for moved in displaced[name])]
        ]
        for name in names
    }
    converted: dict[tuple[str, str], list[DVH]] = {}  # by `dose_key`: one structure's EQD2 DVHs for all its goals
    goals = [
        _goal_record(goal, _judged_dvhs(goal, protocol, physical, converted, moving, scenario_dose, masks, priors,
                                        displaced, voxel_cc), protocol.reference_dose(goal.structure, goal.course),
                     converged,
                     goal.structure not in incomplete)
        for goal in protocol.goals
        if goal.structure in names and not goal.metric.is_index  # indices are of the planned dose only
    ]
    return RobustnessRecord(
        setup_error_mm=robustness.setup_error_mm, random_error_mm=random,
        rotation_error_deg=robustness.rotation_error_deg if rotated else None,
        rotation_centre_mm=centre if rotated else None, rotation_centre=centre_source,
        model=model, scenarios_mm=[moved.offset_mm for moved in scenarios],
        scenario_rotations_deg=[moved.rotation_deg for moved in scenarios] if rotated else [],
        scenario_labels=[moved.text() or "random only" for moved in scenarios], structures=names,
        optimized=robustness.optimize, objective=robustness.objective, goals=goals,
        bands=[_band(name, curves, float(dose.max())) for name, curves in physical.items()],
        notes=[note for name in names for note in (outside_note(voxel_indices, name, displaced[name], blur),
                                                   _edge_note(grid, name, masks[name], displaced[name], blur)) if note],
    )


# Fractional grid indices this close past the last voxel centre are on it (rounding of a shift by whole voxels).
_ON_EDGE = 1e-9


def _edge_note(
    grid: Grid, name: str, mask: np.ndarray, displaced: list[DisplacedVoxels], blur_mm: tuple[float, float, float] | None,
) -> str:
    """What the static dose cloud cannot say of `name` at the dose grid's edge ("" if nothing): its voxels displaced
    past the last voxel centres read the edge voxel's dose there (`specc.case.shifts`), since no dose is computed
    beyond the grid, so a dose falling off past the edge is not seen. Counted per scenario, named as robust
    optimization names it (`outside_note`)."""
    last = np.asarray(grid.shape, dtype=np.float64) - 1.0
    counts: dict[str, int] = {}
    for moved in displaced:
        if not moved.displacement.text():  # the blurred dose alone (random errors) displaces nothing
            continue
        points = moved.displacement.points(grid, mask)
        beyond = int(np.count_nonzero(np.any((points < -_ON_EDGE) | (points > last + _ON_EDGE), axis=1)))
        if beyond:
            offset, rotation = moved.displacement.offset_mm, moved.displacement.rotation_deg
            counts[scenario_name(name, offset, rotation, blur_mm)] = beyond
    if not counts:
        return ""
    listed = ", ".join(f"{count} in {scenario}" for scenario, count in counts.items())
    return (
        f"{name}: some of its {int(np.count_nonzero(mask))} voxels are displaced past the dose grid's edge and read "
        f"the edge voxel's dose: {listed}. No dose is computed beyond the grid, so a dose falling off there is not "
        "seen and those scenarios' values may be optimistic; a grid reaching past the structure by the setup error "
        "avoids it"
    )


def _or_zero(prior_gy: np.ndarray | None) -> np.ndarray | float:
    return 0.0 if prior_gy is None else prior_gy


def _judged_dvhs(
    goal: Goal, protocol: Protocol, physical: Mapping[str, list[DVH]], converted: dict[tuple[str, str], list[DVH]],
    moving: np.ndarray, scenario_dose: np.ndarray, masks: Mapping[str, np.ndarray],
    priors: Mapping[str, np.ndarray | None], displaced: Mapping[str, list[DisplacedVoxels]], voxel_cc: float,
) -> list[DVH]:
    """A goal's DVHs, nominal first: the structure's physical ones, or those of its EQD2 / BED, where each
    course is converted apart (this plan's dose displaced, the prior course's where it was delivered), or
    of this plan's dose alone (a goal on this course)."""
    name = goal.structure
    if not goal.isoeffective and goal.course == "composite":
        return physical[name]
    key = dose_key(goal)
    if key not in converted:
        owns = [moving[masks[name]], *(moved.dose(scenario_dose) for moved in displaced[name])]
        converted[key] = [DVH.from_dose(judged_dose(goal, protocol, own, priors[name]), voxel_cc) for own in owns]
    return converted[key]


def _rotation_centre(
    protocol: Protocol, masks: Mapping[str, np.ndarray], grid: Grid, isocentre_mm: tuple[float, float, float] | None
) -> tuple[tuple[float, float, float], str]:
    """Where rotations turn the patient: the beams' isocentre, else the prescription targets' centre."""
    if isocentre_mm is not None:
        return isocentre_mm, "the beams' isocentre"
    targets = np.zeros(grid.shape, dtype=bool)
    for level in protocol.prescription.levels:
        targets |= masks[level.target]
    return grid.centre_mm(targets), "the centre of the prescription targets (no single beam isocentre)"


def _goal_record(goal: Goal, dvhs: list[DVH], prescription: Dose, converged: bool, whole: bool) -> RobustGoalRecord:
    values = [_value(goal.metric, dvh, prescription) if whole else None for dvh in dvhs]
    nominal, in_scenarios = values[0], values[1:]
    # The worst over the nominal position too: a setup error is as likely to be none, and a scenario of a
    # coarse grid's interpolated shift can read better than the nominal dose (a 10 mm grid's +-5 mm shifts
    # smooth a hot spot); index None: the nominal is the worst.
    known = [(value, index) for index, value in [(None, nominal), *enumerate(in_scenarios)] if value is not None]
    pick = min if goal.comparator in (">", ">=") else max
    worst, at = pick(known, key=lambda candidate: candidate[0]) if known else (None, None)
    measured: MeasuredStatus = "not_evaluated"
    if worst is not None:
        measured = judge(worst, goal.comparator, goal.threshold_value, goal.variation_value)
    return RobustGoalRecord(
        structure=goal.structure, text=goal.text, unit=goal.value_unit, nominal=nominal,
        scenario_values=in_scenarios, worst=worst, worst_scenario=at, measured_status=measured,
        status=reported_status(measured, converged) if worst is not None else measured,
    )


def _band(name: str, dvhs: list[DVH], highest_gy: float) -> DVHBand:
    """The curves sampled at the nominal record's doses (0 to the plan's highest), their envelope kept."""
    curves = [dvh.curve_by_step(max_dose_gy=highest_gy) for dvh in dvhs]
    volumes = np.array([percent for _, percent in curves])
    return DVHBand(
        structure=name, dose_gy=curves[0][0].tolist(), volume_min_percent=volumes.min(axis=0).tolist(),
        volume_max_percent=volumes.max(axis=0).tolist(),
    )


def _value(metric: Metric, dvh: DVH, prescription: Dose | None) -> float | None:
    try:
        return measure(metric, dvh, prescription)
    except UndefinedMetric:
        return None
