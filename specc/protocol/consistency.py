"""Cross-field rules of a protocol, checked once every field is valid on its own.

Each rule returns `Issue`s located by model path, so all problems are reported together and
the loader can point each at its line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from specc.protocol.diagnostics import Issue, located_goals
from specc.protocol.goals import Goal, read_at, resolved_column, table_points
from specc.protocol.metrics import Metric
from specc.protocol.names import name_key
from specc.protocol.plausibility import plausible_doses, plausible_margins
from specc.protocol.structures import Crop, Difference, Intersection, StructureExpr, StructureRef, Union
from specc.protocol.suggest import did_you_mean
from specc.protocol.units import format_number
from specc.terms.base import TermBase

if TYPE_CHECKING:
    from specc.protocol.models import ProtocolDocument, StructureSpec


def consistency_issues(protocol: ProtocolDocument) -> list[Issue]:
    defined = protocol.structures
    return [
        *_prescription_targets(protocol, defined),
        *plausible_doses(protocol),
        *plausible_margins(protocol),
        *_expressions(protocol, defined),
        *_if_contoured(protocol),
        *_case_clashes(protocol),
        *_alias_clashes(protocol),
        *_parts(protocol),
        *_goal_structures(protocol, defined),
        *_index_goals(protocol),
        *_isoeffective_goals(protocol),
        *_dose_level_of(protocol, defined),
        *_unleveled_target_references(protocol),
        *_term_structures(protocol, defined),
        *_blocked_structures(protocol, defined),
        *_robust_structures(protocol, defined),
        *_conflicting_goals(protocol.goals),
        *_repeated_goals(protocol.goals),
        *_conflicting_terms(protocol),
    ]


def _undefined(name: str, defined: Mapping[str, StructureSpec], instead: str = "write") -> str:
    """The message for `name`, which names no structure; an alias (a name a case may give a structure,
    often a template's TG-263 list) is no protocol name, and the message says whose it is. Nor is a part
    (BrachialPlex_L of BrachialPlexus): the message says how to make it one, never "did you mean" the whole."""
    owner = next((structure for structure, spec in defined.items()
                  if name.casefold() in {alias.casefold() for alias in spec.aliases}), None)
    if owner is not None:
        return (f'undefined structure "{name}": it is an alias of "{owner}" (a name a case may give it); '
                f'{instead} "{owner}"')
    whole = next((structure for structure, spec in defined.items()
                  if name_key(name) in {name_key(part) for part in spec.parts}), None)
    if whole is not None:  # "did you mean" the whole would put a limit or margin for one side on both
        return (f'undefined structure "{name}": it is a part of "{whole}" (a case structure that, with its other '
                "parts, stands for it), not a structure of the protocol; a goal or margin on one side needs the side "
                f"defined as a structure of its own ({name}: {{role: oar}}), which reads the same case structure")
    return f'undefined structure "{name}"{did_you_mean(name, defined)}'


def _prescription_targets(protocol: ProtocolDocument, defined: Mapping[str, StructureSpec]) -> Iterator[Issue]:
    if protocol.prescription is None:  # a site template leaves it to the protocols extending it
        return
    seen: dict[str, int] = {}
    for index, level in enumerate(protocol.prescription.levels):
        loc = ("prescription", "levels", index, "target")
        spec = protocol.structures.get(level.target)
        if level.target in seen:
            yield Issue(loc, f'"{level.target}" already has a dose level (prescription.levels[{seen[level.target]}]): '
                             "a target has one dose level")
            continue
        seen[level.target] = index
        if spec is None:
            yield Issue(loc, _undefined(level.target, defined))
        elif spec.role != "target":
            yield Issue(loc, f'"{level.target}" has role {spec.role}; a dose level needs a structure with role: target')


def _expressions(protocol: ProtocolDocument, defined: Mapping[str, StructureSpec]) -> Iterator[Issue]:
    derived = {name: spec.expression for name, spec in protocol.structures.items() if spec.expression is not None}
    for name, expression in derived.items():
        for used in expression.names():
            if used not in protocol.structures:
                yield Issue(("structures", name, "expression"), _undefined(used, defined))
    reported: set[frozenset[str]] = set()
    for name in derived:
        cycle = _cycle_from(name, derived)
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            yield Issue(
                ("structures", name, "expression"),
                f"structure \"{name}\" is derived from itself: {' -> '.join([*cycle, cycle[0]])}",
            )


def _cycle_from(start: str, derived: dict) -> list[str] | None:
    """The names on a derivation cycle through `start`, or None."""
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        if name == start and path:
            return list(path)
        if name in path or name not in derived:
            return None
        path.append(name)
        for used in derived[name].names():
            if found := visit(used):
                return found
        path.pop()
        return None

    return visit(start)


def _if_contoured(protocol: ProtocolDocument) -> Iterator[Issue]:
    """`if_contoured` is for an organ a case may lack. A plan cannot go on without a structure its dose is
    prescribed to, that its forward segments block or that its setup-error check displaces; a derived
    structure is computed on every case (one that comes out empty has its own rule), never contoured."""
    needed: dict[str, str] = {}
    if protocol.delivery is not None and protocol.delivery.block is not None:
        needed.update((name, "delivery.block lists it: the forward segments are shaped around it")
                      for name in protocol.delivery.block)
    if protocol.robustness is not None and protocol.robustness.structures is not None:
        needed.update((name, "robustness.structures lists it: its goals are measured under setup errors")
                      for name in protocol.robustness.structures)
    for name, spec in protocol.structures.items():
        if not spec.if_contoured:
            continue
        loc = ("structures", name, "if_contoured")
        if spec.role == "target":
            yield Issue(loc, f'"{name}" is a target: a plan needs its targets on every case, so it cannot be '
                             "left out where it is not contoured")
        elif spec.expression is not None:
            yield Issue(loc, f'"{name}" is derived (`expression`): it is computed on every case, not contoured; '
                             "write `if_contoured` on the contoured structures it is made from")
        elif name in needed:
            yield Issue(loc, f'"{name}" must be on every case: {needed[name]}')


def _case_clashes(protocol: ProtocolDocument) -> Iterator[Issue]:
    """Two structures whose names differ only in case (or Unicode form): a case's structure matches both, so
    one organ would be read twice, often once under a goal the author meant for the other (a protocol's
    `opticnerve_l` beside its template's `OpticNerve_L`). Each clash points at the other name's place."""
    first: dict[str, str] = {}
    for name in protocol.structures:
        other = first.setdefault(name_key(name), name)
        if other != name:
            yield Issue(
                ("structures", name),
                f'structure "{name}" differs from structure "{other}" only in case (names are matched to a case\'s '
                f'ignoring case, so both would read one case structure): write "{other}", or rename one',
                related=("structures", other),
                at_key=True,
            )


def _alias_clashes(protocol: ProtocolDocument) -> Iterator[Issue]:
    """Names and aliases that name two structures; each clash also points at the other name's place,
    which may be in another file (a template's alias against a structure its protocol adds)."""
    owner: dict[str, tuple[str, tuple[str | int, ...]]] = {
        name_key(name): (name, ("structures", name)) for name in protocol.structures
    }
    for name, spec in protocol.structures.items():
        for index, alias in enumerate(spec.aliases):
            here = ("structures", name, "aliases", index)
            other, where = owner.setdefault(name_key(alias), (name, here))
            if other != name:
                yield Issue(
                    here,
                    f'alias "{alias}" already names structure "{other}" (names and aliases are matched ignoring case)',
                    related=where,
                )


def _parts(protocol: ProtocolDocument) -> Iterator[Issue]:
    """A part is a piece of its structure that a case contours under a name of its own. The structure's own
    name is none: a case structure of that name is the whole (matched before the parts), so the part is never
    read. Another structure's alias is none either: it is that whole structure under another name, so it put
    the cord inside a plexus (`parts: [Cord]`), read only from a case that happens to name the cord so.
    (A part is an alias of its own structure: `StructureSpec`. A part another structure is named by is a side
    the protocol limits on its own, which reads the same case structure, as documented.)"""
    aliases = {name_key(alias): (name, index)
               for name, spec in protocol.structures.items() for index, alias in enumerate(spec.aliases)}
    for name, spec in protocol.structures.items():
        for index, part in enumerate(spec.parts):
            loc = ("structures", name, "parts", index)
            owner, at = aliases.get(name_key(part), (name, 0))
            if name_key(part) == name_key(name):
                yield Issue(loc, f'part "{part}" is the structure\'s own name: a case structure of that name is the '
                                 f'whole "{name}" (read before its parts), never one of its parts; list the pieces')
            elif owner != name:
                yield Issue(
                    loc,
                    f'part "{part}" is an alias of structure "{owner}" (that whole structure under another name): '
                    f'as a part it would put "{owner}" inside "{name}", and only on a case that names it "{part}"; '
                    f'a part is a piece of "{name}" alone. To combine structures of the protocol, derive one '
                    f'(`expression: {owner} | ...`)',
                    related=("structures", owner, "aliases", at),
                )


def _goal_structures(protocol: ProtocolDocument, defined: Mapping[str, StructureSpec]) -> Iterator[Issue]:
    for name in dict.fromkeys(goal.structure for goal in protocol.goals):
        if name not in protocol.structures:
            yield Issue(("goals", name), _undefined(name, defined, "write its goals under"), at_key=True)
    for loc, goal in located_goals(protocol.goals):  # a limit by a structure's volume reads that structure's mask
        if goal.by_volume is None:
            continue
        name, at = goal.by_volume.structure, (*loc, goal.comparator, "by_volume_of")
        if name not in protocol.structures:
            yield Issue(at, _undefined(name, defined))
        elif (optional := _optional_in(name, protocol.structures)) is not None:
            made = "" if optional == name else f', empty on a case without "{optional}", which'
            yield Issue(at, f'"{name}"{made} is if_contoured (a case may lack it): on a case without it the goal '
                            "would have no limit, since its table is read at that volume. Read the table by the "
                            "volume of a structure every case has (a target, or a structure not if_contoured nor "
                            "empty without one)")


def _optional_in(name: str, structures: Mapping[str, StructureSpec], seen: frozenset[str] = frozenset()) -> str | None:
    """The `if_contoured` structure without which `name` is empty on a case (itself, or one it is derived from); None
    when every case has it. An absent organ is an empty mask to the expressions (`specc.compile.structures`): an
    intersection, crop, margin or ring of it is empty too, a union with another structure is not, nor a difference
    from it (`PTV - Liver` is the PTV)."""
    spec = structures.get(name)
    if spec is None or name in seen:  # undefined, or a derivation cycle: their own rules say so
        return None
    if spec.if_contoured:
        return name
    return None if spec.expression is None else _emptied_by(spec.expression, structures, seen | {name})


def _emptied_by(expression: StructureExpr, structures: Mapping[str, StructureSpec], seen: frozenset[str]) -> str | None:
    """The `if_contoured` structure without which `expression` has no voxel, or None."""
    if isinstance(expression, StructureRef):
        return _optional_in(expression.name, structures, seen)
    if isinstance(expression, Union):  # empty only where both sides are
        left = _emptied_by(expression.left, structures, seen)
        return left if left is not None and _emptied_by(expression.right, structures, seen) is not None else None
    if isinstance(expression, Difference):  # what is subtracted only removes voxels
        return _emptied_by(expression.left, structures, seen)
    if isinstance(expression, Intersection):
        return _emptied_by(expression.left, structures, seen) or _emptied_by(expression.right, structures, seen)
    if isinstance(expression, Crop):  # nothing is inside an absent boundary
        return _emptied_by(expression.operand, structures, seen) or _emptied_by(expression.boundary, structures, seen)
    return _emptied_by(expression.operand, structures, seen)  # expand, shrink, ring


def _index_goals(protocol: ProtocolDocument) -> Iterator[Issue]:
    """A plan-quality index (CI, PCI, GI, R50, HI) is measured against a target's own prescription."""
    if protocol.prescription is None:  # a site template: the protocol extending it is checked
        return
    targets = [level.target for level in protocol.prescription.levels]
    for loc, goal in located_goals(protocol.goals):
        if goal.metric.is_index and goal.structure not in targets:
            yield Issue(
                loc,
                f"{goal.metric} is an index of a prescription target ({', '.join(targets)}): "
                f'"{goal.structure}" has no dose level of its own',
            )


def _dose_level_of(protocol: ProtocolDocument, defined: Mapping[str, StructureSpec]) -> Iterator[Issue]:
    """`dose_level_of` names a structure with a dose level, on a structure without one of its own (its own level is
    what its % refers to). Which structures have levels a site template leaves to its protocols: checked there."""
    levels = protocol.prescription
    for name, spec in protocol.structures.items():
        named, loc = spec.dose_level_of, ("structures", name, "dose_level_of")
        if named is None:
            continue
        if named not in defined:
            yield Issue(loc, _undefined(named, defined))
        elif levels is None:
            continue
        elif (own := levels.level_for(name)) is not None:
            yield Issue(loc, f"{name} has its own dose level ({format_number(own.dose.gy)} Gy, prescription.levels["
                             f"{levels.levels.index(own)}]), which its % of the prescription refers to: leave out "
                             "dose_level_of")
        elif levels.level_for(named) is None:
            with_levels = ", ".join(level.target for level in levels.levels)
            yield Issue(loc, f'"{named}" has no dose level, so it gives {name}\'s % no reference: name a structure '
                             f"with one ({with_levels})")


def _unleveled_target_references(protocol: ProtocolDocument) -> Iterator[Issue]:
    """A goal in % of the prescription (a relative threshold or variation, a V95%-style metric) on a target with
    no dose level and no `dose_level_of`, where the levels differ. % then refers to the highest level
    (`Prescription.reference_level`, the "Bladder V100%" convention for organs), so an elective PTV whose level line
    was forgotten had its "D95% >= 100%" planned as a hard limit at the boost's dose. With one dose level (or
    several of one dose) the reference is unambiguous: the CTV or GTV of the boost beside its PTV legitimately
    states its coverage in % of the one prescription. With levels of different doses no rule can tell which the
    target's % means: an error at the goal's line, not a warning, since the plan the goal derives would be wrong,
    not merely unusual. The message offers first what says which level is meant and nothing more (`dose_level_of`),
    then the goal in Gy, and says what a dose level of its own would add besides (review s19/r1 F3)."""
    prescription = protocol.prescription
    if prescription is None or len({level.dose.gy for level in prescription.levels}) < 2:
        return
    highest = max(prescription.levels, key=lambda level: level.dose.gy)  # what `reference_level` gives
    levels = ", ".join(f"{level.target} {format_number(level.dose.gy)} Gy" for level in prescription.levels)
    targets = " or ".join(level.target for level in prescription.levels)
    for loc, goal in located_goals(protocol.goals):
        spec = protocol.structures.get(goal.structure)
        if spec is None or spec.role != "target" or not goal.needs_reference or spec.dose_level_of is not None:
            continue
        if prescription.level_for(goal.structure) is not None:
            continue
        yield Issue(
            loc,
            f'"{goal.text}": {goal.structure} is a target (role: target) with no dose level, so its % would refer '
            f"to the highest, {highest.target}'s {format_number(highest.dose.gy)} Gy, of several ({levels}): say "
            f"which level its % refers to (structures.{goal.structure}.dose_level_of: {targets}), or state the goal "
            f"in Gy; a target prescribed a dose of its own needs its dose level (prescription.levels: {{target: "
            f"{goal.structure}, dose: ...}}), which also makes it a prescription: an RT Plan dose reference, a "
            "target-index row and, where the optimization is derived from the goals, its own coverage, hot-spot and "
            "fall-off terms",
        )


def _isoeffective_goals(protocol: ProtocolDocument) -> Iterator[Issue]:
    """A goal in EQD2 or BED needs its tissue's alpha/beta and, on a composite, the prior course's fractions."""
    prior = protocol.prescription.prior if protocol.prescription is not None else None
    asked = False
    for loc, goal in located_goals(protocol.goals):
        if goal.course == "this" and protocol.prescription is not None and prior is None:
            yield Issue(
                loc,
                f'"{goal.text}" is on this course alone, which only a protocol with a prior course '
                "(`prescription.prior`) tells apart from the whole dose: remove \"this course\"",
            )
        if not goal.isoeffective:
            continue
        asked = asked or goal.course == "composite"  # one on this course alone never converts the prior dose
        spec = protocol.structures.get(goal.structure)
        # a site template may leave the ratio to the protocols that extend it (checked once merged)
        if spec is not None and spec.alpha_beta is None and protocol.prescription is not None:
            yield Issue(
                loc,
                f'"{goal.text}" is in {goal.quantity}, which needs the alpha/beta of {goal.structure}: add '
                f'`alpha_beta` to structures.{goal.structure} (e.g. "3 Gy" for late-responding tissue)',
            )
    for index, term in enumerate(protocol.optimization.terms if protocol.optimization is not None else []):
        quantity, ratio = getattr(term, "quantity", "physical"), getattr(term, "alpha_beta", None)
        if quantity == "physical":
            continue
        loc = ("optimization", "terms", index, "quantity")
        if prior is not None:
            yield Issue(loc, f"a {term.kind} in {quantity} on a composite would convert the summed dose in this plan's "
                             "fractions: each course must be converted from its own; not supported")
        spec = protocol.structures.get(term.structures()[0])
        if spec is not None and spec.alpha_beta is not None and ratio is not None and ratio.gy != spec.alpha_beta.gy:
            yield Issue(("optimization", "terms", index, "alpha_beta"),
                        f"alpha_beta {ratio} differs from the {spec.alpha_beta} of structures.{term.structures()[0]}")
    if asked and prior is not None and prior.fractions is None:
        yield Issue(
            ("prescription", "prior"),
            "goals in EQD2 or BED sum each course's isoeffective dose from its own dose per fraction: "
            "give the prior course's `fractions`",
        )


def _term_structures(protocol: ProtocolDocument, defined: Mapping[str, StructureSpec]) -> Iterator[Issue]:
    if protocol.optimization is None:
        return
    for index, term in enumerate(protocol.optimization.terms):
        for name in term.structures():
            if name not in protocol.structures:
                yield Issue(("optimization", "terms", index, *_field_holding(term, name)), _undefined(name, defined))


def _blocked_structures(protocol: ProtocolDocument, defined: Mapping[str, StructureSpec]) -> Iterator[Issue]:
    if protocol.delivery is None or protocol.delivery.block is None:
        return
    for index, name in enumerate(protocol.delivery.block):
        spec = protocol.structures.get(name)
        if spec is None:
            yield Issue(("delivery", "block", index), _undefined(name, defined))
        elif spec.role == "target":
            yield Issue(("delivery", "block", index), f'"{name}" is a target: forward segments are shaped to it, not blocked')


def _robust_structures(protocol: ProtocolDocument, defined: Mapping[str, StructureSpec]) -> Iterator[Issue]:
    if protocol.robustness is None or protocol.robustness.structures is None:
        return
    with_goals = {goal.structure for goal in protocol.goals}
    first: dict[str, int] = {}  # name -> where the list has it first
    for index, name in enumerate(protocol.robustness.structures):
        if name in first:  # its goals are checked once: a second entry only repeats the name in notes
            yield Issue(("robustness", "structures", index), f'"{name}" is listed twice: its goals are checked once',
                        related=("robustness", "structures", first[name]))
            continue
        first[name] = index
        if name not in protocol.structures:
            yield Issue(("robustness", "structures", index), _undefined(name, defined))
        elif name not in with_goals and protocol.prescription is not None:  # a template's goals may come later
            yield Issue(("robustness", "structures", index), f'"{name}" has no goal to measure under setup errors')


def _hot_rank(metric: Metric) -> tuple[str, float] | None:
    """Where a dose metric sits on the DVH, as volume counted from the hottest end."""
    if metric.quantity == "Max":
        return ("%", 0.0)
    if metric.quantity == "Min":
        return ("%", 100.0)
    if metric.volume is None:
        return None
    if metric.quantity == "D":
        return (metric.volume.unit, metric.volume.value)
    if metric.volume.unit == "%":  # DC x% is the dose to the hottest (100 - x)%
        return ("%", 100.0 - metric.volume.value)
    return None


def _never_above(low: Metric, high: Metric) -> bool:
    """Whether `low` <= `high` holds for every dose distribution (both dose metrics)."""
    if low == high or low.quantity == "Min" or high.quantity == "Max":
        return True
    low_rank, high_rank = _hot_rank(low), _hot_rank(high)
    return bool(low_rank and high_rank and low_rank[0] == high_rank[0] and low_rank[1] >= high_rank[1])


def _cannot_both_hold(lower: Goal, upper: Goal) -> bool:
    """Whether a lower-bound goal and an upper-bound goal on one structure exclude each other."""
    if lower.quantity != upper.quantity or lower.course != upper.course:  # not one dose, not one scale
        return False
    minimum, maximum = lower.threshold_value, upper.threshold_value
    strict = lower.comparator == ">" or upper.comparator == "<"
    too_high = minimum > maximum or (strict and minimum == maximum)
    if lower.metric.is_dose and upper.metric.is_dose and too_high and _never_above(lower.metric, upper.metric):
        return True
    if lower.metric.is_index and lower.metric == upper.metric:  # one ratio, bounded from both sides
        return too_high
    if lower.metric.quantity == upper.metric.quantity == "V" and lower.metric.unit == upper.metric.unit:
        # The volume above a dose shrinks as the dose grows: V(high dose) <= V(low dose).
        return too_high and (lower.metric_dose_gy or 0.0) >= (upper.metric_dose_gy or 0.0)
    return _excluded_across_forms(lower, upper)


def _at_least(goal: Goal) -> tuple[str, float, float] | None:
    """A lower-bound goal as "at least VOLUME (unit, value) receives at least DOSE Gy", when it says that.

    D_v >= d and V_d >= v say the same (D_v is the highest dose some v receives); a minimum is the
    whole structure's; DC x% is D (100 - x)%."""
    metric = goal.metric
    if metric.quantity == "V":
        if goal.threshold_value == 0 and goal.comparator == ">=":  # "at least nothing": always met
            return None
        return (metric.unit, goal.threshold_value, goal.metric_dose_gy or 0.0)
    rank = _hot_rank(metric) if metric.quantity in ("D", "DC", "Min") else None
    return None if rank is None else (rank[0], rank[1], goal.threshold_value)


def _excluded_across_forms(lower: Goal, upper: Goal) -> bool:
    """Goals in different forms that no dose meets together, found by what each implies (strict
    inequalities only, so that a goal met exactly at its threshold is never called a conflict):

    - "at least a receives m" against D_b <= M (Max: b = 0) with m > M and a >= b;
    - against V_d <= p with m >= d and a > p;
    - against Mean <= M with a (in %) of the structure at m: a m / 100 > M."""
    claim = _at_least(lower)
    if claim is None:
        return False
    unit, volume, dose = claim
    metric, limit = upper.metric, upper.threshold_value
    if metric.quantity == "Mean":
        return unit == "%" and volume / 100.0 * dose > limit
    if metric.quantity == "V":
        return metric.unit == unit and dose >= (upper.metric_dose_gy or 0.0) and volume > limit
    rank = _hot_rank(metric) if metric.quantity in ("D", "DC", "Max") else None
    return rank is not None and rank[0] == unit and dose > limit and volume >= rank[1]


def _resolved(goal: Goal) -> bool:
    """Whether the goal's doses are known (not so for % of a prescription a template leaves out, nor for a limit
    read from a table by volume on each case)."""
    return not goal.per_case and (goal.reference_dose is not None or not goal.needs_reference)


def _readable(goal: Goal) -> bool:
    """Whether the goal's limit is known, or, for a table by a structure's volume, known at each of its rows."""
    return _resolved(goal) or (goal.by_volume is not None and (goal.reference_dose is not None
                                                                or not goal.needs_reference))


def _conflicting_goals(goals: list[Goal]) -> Iterator[Issue]:
    """A minimum goal above a maximum goal on one structure. A limit read from a table by a structure's volume is
    compared row by row (between two rows it is the straight line between them): above the other at every row,
    no case can meet both; at some rows, no case of those volumes can, and that too is refused, naming the rows."""
    comparable = [(index, goal) for index, goal in enumerate(goals) if _readable(goal)]
    for index, lower in comparable:
        if not lower.is_lower_bound:
            continue
        for _, upper in comparable:
            if upper.structure != lower.structure or upper.is_lower_bound:
                continue
            message = _conflict(lower, upper)
            if message is not None:
                yield Issue(("goals", index), message)
                break


def _conflict(lower: Goal, upper: Goal) -> str | None:
    """Why no dose meets both `lower` and `upper` (on every case, or on the cases of some table rows), or None."""
    conflict = f'minimum goal "{lower}" is above maximum goal "{upper}" on {lower.structure}'
    if lower.by_volume is None and upper.by_volume is None:
        return f"{conflict}: no dose can meet both" if _cannot_both_hold(lower, upper) else None
    points = table_points(lower, upper)
    clashing = [point for point in points if _cannot_both_hold(*(read_at(goal, point) for goal in (lower, upper)))]
    if not clashing:
        return None
    if len(clashing) == len(points):
        return f"{conflict} at every row of the table: no dose can meet both, on any case"
    if len(clashing[0]) == 1:  # one structure's volume: the rows, and the volumes around them where both clash
        (name,) = clashing[0]
        volumes = [point[name] for point in points]
        spans = ", ".join(f"{format_number(low)}-{format_number(high)} cc" if low != high
                          else f"{format_number(low)} cc" for low, high in _clashing_spans(lower, upper, name, volumes))
        rows = ", ".join(format_number(point[name]) for point in clashing)
        where = f"where {name} is {spans} (the table's {rows} cc row{'s' if len(clashing) > 1 else ''})"
    else:
        where = "at the table rows " + "; ".join(
            " with ".join(f"{name} {format_number(volume)} cc" for name, volume in point.items()) for point in clashing)
    return (f"{conflict} {where}: no dose can meet both there, so a case of such a volume could never be planned; "
            "make the limits meet at every row")


def _clashing_spans(lower: Goal, upper: Goal, name: str, volumes: list[float]) -> list[tuple[float, float]]:
    """The volumes of `name` (from the first row to the last) where `lower` and `upper` clash, as spans to 0.01 cc:
    between two rows a limit is the straight line between them, so a clash begins or ends between two rows where one
    clashes and the other does not, found by halving."""
    def clash(volume: float) -> bool:
        return _cannot_both_hold(read_at(lower, {name: volume}), read_at(upper, {name: volume}))

    def edge(clear: float, clashing: float) -> float:  # the clashing volume nearest to `clear`, to 0.01 cc
        while abs(clashing - clear) > 0.005:
            middle = (clear + clashing) / 2
            clear, clashing = (clear, middle) if clash(middle) else (middle, clashing)
        return round(clashing, 2)

    spans: list[tuple[float, float]] = []
    start: float | None = None
    for index, volume in enumerate(volumes):
        if clash(volume) and start is None:
            start = volume if index == 0 else edge(volumes[index - 1], volume)
        elif not clash(volume) and start is not None:
            spans.append((start, edge(volume, volumes[index - 1])))
            start = None
    if start is not None:
        spans.append((start, volumes[-1]))
    return spans


def _limit_key(goal: Goal) -> tuple[object, ...]:
    """What a goal limits: structure, metric, side, limit (resolved where it can be: "D95% >= 100%" of a
    78 Gy level is "D95% >= 78 Gy"; a table by a structure's volume as its rows, each limit resolved so) and the
    dose it is on; not its priority or variation."""
    if goal.by_volume is not None and _readable(goal):
        threshold: object = ("table", goal.by_volume.structure, goal.by_volume.volumes_cc,
                             resolved_column(goal, goal.by_volume.limits))
    else:
        threshold = goal.threshold_value if _resolved(goal) else goal.threshold or goal.by_volume
    return (goal.structure, goal.metric, goal.comparator, threshold, goal.quantity, goal.course)


def _variation_key(goal: Goal) -> object:
    """A goal's acceptable variation as `_repeated_goals` compares it: a table's column resolved, row by row."""
    if goal.by_volume is not None and _readable(goal):
        return resolved_column(goal, goal.by_volume.variations)
    return goal.variation


def _repeated_goals(goals: list[Goal]) -> Iterator[Issue]:
    """A goal stating the limit of an earlier goal of its structure, each pointing at the other.

    Written twice alike it is a copy-paste slip: each copy is judged and counted, and a goals-only
    protocol derives a penalty from each (twice the weight). At another priority or with another
    variation it is two answers to one question. Templates never make one: a protocol's goal of a
    template goal's metric and side replaces the template's (`specc.protocol.templates`)."""
    first: dict[tuple[object, ...], tuple[tuple[str | int, ...], Goal]] = {}
    for loc, goal in located_goals(goals):
        where, other = first.setdefault(_limit_key(goal), (loc, goal))
        if where == loc:
            continue
        if goal.priority != other.priority:
            message = (f'"{goal.text}" states the limit of "{other.text}" on {goal.structure} again, at priority '
                       f"{goal.priority} where that one is priority {other.priority}: which is meant? keep one")
        elif _variation_key(goal) != _variation_key(other):
            message = (f'"{goal.text}" states the limit of "{other.text}" on {goal.structure} again, with another '
                       "acceptable variation: which is meant? keep one")
        else:
            message = (f'"{goal.text}" repeats "{other.text}" on {goal.structure}: a goal written twice is judged and '
                       "counted twice (and a goals-only protocol optimizes it with twice the weight): remove one")
        yield Issue(loc, message, related=where)


def _conflicting_terms(protocol: ProtocolDocument) -> Iterator[Issue]:
    """Hard terms whose per-voxel dose bounds on one structure leave no dose between them."""
    if protocol.optimization is None:
        return
    terms = list(enumerate(protocol.optimization.terms))
    for index, low in terms:
        lower = low.dose_bounds()[0]
        if lower is None:
            continue
        for other, high in terms:
            upper = high.dose_bounds()[1]
            if other == index or upper is None or lower.gy <= upper.gy:
                continue
            shared = [name for name in low.structures() if name in high.structures()]
            if shared:
                yield Issue(
                    ("optimization", "terms", index, *_field_holding(low, lower)),
                    f"{low.kind} {lower} on {shared[0]} is above {high.kind} {upper} "
                    f"(optimization.terms[{other}]): no dose can meet both",
                )
                break


def _field_holding(term: TermBase, value: object) -> tuple[str, ...]:
    """The name of the term's field holding `value` (to point at its line), if one does."""
    field = next((name for name in type(term).model_fields if getattr(term, name) == value), None)
    return (field,) if field else ()
