"""The protocol document: header, prescription, structures, goals, optimization.

These pydantic models are both the validator of the YAML (the JSON Schema is generated from
them) and the object the later stages read. Cross-field rules (undefined structures,
conflicting goals) are checked in `consistency` once every field is valid.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    StrictBool,
    StrictInt,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from specc.protocol.consistency import consistency_issues
from specc.protocol.diagnostics import Diagnostic, ProtocolConsistencyError, ProtocolError, diagnostic_at, located_goals
from specc.protocol.goals import Course, Goal, GoalEntry, GoalMapping
from specc.protocol.metrics import Metric
from specc.protocol.names import name_key
from specc.protocol.plausibility import PLAUSIBLE_GY_PER_FRACTION, setup_error_slip
from specc.protocol.structures import FUNCTIONS, StructureExpr, parse_expression
from specc.protocol.templates import LIMITS_FOR_DOSE_PER_FRACTION, fractionation_misfit
from specc.protocol.units import Angle, Area, Dose, Length, format_number
from specc.terms import KINDS, Term
from specc.terms.base import SourceLocation

if TYPE_CHECKING:
    from specc.protocol.templates import LoosenedGoal

FORMAT_VERSION = 1
# What a plan records as the file of a protocol no file gave (`ProtocolSource.built_in_memory`).
BUILT_IN_MEMORY = "built in memory (no file)"
# What describes a protocol without changing what is planned or how it is judged: `specc diff` needs no new version
# for a change of these alone, and the content fingerprint leaves them out, so that `specc compare` and `specc
# approve` agree with it (review s20/r1 F3: a description edit read "changed without a new version" there).
DESCRIPTIVE_FIELDS = {
    ("header", "description"), ("header", "references"), ("header", "authors"), ("structure", "color"),
}
# How a file edit that keeps the content is said (compare, the cohort comparison, approve).
SAME_CONTENT = "comments, formatting or descriptive fields only (description, references, authors, colours)"
# The solvers a protocol (and --solver) may name: specc's fast path and the cvxpy solvers it passes its limits to.
SolverName = Literal["SPECC-LBFGS", "CLARABEL", "OSQP", "SCS", "HIGHS"]
SOLVERS: tuple[str, ...] = get_args(SolverName)
# The solver the fast path hands a program to where it cannot solve or certify it (`specc.solve.first_order`).
FAST_PATH_FALLBACK = "CLARABEL"
# What a solver can take, past which it fails inside cvxpy (CLARABEL: an OverflowError traceback; OSQP: a
# SolverError read as a numerical failure; HiGHS: a ValueError) instead of solving: the width of its iteration
# counter, and HiGHS' smallest feasibility tolerance (audit s20/t2 F5). Checked where a protocol names its solver
# (`SolverOptions`, at the file's line) and again for a solver chosen on the command line (`specc.solve.choice`).
LARGEST_MAX_ITERATIONS = {"CLARABEL": 2**32 - 1, "OSQP": 2**31 - 1, "SCS": 2**63 - 1, "HIGHS": 2**31 - 1}
SMALLEST_TOLERANCE = {"HIGHS": 1e-10}
# Intensity levels per beam when a step-and-shoot protocol does not say: a common planning-system default.
DEFAULT_INTENSITY_LEVELS = 10

# semver.org's regular expression for MAJOR.MINOR.PATCH[-pre][+build].
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

Text = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Approval(_Strict):
    by: Text = Field(description="Who approved the protocol.")
    date: datetime.date = Field(description="Approval date, YYYY-MM-DD.")


class DoseLevel(_Strict):
    """One dose level of a (possibly simultaneous integrated boost) prescription."""

    target: Text = Field(description="The structure that receives this dose.")
    dose: Dose = Field(
        description='Total prescribed dose over all fractions, e.g. "78 Gy"; with a `prior` course, the '
        "composite: the prior course's dose plus this plan's."
    )
    # Filled in by the loader (with its path and fields): a term derived from the level is named at it.
    source: SkipJsonSchema[SourceLocation | None] = Field(default=None, exclude=True)
    _fractions: int | None = PrivateAttr(default=None)
    _prior_gy: float = PrivateAttr(default=0.0)

    @property
    def dose_per_fraction_gy(self) -> float:
        """This plan's Gy per fraction: its share of the level (the level less a prior course's dose) over its fractions."""
        if self._fractions is None:
            raise ValueError("a dose level knows its fractions only inside a Prescription")
        return self.plan_dose_gy / self._fractions

    @property
    def plan_dose_gy(self) -> float:
        """What this plan itself delivers to the level's target, in Gy over its fractions."""
        return self.dose.gy - self._prior_gy


class PriorCourse(_Strict):
    """Dose delivered before this plan (a sequential boost's initial course, an earlier course
    before re-irradiation): its dose is given per case (`specc plan --prior-dose FILE`), and
    every goal and optimization term of the protocol is judged on the composite (prior + this
    plan, physical dose summed); a goal in EQD2 or BED sums each course's isoeffective dose,
    from its own fractions."""

    description: Text = Field(description='What the prior dose is, e.g. "initial course, 46 Gy in 23 fractions".')
    dose: Dose = Field(
        default=Dose(gy=0.0),
        description="The prior course's prescribed dose to this protocol's targets (the levels are composite: "
        "this plan adds the level less this); 0 Gy, the default, for a re-irradiation whose new targets "
        "the prior course did not prescribe.",
    )
    fractions: StrictInt | None = Field(
        default=None,
        ge=1,
        description="The prior course's number of fractions: needed by goals in EQD2 or BED, which convert "
        "each course's dose from its own dose per fraction.",
    )
    # Filled in by the loader (with its path and fields): a plan refused for its prior dose is named at the course,
    # a prior dose file's other fraction count at its `fractions`.
    source: SkipJsonSchema[SourceLocation | None] = Field(default=None, exclude=True)


class Normalization(_Strict):
    """After optimization, scale the plan so that `metric` of `structure` is `percent` of its prescription."""

    structure: Text = Field(description="A prescription target.")
    metric: Metric = Field(description="A dose metric, e.g. D95% or Mean.")
    percent: float = Field(default=100.0, gt=0, le=200, allow_inf_nan=False)

    @field_validator("metric")
    @classmethod
    def _dose_metric(cls, metric: Metric) -> Metric:
        if not metric.is_dose:
            raise ValueError(f"normalization needs a dose metric (D95%, Mean, ...), {metric} measures a volume")
        return metric

    def __str__(self) -> str:
        return f"{self.structure} {self.metric} = {format_number(self.percent)}% of prescription"


class Prescription(_Strict):
    fractions: StrictInt = Field(ge=1, description="Number of treatment fractions.")
    levels: list[DoseLevel] = Field(min_length=1, description="Dose levels, highest first by convention.")
    normalization: Normalization | None = None
    prior: PriorCourse | None = Field(
        default=None,
        description="Dose delivered before this plan: goals and terms are then on the composite (docs/composite.md).",
    )

    @model_validator(mode="after")
    def _bind_levels(self) -> Prescription:
        targets = [level.target for level in self.levels]  # a repeated target: `consistency`, at its line
        if self.normalization is not None and self.normalization.structure not in targets:
            raise ValueError(
                f'normalization structure "{self.normalization.structure}" has no dose level '
                f"(targets: {', '.join(targets)})"
            )
        if self.prior is not None:
            if self.normalization is not None:
                raise ValueError(
                    "normalization scales a plan's dose to a metric; with a prior course the goals are on the "
                    "composite, which no scaling of this plan alone normalizes: leave out one or the other"
                )
            low = [level.target for level in self.levels if level.dose.gy <= self.prior.dose.gy]
            if low:
                raise ValueError(
                    f"with a prior course of {format_number(self.prior.dose.gy)} Gy the levels are composite doses, "
                    f"so each must exceed it; {', '.join(low)} does not (this plan would add nothing there)"
                )
        for level in self.levels:
            level._fractions = self.fractions
            level._prior_gy = self.prior.dose.gy if self.prior is not None else 0.0
        return self

    def prior_mismatch(self, prior_dose_given: bool) -> str | None:
        """Why a plan cannot be made with (or without) a prior dose under this prescription, or None:
        a composite protocol needs its prior course's dose, and a prior dose a composite protocol."""
        if self.prior is not None and not prior_dose_given:
            return (
                f"the goals are on the composite with a prior course ({self.prior.description}): give the prior "
                "dose; on the command line, give its dose with --prior-dose FILE"
            )
        if self.prior is None and prior_dose_given:
            return (
                "a prior dose was given, but the protocol declares no prior course (`prescription.prior`), so its "
                "goals are not meant for a composite"
            )
        return None

    def level_for(self, structure: str) -> DoseLevel | None:
        return next((level for level in self.levels if level.target == structure), None)

    def reference_dose(self, structure: str, course: Course = "composite", dose_level_of: str | None = None) -> Dose:
        """The dose that "% of prescription" means for `structure`.

        A target's own dose level; for a structure that names whose level its % refers to (`dose_level_of`,
        the structure's key: a boost's CTV names its PTV) that level; for any other structure the highest dose
        level, the convention of "Bladder V100%" in site protocols. For a goal on this course alone (`course`
        "this"), the share of that level this plan gives (the level less the prior course's dose).
        """
        level = self.reference_level(structure, dose_level_of)
        return level.dose if course == "composite" else Dose(gy=level.plan_dose_gy)

    def stated_level(self, structure: str, dose_level_of: str | None = None) -> DoseLevel | None:
        """The dose level stated for `structure`: its own, else that of the structure its `dose_level_of` names; None
        where neither is (its % then refers to the highest, `reference_level`)."""
        return self.level_for(structure) or (self.level_for(dose_level_of) if dose_level_of else None)

    def reference_level(self, structure: str, dose_level_of: str | None = None) -> DoseLevel:
        """The dose level "% of prescription" refers to for `structure`: the one stated for it (`stated_level`), else
        the highest."""
        return self.stated_level(structure, dose_level_of) or max(self.levels, key=lambda level: level.dose.gy)


def _dose_level_of(structures: Mapping[str, StructureSpec], structure: str) -> str | None:
    """The structure whose dose level `structure`'s % refers to, as its `dose_level_of` names it (None if unwritten)."""
    spec = structures.get(structure)
    return spec.dose_level_of if spec is not None else None


def _expression(value: Any) -> StructureExpr:
    if isinstance(value, str):
        return parse_expression(value)
    raise ValueError(f"an expression is text such as \"expand(CTV, 7mm) - PTV_High\", got {value!r}")


Expression = Annotated[
    StructureExpr,
    PlainValidator(_expression),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "Derived structure: names combined with | & - and the functions "
            + ", ".join(FUNCTIONS)
            + ", e.g. expand(CTV, 7mm) - PTV_High.",
        }
    ),
]


_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_SHORT_COLOUR = re.compile(r"^#[0-9a-fA-F]{3}$")


# A structure's role: what it is planned and drawn as (the plan record keeps it, `StructureDose.role`).
StructureRole = Literal["target", "oar", "other"]


class StructureSpec(_Strict):
    role: StructureRole = Field(description="target, oar (organ at risk) or other.")
    aliases: list[Text] = Field(
        default_factory=list, description="Other names this structure may have in a case (case-insensitive)."
    )
    color: str | None = Field(default=None, pattern=_COLOUR.pattern, description='Display colour "#rrggbb".')
    expression: Expression | None = Field(default=None, description="Derive this structure from others.")
    parts: list[Text] = Field(
        default_factory=list,
        description="Names of case structures that together make this one, as TG-263 names an organ's sides or "
        "parts (BrachialPlex_L, BrachialPlex_R): a case with no structure of this name or its aliases reads it as "
        "the union of the parts it contours, and a note names them. Not for derived structures.",
    )
    if_contoured: StrictBool = Field(
        default=False,
        description="A case may not contour this organ (a template's optic nerves, far from an oropharynx field): "
        "on a case without it the plan goes on, its goals read NOT EVALUATED (not contoured on this case) and its "
        "optimization terms are left out, each with a note. Left out, a structure missing from the case is an error. "
        "Not for targets, derived structures, or structures blocked by a forward plan or checked under setup errors.",
    )
    alpha_beta: Dose | None = Field(
        default=None,
        description='The tissue\'s alpha/beta ratio, e.g. "3 Gy": needed by its goals in EQD2 or BED '
        "(the linear-quadratic model converts each voxel's dose).",
    )
    dose_level_of: Text | None = Field(
        default=None,
        description="For a structure with no dose level of its own: the structure whose dose level its goals' % of "
        "the prescription refer to (a boost's CTV: `dose_level_of: PTV_70`, so that \"D98% >= 95%\" is 95% of 70 Gy). "
        "Left out, % refers to the structure's own level, else the highest. It adds no prescription (no RT Plan "
        "dose reference, target-index row or derived terms), as a level would.",
    )
    # Filled in by the loader from the YAML position (at the structure's name, with its path and fields), so compile
    # errors can point at the line and the field.
    source: SkipJsonSchema[SourceLocation | None] = Field(default=None, exclude=True)

    @field_validator("parts")
    @classmethod
    def _parts_of_a_contoured_structure(cls, parts: list[str], info: ValidationInfo) -> list[str]:
        """Parts stand for a contour the case lacks: a derived structure is never contoured, and a part that is
        an alias or written twice names one case structure twice (names compare as a case's: case aside, NFC)."""
        if parts and info.data.get("expression") is not None:
            raise ValueError("a derived structure (`expression`) is computed, not contoured: it has no parts "
                             "(write the union in its expression)")
        aliases = {name_key(alias): alias for alias in info.data.get("aliases", [])}
        seen: dict[str, str] = {}
        for part in parts:
            if name_key(part) in aliases:
                raise ValueError(f'part "{part}" is an alias ("{aliases[name_key(part)]}"): an alias is the whole '
                                 "structure under another name, a part one piece of it")
            if name_key(part) in seen:
                raise ValueError(f'part "{part}" is written twice (as "{seen[name_key(part)]}")')
            seen[name_key(part)] = part
        return parts

    @field_validator("color", mode="before")
    @classmethod
    def _colour_as_rrggbb(cls, value: Any) -> Any:
        """A colour refused in words, not by the schema's pattern (a raw regex was the message, audit s20/t1 F9); the
        CSS shorthand "#f00", which specc does not read, is named in full."""
        if not isinstance(value, str) or _COLOUR.fullmatch(value):
            return value
        full = f"#{''.join(digit * 2 for digit in value[1:])}" if _SHORT_COLOUR.fullmatch(value) else None
        meant = f' (did you mean "{full}"? the three-digit shorthand is not read)' if full else ""
        raise ValueError(f'a colour is "#rrggbb", six hex digits, e.g. "#ff0000", got "{value}"{meant}')

    @field_validator("alpha_beta")
    @classmethod
    def _positive_ratio(cls, value: Dose | None) -> Dose | None:
        if value is not None and value.gy <= 0:
            raise ValueError(f"alpha_beta must be a positive dose, e.g. \"3 Gy\", got {format_number(value.gy)} Gy")
        return value


def limit_refused(solver: str, tolerance: float | None, max_iterations: int | None, chosen: str) -> str | None:
    """Why `solver` cannot take these limits (`LARGEST_MAX_ITERATIONS`, `SMALLEST_TOLERANCE`), or None; `chosen`:
    the solver asked for, where `solver` solves in its place (the fast path's fallback)."""
    who = solver if solver == chosen else f"{solver}, which solves where {chosen} cannot,"
    largest = LARGEST_MAX_ITERATIONS.get(solver)
    if max_iterations is not None and largest is not None and max_iterations > largest:
        return (f"max_iterations: {max_iterations} is more than {who} can count (at most {largest}); write a smaller "
                "limit, or leave it out for the solver's own")
    smallest = SMALLEST_TOLERANCE.get(solver)
    if tolerance is not None and smallest is not None and tolerance < smallest:
        return (f"tolerance: {tolerance:g} is below the smallest {who} takes ({smallest:g}); write a larger "
                "tolerance, or choose another solver")
    return None


def route_of(solver: str) -> tuple[str, ...]:
    """The solvers a run asking for `solver` may use: the fast path's fallback too."""
    return (solver, FAST_PATH_FALLBACK) if solver == SOLVERS[0] else (solver,)  # SOLVERS[0]: the fast path


class SolverOptions(_Strict):
    name: SolverName | None = Field(
        default=None,
        description="SPECC-LBFGS (specc's matrix-free fast path) or a cvxpy solver; left out, specc "
        "chooses by its documented rule (docs/compiler.md).",
    )
    tolerance: float | None = Field(
        default=None, gt=0, lt=1, allow_inf_nan=False, description="Relative optimality/feasibility tolerance."
    )
    time_limit_s: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="Seconds per solve.")
    max_iterations: StrictInt | None = Field(default=None, ge=1)
    slip_percent: float | None = Field(
        default=None,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="Lexicographic priorities: how much (%) a higher-priority objective may worsen "
        "while lower priorities are optimized.",
    )
    coverage_slip_gy: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Lexicographic priorities: how much the coverage step's RMS dose deviation (Gy, total) "
        "may grow while organ goals are optimized (default 1 Gy).",
    )
    sample_voxels: Annotated[StrictInt, Field(ge=1)] | Literal["all"] | None = Field(
        default=None,
        description="A non-target structure that only soft terms refer to, with more voxels than this outside the "
        "rows the program holds anyway, is shown to the optimizer as a spatially stratified sample of this many "
        "(default 30000 for the fast path, 3000 when a cvxpy solver solves): faster, at a cost the plan notes "
        "measure on every voxel. Left out, a fast-path plan whose sample cost more than 0.1% of the objective is "
        "finished on every voxel; set, the sample is kept. `all` optimizes on every voxel. Goals and hard limits "
        "always see every voxel.",
    )

    @model_validator(mode="after")
    def _limits_the_solver_takes(self) -> SolverOptions:
        """A limit the named solver cannot take, refused at this file's line: `specc validate` said OK to a HIGHS
        protocol with tolerance 1e-12, which only the plan refused, naming no line (review s20/r3 F3)."""
        for solver in route_of(self.name) if self.name is not None else ():
            refused = limit_refused(solver, self.tolerance, self.max_iterations, self.name)
            if refused is not None:
                raise ValueError(refused)
        return self

    @field_validator("sample_voxels", mode="before")
    @classmethod
    def _voxel_count_or_all(cls, value: Any) -> Any:
        """One message for both forms (a union would report one error per branch)."""
        if value is None or value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError(f"expected a whole number of voxels (at least 1) or `all`, got {value!r}")


class SetupScenario(_Strict):
    """A structure displaced by a setup error: what a robust term copy names instead of the structure.

    A shift by `offset_mm`, or a turn by `rotation_deg` about the case's beam isocentre (which the
    compile and evaluate stages take from the case), of the dose blurred by random errors of
    `random_error_mm` (one SD per axis) when given."""

    structure: Text
    offset_mm: tuple[float, float, float]
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    random_error_mm: tuple[float, float, float] | None = None


def _per_axis(values: Sequence[float], before: str, unit: str) -> list[str]:
    """ "x +3 mm", "about z -2 deg": each non-zero value with its axis and sign."""
    return [
        f"{before}{axis} {'+' if value > 0 else '-'}{format_number(abs(value))} {unit}"
        for axis, value in zip("xyz", values)
        if value
    ]


def offset_text(offset_mm: Sequence[float]) -> str:
    """A setup-error scenario as the report and the scenario names write it, e.g. "x +3 mm"."""
    return ", ".join(_per_axis(offset_mm, "", "mm"))


def scenario_text(offset_mm: Sequence[float], rotation_deg: Sequence[float] = (0.0, 0.0, 0.0)) -> str:
    """A shift and a turn as reports write them: "x +3 mm", "about z +2 deg" ("" for neither)."""
    return ", ".join([*_per_axis(offset_mm, "", "mm"), *_per_axis(rotation_deg, "about ", "deg")])


def random_error_text(sd_mm: Sequence[float]) -> str:
    """Random errors as scenario names write them: "random 3 mm SD", or per axis "random 2/2/3 mm SD"."""
    sizes = [format_number(size) for size in sd_mm]
    return f"random {sizes[0] if len(set(sizes)) == 1 else '/'.join(sizes)} mm SD"


def scenario_name(
    structure: str, offset_mm: tuple[float, float, float], rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0),
    random_error_mm: tuple[float, float, float] | None = None,
) -> str:
    """The name a term copy uses for `structure` displaced, e.g. "CTV (x +3 mm)", "CTV (about z +2 deg)",
    or on the dose blurred by random errors "CTV (x +3 mm; random 2 mm SD)" and "CTV (random 2 mm SD)"."""
    parts = [scenario_text(offset_mm, rotation_deg), random_error_text(random_error_mm) if random_error_mm else ""]
    return f"{structure} ({'; '.join(part for part in parts if part)})"


class Optimization(_Strict):
    terms: list[Term] = Field(
        default_factory=list,
        description="Objectives and hard constraints. Left out (or empty), the terms are derived from the "
        "prescription and goals, and `solver` still applies.",
    )
    solver: SolverOptions = Field(default_factory=SolverOptions)
    # Filled in by robust optimization (`specc.compile.scenarios`), never written by users: the
    # displaced structures its term copies name, by name.
    scenarios: SkipJsonSchema[dict[str, SetupScenario]] = Field(default_factory=dict, exclude=True)


# The techniques each delivery option applies to (an error with any other technique).
_OPTION_TECHNIQUES = {
    "intensity_levels": ("step_and_shoot",),
    "sequencing": ("step_and_shoot",),
    "segment_weights": ("step_and_shoot",),
    "block": ("forward",),
    "aperture_margin": ("forward",),
    "min_segment_weight_percent": ("step_and_shoot", "forward"),
    "min_segment_area": ("step_and_shoot", "forward"),
    "min_opening_area": ("step_and_shoot", "forward"),
    "max_segments_per_beam": ("step_and_shoot", "forward"),
}


class Delivery(_Strict):
    """How the plan is to be delivered, which is what the report evaluates and the physician signs.

    An optimized beamlet fluence is not deliverable as it stands: a step-and-shoot treatment
    delivers a few MLC apertures per beam, and rounding the fluence to intensity levels changes
    the dose. With `step_and_shoot` the plan's goals are measured on the sequenced segments'
    dose, never on the ideal fluence's; with `forward` there is no fluence, only segments shaped
    from the structures (docs/delivery.md).
    """

    technique: Literal["fluence", "step_and_shoot", "forward"] = Field(
        default="fluence",
        description="fluence: the optimized beamlet fluence is the plan (not sequenced); step_and_shoot: it is "
        "sequenced into MLC segments and the plan is what the segments deliver; forward: no fluence is optimized, "
        "each beam gets a few segments shaped from the targets and the blocked organs, and only their weights are "
        "optimized.",
    )
    intensity_levels: StrictInt | None = Field(
        default=None,
        ge=1,
        le=100,
        description="step_and_shoot: each beam's fluence is rounded to this many equal steps of its largest beamlet "
        "weight before sequencing (default 10); more levels, more segments and a dose closer to the optimized one.",
    )
    sequencing: Literal["fewest_segments", "sweep"] | None = Field(
        default=None,
        description="step_and_shoot: how the rounded fluence is cut into segments; both deliver it in the least "
        "intensity quanta. fewest_segments (default): few segments, the largest first (Engel's method), leaves "
        "moving either way between segments; sweep: one unit of intensity per segment, both leaves of a pair moving "
        "one way only (more segments).",
    )
    segment_weights: Literal["optimized", "as_sequenced"] | None = Field(
        default=None,
        description="step_and_shoot: optimized (default): the segments' weights are optimized again on the "
        "protocol's dose terms, the apertures fixed; as_sequenced: each segment keeps the weight it was cut with.",
    )

    block: list[Text] | None = Field(
        default=None,
        description="forward: the structures whose beam's-eye-view projection segments block (default: every "
        "structure with role: oar).",
    )

    aperture_margin: Length | None = Field(
        default=None,
        description='forward: the targets\' beam\'s-eye-view projection is grown by this much at the isocentre ("5 mm") '
        "before the segments are shaped, so that the field edge's penumbra falls outside the target (default 0: the "
        "projection itself).",
    )

    min_segment_weight_percent: float | None = Field(
        default=None,
        gt=0,
        lt=100,
        allow_inf_nan=False,
        description="step_and_shoot (optimized weights) and forward: a segment whose weight is below this percentage "
        "of its beam's summed segment weights is removed and the weights are optimized again, until none is (the "
        "planning system's minimum monitor units per segment, relative to the beam's).",
    )

    min_segment_area: Area | None = Field(
        default=None,
        description='step_and_shoot and forward: a segment whose open area at the isocentre ("4 cm2"), summed over '
        "its openings, is less than this is removed before the segment weights are optimized (with `as_sequenced`, "
        "the others keep their weights): the planning system's minimum segment area, over the whole segment as "
        "RayStation, Monaco and Pinnacle define it. It does not by itself keep an opening from being small: a "
        "segment of eight separate 0.25 cm2 holes opens 2 cm2 (min_opening_area closes small openings).",
    )

    min_opening_area: Area | None = Field(
        default=None,
        description='step_and_shoot and forward: each separate opening of a segment smaller than this at the '
        'isocentre ("1 cm2"; leaf pairs whose gaps overlap along the leaves are one opening) is closed before the '
        "segment weights are optimized, and a segment left with no opening is removed (with `as_sequenced`, the "
        "segments keep their weights): each opening is its own small field. specc's sequencers cut mostly separate "
        "small openings, so on a 5 mm beamlet grid this takes much of the fluence away (docs/delivery.md).",
    )

    max_segments_per_beam: StrictInt | None = Field(
        default=None,
        ge=1,
        description="step_and_shoot and forward: at most this many segments per beam (the planning system's maximum "
        "number of segments, which treatment time and QA scale with). Beyond it the lightest segments are removed "
        "and the weights optimized again, until no beam has more (with `as_sequenced`, the lightest as cut are "
        "removed and the others keep their weights).",
    )

    @model_validator(mode="after")
    def _options_of_the_technique(self) -> Delivery:
        for option, techniques in _OPTION_TECHNIQUES.items():
            if getattr(self, option) is not None and self.technique not in techniques:
                allowed = " or ".join(f"`technique: {technique}`" for technique in techniques)
                raise ValueError(f"{option} applies to {allowed}, not to {self.technique}")
        if self.min_segment_weight_percent is not None and self.segment_weights == "as_sequenced":
            raise ValueError("min_segment_weight_percent needs optimized segment weights, not `as_sequenced`")
        return self

    @property
    def segments(self) -> bool:
        """Whether the plan is delivered as MLC segments (either technique that makes them)."""
        return self.technique != "fluence"

    @property
    def forward(self) -> bool:
        """Whether the plan is forward-planned: shaped segments, only their weights optimized."""
        return self.technique == "forward"

    @property
    def sequenced(self) -> bool:
        """Whether the plan is delivered as MLC segments (and evaluated as they deliver it)."""
        return self.technique == "step_and_shoot"

    @property
    def levels(self) -> int:
        return DEFAULT_INTENSITY_LEVELS if self.intensity_levels is None else self.intensity_levels

    @property
    def sequencer(self) -> str:
        return self.sequencing or "fewest_segments"

    @property
    def optimize_segment_weights(self) -> bool:
        return self.segment_weights != "as_sequenced"


def _three(value: Any, one: str, three: str) -> Any:
    """One value for every axis, or three: one message for both forms (a union reports one per branch)."""
    if isinstance(value, str):
        return [value] * 3
    if isinstance(value, list) and len(value) == 3:
        return value
    raise ValueError(f"expected {one} or {three}, got {value!r}")


def _three_lengths(value: Any) -> Any:
    return _three(value, 'one distance ("3 mm")', 'three along x, y, z (["3 mm", "3 mm", "5 mm"])')


def _three_lengths_or_none(value: Any) -> Any:
    return None if value is None else _three_lengths(value)


def _three_angles_or_none(value: Any) -> Any:
    """One angle for every axis, or three (about x, y, z)."""
    return None if value is None else _three(value, 'one angle ("2 deg")', 'three about x, y, z (["1 deg", "1 deg", "2 deg"])')


# How a file writes a setup error for the JSON Schema: one value for every axis, or three (`_three`), never two.
_WrittenLengths = Length | Annotated[list[Length], Field(min_length=3, max_length=3)]
_WrittenAngles = Angle | Annotated[list[Angle], Field(min_length=3, max_length=3)]


def _both_ways(sizes: tuple[float, float, float]) -> list[tuple[float, float, float]]:
    """One vector per non-zero axis and sign: (+s, 0, 0), (-s, 0, 0), (0, +s, 0), ..."""
    out: list[tuple[float, float, float]] = []
    for axis, size in enumerate(sizes):
        if size > 0:
            for sign in (1.0, -1.0):
                vector = [0.0, 0.0, 0.0]
                vector[axis] = sign * size
                out.append((vector[0], vector[1], vector[2]))
    return out


_NONE = (0.0, 0.0, 0.0)


def _xyz(values: Iterable[float]) -> tuple[float, float, float]:
    x, y, z = values
    return (x, y, z)


class Robustness(_Strict):
    """How the plan is made and checked robust against patient setup errors: every goal of
    the listed structures is measured again with the dose shifted by the setup error along
    each patient axis, both ways (six scenarios; a rigid shift of the dose, the static dose
    cloud model), and the report gives the worst. `rotation_error` adds the patient turned
    both ways about each axis through the isocentre. Random (day-to-day) errors blur the dose
    of a many-fraction treatment: with `random_error`, the scenarios are measured on the dose
    convolved with a Gaussian of that standard deviation, and a scenario with no shift is
    added. With `optimize: true` the optimization also holds those structures' terms in every
    one of those scenarios, its objectives averaged over them or (`objective: worst_case`) the
    quadratic and uniform-dose penalties at their worst (docs/robustness.md); without it,
    margins make a plan robust.
    """

    setup_error: Annotated[list[Length], BeforeValidator(_three_lengths, json_schema_input_type=_WrittenLengths)] = (
        Field(
            default_factory=lambda: [Length(mm=0.0)] * 3,
            description='The systematic setup error: "3 mm" along every axis, or ["3 mm", "3 mm", "5 mm"] along x, '
            "y, z (patient LPS axes). Each non-zero axis gives two scenarios, the patient shifted both ways.",
        )
    )
    random_error: Annotated[
        list[Length] | None, BeforeValidator(_three_lengths_or_none, json_schema_input_type=_WrittenLengths)
    ] = Field(
        default=None,
        description='The random (day-to-day) setup error, one standard deviation: "2 mm", or three along x, y, z. '
        "The check measures every scenario on the dose blurred by it (a Gaussian: the expected dose over many "
        "fractions), and adds a scenario without a shift. With optimize: true, held in those scenarios too.",
    )
    rotation_error: Annotated[
        list[Angle] | None, BeforeValidator(_three_angles_or_none, json_schema_input_type=_WrittenAngles)
    ] = Field(
        default=None,
        description='The rotational setup error: "2 deg" about every patient axis, or three about x, y, z. Each '
        "non-zero angle gives two scenarios, the patient rotated both ways about the beams' isocentre (checked "
        "without beams: about the prescription targets' centre). With optimize: true, held like the shifts.",
    )
    structures: Annotated[list[Text], Field(min_length=1)] | None = Field(
        default=None,
        description="The structures whose goals are measured in every scenario (default: the prescription targets).",
    )

    optimize: StrictBool = Field(
        default=False,
        description="true: robust optimization. Every hard limit on the listed structures holds in the nominal "
        "scenario and in each setup-error scenario, and every objective on them is averaged over those scenarios "
        "(equal weights, the sum of their weights unchanged); the scenarios are the ones the check measures.",
    )
    objective: Literal["average", "worst_case"] = Field(
        default="average",
        description="With optimize: true, how the objectives on the listed structures count the scenarios. average "
        "(default): each averaged over them, equal weights. worst_case: each quadratic or uniform-dose penalty at "
        "its worst scenario (minimax; solved by the reference solver), the other objectives averaged.",
    )

    @field_validator("setup_error", "random_error", "rotation_error", mode="wrap")
    @classmethod
    def _not_a_slip(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        """An error beyond any patient setup (`setup_error_slip`), quoted as written: "5 cm", not the 50 mm read."""
        sizes = handler(value)
        if sizes is not None:
            items = [value] * 3 if isinstance(value, str) else value  # `_three`: a string, or a list of three
            # a value given as a mapping ({mm: 40}) or an object (Length(mm=40)) is quoted as read: "40 mm"
            written = [item if isinstance(item, str) else str(size) for item, size in zip(items, sizes)]
            read = [size.deg if isinstance(size, Angle) else size.mm for size in sizes]
            slip = setup_error_slip(info.field_name or "", written, read)
            if slip is not None:
                raise ValueError(slip)
        return sizes

    @model_validator(mode="after")
    def _some_error(self) -> Robustness:
        random, rotation = self.random_error_mm, self.rotation_error_deg
        if not any(self.setup_error_mm) and not any(random or ()) and not any(rotation or ()):
            raise ValueError("no setup, random or rotation error gives no scenario: give the error to check")
        if self.objective == "worst_case" and not self.optimize:
            raise ValueError("objective: worst_case says how robust optimization counts the scenarios; it needs "
                             "optimize: true")
        return self

    @property
    def rotation_error_deg(self) -> tuple[float, float, float] | None:
        return None if self.rotation_error is None else _xyz(angle.deg for angle in self.rotation_error)

    @property
    def rotations_deg(self) -> list[tuple[float, float, float]]:
        """The rotation scenarios: about x, y and z, each both ways (an axis without error gives none)."""
        return _both_ways(self.rotation_error_deg or _NONE)

    @property
    def scenarios(self) -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
        """Every scenario the check measures and robust optimization holds, as (shift mm, rotation deg):
        the shifts, then the rotations; with random errors all of them on the dose blurred by `blur_mm`,
        after a first scenario of the blurred dose alone (no displacement)."""
        alone = [(_NONE, _NONE)] if self.blur_mm is not None else []
        return alone + [(offset, _NONE) for offset in self.offsets_mm] + [(_NONE, turn) for turn in self.rotations_deg]

    @property
    def random_error_mm(self) -> tuple[float, float, float] | None:
        return None if self.random_error is None else _xyz(length.mm for length in self.random_error)

    @property
    def blur_mm(self) -> tuple[float, float, float] | None:
        """The random errors' SD per axis, None when they blur nothing (none given, or 0 mm)."""
        random = self.random_error_mm
        return random if random is not None and any(random) else None

    @property
    def setup_error_mm(self) -> tuple[float, float, float]:
        return _xyz(length.mm for length in self.setup_error)

    @property
    def offsets_mm(self) -> list[tuple[float, float, float]]:
        """The shift scenarios: the setup error along x, y and z, each both ways (an axis without error gives none)."""
        return _both_ways(self.setup_error_mm)


class ProtocolSource(BaseModel):
    """Which files a protocol was read from, and a hash that changes when any of them does.

    `content_sha256` fingerprints the protocol as validated from them. Protocols are frozen, but
    `model_copy(update=...)` or `revise_protocol` makes a changed one that still carries this source:
    a plan of it must not be recorded as the file's (`of_content`). A protocol no file gave
    (`Protocol.model_validate(...)`) is recorded as `built_in_memory`."""

    model_config = ConfigDict(frozen=True)

    path: str
    files: list[str]
    sha256: str = Field(description="sha256 over the bytes of all files read, in the order read.")
    content_sha256: str | None = Field(
        default=None, description="sha256 of the protocol's content as validated from the files (`fingerprint`)."
    )
    changed_from: str | None = Field(
        default=None, description="The file a protocol changed in memory was loaded from (`sha256`: of the content)."
    )
    # Each template file read (`files[1:]`) with the `version:` it states, as written (None: it states none): the
    # merged protocol keeps only its own header, and `specc diff` read each template again at diff time for it
    # (review s20/r1 F4: a template gone or edited since loading then failed, or showed another version).
    template_versions: dict[str, str | None] = Field(default_factory=dict)

    @staticmethod
    def fingerprint(protocol: BaseModel) -> str:
        """sha256 of a protocol's content: its JSON dump, with what says how the content was written rather than
        what it is left out, so that an edit `specc diff` finds no difference in, or only descriptive ones
        (`DESCRIPTIVE_FIELDS`), keeps it (plan.json records it beside the files' byte hash, and `specc compare`
        tells a comment edit from an unversioned change by it):

        - where each goal and term came from, and this source (excluded from the dump);
        - a goal's `text` as written ("D5% <= 8300 cGy", "D5%<=83Gy", an explicit "(priority 1)"): its parsed
          fields, which the text is read into, are kept;
        - the order of mapping keys (a YAML mapping has none), of the goals, the optimization terms and the
          prescription levels: goals are matched by structure, metric and side (a repeated one is refused), a
          level by its target (one each; the default reference is the highest by dose, not the first), and terms
          are summed into one objective (each priority step its own), so one moved above another asks, is judged
          and is optimized the same; only the report's rows, the program's terms, the RT Plan's dose reference
          numbers and the fallback colour of a structure the protocol and the case give none (picked by its
          place) come in another order. Lists whose order says something stay in order: a structure's aliases
          and parts, expression operands, a volume table's rows, the setup error's axes."""
        import hashlib
        import json

        def canonical(value: Any) -> str:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

        content = protocol.model_dump(mode="json", warnings=False)
        for section, field in DESCRIPTIVE_FIELDS:
            if section == "header":
                content.pop(field, None)
            elif isinstance(content.get("structures"), dict):
                for structure in content["structures"].values():
                    structure.pop(field, None)
        if isinstance(content.get("goals"), list):
            content["goals"] = sorted(
                ({key: value for key, value in goal.items() if key != "text"} for goal in content["goals"]),
                key=canonical,
            )
        for section, field in (("optimization", "terms"), ("prescription", "levels")):
            part = content.get(section)
            if isinstance(part, dict) and isinstance(part.get(field), list):
                part[field] = sorted(part[field], key=canonical)
        return hashlib.sha256(canonical(content).encode("utf-8")).hexdigest()

    @classmethod
    def built_in_memory(cls, protocol: BaseModel) -> ProtocolSource:
        """The source a plan records for a protocol read from no file: that, and the content's own hash
        (there are no file bytes a `sha256sum` could check)."""
        now = cls.fingerprint(protocol)
        return cls(path=BUILT_IN_MEMORY, files=[BUILT_IN_MEMORY], sha256=now, content_sha256=now)

    @property
    def in_memory(self) -> bool:
        """Whether `sha256` is of the content, not of files: a protocol built or changed in memory."""
        return self.changed_from is not None or self.files == [BUILT_IN_MEMORY]

    def of_content(self, protocol: BaseModel) -> ProtocolSource:
        """The source to record for `protocol` as it is now: this one while its content is what was read
        (or when no fingerprint was taken); else one that names the file it was changed from in memory and
        carries the content's own hash, since the file and its hash would reproduce another plan."""
        if self.content_sha256 is None:
            return self
        now = self.fingerprint(protocol)
        if now == self.content_sha256:
            return self
        origin = self.changed_from or self.path
        said = f"changed in memory after loading {origin}"
        return ProtocolSource(path=said, files=[said], sha256=now, content_sha256=now, changed_from=origin)


def goal_layout(goals: Any) -> list[tuple[tuple[str | int, ...], GoalEntry]]:
    """Goals as written (`{structure: [goal, ...]}`) in order, with each one's path under `goals`.

    A structure may hold one goal directly instead of a list. The loader uses the same
    order to map a goal's index back to the line it was written on.
    """
    layout: list[tuple[tuple[str | int, ...], GoalEntry]] = []
    for structure, entries in goals.items():
        if isinstance(entries, list):
            layout.extend(((structure, index), GoalEntry(structure, entry)) for index, entry in enumerate(entries))
        else:
            layout.append(((structure,), GoalEntry(structure, entries)))
    return layout


# The validation context of a protocol file (`load_protocol`): its goals only in the file's layout.
FILE_CONTEXT = {"file": True}


def _goals_from_layout(value: Any, info: ValidationInfo) -> Any:
    """Goals as a file writes them (`{structure: [goal, ...]}`), or, from Python, as `model_dump()` gives
    them: a list of goals or their field mappings, so that `Protocol.model_validate(protocol.model_dump())`
    validates again (audit b3 N1). A file keeps its one documented layout (`FILE_CONTEXT`)."""
    if isinstance(value, dict):
        return [entry for _, entry in goal_layout(value)]
    from_file = bool(info.context and info.context.get("file"))
    if isinstance(value, list) and all(isinstance(item, Goal) or (isinstance(item, dict) and not from_file)
                                       for item in value):
        return value
    raise ValueError('goals are grouped by structure: goals: {Rectum: ["V70Gy[%] <= 20", ...], ...}')


GoalInput = str | GoalMapping


_SPECC_DESCRIPTION = "Format version of the protocol language."
_SITE_DESCRIPTION = "Treatment site, e.g. prostate."
_VERSION_DESCRIPTION = 'Version of this protocol, semantic versioning ("1.2.0").'
_VERSION_SCHEMA = {"pattern": _SEMVER.pattern}


class ProtocolDocument(_Strict):
    """The keys of a protocol file and every rule a file can be checked against on its own.

    Its two forms differ only in which keys must be present: a `Protocol` is complete, a
    `SiteTemplate` may leave any key to the protocols that extend it. Everything written is
    checked the same way in both (types, units, metrics, goals, expressions, and references
    among the structures it defines).
    """

    specc: Literal[1] | None = Field(default=None, description=_SPECC_DESCRIPTION)
    name: Text | None = None
    site: Text | None = Field(default=None, description=_SITE_DESCRIPTION)
    version: str | None = Field(default=None, description=_VERSION_DESCRIPTION, json_schema_extra=_VERSION_SCHEMA)
    description: str = ""
    references: list[Text] = Field(default_factory=list, description="Citations for the constraints.")
    authors: list[Text] = Field(default_factory=list)
    approval: Approval | None = None
    structures: dict[str, StructureSpec] = Field(default_factory=dict)
    prescription: Prescription | None = None
    goals: Annotated[
        list[Goal],
        BeforeValidator(_goals_from_layout, json_schema_input_type=dict[str, list[GoalInput] | GoalInput]),
    ] = Field(default_factory=list, description='Clinical goals by structure, e.g. Rectum: ["V70Gy[%] <= 20"].')
    optimization: Optimization | None = None
    delivery: Delivery | None = Field(
        default=None, description="How the plan is delivered; left out, the optimized fluence is the plan."
    )
    robustness: Robustness | None = Field(
        default=None,
        description="Goals measured again under patient setup errors; with `optimize: true`, also optimized in them.",
    )
    limits_for_dose_per_fraction: list[Dose] | None = Field(
        default=None,
        description='The lowest and highest dose per fraction the physical dose limits are for, e.g. [1.8 Gy, 2.2 Gy] '
        "(a site template's, taken by the protocols that extend it): a protocol whose dose per fraction (its highest "
        "level over its fractions) lies outside is warned at its `extends:` line.",
        json_schema_extra={"minItems": 2, "maxItems": 2},
    )
    source: SkipJsonSchema[ProtocolSource | None] = Field(default=None, exclude=True)
    # Goals that replace a template goal of their metric and side and ask less (`specc.protocol.templates`), located
    # by the loader, in reading order: allowed, but said where the protocol is checked, planned and reviewed. Each
    # keeps the template goal it replaces, so that a goal changed in memory is judged again
    # (`specc.protocol.loader.revise_protocol`).
    _loosened_goals: list[LoosenedGoal] = PrivateAttr(default_factory=list)
    # Where a dose per fraction outside `limits_for_dose_per_fraction` is said (the protocol's `extends:` line, or
    # the key's where the protocol's own file writes it; its message empty), and where the key is written
    # ("base-head-neck.yaml:22:31"): located by the loader.
    _fractionation_places: tuple[Diagnostic, str] | None = PrivateAttr(default=None)

    @property
    def template_warnings(self) -> list[Diagnostic]:
        """What a valid protocol is warned of about its templates: each loosened template goal
        (`loosened_template_goals`), then a dose per fraction outside what the template's physical limits are for
        (`limits_for_dose_per_fraction`, judged on the protocol as it is now), at the protocol's `extends:` line."""
        extends = self.source is not None and len(self.source.files) > 1  # goals may come from a template
        misfit = fractionation_misfit(self.limits_for_dose_per_fraction, self.prescription, extends=extends)
        if misfit is None:
            return self.loosened_template_goals
        if self._fractionation_places is not None:
            place, written = self._fractionation_places
            # at `extends:`, naming the template's line; at the key itself where this file writes it (said once)
            own = place.path == LIMITS_FOR_DOSE_PER_FRACTION
            said = dataclasses.replace(
                place, message=misfit if own else f"{misfit}; {LIMITS_FOR_DOSE_PER_FRACTION} is at {written}")
        else:
            said = diagnostic_at(self, None, misfit, path=(LIMITS_FOR_DOSE_PER_FRACTION,))
        return [*self.loosened_template_goals, said]

    @field_validator("limits_for_dose_per_fraction")
    @classmethod
    def _dose_per_fraction_range(cls, value: list[Dose] | None) -> list[Dose] | None:
        if value is None:
            return value
        if len(value) != 2:
            raise ValueError(f"the lowest and highest dose per fraction the limits are for, two doses ([1.8 Gy, "
                             f"2.2 Gy]), got {len(value)}")
        low, high = value
        if low.gy > high.gy:
            raise ValueError(f"the lowest dose per fraction comes first: [{low}, {high}] is empty")
        largest = PLAUSIBLE_GY_PER_FRACTION[1]
        if high.gy > largest:
            raise ValueError(f"{high} per fraction is more than any external-beam course gives ({format_number(largest)} "
                             "Gy): cGy written as Gy? (e.g. 220 cGy, or 2.2 Gy)")
        return value

    def reference_level(self, structure: str) -> DoseLevel:
        """The dose level "% of prescription" refers to for `structure` (see `Prescription.reference_dose`)."""
        assert self.prescription is not None, "a site template leaves the prescription to its protocols"
        return self.prescription.reference_level(structure, _dose_level_of(self.structures, structure))

    def reference_dose(self, structure: str, course: Course = "composite") -> Dose:
        """The dose that "% of prescription" means for `structure` (see `Prescription.reference_dose`)."""
        assert self.prescription is not None, "a site template leaves the prescription to its protocols"
        return self.prescription.reference_dose(structure, course, _dose_level_of(self.structures, structure))

    def stated_level(self, structure: str) -> DoseLevel | None:
        """The dose level the protocol says `structure`'s % refers to: its own, or its `dose_level_of`'s; None
        where neither is written (% then refers to the highest by convention, or there is no prescription)."""
        if self.prescription is None:
            return None
        return self.prescription.stated_level(structure, _dose_level_of(self.structures, structure))

    @property
    def loosened_template_goals(self) -> list[Diagnostic]:
        """Each goal of this file or a template between that asks less than the template goal it replaces (a
        threshold raised for an upper limit or lowered for a lower one, a priority demoted, an acceptable
        variation widened or added), at its line, naming the template goal's; empty for a protocol no loader
        read (a template's goals are then unknown)."""
        return [found.warning for found in self._loosened_goals]

    def template_goals_loosened_by(self, goal: Goal) -> list[LoosenedGoal]:
        """The template goals `goal` replaces and asks less than (`loosened_template_goals`, one goal may replace
        several), found by where it is written (file, line and column: a flow list writes several goals on one
        line), so that the goal's own row can say which limit of the site template it gives up."""
        if goal.source is None:
            return []
        at = (goal.source.file, goal.source.line, goal.source.column)
        return [found for found in self._loosened_goals
                if (found.warning.file, found.warning.line, found.warning.column) == at]

    @field_validator("specc", mode="before")
    @classmethod
    def _supported_format(cls, value: Any) -> Any:
        if value != FORMAT_VERSION or isinstance(value, bool):
            raise ValueError(f"unsupported format version {value!r}: this specc reads `specc: {FORMAT_VERSION}`")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _semver(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f'version must be text in semantic versioning, e.g. "1.0.0" (quote it), got {value!r}')
        if not _SEMVER.match(value):
            raise ValueError(f'version "{value}" is not a semantic version MAJOR.MINOR.PATCH, e.g. "1.0.0"')
        return value

    @field_validator("optimization", mode="before")
    @classmethod
    def _structure_defaults(cls, optimization: Any, info: ValidationInfo) -> Any:
        # What a term takes from its structure's definition when it leaves it out is its kind's to say
        # (`TermBase.with_structure_defaults`: a mean in EQD2 takes the tissue's alpha/beta).
        structures = info.data.get("structures") or {}
        if not isinstance(optimization, dict) or not isinstance(optimization.get("terms"), list):
            return optimization
        terms = [
            KINDS[term["kind"]].with_structure_defaults(term, structures[term["structure"]].alpha_beta)
            if isinstance(term, dict) and term.get("kind") in KINDS
            and isinstance(term.get("structure"), str) and term["structure"] in structures
            else term
            for term in optimization["terms"]
        ]
        return {**optimization, "terms": terms}

    @field_validator("goals")
    @classmethod
    def _resolve_references(cls, goals: list[Goal], info: ValidationInfo) -> list[Goal]:
        # Without a prescription (a template's, or one reported as invalid) a goal in % of
        # the prescription stays unresolved: the protocol that extends the template gives it.
        prescription = info.data.get("prescription")
        if prescription is None:
            return goals
        # Resolved again whenever it differs: goals revalidated from Python carry the reference of the
        # prescription they were validated with, which a revised prescription no longer gives.
        structures = info.data.get("structures") or {}
        resolved = [
            (goal, prescription.reference_dose(goal.structure, goal.course, _dose_level_of(structures, goal.structure))
             if goal.needs_reference else None)
            for goal in goals
        ]
        return [
            goal.model_copy(update={"reference_dose": reference})
            if reference is not None and goal.reference_dose != reference
            else goal
            for goal, reference in resolved
        ]

    @model_validator(mode="after")
    def _consistent(self) -> ProtocolDocument:
        issues = consistency_issues(self)
        if issues:
            raise ProtocolConsistencyError(issues)
        return self


class SiteTemplate(ProtocolDocument):
    """A partial protocol shared by the protocols of a site (`template: true` in its file).

    Usually the organs at risk with their goals and aliases; the protocols that `extends` it
    add the prescription and the targets. It cannot be planned on its own.
    """


class Protocol(ProtocolDocument):
    """A validated clinical protocol (template-merged when loaded from a file)."""

    specc: Literal[1] = Field(description=_SPECC_DESCRIPTION)
    name: Text
    site: Text = Field(description=_SITE_DESCRIPTION)
    version: str = Field(description=_VERSION_DESCRIPTION, json_schema_extra=_VERSION_SCHEMA)
    structures: dict[str, StructureSpec] = Field(min_length=1)
    prescription: Prescription
    # What planning this protocol from its goals alone would refuse (`specc.protocol.goals_only`), located in
    # its files by the loader; a valid protocol all the same: `specc check` judges a dose by goals no derived
    # program can aim for, and a protocol with terms of its own plans them.
    _derivation_refusals: list[Diagnostic] = PrivateAttr(default_factory=list)

    @property
    def derivation_refusals(self) -> list[Diagnostic]:
        """What planning from the goals alone refuses, located in the files; empty for a protocol no loader
        read (derivation then applies the same rules by field path: `specc.compile.derive`)."""
        return list(self._derivation_refusals)

    def per_case_goals(self) -> list[Diagnostic]:
        """Each goal whose limit is a table by a structure's volume, at its line, saying that it is read on each
        case (`specc validate` notes them: the file alone gives no number to judge them by)."""
        return [
            self._goal_diagnostic(
                loc, goal, f'"{goal.text}": its limit is read on each case from the table at the volume of '
                f"{goal.by_volume.structure} (interpolated linearly; a case outside {goal.by_volume.range_text} is "
                "refused)",
            )
            for loc, goal in located_goals(self.goals) if goal.by_volume is not None
        ]

    def _goal_diagnostic(self, loc: tuple[str | int, ...], goal: Goal, message: str) -> Diagnostic:
        """`message` at the line `goal` was written on, with its path in the file that wrote it (merged with a
        template's goals it stands at another index: audit s20/t1 F3); the protocol's file and the goal's model
        path `loc` for one built in memory."""
        return diagnostic_at(self, goal.source, message, path=loc)

    def with_limits_at(self, volumes_cc: Mapping[str, float], absent: Mapping[str, str]) -> Protocol:
        """The protocol of one case: each goal's table by volume read at its structure's volume there
        (`volumes_cc`, cc on the case's masks; `absent`: the structures the case has no mask of, and why), so that
        the program, the evaluation, the report and plan.json judge the case by the same numbers. A ProtocolError
        names each goal whose structure is outside its table or absent: no limit is extrapolated or clamped."""
        goals: list[Goal] = []
        errors: list[Diagnostic] = []
        for loc, goal in located_goals(self.goals):
            table = goal.by_volume
            if table is None:
                goals.append(goal)
                continue
            try:
                if table.structure not in volumes_cc:
                    raise ValueError(f"{table.structure} has no mask on this case "
                                     f"({absent.get(table.structure, 'not resolved')}): its table has no row to read")
                goals.append(goal.at_volume(volumes_cc[table.structure]))
            except ValueError as error:
                errors.append(self._goal_diagnostic(loc, goal, f'"{goal.text}": {error}'))
        if errors:
            raise ProtocolError(errors)
        return self.model_copy(update={"goals": goals})

    def prescription_for(self, structure: str) -> Dose | None:
        """The prescribed dose of `structure` if it is a prescription target."""
        level = self.prescription.level_for(structure)
        return level.dose if level else None

    def prior_courses_mismatch(
        self, several_courses: bool, stated_fractions: Mapping[str, int] | None = None
    ) -> str | None:
        """Why the prior dose given cannot be judged by this protocol's goals, or None: an EQD2 or BED goal
        converts the prior dose in `prescription.prior.fractions`, one course's; the earlier courses of a
        prior dose of several (files, a composite plan's result.h5, a MULTI_PLAN sum) may have had other
        fractions, and a file that states its course's fractions (`stated_fractions`: by file) must agree.
        The reason is located at `prescription.prior.fractions`, the line to change or to check."""
        prior = self.prescription.prior
        if prior is None or not any(goal.isoeffective and goal.course == "composite" for goal in self.goals):
            return None  # a goal on this course alone never converts the prior dose
        if several_courses:
            return self._at_prior_fractions(
                "goals in EQD2 or BED convert the prior dose from `prescription.prior.fractions`, one course's, but "
                "the prior dose given holds several courses (several files, a composite plan's result.h5 or a "
                "MULTI_PLAN sum), which may have had other fractions: give one earlier course's dose, or state those "
                "goals in physical dose"
            )
        other = {file: count for file, count in (stated_fractions or {}).items() if count != prior.fractions}
        if other:
            file, count = next(iter(other.items()))
            return self._at_prior_fractions(
                f"{prior.fractions}, but the prior dose file {file} says its course had {count}: goals in EQD2 or BED "
                "convert the prior dose from its own fractions, so the two must agree"
            )
        return None

    def _at_prior_fractions(self, message: str) -> str:
        """`message` at the place `prescription.prior.fractions` is written (the prior course's, where it states
        none), as the loader recorded it; the protocol file and the field alone for a protocol built in memory."""
        prior = self.prescription.prior
        source = prior.source if prior is not None else None
        return str(diagnostic_at(self, source, message, field="fractions", path=("prescription", "prior")))

    def robust_structures(self) -> list[str]:
        """The structures of the robustness section: those listed, else the prescription targets (none without one)."""
        if self.robustness is None:
            return []
        if self.robustness.structures is not None:
            return list(self.robustness.structures)
        return [level.target for level in self.prescription.levels]
