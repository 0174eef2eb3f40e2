"""Evaluate a solved plan on the full dose grid and assemble its `PlanRecord`.

Order matters: total dose on every grid voxel (A x times the fractions), then the
protocol's normalization (fluence and dose scaled), then goals, target indices, DVHs and
the optimization terms, all measured on that one normalized full-resolution dose.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

import specc
from specc.case.shifts import beams_isocentre
from specc.errors import SolveError
from specc.protocol.models import BUILT_IN_MEMORY
from specc.protocol.units import format_number
from specc.evaluate.context import EvaluationError, PlanDoseContext
from specc.evaluate.dvh import DVH, UndefinedMetric
from specc.evaluate.goals import MeasuredStatus, judge, reported_status
from specc.evaluate.indices import (
    OutsideHotSpot,
    higher_level_targets,
    hot_spot,
    index_value,
    outside_hot_spot,
    patient_outline,
    target_indices,
)
from specc.evaluate.isoeffective import dose_key, isoeffective_notes, judged_dose
from specc.evaluate.metrics import dvh_point, measure
from specc.evaluate.normalization import normalization_factor
from specc.evaluate.robustness import robustness_record
from specc.evaluate.record import (
    CaseInfo,
    DoseLevelRecord,
    DoseSourceRecord,
    GoalRecord,
    GridInfo,
    NormalizationRecord,
    PlanRecord,
    PrescriptionRecord,
    PriorDoseRecord,
    PriorFileRecord,
    ProtocolInfo,
    SolverRecord,
    StructureDose,
    TargetIndices,
    TermRecord,
)

if TYPE_CHECKING:
    from specc.case import Case, Grid
    from specc.case.prior import PriorDose
    from specc.protocol import Protocol
    from specc.protocol.goals import Goal
    from specc.protocol.templates import LoosenedGoal
    from specc.solve import SolveResult

# Colours for structures that neither the protocol nor the case colours (matplotlib's tab10).
_FALLBACK_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


@dataclass(frozen=True)
class PlanEvaluation:
    """The record and the arrays the report draws (both after normalization)."""

    record: PlanRecord
    dose: np.ndarray  # total dose in Gy on the case grid, shape grid.shape: what the goals judge
    fluence: np.ndarray  # beamlet weights
    # A composite plan's own dose, without its prior course (None: `dose` is the plan's own).
    own_dose: np.ndarray | None = None
    # The dose outside the targets above 110% of the highest level (one of the record's notes), which the
    # summary line and the report's header name beside the goal counts; None: none.
    outside_hot_spot: OutsideHotSpot | None = None

    @property
    def plan_dose(self) -> np.ndarray:
        """The dose this plan itself delivers (what its RT Dose and result.h5 hold)."""
        return self.dose if self.own_dose is None else self.own_dose


def _check_masks(masks: Mapping[str, np.ndarray], shape: tuple[int, ...]) -> None:
    for name, mask in masks.items():
        if mask.shape != tuple(shape):
            raise EvaluationError(f"structure {name!r}: mask shape {mask.shape} differs from the dose grid {shape}")
        if not mask.any():
            raise EvaluationError(f"structure {name!r} has no voxel on the dose grid: it cannot be evaluated")


def _structure_mask(masks: Mapping[str, np.ndarray], name: str, what: str) -> np.ndarray:
    try:
        return masks[name]
    except KeyError:
        raise EvaluationError(f"{what}: structure {name!r} has no mask on the dose grid") from None


def _normalize(
    protocol: Protocol, masks: Mapping[str, np.ndarray], dose: np.ndarray, voxel_volume_cc: float
) -> tuple[float, NormalizationRecord | None]:
    rule = protocol.prescription.normalization
    if rule is None:
        return 1.0, None
    mask = _structure_mask(masks, rule.structure, f"normalization {rule}")
    dvh = DVH.from_dose(dose[mask], voxel_volume_cc)
    prescription = protocol.prescription_for(rule.structure)
    target_value = rule.percent / 100.0 * prescription.gy
    try:
        factor = normalization_factor(rule.metric, target_value, dvh, prescription)
    except UndefinedMetric as error:
        raise EvaluationError(f"normalization {rule}: {error}") from None
    before = measure(rule.metric, dvh, prescription)
    after = measure(rule.metric, DVH.from_dose(dose[mask] * factor, voxel_volume_cc), prescription)
    record = NormalizationRecord(
        rule=str(rule),
        structure=rule.structure,
        metric=str(rule.metric),
        target_value=target_value,
        unit=rule.metric.unit,
        value_before=before,
        value_after=after,
        factor=factor,
    )
    return factor, record


def _goal_dvhs(
    protocol: Protocol, dose: np.ndarray, fixed_gy: np.ndarray | None, masks: Mapping[str, np.ndarray],
    voxel_cc: float, dvhs: Mapping[str, DVH],
) -> dict[tuple[str, str], DVH]:
    """The DVH each goal reads, by `dose_key`: the structure's physical one, or its EQD2 / BED one."""
    judged = {(name, "physical"): dvh for name, dvh in dvhs.items()}
    for goal in protocol.goals:
        key = dose_key(goal)
        if key in judged or goal.structure not in masks:
            continue
        mask = masks[goal.structure]
        prior = None if fixed_gy is None else fixed_gy[mask]
        own = dose[mask] if prior is None else dose[mask] - prior
        judged[key] = DVH.from_dose(judged_dose(goal, protocol, own, prior), voxel_cc)
    return judged


def _goal_record(
    goal: Goal, dvhs: Mapping[tuple[str, str], DVH], protocol: Protocol, converged: bool, incomplete: str | None,
    indices: Mapping[str, TargetIndices], partial: str | None = None, absence_allowed: bool = False,
    loosened: Sequence[LoosenedGoal] = (),
) -> GoalRecord:
    """`dvhs`: by `dose_key`; `incomplete`: why the goal's structure, or part of it, has no dose (the goal is
    then not judged); `indices`: the prescription targets' plan-quality indices, by target (index goals read them);
    `partial`: what the goal is judged on where its structure is not the whole organ (the case lacks one of its
    `parts`): the goal's own note says it, beside its value, since a reader of the goal row, plan.json or a cohort
    table would read the value as the whole organ's; `absence_allowed`: `incomplete` is that the case does not
    contour the structure, which the protocol allows (`allowed_absent`); `loosened`: the site template's goals this
    goal replaces and asks less than (`Protocol.template_goals_loosened_by`), which its note names: the row where
    the goal is judged, and plan.json's goal, must show that the template's limit was given up (audit s18/b1 F2: a
    VARIATION the template would call FAIL), not only the warning above the goals."""
    if incomplete is None and dose_key(goal) not in dvhs:
        raise EvaluationError(f"goal {goal.text!r} ({goal.source}): structure {goal.structure!r} has no mask")
    value: float | None
    # The dose "% of prescription" refers to, as the protocol resolved the goal's thresholds.
    dvh, prescription = dvhs.get(dose_key(goal)), protocol.reference_dose(goal.structure, goal.course)
    measured: MeasuredStatus
    if incomplete is not None or dvh is None:
        value, measured, note = None, "not_evaluated", f"{goal.structure}: {incomplete}"
    else:
        try:
            if goal.metric.is_index:
                value = index_value(goal.metric, indices[goal.structure])
            else:
                value = measure(goal.metric, dvh, prescription)
            measured = judge(value, goal.comparator, goal.threshold_value, goal.variation_value)
            note = f"{goal.structure}: {partial}" if partial is not None else ""
        except UndefinedMetric as error:
            value, measured, note = None, "not_evaluated", str(error)
            if partial is not None:
                note += f"; {goal.structure}: {partial}"
    given_up = [f'loosens the template goal "{found.template_goal.text}" ({found.template_place})' for found in loosened]
    note = "; ".join(part for part in (note, *given_up) if part)
    return GoalRecord(
        structure=goal.structure,
        text=goal.text,
        metric=str(goal.metric),
        comparator=goal.comparator,
        threshold=goal.threshold_value,
        variation=goal.variation_value,
        limit_source=goal.limit_source,
        metric_dose_gy=_relative_metric_dose_gy(goal),
        unit=goal.value_unit,
        quantity=goal.quantity,
        course=goal.course if protocol.prescription.prior is not None else None,
        alpha_beta_gy=_alpha_beta_gy(protocol, goal),
        priority=goal.priority,
        source=str(goal.source) if goal.source is not None else BUILT_IN_MEMORY,
        value=value,
        measured_status=measured,
        status=reported_status(measured, converged),
        note=note,
        # The report's DVHs are of the physical (composite) dose: an isoeffective threshold, or one on this
        # course alone, has no point on them.
        dvh_point=None if dvh is None or goal.isoeffective or goal.course == "this" else dvh_point(
            goal.metric, goal.threshold_value, dvh, prescription
        ),
        partial_structure=partial is not None and value is not None,
        absence_allowed=absence_allowed and incomplete is not None,
    )


def _relative_metric_dose_gy(goal: Goal) -> float | None:
    """The Gy of a V or CV metric's dose written in % of the prescription (`GoalRecord.metric_dose_gy`)."""
    if goal.metric.dose_percent is None or goal.reference_dose is None:
        return None
    return goal.metric_dose_gy


def _alpha_beta_gy(protocol: Protocol, goal: Goal) -> float | None:
    spec = protocol.structures.get(goal.structure)
    return spec.alpha_beta.gy if goal.isoeffective and spec is not None and spec.alpha_beta is not None else None


def _term_records(protocol: Protocol, solve: SolveResult, context: PlanDoseContext) -> list[TermRecord]:
    """The compiled terms of the solve, each measured on the final dose by its own evaluate()."""
    optimization = protocol.optimization
    protocol_terms = {(str(term.source), term.label()): term for term in (optimization.terms if optimization else [])}
    scenarios = optimization.scenarios if optimization is not None else {}
    records = []
    for compiled in solve.terms:
        term = protocol_terms.get((compiled.source, compiled.label))
        scenario = rotation = random = None
        # TermResult's fields are TermRecord's: value, unit, satisfied, detail, and a limit's limit and violation.
        measured: dict[str, float | str | bool | None] = {
            "value": None, "unit": None, "satisfied": None, "detail": "not a protocol term: measured by the solver only",
        }
        if term is not None:
            measured = asdict(term.evaluate(context))
            displaced = scenarios.get(getattr(term, "structure", None) or "")
            if displaced is not None:
                scenario = list(displaced.offset_mm)
                rotation = list(displaced.rotation_deg) if any(displaced.rotation_deg) else None
                random = list(displaced.random_error_mm) if displaced.random_error_mm else None
        records.append(
            TermRecord(
                label=compiled.label,
                kind=compiled.kind,
                source=compiled.source,
                hard=compiled.hard,
                objective_contribution=compiled.objective_contribution,
                **measured,
                scenario_mm=scenario,
                scenario_rotation_deg=rotation,
                scenario_random_error_mm=random,
            )
        )
    return records


def _outside_hot_spot(
    protocol: Protocol, case: Case, dose: np.ndarray, masks: Mapping[str, np.ndarray], grid: Grid, voxel_cc: float
) -> OutsideHotSpot | None:
    """The hot spot outside the targets, inside the patient's outline (`patient_outline`) where the case draws one:
    among the protocol's structures (`masks`) and then the case's own, which a protocol need not name (a BODY)."""
    levels = protocol.prescription.levels
    highest = max((level.dose.gy for level in levels), default=0.0)
    targets = [masks[level.target] for level in levels if level.target in masks]
    organs = [mask for name, mask in masks.items()
              if (spec := protocol.structures.get(name)) is not None and spec.role == "oar"]
    candidates = dict(masks)
    for name, structure in case.structures.items():
        candidates.setdefault(name, structure.mask)
    return outside_hot_spot(dose, targets, highest, grid, voxel_cc, patient_outline(targets, organs, candidates))


def _union(masks: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray | None:
    """The voxels of any of `names` (None for no name)."""
    return np.logical_or.reduce([masks[name] for name in names]) if names else None


def _structure_color(protocol: Protocol, case: Case, name: str, index: int) -> str:
    spec = protocol.structures.get(name)
    if spec is not None and spec.color:
        return spec.color
    case_structure = case.structures.get(name)
    if case_structure is not None and case_structure.color:
        return case_structure.color
    return _FALLBACK_COLORS[index % len(_FALLBACK_COLORS)]


def evaluate_plan(
    protocol: Protocol,
    case: Case,
    masks: dict[str, np.ndarray],
    solve: SolveResult,
    timings: dict[str, float],
    notes: Sequence[str] = (),
    setup_errors: bool = True,
    absent: Mapping[str, str] | None = None,
    partial: Mapping[str, str] | None = None,
    allowed_absent: Collection[str] = (),
    collapsed_targets: Mapping[str, str] | None = None,
) -> PlanEvaluation:
    """Measure a solved plan on the full grid; raises SolveError when the solve left no plan.

    `setup_errors=False` leaves out the protocol's robustness check (a plan measured only to set
    its goal values beside another's, as the optimized fluence beside its delivered segments).

    `masks` are the resolved (and derived) structure masks on the case grid, keyed by
    protocol structure name; `absent`: why each structure without one has none on this case
    (`ResolvedStructures.absent`), whose goals read NOT EVALUATED with that reason (`allowed_absent`: those the
    protocol allows a case to lack, `ResolvedStructures.allowed_absent`, which --strict lets pass); `partial`: what each
    structure that is not its whole organ on this case is judged on (`ResolvedStructures.partial`: read from some of
    its `parts`), which each of its goals says in its note; `collapsed_targets`: each target whose margin the grid
    gives as 0 mm, by the structure it is itself (`ResolvedStructures.collapsed_targets`), a record warning each.
    `notes` are what the earlier stages noted (compile, solve); the record carries them to the report.
    """
    if solve.fluence is None:
        raise SolveError(f"no plan to evaluate: the solve ended {solve.status}: {solve.message}")
    grid = case.grid
    _check_masks(masks, tuple(grid.shape))
    fractions = protocol.prescription.fractions
    dose = case.dose_on_grid(solve.fluence, fractions)
    factor, normalization = _normalize(protocol, masks, dose, case.voxel_volume_cc)  # none with a prior course
    dose = own = dose * factor
    if case.prior_dose is not None:  # a composite plan: every goal, term and DVH is on prior + this plan
        dose = own + case.prior_dose.total_gy
    fluence = np.asarray(solve.fluence, dtype=np.float64) * factor
    scenarios = protocol.optimization.scenarios if protocol.optimization is not None else {}
    isocentre = beams_isocentre(case.beams)
    context = PlanDoseContext(
        dose, masks, case.voxel_volume_cc, fractions, fluence, case.beamlets, grid, scenarios, isocentre,
        fixed_gy=case.prior_dose.total_gy if case.prior_dose is not None else None,
    )
    terms = _term_records(protocol, solve, context)
    solver = SolverRecord(
        solver=solve.solver,
        status=solve.status,
        converged=solve.converged,
        message=solve.message,
        objective=solve.objective,
        iterations=solve.iterations,
        solve_time_s=solve.solve_time_s,
        terms=terms,
        steps=list(solve.steps),
    )
    if normalization is not None:
        exceeded = [f"{term.label}: {term.value:.3f} {term.unit}" for term in terms if term.hard and term.satisfied is False]
        normalization = normalization.model_copy(update={"hard_limits_exceeded": exceeded})
    outside = _outside_hot_spot(protocol, case, dose, masks, grid, case.voxel_volume_cc)
    record = _plan_record(
        protocol, case, masks, dose, case.voxel_indices, dict(absent or {}), converged=solve.converged, solver=solver,
        normalization=normalization, notes=notes, timings=timings, isocentre_mm=isocentre, setup_errors=setup_errors,
        fixed_gy=case.prior_dose.total_gy if case.prior_dose is not None else None, outside=outside, partial=partial,
        absence_allowed=set(allowed_absent) & set(absent or {}), collapsed_targets=collapsed_targets,
        solve_warnings=solve.warnings,
    )
    return PlanEvaluation(record=record, dose=dose, fluence=fluence, own_dose=own if own is not dose else None,
                          outside_hot_spot=outside)


def evaluate_dose(
    protocol: Protocol,
    case: Case,
    masks: dict[str, np.ndarray],
    dose: np.ndarray,
    known: np.ndarray,
    source: DoseSourceRecord,
    timings: dict[str, float],
    notes: Sequence[str] = (),
    isocentre_mm: tuple[float, float, float] | None = None,
    absent: Mapping[str, str] | None = None,
    partial: Mapping[str, str] | None = None,
    allowed_absent: Collection[str] = (),
    collapsed_targets: Mapping[str, str] | None = None,
) -> PlanEvaluation:
    """Measure a dose specc did not plan (`specc check`) on the case grid, as it is: not normalized.

    `dose`: total Gy on the grid; `known`: where it has a value (outside, `dose` is ignored).
    A structure with voxels outside `known` is measured on the rest for its DVH, and no goal on
    it is judged (`source.incomplete` says why). One wholly outside has no DVH either: a distant
    organ beyond a limited calculation volume must not stop the judging of every other goal. A
    prescription target, and a structure of the setup-error check, must be whole.
    `isocentre_mm`: the checked plan's (its RT Plan's), which rotations turn about; None: the
    targets' centre (the case's own beams are not the checked plan's). `absent`, `partial`, `allowed_absent`,
    `collapsed_targets`: as for `evaluate_plan`.
    """
    grid = case.grid
    _check_masks(masks, tuple(grid.shape))
    if known.shape != tuple(grid.shape) or dose.shape != tuple(grid.shape):
        raise EvaluationError(f"the dose and its known region must have the grid's shape {tuple(grid.shape)}")
    for level in protocol.prescription.levels:
        if level.target in source.incomplete:
            raise EvaluationError(
                f"prescription target {level.target}: {source.incomplete[level.target]}; "
                "a plan whose target is not all inside its dose grid cannot be checked"
            )
    dose = np.where(known, dose, 0.0)
    measured = {name: mask & known for name, mask in masks.items() if (mask & known).any()}
    displaced = [name for name in protocol.robust_structures() if name in masks and name not in measured]
    if displaced:
        raise EvaluationError(
            f"{', '.join(displaced)}: wholly outside the dose grid of {source.file}, and the setup-error check "
            "(robustness.structures) displaces a dose it does not have there"
        )
    unmeasured = {**(absent or {}), **source.incomplete}
    notes = list(notes)
    if protocol.prescription.normalization is not None:
        notes.append(
            f"normalization {protocol.prescription.normalization} not applied: a dose from another system is "
            "checked as it was exported"
        )
    outside = _outside_hot_spot(protocol, case, dose, measured, grid, case.voxel_volume_cc)
    record = _plan_record(
        protocol, case, measured, dose, np.flatnonzero(known.ravel()), unmeasured,
        converged=source.not_converged_label() is None,
        solver=None, normalization=None, notes=notes, timings=timings, isocentre_mm=isocentre_mm,
        fixed_gy=np.where(known, case.prior_dose.total_gy, 0.0) if case.prior_dose is not None else None,
        outside=outside, partial=partial, absence_allowed=set(allowed_absent) & set(absent or {}),
        collapsed_targets=collapsed_targets,
    )
    return PlanEvaluation(record=record.model_copy(update={"dose_source": source}), dose=dose, fluence=np.zeros(0),
                          outside_hot_spot=outside)


def _plan_record(
    protocol: Protocol,
    case: Case,
    masks: dict[str, np.ndarray],
    dose: np.ndarray,
    dose_voxels: np.ndarray,
    incomplete: Mapping[str, str],
    *,
    converged: bool,
    solver: SolverRecord | None,
    normalization: NormalizationRecord | None,
    notes: Sequence[str],
    timings: dict[str, float],
    isocentre_mm: tuple[float, float, float] | None,
    setup_errors: bool = True,
    fixed_gy: np.ndarray | None = None,
    outside: OutsideHotSpot | None = None,
    partial: Mapping[str, str] | None = None,
    absence_allowed: Collection[str] = (),
    collapsed_targets: Mapping[str, str] | None = None,
    solve_warnings: Sequence[str] = (),
) -> PlanRecord:
    """Everything measured on the final total dose; `dose_voxels`: the flat indices that have a dose;
    `isocentre_mm`: what the robustness check's rotations turn about (None: the targets' centre);
    `fixed_gy`: the part of the dose a setup error does not move (a composite's prior course); `outside`: the hot spot
    outside the targets (`_outside_hot_spot`), noted last; `partial`: as for `evaluate_plan`; `absence_allowed`: the
    structures of `incomplete` the protocol allows a case to lack (`allowed_absent`); `collapsed_targets`: as for
    `evaluate_plan`; `solve_warnings`: the solve's (`SolveResult.warnings`), the record's first warnings."""
    grid = case.grid
    fractions = protocol.prescription.fractions
    voxel_cc = case.voxel_volume_cc
    dvhs = {name: DVH.from_dose(dose[mask], voxel_cc) for name, mask in masks.items()}
    levels = protocol.prescription.levels
    target_masks = {
        level.target: _structure_mask(masks, level.target, f"prescription {level.dose} to {level.target}")
        for level in levels
    }
    level_doses = [(level.target, level.dose.gy) for level in levels]
    indices = [  # a lower level's isodose volumes leave out the targets of higher levels (no spill of its own)
        target_indices(
            level.target, level.dose.gy, dose, target_masks[level.target], grid, voxel_cc,
            higher_targets=_union(target_masks, higher_level_targets(level.target, level_doses)),
        )
        for level in levels
    ]
    by_target = {record.structure: record for record in indices}
    judged = _goal_dvhs(protocol, dose, fixed_gy, masks, voxel_cc, dvhs)
    goals = [
        _goal_record(goal, judged, protocol, converged, incomplete.get(goal.structure), by_target,
                     (partial or {}).get(goal.structure), goal.structure in absence_allowed,
                     protocol.template_goals_loosened_by(goal))
        for goal in protocol.goals
    ]
    highest_gy = float(dose.max())
    structures = []
    for index, (name, dvh) in enumerate(dvhs.items()):
        curve_gy, curve_percent = dvh.curve_by_step(max_dose_gy=highest_gy)
        structures.append(
            StructureDose(
                structure=name,
                color=_structure_color(protocol, case, name, index),
                role=protocol.structures[name].role if name in protocol.structures else None,
                volume_cc=dvh.volume_cc,
                min_gy=dvh.min,
                mean_gy=dvh.mean,
                max_gy=dvh.max,
                dose_gy=curve_gy.tolist(),
                volume_percent=curve_percent.tolist(),
            )
        )
    robustness = None
    if protocol.robustness is not None and setup_errors:
        robustness = robustness_record(
            protocol, dose, masks, grid, voxel_cc, converged, dose_voxels, incomplete, isocentre_mm, fixed_gy
        )
    return PlanRecord(
        specc_version=specc.__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        converged=converged,
        protocol=ProtocolInfo.of(protocol),
        case=CaseInfo(
            case_id=case.case_id,
            sha256=case.content_hash(),
            source=case.metadata.source,
            grid=GridInfo(
                shape=tuple(int(n) for n in grid.shape),
                spacing_mm=tuple(float(s) for s in grid.spacing_mm),
                origin_mm=tuple(float(o) for o in grid.origin_mm),
            ),
            voxel_volume_cc=voxel_cc,
            n_beams=len(case.beams),
            n_beamlets=case.n_beamlets,
        ),
        prescription=PrescriptionRecord(
            fractions=fractions,
            levels=[
                DoseLevelRecord(target=level.target, total_gy=level.dose.gy, per_fraction_gy=level.dose_per_fraction_gy)
                for level in protocol.prescription.levels
            ],
        ),
        solver=solver,
        normalization=normalization,
        robustness=robustness,
        goals=goals,
        target_indices=indices,
        hot_spot=hot_spot("dose grid", dose, np.ones(dose.shape, dtype=bool), grid, voxel_cc),
        structures=structures,
        # the template warnings (a goal asking less than the one it replaces, a dose per fraction outside what the
        # template's limits are for): `specc validate`'s, word for word
        warnings=[*solve_warnings, *_prior_warnings(protocol, masks, fixed_gy),
                  *_collapsed_margin_warnings(protocol, grid, collapsed_targets or {}),
                  *(str(warning) for warning in protocol.template_warnings)],
        notes=[*notes, *isoeffective_notes(protocol),
               *([outside.note] if outside is not None else [])],
        outside_hot_spot=outside.headline if outside is not None else None,
        timings_s=dict(timings),
        prior_dose=_prior_record(protocol, case),
    )


# How far the prior dose found in a target may lie from what the protocol declares of the prior course
# (a share of the target's level) before the record warns: beyond it, "this plan adds the level less the
# prior course's dose" describes another patient than this one. Within it of the level itself, the prior
# dose alone gives the target its level and the plan adds almost nothing.
_PRIOR_DECLARED_SLACK = 0.1


def _prior_warnings(protocol: Protocol, masks: Mapping[str, np.ndarray], fixed_gy: np.ndarray | None) -> list[str]:
    """Where the prior dose found in a prescription target (its median) is not the prior course's dose the protocol
    declares: the levels are composite, so this plan gives what the level lacks there, not the share the banner and
    the prescription table state. An in-field re-irradiation declared `prior.dose: 0 Gy` (the plan planned 0 Gy,
    "optimal"), or the wrong prior file attached (a 75.6 Gy plan as the declared 46 Gy course: 78.00 Gy of a 78 Gy
    level): a signer must see it before the goals, not among the notes (audit s18 a1 F6, b1 F1)."""
    prior = protocol.prescription.prior
    if prior is None or fixed_gy is None:
        return []
    warnings = []
    for level in protocol.prescription.levels:
        if level.target not in masks or not masks[level.target].any():
            continue
        found = float(np.median(fixed_gy[masks[level.target]]))
        slack = _PRIOR_DECLARED_SLACK * level.dose.gy
        if abs(found - prior.dose.gy) <= slack:
            continue
        declared = (f"the prior dose there is {found:.2f} Gy (median), the protocol declares "
                    f"{format_number(prior.dose.gy)} Gy for the prior course")
        if found >= level.dose.gy - slack:
            warnings.append(
                f"this plan adds almost nothing to {level.target}: {declared}, which gives it its "
                f"{format_number(level.dose.gy)} Gy level alone (the level is of the composite: prior course + this "
                "plan). Check that the prior file is this patient's earlier course; for an in-field re-irradiation "
                "declare the prior course's dose to the target (prescription.prior.dose) and write the level as "
                "prior + this course (docs/composite.md)"
            )
        else:
            warnings.append(
                f"{level.target}: {declared}: the {format_number(level.dose.gy)} Gy level is of the composite, so this "
                f"plan gives what the prior dose leaves of it, about {format_number(round(level.dose.gy - found, 2))} "
                f"Gy, not the {format_number(level.plan_dose_gy)} Gy the prescription table states. Check that the "
                "prior file is this patient's earlier course and prescription.prior.dose"
            )
    return warnings


def _collapsed_margin_warnings(protocol: Protocol, grid: Grid, collapsed: Mapping[str, str]) -> list[str]:
    """Each target whose margin the grid gives as 0 mm along every axis, so that it is the structure it was drawn
    around: its coverage reads PASS on page 1 for a PTV with no margin for setup error at all (audit s18/b1 F3:
    PTV_Boost = expand(CTV_Prostate, 7mm, 5mm, 7mm) on a 10 mm grid). The compile note says the same among the
    notes; here it is said before the goals."""
    spacings = [format_number(float(mm)) for mm in grid.spacing_mm]
    spacing = spacings[0] if len(set(spacings)) == 1 else " × ".join(spacings)  # "10", or per axis: "3 × 3 × 2.5"
    warnings = []
    for name, itself in collapsed.items():
        spec = protocol.structures.get(name)
        written = f" = `{spec.expression}`" if spec is not None and spec.expression is not None else ""
        warnings.append(
            f"target {name}{written} is {itself} itself on this {spacing} mm grid: its margin gives 0 mm (a margin "
            f"keeps the voxels whose centre lies within it), so its goals and coverage are {itself}'s, with no margin "
            "for setup error; plan on a finer grid, or write the margins in whole voxel spacings"
        )
    return warnings


def _prior_record(protocol: Protocol, case: Case) -> PriorDoseRecord | None:
    prior, declared = case.prior_dose, protocol.prescription.prior
    if prior is None or declared is None:
        return None
    return PriorDoseRecord(
        description=declared.description,
        prescribed_gy=declared.dose.gy,
        fractions=declared.fractions,
        files=[PriorFileRecord(file=s.file, sha256=s.sha256, format=s.format, max_gy=s.max_gy) for s in prior.sources],
        max_gy=float(np.max(prior.total_gy)),
        notes=[*prior.notes, *_unconfirmed_fractions(protocol, prior)],
    )


def _unconfirmed_fractions(protocol: Protocol, prior: PriorDose) -> list[str]:
    """Where a composite goal in EQD2 or BED converts the prior course with `prescription.prior.fractions` and a file
    does not state its course's fractions (an RT Dose): that number is the protocol's alone, and a wrong one moves
    every such value without a word (audit s18/a1 F4: 20 written for 25, a cord 36.69 -> 38.04 Gy EQD2). A file
    that states them is compared when it is read (`prescription.prior.fractions` refused where they disagree)."""
    declared = protocol.prescription.prior
    if declared is None or declared.fractions is None:
        return []
    if not any(goal.isoeffective and goal.course == "composite" for goal in protocol.goals):
        return []
    return [f"{source.name}: prior course's fractions taken from prescription.prior.fractions ({declared.fractions}): "
            "the file does not state them, so the EQD2 / BED of the prior course rests on the protocol's number"
            for source in prior.sources if source.fractions is None]
