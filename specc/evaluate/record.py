"""The plan record: every number the report shows, in one pydantic model (plan.json).

The report is rendered from a `PlanRecord` (plus the arrays it draws), so that the signed
document and the machine-readable record cannot disagree. Field units are in their names
(`_gy`, `_cc`, `_mm`, `_s`) or given by a `unit` field next to the value. All doses are
totals over the course unless the name says `per_fraction`. docs/plan-json.md documents it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, field_serializer

from specc.evaluate.goals import Comparator, GoalStatus, MeasuredStatus
from specc.protocol.judgement import judged_text
from specc.protocol.models import StructureRole
from specc.protocol.goals import LOWER_BOUNDS, Course
from specc.protocol.isoeffect import DoseQuantity
from specc.protocol.metrics import Metric

if TYPE_CHECKING:
    from specc.protocol.models import Protocol

RECORD_FORMAT = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProtocolInfo(_Record):
    """The protocol a plan was made from: its files' bytes (`sha256`, what `sha256sum` checks) and its content
    (`content_sha256`, `ProtocolSource.fingerprint`: the same across a comment, formatting or order edit that
    `specc diff` finds no difference in), so that a comparison tells an edited comment from an unversioned
    change. None in plan.json written before the fingerprint was recorded."""

    name: str
    version: str
    site: str
    files: list[str]
    sha256: str
    content_sha256: str | None = None

    @classmethod
    def of(cls, protocol: Protocol) -> ProtocolInfo:
        """What a plan records of `protocol` (read from its files: `protocol.source` set); the cohort page of a run
        that planned no case shows the same."""
        assert protocol.source is not None
        return cls(name=protocol.name, version=str(protocol.version), site=protocol.site,
                   files=[str(path) for path in protocol.source.files], sha256=protocol.source.sha256,
                   content_sha256=protocol.source.content_sha256)


class GridInfo(_Record):
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]


class CaseInfo(_Record):
    case_id: str
    sha256: str
    source: str
    grid: GridInfo
    voxel_volume_cc: float
    n_beams: int
    n_beamlets: int


class DoseLevelRecord(_Record):
    target: str
    total_gy: float
    per_fraction_gy: float


class PrescriptionRecord(_Record):
    fractions: int
    levels: list[DoseLevelRecord]


class TermRecord(_Record):
    """One optimization term: how it was compiled and what it measures on the final dose."""

    label: str
    kind: str
    source: str
    hard: bool
    objective_contribution: float | None
    value: float | None  # term.evaluate() on the full-grid total dose, in `unit`
    unit: str | None
    satisfied: bool | None  # None for pure objectives
    detail: str
    # Of a limit (`TermResult`): the bound `value` is judged against, in `unit`, and how far past it `value` lies
    # (0 within, no tolerance; inf where the value is undefined, "Infinity" in JSON, which has no infinite number).
    # None for objectives and in records written before 2026-11-28 (which then said only `satisfied`).
    limit: float | None = None
    violation: float | None = None
    # Of a robust copy: the setup error (LPS mm) its structure is displaced by, measured there,
    # and for a rotation scenario the turn (deg about x, y, z) about the beams' isocentre.
    scenario_mm: list[float] | None = None
    scenario_rotation_deg: list[float] | None = None
    scenario_random_error_mm: list[float] | None = None  # SD of the random errors whose blurred dose it is measured on

    @field_serializer("violation", when_used="json")
    def _infinite_as_text(self, violation: float | None) -> float | str | None:
        """An unbounded violation as "Infinity", which reads back as inf (pydantic would write null, read as
        "no limit")."""
        return "Infinity" if violation is not None and math.isinf(violation) else violation


class SolverRecord(_Record):
    solver: str
    status: str
    converged: bool
    message: str
    objective: float | None
    iterations: int | None
    solve_time_s: float
    terms: list[TermRecord]
    steps: list[dict]


class BeamSegmentsRecord(_Record):
    beam: int
    segments: int
    total_weight: float  # sum of the segments' weights per fraction (case fluence unit), after normalization
    smallest_weight_percent: float  # the lightest segment's share of total_weight
    smallest_area_cm2: float  # the smallest segment's open area at the isocentre plane, its openings summed
    # The smallest separate opening of any of its segments (`BeamSegments.smallest_openings_cm2`): a segment
    # may pass a minimum segment area by its sum and be all small fields. None: a record written before 2026-11-28.
    smallest_opening_cm2: float | None = None


class DeliveryRecord(_Record):
    """How the evaluated plan is delivered: MLC segments, cut from an optimized fluence
    (step_and_shoot) or shaped from the structures (forward).

    The record's goals, dose and solver log are the delivered plan's; `fluence_goal_values`
    (in the order of the record's goals) and `fluence_solver` are those of the optimized
    fluence the segments were cut from, to show what sequencing cost.
    """

    technique: str  # step_and_shoot | forward
    intensity_levels: int | None  # None: forward planned
    sequencing: str | None = None  # fewest_segments | sweep; None: forward planned
    segment_weights: str  # "optimized", "as sequenced", or why the optimization's result was not used
    min_segment_weight_percent: float | None  # of a beam's summed weight; None: no minimum
    min_segment_area_cm2: float | None = None  # a segment's openings summed; None: no minimum segment area asked
    # Absent in records written before 2026-11-28, read as None:
    min_opening_area_cm2: float | None = None  # each separate opening; None: no minimum opening area asked
    max_segments_per_beam: int | None = None  # None: no maximum asked
    beams: list[BeamSegmentsRecord]
    total_segments: int
    fluence_goal_values: list[float | None] | None  # None: forward planned, no fluence was optimized
    fluence_solver: SolverRecord | None


class RobustGoalRecord(_Record):
    """One goal, nominal and in each setup-error scenario (`RobustnessRecord.scenarios_mm` order)."""

    structure: str
    text: str
    unit: str
    nominal: float | None
    scenario_values: list[float | None]
    worst: float | None  # the lowest for a lower bound, the highest for an upper bound
    worst_scenario: int | None  # index into scenarios_mm; None where the nominal position is the worst (or none known)
    measured_status: MeasuredStatus  # of the worst value
    status: GoalStatus


class DVHBand(_Record):
    """The spread of one structure's DVH over the nominal and every setup-error scenario."""

    structure: str
    dose_gy: list[float]  # the doses of the structure's nominal curve (`StructureDose.dose_gy`)
    volume_min_percent: list[float]  # the least volume receiving at least each dose, over the scenarios
    volume_max_percent: list[float]  # the most


class RobustnessRecord(_Record):
    """Goals under patient setup errors (docs/robustness.md)."""

    setup_error_mm: tuple[float, float, float]
    random_error_mm: tuple[float, float, float] | None = None  # SD; every scenario is measured on the blurred dose
    rotation_error_deg: tuple[float, float, float] | None = None  # about x, y, z
    rotation_centre_mm: tuple[float, float, float] | None = None  # what rotations turn about, LPS mm
    rotation_centre: str = ""  # why there
    model: str
    scenarios_mm: list[tuple[float, float, float]]  # patient shift of each scenario, LPS mm
    scenario_rotations_deg: list[tuple[float, float, float]] = []  # with rotations: each scenario's, else empty
    scenario_labels: list[str] = []  # how the report heads each scenario ("x +3 mm", "about z +2 deg", "random only")
    structures: list[str]
    # Whether the optimization held these structures' terms in every scenario (robust
    # optimization) or the plan is only checked in them.
    optimized: bool = False
    objective: str = "average"  # how robust optimization counted the scenarios: average | worst_case
    bands: list[DVHBand] = []  # one per structure, drawn around its DVH in the report
    notes: list[str] = []  # displaced voxels the model cannot give a dose (`DisplacedVoxels.outside`)
    goals: list[RobustGoalRecord]


class NormalizationRecord(_Record):
    """The prescription normalization applied before evaluation (fluence and dose scaled)."""

    rule: str
    structure: str
    metric: str
    target_value: float
    unit: str
    value_before: float
    value_after: float
    factor: float
    # The hard optimization limits the scaled plan breaks (each "label: value on the final dose"): normalization
    # scales every dose, so a limit the optimizer held at its edge does not survive a factor above 1.
    hard_limits_exceeded: list[str] = []

    def describe(self) -> str:
        return (
            f"normalized ({self.rule}): {self.structure} {self.metric} {self.value_before:.2f} -> "
            f"{self.value_after:.2f} {self.unit}, fluence and dose scaled by {self.factor:.4f}"
        )

    def exceeded_note(self) -> str | None:
        """What the planner must hear when the scaling broke hard limits (None when it broke none)."""
        if not self.hard_limits_exceeded:
            return None
        return (
            f"the normalization (x{self.factor:.4f}) takes the plan past hard limits of the optimization: "
            f"{'; '.join(self.hard_limits_exceeded)}; the optimizer's statement that they hold is of the plan "
            "before normalization"
        )


class GoalRecord(_Record):
    structure: str
    text: str  # the goal as written in the protocol
    metric: str
    comparator: Comparator
    threshold: float
    variation: float | None
    unit: str  # of `value`: "Gy", "Gy EQD2", "Gy BED", "%", "cc" or "" (an index)
    quantity: DoseQuantity = "physical"  # the dose the goal is stated in (EQD2 / BED: each course converted)
    # With a prior course, what the goal is judged on: "composite" (prior + this plan) or "this" (this plan's dose
    # alone); None for a plan without a prior course, whose dose is its own.
    course: Course | None = None
    alpha_beta_gy: float | None = None  # the structure's alpha/beta an EQD2 / BED goal was converted with
    priority: int
    source: str  # protocol file:line
    value: float | None  # measured on the full-grid dose, in `unit`; None when not evaluated
    measured_status: MeasuredStatus  # what the dose says
    status: GoalStatus  # what the report shows: measured_status only for a converged plan
    note: str
    dvh_point: tuple[float, float] | None  # the threshold on the DVH plane: (dose Gy, volume %)
    # True: the value is of the parts of its organ the case has, not the whole organ (the case lacks a part of a
    # structure read from its `parts`, or of one it is derived from); `note` says which. A cohort marks it.
    partial_structure: bool = False
    # True: NOT EVALUATED because the case does not contour the structure (no case structure of its names, or one
    # with no voxel on the grid) and the protocol allows that (`if_contoured: true`), or the structure is derived and
    # left empty by such an organ (its PRV): the one NOT EVALUATED that --strict lets pass
    # (`PlanRecord.unevaluated_must_goals`) and `specc approve` does not ask to accept.
    # Absent in a plan.json written before it, read as false: such a file is read back, never gated again.
    absence_allowed: bool = False
    # Where `threshold` and `variation` came from when the protocol states them as a table by a structure's volume,
    # read on this case ("from the table by PTV volume at 22.04 cc, between the 13.2 and 22 cc rows"); None for a
    # limit the protocol states as a number (and in a plan.json written before it).
    limit_source: str | None = None
    # The dose of a V or CV metric written in % of the prescription ("V50%[%]"), in Gy as resolved for this
    # structure (its own level, else the highest): shown beside the goal, since with several levels the text alone
    # does not say which dose "50%" is. None for a metric with its dose in Gy, or none, and in older plan.json.
    metric_dose_gy: float | None = None

    @property
    def bounds_curve_from_below(self) -> bool:
        """Whether the cumulative DVH must pass at or above `dvh_point` (a marker's "at least").

        The comparator says it for every metric but CV, which counts the volume *below* a dose:
        sparing at least 20 cc at 20 Gy keeps the curve at most at the point (audit s19/a1).
        """
        return (self.comparator in LOWER_BOUNDS) != (Metric.parse(self.metric).quantity == "CV")

    def shown(self, value: float) -> str:
        """A value of this goal (its own, a scenario's, another plan's) with the decimals its judgement needs."""
        return judged_text(value, self.comparator, self.threshold, self.variation)


class HotSpot(_Record):
    """The hottest 0.03 cc of a region and where its maximum lies (patient coordinates, LPS). A region
    under 0.03 cc has no D0.03cc (None), as a goal "D0.03cc" on it reads NOT EVALUATED."""

    region: str
    d0_03cc_gy: float | None
    max_gy: float
    location_mm: tuple[float, float, float]


class TargetIndices(_Record):
    """Quality indices of one target at its prescription (ICRU 83, Paddick, R50)."""

    structure: str
    prescription_gy: float
    volume_cc: float
    d98_gy: float
    d50_gy: float
    d2_gy: float
    homogeneity_index: float | None  # ICRU 83: (D2% - D98%) / D50%; None when D50% is 0
    coverage_percent: float  # V(prescription) of the target
    prescription_isodose_cc: float  # whole-grid volume receiving at least the prescription, less higher levels' targets
    paddick_conformity_index: float  # TV_PIV^2 / (TV * PIV)
    half_isodose_cc: float  # the same at 50% of the prescription
    r50: float  # half_isodose_cc / volume_cc
    hot_spot: HotSpot


class StructureDose(_Record):
    """Dose statistics and the cumulative DVH curve of one structure, and its `role` in the protocol, so that a
    reader of the record alone (the report's figures, a comparison) knows a target that has no dose level of its
    own (a boost's CTV) from a helper ring; None in plan.json written before roles were recorded, and for a case
    structure the protocol does not name."""

    structure: str
    color: str
    role: StructureRole | None = None
    volume_cc: float
    min_gy: float
    mean_gy: float
    max_gy: float
    dose_gy: list[float]
    volume_percent: list[float]  # receiving at least the dose at the same position


# What `specc check` adds to its dose source record's attributes where it does not measure on the case it is
# filed under as a plan of it is measured (a matRad workspace on its CT grid): where it measured, the masks, and
# their SHA-256 (a check without a case is filed under those CT structures themselves); `specc compare` reads them.
MEASURED_ON = "measured on"
STRUCTURES = "structures"
STRUCTURES_SHA256 = "structures SHA-256"


# How specc's own exports of a plan that did not converge begin their description and comment (an RT Dose's
# SeriesDescription and DoseComment, `specc.export.rtdose`): a check of such a file is labelled as its plan was.
NOT_CONVERGED_LABEL = "NOT CONVERGED"
# ... and of a result.h5 that cannot say whether its solver converged: checked, such a dose is not vouched for either.
CONVERGENCE_UNKNOWN_LABEL = "CONVERGENCE UNKNOWN"


class DoseSourceRecord(_Record):
    """A dose another system computed (`specc check`): specc measured it and optimized nothing."""

    format: str  # what was read: "DICOM RT Dose", "matRad resultGUI"
    file: str
    sha256: str
    dose_type: str  # PHYSICAL or EFFECTIVE
    summation: str  # DoseSummationType as written (DICOM), or what the source's dose is
    fractions_scaled: int | None  # the file held one fraction, multiplied by this
    grid: GridInfo  # the file's own grid
    interpolated: bool  # evaluated on another grid (trilinear)
    attributes: dict[str, str]  # the file's manufacturer, software, description, identifiers
    plan: dict[str, str] = {}  # the RT Plan's label, approval, ... when one was read
    incomplete: dict[str, str] = {}  # structure -> why part of it has no dose (its goals are not judged)
    outside_zero: bool = False  # voxels beyond the dose grid were given 0 Gy on request (none is then incomplete)
    parts: dict[str, str] = {}  # summed files (beam doses): name -> SHA-256; `file` is then their folder

    def not_converged_label(self) -> str | None:
        """What the file says of a plan that did not converge, or whose convergence is unknown (its DoseComment,
        else its SeriesDescription, where either begins with `NOT_CONVERGED_LABEL` or `CONVERGENCE_UNKNOWN_LABEL`),
        or None. Checked, such a dose read PASS and could be approved although the plan it came from was refused
        (audit s20/t2 F4; an unknown one, review s20/r2 F5): the check now carries the label."""
        for key in ("DoseComment", "SeriesDescription"):
            said = self.attributes.get(key, "")
            if said.startswith((NOT_CONVERGED_LABEL, CONVERGENCE_UNKNOWN_LABEL)):
                return said
        return None


class PriorFileRecord(_Record):
    file: str
    sha256: str
    format: str  # "specc result.h5", "DICOM RT Dose"
    max_gy: float  # its largest dose on the case grid


class PriorDoseRecord(_Record):
    """A composite plan's prior course (docs/composite.md): every goal and DVH is on prior + this plan."""

    description: str  # the protocol's `prescription.prior.description`
    prescribed_gy: float  # the prior course's prescription to the targets, as the protocol states it
    fractions: int | None = None  # the prior course's fractions, as the protocol states them (EQD2 / BED goals)
    files: list[PriorFileRecord]  # summed, physical dose, on the case grid
    max_gy: float  # the prior dose's largest value on the case grid
    notes: list[str] = []  # how it was read (interpolation, voxels beyond its grid)


class Review(_Record):
    reviewer: str | None = None
    date: str | None = None
    approved: bool = False


class PlanRecord(_Record):
    format: int = RECORD_FORMAT
    specc_version: str
    created: str  # ISO 8601, UTC
    # False: every goal status reads not_converged (a checked dose: False where its file says NOT CONVERGED)
    converged: bool
    protocol: ProtocolInfo
    case: CaseInfo
    prescription: PrescriptionRecord
    solver: SolverRecord | None  # None: the dose came from elsewhere (`dose_source`)
    normalization: NormalizationRecord | None
    delivery: DeliveryRecord | None = None  # None: the optimized fluence is the plan (not sequenced)
    robustness: RobustnessRecord | None = None  # None: the protocol asks no setup-error check
    goals: list[GoalRecord]
    target_indices: list[TargetIndices]
    hot_spot: HotSpot  # over every voxel of the dose grid
    structures: list[StructureDose]
    # What the stages decided that changes how to read the plan (a structure sampled for
    # optimization, a derived structure clipped to the dose rows, a structure skipped, ...).
    notes: list[str] = []
    # What a signer must see before the goals, not among the notes: the report shows each as a banner under the
    # title, the terminal in red above the summary line (a prior dose unlike the declared prior course). Absent in
    # records written before 2026-11-27, read as none.
    warnings: list[str] = []
    # The dose outside the prescription targets above 110% of the highest level, as the summary line and the report's
    # header give it ("hot spot outside the targets 114% (D0.03cc 57.25 Gy)"; the full sentence is a note), for what
    # reads plan.json alone (the approval page); None: none, or a record written before 2026-11-28.
    outside_hot_spot: str | None = None
    timings_s: dict[str, float]
    review: Review = Review()
    dose_source: DoseSourceRecord | None = None  # set when specc checked a dose it did not plan
    prior_dose: PriorDoseRecord | None = None  # set for a composite plan: its dose and goals include a prior course

    @property
    def normalization_factor(self) -> float:
        """What the optimized fluence and its dose were multiplied by (1 without a normalization)."""
        return self.normalization.factor if self.normalization is not None else 1.0

    def goal_named(self, structure: str, text: str) -> GoalRecord:
        """The goal a robustness or comparison row names by structure and text."""
        return next(goal for goal in self.goals if (goal.structure, goal.text) == (structure, text))

    def failed_must_goals(self) -> list[GoalRecord]:
        """Priority-1 goals the dose fails (beyond any acceptable variation), nominally or in the worst scenario of
        the robustness check: what --strict stops on. A plan checked (or optimized) for setup errors is accepted
        on its worst scenario too; where robust optimization replaces the PTV, that is the coverage test."""
        robust_failed = {
            (robust.structure, robust.text) for robust in (self.robustness.goals if self.robustness is not None else [])
            if robust.measured_status == "fail"
        }
        return [
            goal for goal in self.goals
            if goal.priority == 1 and (goal.measured_status == "fail" or (goal.structure, goal.text) in robust_failed)
        ]

    def scenario_failure(self, goal: GoalRecord) -> str | None:
        """For a goal the dose meets nominally but fails in the worst setup-error scenario, where and by how much:
        "passes nominally (74.00 Gy), fails in scenario y -4 mm (77.41 Gy)"; None otherwise. A reader of --strict's
        "priority-1 goals failed" beside "goals: 8 pass" needs it to see that the patient shifted fails it."""
        if goal.measured_status == "fail" or self.robustness is None:
            return None
        robust = next((r for r in self.robustness.goals if (r.structure, r.text) == (goal.structure, goal.text)), None)
        if robust is None or robust.measured_status != "fail" or robust.worst is None or robust.worst_scenario is None:
            return None
        labels = self.robustness.scenario_labels
        where = labels[robust.worst_scenario] if robust.worst_scenario < len(labels) else f"#{robust.worst_scenario + 1}"
        unit = f" {robust.unit}" if robust.unit else ""
        nominal = "" if goal.value is None else f" ({goal.value:.2f}{unit})"
        return f"passes nominally{nominal}, fails in setup-error scenario {where} ({robust.worst:.2f}{unit})"

    def unevaluated_must_goals(self) -> list[GoalRecord]:
        """Priority-1 goals not failed that read NOT EVALUATED, nominally or in the worst scenario of the robustness
        check, what --strict stops on beside the failed ones: a must-goal that could not be measured (a D2cc on a
        1 cc organ, an organ beyond the checked dose's calculation volume, an overlap that does not occur) cannot be
        vouched for. Only a goal on a structure the protocol allows a case to lack and this case does not contour
        (`absence_allowed`) passes."""
        failed = {(goal.structure, goal.text) for goal in self.failed_must_goals()}
        robust_unmeasured = {
            (robust.structure, robust.text) for robust in (self.robustness.goals if self.robustness is not None else [])
            if robust.measured_status == "not_evaluated"
        }
        return [
            goal for goal in self.goals
            if goal.priority == 1 and not goal.absence_allowed and (goal.structure, goal.text) not in failed
            and (goal.measured_status == "not_evaluated" or (goal.structure, goal.text) in robust_unmeasured)
        ]

    def not_evaluated_reason(self, goal: GoalRecord) -> str:
        """Why `goal` (one of `unevaluated_must_goals`) was not evaluated: its note, or where only the robustness
        check could not measure it, that."""
        if goal.measured_status == "not_evaluated":
            return goal.note
        return "no value in any setup-error scenario of the robustness check"

    def why_not_converged(self) -> str:
        """Why this record reads NOT CONVERGED, in one wording wherever it is said (the terminal, --strict, compare,
        approve, the exports; review s20/r2 F6: a check of such a dose was said four ways): its solver's status, or
        for a checked dose, what its file says of the plan it came from."""
        if self.solver is not None:
            return self.solver_ended(self.solver.status, self.solver.solver)
        said = self.dose_source.not_converged_label() if self.dose_source is not None else None
        return f"its dose file reads {said!r}" if said is not None else self.solver_ended(None)

    @staticmethod
    def solver_ended(status: str | None, solver: str | None = None) -> str:
        """`why_not_converged`'s words for a solver's status: "its solver ended iteration_limit (SPECC-LBFGS)", or
        "no solver status" where none is known; also what a result.h5 holding no plan record is said by, from its
        root attribute solver_status (`specc export`), so that the two never word one status two ways."""
        if not status:  # none recorded, or an empty attribute
            return "no solver status"
        return f"its solver ended {status}" + (f" ({solver})" if solver is not None else "")

    def stops_strict(self) -> bool:
        """Whether --strict stops on this plan (exit code 2): it did not converge (none of its goals can be vouched
        for: until audit s20/t2 F2 such a plan passed --strict wherever its measured values happened to pass), or a
        priority-1 goal failed or was not evaluated, other than one on a structure the protocol allows a case to
        lack."""
        return not self.converged or bool(self.failed_must_goals() or self.unevaluated_must_goals())

    def robust_counts(self) -> dict[str, int]:
        """Number of robustness-checked goals per status of their worst scenario (empty without a check)."""
        counts: dict[str, int] = {}
        for goal in self.robustness.goals if self.robustness is not None else []:
            counts[goal.status] = counts.get(goal.status, 0) + 1
        return counts

    def plan_dose_gy(self, level: DoseLevelRecord) -> float:
        """What this plan itself gives a level's target: the level, less a composite's prior course."""
        return level.total_gy - (self.prior_dose.prescribed_gy if self.prior_dose is not None else 0.0)

    def __repr__(self) -> str:
        """One line for a notebook: the default repr, every DVH point included, ran to 60,000 characters
        (audit b3 N4). The fields hold the rest (`goals`, `structures`, `notes`, ...)."""
        made = (f"solver {self.solver.solver} {self.solver.status}" if self.solver is not None
                else f"dose from {self.dose_source.file}" if self.dose_source is not None else "no solver")
        goals = ", ".join(f"{count} {status}" for status, count in self.goal_counts().items()) or "none"
        notes = f", {len(self.notes)} note{'s' if len(self.notes) > 1 else ''}" if self.notes else ""
        return (f"PlanRecord(protocol {self.protocol.name!r} {self.protocol.version}, case {self.case.case_id!r}, "
                f"{made}, converged={self.converged}, goals: {goals}{notes})")

    def not_evaluated_split(self) -> str:
        """How the goals reported NOT EVALUATED divide, where some are allowed absences: "1 allowed absence, 1 not
        measurable" ("" where none is). An organ the protocol lets a case lack (`absence_allowed`) and a goal that
        could not be measured (a D100cc of a 26 cc rectum) read alike, and only the second can stop --strict (where
        its priority is 1: audit s18/b1 F8); the summary line and the report's header count them apart."""
        unmeasured = [goal for goal in self.goals if goal.status == "not_evaluated"]
        allowed = sum(goal.absence_allowed for goal in unmeasured)
        if not allowed:
            return ""
        rest = len(unmeasured) - allowed
        said = f"{allowed} allowed absence{'s' if allowed > 1 else ''}"
        return said + (f", {rest} not measurable" if rest else "")

    def goal_counts(self) -> dict[str, int]:
        """Number of goals per reported status, for summaries."""
        counts: dict[str, int] = {}
        for goal in self.goals:
            counts[goal.status] = counts.get(goal.status, 0) + 1
        return counts
