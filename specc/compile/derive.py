"""An optimization derived from the prescription and the goals, for protocols without one.

A physicist writes goals ("Rectum V70Gy[%] <= 20 (priority 2)"), not solver weights. When a
protocol has no `optimization` section, its terms are derived here from three things the
protocol already states, never from structure names:

* each prescription level (target T at dose D) gives coverage and hot-spot penalties
  (`quadratic_underdose` and `quadratic_overdose` of T at D) and a fall-off shell: a
  derived structure `ring(T, 5mm, 30mm)` minus every target, penalized above half of D, so
  that the dose falls off outside the target instead of spilling into unnamed tissue; the
  underdose penalty leaves out organs whose goals cap their voxels below D: a Max, or a D / V
  goal on a small volume (`capped_below`, `_coverage_region`);
* each goal becomes the limit kind that measures it (D / V metrics a `dvh` limit, Max
  `max_dose`, Min `min_dose`, Mean `mean_dose`), carrying the goal's protocol line:
  priority 1 is hard at the goal's threshold, or, when the goal names an acceptable
  variation, hard at the variation and a penalty towards the threshold; priority p >= 2 is
  a penalty whose weight falls tenfold per priority level (`goal_weight`); each penalty
  carries its goal's `priority`, which places it in its lexicographic step
  (`specc.solve.priorities`), also once pasted into a protocol from `explain_yaml`;
* every goal-derived limit aims `LIMIT_TOLERANCE` (0.1%) of its dose inside the goal, so
  that the solver's own tolerance cannot leave a met goal a hair beyond its threshold (goals
  are judged without tolerance);
* goals that no convex program can aim for (a hot spot wanted: "Max >= X", a cold spot
  wanted: "Min <= X") are refused with the goal's line;
* a goal in EQD2 or BED aims at its physical equivalent: the linear-quadratic conversion is
  increasing, so on one course "Max <= 50 Gy (EQD2)" is exactly "Max <= D Gy" for the D whose
  EQD2 is 50 Gy in the plan's fractions (a V metric's dose likewise). A mean has no such
  equivalent: a mean's upper bound becomes a `mean_dose` in that quantity (a convex quadratic
  of the dose); its lower bound (not convex) and any isoeffective goal on a composite (the prior
  dose changes the equivalent voxel by voxel) are refused with the goal's line (the goals
  themselves are judged either way).

The fall-off shells are structures that the compile stage creates; `explain_yaml` prints
them with the terms so that the whole derivation can be pasted into the protocol and tuned.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from specc.compile.case_limits import case_protocol, mask_volumes_cc
from specc.compile.places import said_at
from specc.compile.scenarios import with_scenarios
from specc.compile.structures import resolve_structures
from specc.errors import CompileError
from specc.protocol.diagnostics import ProtocolError, format_loc, protocol_file
from specc.protocol.goals_only import goals_only_issues
from specc.protocol.goals import Threshold
from specc.protocol.isoeffect import physical_gy
from specc.protocol.models import Optimization, SolverOptions, StructureSpec
from specc.protocol.structures import parse_expression
from specc.protocol.units import Dose, Volume, format_number
from specc.terms import DVH, MaxDose, MeanDose, MinDose, QuadraticOverdose, QuadraticUnderdose, TermBase
from specc.terms.base import LIMIT_TOLERANCE, SourceLocation

if TYPE_CHECKING:
    from specc.case import Case
    from specc.protocol import Goal, Protocol

# Coverage dominates: the squared shortfall below the prescription (Gy^2 per fraction,
# volume-averaged) weighs as much as a violated priority-1 goal, five times the hot-spot and
# twenty times the fall-off penalty. These ratios, not the absolute values, shape the plan.
COVERAGE_WEIGHT = 100.0
HOT_SPOT_WEIGHT = 20.0
FALLOFF_WEIGHT = 5.0
# Fall-off shell around each target: from 5 mm (the penumbra a beam needs to cover the
# target edge) to 30 mm outside it, penalized above half the target's prescription.
FALLOFF_INNER_MM = 5.0
FALLOFF_OUTER_MM = 30.0
FALLOFF_DOSE_FRACTION = 0.5
FALLOFF_COLOR = "#b0b0e0"
COVERAGE_COLOR = "#f0a0a0"
# Penalty weight of a goal of priority 1 (its part beyond the acceptable variation); each
# further priority level weighs ten times less, so a lower priority never outweighs a higher.
PRIORITY_ONE_WEIGHT = 100.0
PRIORITY_RATIO = 10.0
# A D or V goal caps an organ's voxels inside a target only when the volume it lets exceed its dose is
# smaller than the organ's overlap with the target, which for an organ beside a PTV (rectum, bladder,
# cord) is a few percent of the organ or a few cc. Goals on at most this volume (a hot spot: D0.03cc,
# D2cc, D10%, V75Gy <= 15%) are such caps; a larger one (lung V20Gy <= 35%, heart V45Gy <= 67%) is a
# volume budget the target's own voxels belong to, and carving the organ out would leave the coverage
# penalty almost nothing of a lung PTV (audit a1 F8).
SMALL_VOLUME_PERCENT = 15.0
SMALL_VOLUME_CC = 2.0


def goal_weight(priority: int) -> float:
    """Penalty weight of a goal of `priority` (see the module docstring)."""
    return PRIORITY_ONE_WEIGHT / PRIORITY_RATIO ** (priority - 1)


@dataclass(frozen=True)
class DerivedOptimization:
    """The derived terms, the structures compile creates for them, and what was decided."""

    structures: dict[str, StructureSpec]
    optimization: Optimization
    notes: list[str] = field(default_factory=list)
    # Term index -> the goal it comes from whose limit is a table by a structure's volume, read on this case, and
    # where ("D2cm Max <= ... (p.yaml:125:7), from the table by PTV volume at 60.00 cc, ..."): the term holds for
    # this case only, another case reading the table elsewhere (`explain_yaml` marks it).
    per_case: dict[int, str] = field(default_factory=dict)

    @property
    def goal_priorities(self) -> dict[int, int]:
        """Term index -> priority of the goal penalty it is (absent: coverage, hot spot, fall-off)."""
        return term_priorities(self.optimization.terms)


def term_priorities(terms: Sequence[TermBase]) -> dict[int, int]:
    """Term index -> the term's own `priority`, for the terms that carry one: the priority steps (a term
    without one is in the coverage step). The solve stage takes them so by default too."""
    return {index: term.priority for index, term in enumerate(terms) if term.priority is not None}


def with_optimization(protocol: Protocol, case: Case | None = None) -> tuple[Protocol, dict[int, int]]:
    """The protocol to compile, and the priority of each term index that has one (for `solve_clinical`).

    `protocol` itself (with its terms' own priorities) when it has an optimization section;
    else a copy with the derived terms and the fall-off structures, so later stages see them
    like any protocol structure. Either way, with robust optimization, its robust terms are
    copied into every setup-error scenario (`with_scenarios`). The protocol file is never touched. `case` supplies
    structure volumes, needed by goals on a complement volume in cc and by goal limits stated as a table by a
    structure's volume, which are read on the case first (`case_protocol`): the protocol returned is the case's,
    which the evaluation and the report read too.
    """
    if case is not None:
        protocol = case_protocol(protocol, case)
    if protocol.optimization is not None and protocol.optimization.terms:
        robust = with_scenarios(protocol)
        return robust, term_priorities(robust.optimization.terms)
    derived = derive_optimization(protocol, _VolumesOnDemand(protocol, case) if case is not None else None)
    optimization = derived.optimization
    if protocol.optimization is not None:  # solver options written without terms still apply
        optimization = optimization.model_copy(update={"solver": protocol.optimization.solver})
    copy = protocol.model_copy(
        update={
            "structures": {**protocol.structures, **derived.structures},
            "optimization": optimization,
        }
    )
    robust = with_scenarios(copy)
    return robust, term_priorities(robust.optimization.terms)


class _VolumesOnDemand(Mapping[str, float]):
    """Structure volumes, resolved on the case only if a goal asks for one.

    Few goals need them (complement volumes in cc), and resolving derives every structure
    on the grid, which the compile stage does again right after.
    """

    def __init__(self, protocol: Protocol, case: Case) -> None:
        self._protocol = protocol
        self._case = case
        self._volumes: dict[str, float] | None = None

    def _resolved(self) -> dict[str, float]:
        if self._volumes is None:
            self._volumes = structure_volumes_cc(self._protocol, self._case)
        return self._volumes

    def __getitem__(self, name: str) -> float:
        return self._resolved()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._resolved())


def structure_volumes_cc(protocol: Protocol, case: Case) -> dict[str, float]:
    """Volume in cc of each protocol structure found in (or derived on) `case`."""
    return mask_volumes_cc(resolve_structures(protocol, case).masks, case.voxel_volume_cc)


def derive_optimization(protocol: Protocol, volumes_cc: Mapping[str, float] | None = None) -> DerivedOptimization:
    """Terms from the prescription and goals of `protocol` (see the module docstring).

    `volumes_cc` (structure volumes on the case) is needed only for goals whose convex form
    is the complement of a volume in cc (CV metrics, DC in cc), and for goal limits stated as a table by a
    structure's volume (read at that volume here, unless the protocol is already the case's).
    """
    if any(goal.per_case for goal in protocol.goals):
        if volumes_cc is None:
            raise CompileError("a goal's limit is a table by a structure's volume, read on each case: derive the "
                               "optimization with the case's structure volumes")
        protocol = protocol.with_limits_at(volumes_cc, {})
    if protocol.derivation_refusals:  # every case at once, in file order (`specc.protocol.goals_only`)
        raise ProtocolError(protocol.derivation_refusals)
    unlocated = list(goals_only_issues(protocol))  # a protocol no loader read: the same rules, by field path
    if unlocated:
        raise CompileError("; ".join(f"{format_loc(issue.loc)}: {issue.message}" for issue in unlocated))
    location = _prescription_locations(protocol)
    targets = [level.target for level in protocol.prescription.levels]
    structures: dict[str, StructureSpec] = {}
    terms: list[TermBase] = []
    notes: list[str] = []
    goals = physical_goals(protocol)  # what the limits and the coverage regions aim at

    for level in protocol.prescription.levels:
        source = location.get(level.target)
        covered = _coverage_region(level.target, level.dose.gy, protocol, goals, structures, notes)
        terms.append(QuadraticUnderdose(structure=covered, dose=level.dose, weight=COVERAGE_WEIGHT, source=source))
        terms.append(QuadraticOverdose(structure=level.target, dose=level.dose, weight=HOT_SPOT_WEIGHT, source=source))
        shell = _falloff_shell(level.target, targets, protocol, structures)
        structures[shell.name] = shell.spec
        terms.append(
            QuadraticOverdose(
                structure=shell.name,
                dose=Dose(gy=FALLOFF_DOSE_FRACTION * level.dose.gy),
                weight=FALLOFF_WEIGHT,
                source=source,
            )
        )

    per_case: dict[int, str] = {}
    for written, goal in zip(protocol.goals, goals):
        first, said = len(terms), len(notes)
        alpha_beta = protocol.structures[goal.structure].alpha_beta if goal.isoeffective else None  # a mean's own term
        if goal is not written and not goal.isoeffective:
            notes.append(
                f"{written.structure} {written.text} ({written.source}): aimed at its physical equivalent "
                f"{goal.metric} {goal.comparator} {goal.threshold.text(goal.metric.unit)} in "
                f"{protocol.prescription.fractions} fractions"
            )
        try:
            terms.extend(_goal_terms(goal, volumes_cc, notes, alpha_beta))
        except CompileError as error:
            raise CompileError(said_at(protocol, written.source, f"goal {written.text!r}: {error}")) from None
        if written.limit_source is not None and len(terms) > first:  # not an index R50, measured, never aimed at
            # read from the table (`with_limits_at`), interpolated: two decimals here, the term holds the number
            limit = written.threshold.model_copy(update={"value": round(written.threshold.value, 2)}).text(
                written.metric.unit)
            notes.insert(said, f"{written.structure} {written.text} ({written.source}): aimed at {limit}, "
                               f"{written.limit_source}")
            per_case.update((index, f'{written.structure} "{written.text}" ({written.source}), {written.limit_source}')
                            for index in range(first, len(terms)))

    optimization = Optimization(terms=terms, solver=SolverOptions())
    return DerivedOptimization(structures, optimization, notes, per_case)


def physical_goals(protocol: Protocol) -> list[Goal]:
    """The protocol's goals with each EQD2 / BED goal as the physical goal it is on this plan's fractions;
    a mean stays isoeffective (the mean of an isoeffective dose is not the isoeffective dose of a mean),
    for a `mean_dose` in that quantity. A goal on this course alone has no term (terms see the composite)."""
    return [_physical(goal, protocol) if goal.isoeffective else goal for goal in protocol.goals]


def _physical(goal: Goal, protocol: Protocol) -> Goal:
    # no prior course and no lower bound on a mean here: `goals_only_issues` refused them before derivation
    if goal.metric.quantity == "Mean":
        return goal
    spec = protocol.structures[goal.structure]
    assert spec.alpha_beta is not None, "the protocol's consistency rules require alpha/beta for an isoeffective goal"
    fractions, alpha_beta = protocol.prescription.fractions, spec.alpha_beta.gy

    def physical(gy: float) -> float:  # to 0.1 mGy: far inside the 0.1% every derived limit aims inside
        return round(physical_gy(gy, fractions, alpha_beta, goal.quantity), 4)

    update: dict[str, Any] = {"quantity": "physical"}
    if goal.metric.is_dose:
        update["threshold"] = Threshold(value=physical(goal.threshold_value))
        if goal.variation is not None:
            update["variation"] = Threshold(value=physical(goal.variation.value))
    else:
        assert goal.metric.dose is not None, "an isoeffective V metric names its dose in Gy"
        update["metric"] = goal.metric.model_copy(update={"dose": Dose(gy=physical(goal.metric.dose.gy))})
    return goal.model_copy(update=update)


def capped_below(dose_gy: float, goals: list[Goal], targets: list[str]) -> list[str]:
    """Non-target structures with an upper goal that caps their voxels below `dose_gy`: a Max, or a D or V
    goal on a small volume (`SMALL_VOLUME_PERCENT`, `SMALL_VOLUME_CC`) whose dose is below it, among `goals`
    (the protocol's, in physical dose: `physical_goals`).

    Where such a structure overlaps a target at `dose_gy` the two cannot both be met voxel by voxel. A mean
    goal, or a D / V goal on a large volume, limits the structure as a whole, which the target's voxels in it
    may share: it is left out.
    """
    capped: list[str] = []
    for goal in goals:
        if goal.structure in targets or goal.is_lower_bound or goal.structure in capped:
            continue
        quantity = goal.metric.quantity
        if quantity == "Max":
            cap = goal.threshold_value
        elif quantity == "D" and goal.metric.volume is not None and _small(goal.metric.volume):
            cap = goal.threshold_value
        elif quantity == "V" and _small(Volume(value=goal.threshold_value, unit=goal.metric.unit)):  # type: ignore[arg-type]
            cap = goal.metric_dose_gy
        else:
            continue
        if cap is not None and cap < dose_gy:
            capped.append(goal.structure)
    return capped


def _small(volume: Volume) -> bool:
    """Whether an upper D / V goal on `volume` caps single voxels (see `SMALL_VOLUME_PERCENT`)."""
    return volume.value <= (SMALL_VOLUME_PERCENT if volume.unit == "%" else SMALL_VOLUME_CC)


def _coverage_region(
    target: str, dose_gy: float, protocol: Protocol, goals: list[Goal], structures: dict[str, StructureSpec],
    notes: list[str],
) -> str:
    """The structure whose underdose is penalized: the target less the organs capped below its dose
    (`capped_below`).

    The coverage penalty holds every voxel to the prescription, so kept within the slip
    after its step it would also hold the voxels an organ's goal needs colder, and a lower
    priority organ goal would find no room. Those voxels are covered by the target's own
    goals (a D95% lets 5% stay cold), which still count them; this is the planner's
    "PTV minus overlap" optimization structure. Without such an organ: the target itself.
    """
    targets = [level.target for level in protocol.prescription.levels]
    capped = capped_below(dose_gy, goals, targets)  # `goals`: `physical_goals`
    if not capped:
        return target
    name = _free_name(f"Coverage_{target}", protocol, structures)
    text = f"{_quoted(target)} - (" + " | ".join(_quoted(organ) for organ in capped) + ")"
    structures[name] = StructureSpec(role="other", color=COVERAGE_COLOR, expression=text)
    notes.append(
        f"coverage of {target} penalized on {name} = {text}: organs whose goals cap their voxels below "
        f"{format_number(dose_gy)} Gy (a Max, or a D / V goal on at most {format_number(SMALL_VOLUME_PERCENT)}% "
        f"or {format_number(SMALL_VOLUME_CC)} cc)"
    )
    return name


def _free_name(name: str, protocol: Protocol, taken: Mapping[str, Any]) -> str:
    while name in protocol.structures or name in taken:
        name = f"_{name}"
    return name


@dataclass(frozen=True)
class _Shell:
    name: str
    spec: StructureSpec


def _falloff_shell(target: str, targets: list[str], protocol: Protocol, taken: Mapping[str, Any]) -> _Shell:
    name = _free_name(f"Falloff_{target}", protocol, taken)
    others = [t for t in targets if t != target]
    text = f"ring({_quoted(target)}, {format_number(FALLOFF_INNER_MM)}mm, {format_number(FALLOFF_OUTER_MM)}mm)"
    if others:
        text += " - (" + " | ".join(_quoted(t) for t in others) + ")"
    return _Shell(name, StructureSpec(role="other", color=FALLOFF_COLOR, expression=text))


def _quoted(name: str) -> str:
    return str(parse_expression(f'"{name}"'))


def _goal_terms(
    goal: Goal, volumes_cc: Mapping[str, float] | None, notes: list[str], alpha_beta: Dose | None = None
) -> list[TermBase]:
    """The limit terms of one goal: hard ones, and penalties carrying the goal's priority (`alpha_beta`:
    the structure's, for a mean in EQD2 or BED)."""
    if goal.metric.is_index:  # a ratio of isodose volumes: no convex term measures it
        notes.append(
            f"{goal.structure} {goal.text} ({goal.source}): a plan-quality index is measured on the plan, not "
            "optimized (the target's coverage and the dose fall-off terms shape it)"
        )
        return []
    if goal.priority > 1:
        term = _limit(goal, goal.threshold_value, volumes_cc, hard=False, priority=goal.priority, alpha_beta=alpha_beta)
        return [] if term is None else [term]
    variation = goal.variation_value
    limit = variation if variation is not None else goal.threshold_value
    hard = _limit(goal, limit, volumes_cc, hard=True, alpha_beta=alpha_beta)
    if hard is None:
        notes.append(f"{goal.structure} {goal.text} ({goal.source}): always met, nothing to optimize")
        return []
    terms = [hard]
    if variation is not None:
        soft = _limit(goal, goal.threshold_value, volumes_cc, hard=False, priority=1, alpha_beta=alpha_beta)
        if soft is not None:
            terms.append(soft)
    return terms


def _limit(
    goal: Goal, threshold: float, volumes_cc: Mapping[str, float] | None, hard: bool, priority: int | None = None,
    alpha_beta: Dose | None = None,
) -> TermBase | None:
    """The limit kind that measures `goal` at `threshold` (its metric's unit); None if always met.

    A penalty (not `hard`) weighs `goal_weight(priority)` and carries `priority`. A goal still
    isoeffective here is a mean's upper bound (`physical_goals`), measured with `alpha_beta`.
    """
    metric, structure = goal.metric, goal.structure
    options: dict[str, Any] = {"structure": structure, "hard": hard, "source": goal.source}
    if not hard:
        assert priority is not None
        options["weight"] = goal_weight(priority)
        options["priority"] = priority
    upper = not goal.is_lower_bound
    quantity = metric.quantity
    if quantity == "Max":
        assert upper, "a hot spot wanted is refused before derivation (`goals_only_issues`)"
        return MaxDose(dose=_aim(threshold, upper=True), **options)
    if quantity == "Min":
        assert not upper, "a cold spot wanted is refused before derivation (`goals_only_issues`)"
        return MinDose(dose=_aim(threshold, upper=False), **options) if threshold > 0 else None
    if quantity == "Mean":
        if not upper and threshold == 0:
            return None
        if goal.isoeffective:
            options.update(quantity=goal.quantity, alpha_beta=alpha_beta)
        return MeanDose(**{"max" if upper else "min": _aim(threshold, upper)}, **options)
    if quantity in ("D", "DC"):
        volume = metric.volume
        assert volume is not None  # guaranteed by Metric
        if quantity == "DC":  # the coldest v is the complement of the hottest (whole - v)
            volume = _complement(volume, structure, volumes_cc, goal)
        if upper and quantity == "D":
            volume = _strictly_less(volume)
        return _dvh(threshold, volume, "upper" if upper else "lower", options)
    # V / CV: a volume at a dose; threshold is the volume in the metric's unit.
    dose_gy = goal.metric_dose_gy or 0.0
    volume = Volume(value=threshold, unit=metric.unit)  # type: ignore[arg-type]
    bound = "upper" if upper else "lower"
    if quantity == "CV":  # volume below the dose = whole minus the volume above it
        volume = _complement(volume, structure, volumes_cc, goal)
        bound = "lower" if upper else "upper"
    if bound == "lower" and dose_gy == 0:
        return None
    return _dvh(dose_gy, volume, bound, options)


def _dvh(dose_gy: float, volume: Volume, bound: str, options: dict[str, Any]) -> TermBase | None:
    if bound == "upper" and volume.unit == "%" and volume.value >= 100:
        return None  # the whole structure may exceed: always met
    if bound == "lower" and volume.value == 0:
        return None
    return DVH(dose=_aim(dose_gy, bound == "upper"), volume=volume, bound=bound, **options)


def _strictly_less(volume: Volume) -> Volume:
    """The volume of an upper limit that measures "D_v <= D": `LIMIT_TOLERANCE` of v inside it.

    D_v is the dose of the ceil(v n)-th hottest of n voxels, so D_v <= D allows fewer than
    v n voxels above D, one fewer than "V_D <= v" allows when v n is a whole number (D50% of
    200 voxels: 99 above, not 100).
    """
    return Volume(value=volume.value * (1.0 - LIMIT_TOLERANCE), unit=volume.unit)


def _aim(gy: float, upper: bool) -> Dose:
    """A goal's dose moved `LIMIT_TOLERANCE` inside the goal, rounded to a printable cGy/100."""
    return Dose(gy=round(gy * (1.0 - LIMIT_TOLERANCE if upper else 1.0 + LIMIT_TOLERANCE), 4))


def _complement(volume: Volume, structure: str, volumes_cc: Mapping[str, float] | None, goal: Goal) -> Volume:
    if volume.unit == "%":
        return Volume(value=max(0.0, 100.0 - volume.value), unit="%")
    if volumes_cc is None or structure not in volumes_cc:
        raise CompileError(
            f"its convex form needs {structure}'s volume from the case (derive the optimization with the case)"
        )
    return Volume(value=max(0.0, volumes_cc[structure] - volume.value), unit="cc")


def _prescription_locations(protocol: Protocol) -> dict[str, SourceLocation]:
    """Where each dose level is written (by target), with its path, as the loader recorded it.

    Terms derived from a dose level point at it in logs, diagnoses and compile errors. A protocol built in
    memory gets its file at line 0: no line rather than a guessed one (audit a3 F7).
    """
    file = protocol_file(protocol)
    return {level.target: level.source or SourceLocation(file, 0, 0) for level in protocol.prescription.levels}


def explain_yaml(protocol: Protocol, derived: DerivedOptimization) -> str:
    """The derivation as YAML to paste into the protocol: shells under `structures`, then `optimization`."""
    structures = {
        name: {"role": spec.role, "color": spec.color, "expression": str(spec.expression)}
        for name, spec in derived.structures.items()
    }
    terms = []
    for term in derived.optimization.terms:
        fields = term.model_dump(mode="json", exclude_none=True)
        if fields.get("hard") is True:
            del fields["hard"]  # hard is the default; a hard limit carries no weight
        # kind and structure first, as protocols are written; hard / weight / priority last
        last = ("hard", "weight", "priority")
        order = ["kind", "structure", *[k for k in fields if k not in ("kind", "structure", *last)]]
        terms.append({key: fields[key] for key in [*order, *last] if key in fields})
    steps = step_names(derived.optimization)
    header = [
        f"# Optimization derived by specc from the prescription and goals of {protocol.name!r}.",
        "# Add the structures below to the protocol's `structures:` and the `optimization:` section",
        "# at the top level; then tune the weights. Pasted, each penalty keeps its goal's `priority`,",
        "# so the plan is solved in the same lexicographic steps (docs/optimizer.md).",
        f"# Solved in steps: {'; '.join(f'{number}. {name}' for number, name in enumerate(steps, start=1))}; "
        "hard limits hold in every step.",
        "# Terms come from (file:line) [priority, step]:",
    ]
    for term in derived.optimization.terms:
        header.append(f"#   {term.label()}  <-  {term.source if term.source is not None else 'derived'}  "
                      f"[{step_of(term, steps)}]")
    for note in derived.notes:
        header.append(f"# note: {note}")
    if derived.per_case:
        header[:0] = textwrap.wrap(explain_warning(derived), 116, initial_indent="# ", subsequent_indent="#   ")
    body = _dumped({"structures": structures, "optimization": {"terms": []}}).removesuffix(" []\n") + "\n"
    for index, term in enumerate(terms):
        if index in derived.per_case:
            body += f"  # THIS CASE ONLY: from {derived.per_case[index]}; another case reads the table at its own volume\n"
        body += "".join(f"  {line}\n" for line in _dumped([term]).splitlines())
    return "\n".join(header) + "\n" + body


def explain_warning(derived: DerivedOptimization) -> str:
    """What a paste of `derived` would do to a cohort when some of its terms come from a goal whose limit is a table
    by a structure's volume (`DerivedOptimization.per_case`): hold this case's limits on every case."""
    count = len(derived.per_case)
    return (f"WARNING: {count} term{'s' if count > 1 else ''} below (marked THIS CASE ONLY) "
            f"{'come' if count > 1 else 'comes'} from goals whose limit is a table by a structure's volume, read at "
            "this case's volume: pasted into the protocol, an optimization section holds these limits on every "
            "case, whatever its volume, while the goals are judged by each case's own. For a protocol serving more "
            "than this case, leave the optimization to the goals (no optimization section: derived on each case) "
            "or set these terms per case")


def _dumped(data: Any) -> str:
    """`data` as the YAML a protocol is written in: keys in order, each term on one line where it fits."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True)


# The step of the terms without a priority in `step_names`. `specc.solve.priorities.group_steps` orders
# the steps the same way; the compile stage may not import the solve stage, so a test holds the two together.
UNRANKED_STEP = "terms without a priority (coverage, hot spots, fall-off)"


def step_names(optimization: Optimization) -> list[str]:
    """The lexicographic steps the terms of `optimization` are solved in, in order: priority 1, the terms
    without a priority, then priority 2, 3, ... (those that hold a penalty; a hard limit holds in every one)."""
    ranks = {term.priority for term in optimization.terms if not term.is_constraint}
    order = sorted(ranks, key=lambda priority: 1.5 if priority is None else priority)  # unranked: after 1, before 2
    return [UNRANKED_STEP if priority is None else f"priority {priority}" for priority in order]


def step_of(term: TermBase, steps: list[str]) -> str:
    """'priority 2, step 3' for a penalty, 'no priority, step 2' for one without; a hard limit holds in every step."""
    if term.is_constraint:
        return "hard, every step"
    name = UNRANKED_STEP if term.priority is None else f"priority {term.priority}"
    rank = "no priority" if term.priority is None else name
    return f"{rank}, step {steps.index(name) + 1}"
