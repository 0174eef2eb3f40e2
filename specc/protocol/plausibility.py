"""Unit slips: doses that every unit allows but no course gives.

`Dose` accepts 5000 Gy and 2 Gy alike; only the prescription tells which is a slip. A dose
level outside the doses per fraction external-beam courses give is one (a per-fraction dose
written as the total, or cGy written as Gy); so is a level far below the highest (in a short
course a dose per fraction written as the total lies inside that window: 6.3 Gy in 5 fractions),
a target's own goal far from its level (its threshold and variation, physical or isoeffective),
and any dose a goal states (a threshold, a variation, the dose of a V or CV metric) far above
the highest level: an organ limit of "Max <= 7500 Gy" is 7500 cGy written as Gy, and no plan
can fail it, so it would pass every time and limit nothing. An optimization term's doses are held to the
same rules (in the optimizer such a limit is what would have protected the organ). Setup errors have their bounds too
(`setup_error_slip`): "10 cm" written for "10 mm" would have a plan chase a target shifted 10 cm.
So do the margins of derived structures (`plausible_margins`): `expand(Prostate, 6cm)` for 6 mm makes
a 2 L PTV of a 35 cc prostate, which every later stage would plan and judge as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from specc.protocol.diagnostics import Issue, located_goals
from specc.protocol.isoeffect import isoeffective_gy
from specc.protocol.structures import Expand, Ring, Shrink, Union, subexpressions
from specc.protocol.units import Dose, format_number
from specc.terms.dose_roles import DoseRole, dose_roles

if TYPE_CHECKING:
    from specc.protocol.goals import Goal
    from specc.protocol.isoeffect import DoseQuantity
    from specc.protocol.models import DoseLevel, ProtocolDocument
    from specc.terms.base import TermBase

# Systematic and random setup errors of immobilized patients are a few mm (van Herk 2004: 1-5 mm SD; frameless,
# breast and abdomen up to 10-15 mm), rotations a few degrees (1-3 deg; a roll of 10 deg is a re-setup).
# Larger values are "10 cm" for "10 mm", or "90 deg"; motion beyond them is an internal margin's (an ITV).
LARGEST_SETUP_ERROR_MM = 30.0
LARGEST_ROTATION_DEG = 15.0
_WRITTEN = re.compile(r"\s*(\S+?)\s*([A-Za-z]+)\s*")  # a validated length or angle: its number and unit


# CTV-to-PTV margins are a few mm to 2 cm (van Herk's 2.5 Sigma + 0.7 sigma; a free-breathing lung 15-20 mm), PRV
# margins 3-5 mm; the widest a clinic writes are GTV-to-CTV margins along an extremity sarcoma's muscle compartment,
# 3-5 cm (RTOG 0630, NCIC SR2). An expand or shrink beyond them is "6cm" written for "6mm"; a region that far around
# a structure (a fall-off shell, a normal-tissue rind) is a ring's, whose distances are not bounded here.
LARGEST_MARGIN_MM = 50.0


def setup_error_slip(field: str, written: Sequence[str], sizes: Sequence[float]) -> str | None:
    """Why a robustness error (`field`: setup_error, random_error or rotation_error) reads as a unit slip, or None.

    `sizes` are its values along x, y, z in mm or deg, `written` each as the protocol wrote it ("5 cm"), which the
    message quotes: the user wrote cm where mm was meant, not the 50 mm specc reads."""
    largest, unit = (LARGEST_ROTATION_DEG, "deg") if field == "rotation_error" else (LARGEST_SETUP_ERROR_MM, "mm")
    widest = max(range(len(sizes)), key=lambda axis: sizes[axis])
    if sizes[widest] <= largest:
        return None
    number, written_unit = _WRITTEN.fullmatch(written[widest]).groups()  # type: ignore[union-attr]  (validated)
    shown, slip = f"{number} {written_unit}", "a typo?"
    if written_unit == "cm":
        shown += f" ({format_number(sizes[widest])} mm)"
        slip = f'"{number} cm" written for "{number} mm" (mm written as cm), or a typo?'
    return (
        f"{field} {shown} is beyond any patient setup ({format_number(largest)} {unit} at most here): {slip} "
        "Motion beyond it is an internal margin's (ITV), not a setup error's"
    )


def plausible_margins(protocol: ProtocolDocument) -> Iterator[Issue]:
    """Derived structures whose expand or shrink margin is beyond any clinical margin (`LARGEST_MARGIN_MM`): the
    first such node of each, at its expression."""
    for name, spec in protocol.structures.items():
        if spec.expression is None:
            continue
        for node in subexpressions(spec.expression):
            if isinstance(node, (Expand, Shrink)) and max(node.margins_mm) > LARGEST_MARGIN_MM:
                yield Issue(("structures", name, "expression"), _margin_slip(node))
                break


def _margin_slip(node: Expand | Shrink) -> str:
    """What was written, the bound, and what it may have meant: "6cm" for "6mm" where the margin was written in cm
    (never guessed from its digits: "60mm" is no unit slip), and, for an expand, the region that far around the
    structure as a ring (whose distances are the same along every axis)."""
    axis = max(range(3), key=lambda index: node.margins_mm[index])
    widest = node.margins_mm[axis]
    written = node.written[axis] if node.written is not None else f"{format_number(widest)}mm"
    number, unit = _WRITTEN.fullmatch(written).groups()  # type: ignore[union-attr]  (a parsed margin)
    shown = f'"{written}"' + (f" ({format_number(widest)} mm)" if unit == "cm" else "")
    slip = "a typo?"
    if unit == "cm" and widest / 10 <= LARGEST_MARGIN_MM:  # read as mm, the number would be a margin
        slip = f'"{number}cm" written for "{number}mm" (mm written as cm), or a typo?'
    meant = ""
    if isinstance(node, Expand):  # a region that far around the structure is a ring's, whose reach is not bounded
        region = Union(node.operand, Ring(node.operand, 0.0, widest))
        meant = f" If the region within {format_number(widest)} mm of {node.operand} is meant, it is {region}"
        if len(set(node.margins_mm)) > 1:
            along = ", ".join(f"{name} {format_number(mm)} mm" for name, mm in zip("xyz", node.margins_mm))
            meant += (f", which reaches {format_number(widest)} mm along every axis: a ring has one distance for all "
                      f"three, and no ring reaches {along} as written")
    return (
        f"`{node}`: its margin {shown} is beyond any CTV-to-PTV, GTV-to-CTV or PRV margin "
        f"({format_number(LARGEST_MARGIN_MM)} mm at most here): {slip}{meant}"
    )


# Gy per fraction that external-beam courses give: low-dose total-body irradiation at 0.1 Gy up to
# functional radiosurgery (trigeminal neuralgia, 70-90 Gy x 1). Outside, a dose level is a unit slip:
# a per-fraction dose written as the total (2 Gy in 25 fractions), or cGy written as Gy (5000 Gy).
PLAUSIBLE_GY_PER_FRACTION = (0.1, 100.0)
# A target's own goal in Gy this far from its dose level (a factor) is a unit slip too, and so is any
# dose a goal states this far above the highest dose level (organs are limited below the targets' dose,
# hot spots reach some 1.5 times it; cGy written as Gy is 100 times), and a dose level this far below
# the highest (a simultaneous boost's elective level is some 0.7-0.8 of the boost's).
PLAUSIBLE_GOAL_TO_LEVEL = 4.0
# The highest total dose external-beam courses give (functional radiosurgery 90 Gy x 1, dose-escalated prostate
# 81 Gy): a level read as a dose per fraction is offered as a slip only where its total over the course stays below.
LARGEST_COURSE_GY = 100.0


def plausible_doses(protocol: ProtocolDocument) -> Iterator[Issue]:
    """Dose levels and goal and term doses no course gives: the slips `Dose` alone cannot see (every unit is valid)."""
    statings = _statings(protocol)
    if protocol.prescription is None:  # a site template: the protocols extending it are checked against their levels
        yield from _template_doses(statings)
        return
    yield from _levels(protocol)
    yield from _levels_far_below(protocol)
    yield from _target_doses(protocol, statings)
    yield from _doses_above(protocol, statings)


# A model path, as an `Issue` points at a goal, a term or one of its fields.
_Loc = tuple[str | int, ...]
# The end of every term's unit-slip message, as "goals are totals over the course" ends a goal's.
_TERM_TOTALS = "a term's doses are totals over the course"


@dataclass(frozen=True)
class _StatedDose:
    """A dose in Gy that a goal or a term states: what it is as a message names it ("" for a goal's threshold and for a
    term's one dose; "its variation", "its max", "the dose of V20Gy"), and the path its issue points at (a term's
    names the field)."""

    what: str
    gy: float
    loc: _Loc


@dataclass(frozen=True)
class _Stating:
    """A goal or an optimization term as the unit-slip rules read it: one shape for both, so that each rule is one
    loop, the goals' and the terms' issues differing only in what this holds. How a message quotes it, the dose its
    doses are in (course, quantity, alpha/beta), the target level it is on, and its doses by the rule holding them."""

    quoted: str  # '"D0.03cc <= 45 Gy"', '"max_dose SpinalCord <= 45 Gy"'
    noun: str  # "goal" or "term"
    this_course: bool  # its doses are on this course alone ("(this course)"; a term is judged on the composite)
    quantity: DoseQuantity
    alpha_beta: Dose | None  # what converts a level into `quantity`; None where none is given
    level: DoseLevel | None  # the target level it is held to from both sides (`_target_level`); None off a target
    own: tuple[_StatedDose, ...]  # the doses held to `level` from both sides (`_target_doses`)
    others: tuple[_StatedDose, ...]  # the doses held below the highest level (`_doses_above`)

    @property
    def unit(self) -> str:
        """The unit its doses are written in: "Gy", "Gy EQD2"."""
        return "Gy" if self.quantity == "physical" else f"Gy {self.quantity}"

    @property
    def totals(self) -> str:
        """The end of each unit-slip message about it: the doses it states are totals over the course."""
        return "goals are totals over the course" if self.noun == "goal" else _TERM_TOTALS

    def subject(self, dose: _StatedDose) -> str:
        """It as a message about `dose` quotes it: the goal or term, and which of its doses where `dose` has a name."""
        return self.quoted + (f": {dose.what} ({format_number(dose.gy)} {self.unit})" if dose.what else "")


def _statings(protocol: ProtocolDocument) -> list[_Stating]:
    """Each goal, then each optimization term that states a dose, as the unit-slip rules read it."""
    goals = [_goal_stating(protocol, loc, goal) for loc, goal in located_goals(protocol.goals)]
    terms = protocol.optimization.terms if protocol.optimization is not None else []
    stated = [(("optimization", "terms", index), term, doses) for index, term in enumerate(terms)
              if (doses := _term_doses(term))]
    return [*goals, *(_term_stating(protocol, loc, term, doses) for loc, term, doses in stated)]


def _goal_stating(protocol: ProtocolDocument, loc: _Loc, goal: Goal) -> _Stating:
    """A goal: on its course, in its quantity with its structure's alpha/beta; on a target, the threshold and variation
    of its dose metric are held to the target's level (`_goal_doses`), every other dose it states below the highest."""
    spec = protocol.structures.get(goal.structure)
    level = _target_level(protocol, goal.structure)
    own, others = _held_to(level, *_goal_doses(goal, loc))
    return _Stating(f'"{goal.text}"', "goal", goal.course == "this", goal.quantity,
                    spec.alpha_beta if spec is not None else None, level, own, others)


def _held_to(
    level: DoseLevel | None, at_level: tuple[_StatedDose, ...], below: tuple[_StatedDose, ...]
) -> tuple[tuple[_StatedDose, ...], tuple[_StatedDose, ...]]:
    """A goal's or term's doses as `_Stating.own` and `_Stating.others`: on a target (`level`), those a target's
    goal or term holds to its level from both sides (`at_level`) and the rest; off a target there is no level to hold
    a dose to from both sides, so every dose is only held below the highest level."""
    return (at_level, below) if level is not None else ((), (*at_level, *below))


def _goal_doses(goal: Goal, loc: _Loc) -> tuple[tuple[_StatedDose, ...], tuple[_StatedDose, ...]]:
    """The doses in Gy a goal states: a dose metric's threshold and variation (a target's own goal holds them to its
    level); the others, a table's limits and variations row by row, the limits first (each a limit some case is judged
    by), or a V or CV metric's dose. A percentage of the prescription is none: it cannot be in the wrong unit; nor is a
    limit of 0 Gy, which no unit makes another dose."""
    if goal.metric.is_dose and goal.by_volume is not None:
        table = goal.by_volume
        if table.relative:
            return (), ()
        rows = [(f"its table's {format_number(volume)} cc row", gy)
                for volume, gy in zip(table.volumes_cc, table.limits)]
        rows += [(f"its table's {format_number(volume)} cc row's variation", gy)
                 for volume, gy in zip(table.volumes_cc, table.variations or ())]
        return (), tuple(_StatedDose(what, gy, loc) for what, gy in rows)
    if goal.metric.is_dose:
        limits = (("", goal.threshold), ("its variation", goal.variation))
        return tuple(_StatedDose(what, limit.value, loc) for what, limit in limits
                     if limit is not None and not limit.relative and limit.value > 0), ()
    if goal.metric.dose is not None:
        return (), (_StatedDose(f"the dose of {goal.metric}", goal.metric.dose.gy, loc),)
    return (), ()


def _term_stating(
    protocol: ProtocolDocument, loc: _Loc, term: TermBase, doses: list[tuple[str, float, DoseRole]]
) -> _Stating:
    """A term that states a dose (its `_term_doses`, `doses`): on the composite (a term is judged on it), in its quantity with its
    alpha/beta; each dose, named by its field where it states more than one (a mean's `min` and `max`), held to its
    structure's level where that is a target's, else below the highest level."""
    quantity, alpha_beta = _term_quantity(term)
    structures = term.structures()
    level = _target_level(protocol, structures[0]) if structures else None
    stated = [(_StatedDose(f"its {field}" if len(doses) > 1 else "", gy, (*loc, field)), role)
              for field, gy, role in doses]
    own, others = _held_to(level, tuple(dose for dose, role in stated if role is DoseRole.LEVEL),
                           tuple(dose for dose, role in stated if role is DoseRole.DIFFERENCE))
    return _Stating(f'"{term.label()}"', "term", False, quantity, alpha_beta, level, own, others)


def _template_doses(statings: list[_Stating]) -> Iterator[Issue]:
    """A physical dose a goal or term of a file without a prescription (a site template) states more than
    `PLAUSIBLE_GOAL_TO_LEVEL` times the highest total an external-beam course gives (`LARGEST_COURSE_GY`; the first
    such, one issue a goal or term): more than the rule `_doses_above` holds it to in a protocol extending the template
    whose levels stay within that total (a composite level above it, a re-irradiation summed with its prior course,
    could allow more: such a protocol then states that goal itself; review s20/r1 F6), so a slip such as
    "D0.03cc <= 4500 Gy" or a hand-written `max_dose SpinalCord 4500 Gy` (cGy written as Gy) is found where it is
    written, not only in each protocol extending it (audit s20/t1 F8, s20/t4 F1). No tighter bound is honest here:
    `limits_for_dose_per_fraction` bounds a dose per fraction, and the template states no fractions. An EQD2 or BED dose
    is not bounded: a course's BED in a low alpha/beta reaches thousands of Gy (100 Gy in 1 fraction is 3433 Gy BED,
    alpha/beta 3 Gy)."""
    ceiling = PLAUSIBLE_GOAL_TO_LEVEL * LARGEST_COURSE_GY
    for stating in statings:
        if stating.quantity != "physical":
            continue
        for dose in (*stating.own, *stating.others):
            if dose.gy > ceiling:
                yield Issue(
                    dose.loc,
                    f"{stating.subject(dose)} is {dose.gy / LARGEST_COURSE_GY:.3g} times the highest total dose "
                    f"external-beam courses give ({format_number(LARGEST_COURSE_GY)} Gy; a {stating.noun} may state "
                    f"up to {format_number(PLAUSIBLE_GOAL_TO_LEVEL)} times a protocol's highest dose level): a dose in "
                    f"the wrong unit? (cGy written as Gy; {stating.totals})",
                )
                break


def _term_doses(term: TermBase) -> list[tuple[str, float, DoseRole]]:
    """The doses a term states, each with its field and role, in Gy: every field its model types `Dose` (or
    `Dose | None`) but a tissue parameter, found from the model so that each kind, and a kind added later, is checked
    without code of its own here; which are levels and which differences the kind declares with each field
    (`specc.terms.dose_roles`). A dose of 0 Gy is none to check: no unit makes it another dose."""
    doses = []
    for field, role in dose_roles(type(term)).items():
        value = getattr(term, field)
        if role is not DoseRole.PARAMETER and value is not None and value.gy > 0:
            doses.append((field, value.gy, role))
    return doses


def _term_quantity(term: TermBase) -> tuple[DoseQuantity, Dose | None]:
    """The quantity a term's doses are in and the alpha/beta converting them (the structure's when left out)."""
    return getattr(term, "quantity", "physical"), getattr(term, "alpha_beta", None)


def course_text(fractions: int) -> str:
    """"1 fraction", "5 fractions": the course as every message about a prescription names it."""
    return f"{fractions} fraction{'s' if fractions != 1 else ''}"


def _as_total(level: DoseLevel, fractions: int) -> str | None:
    """"7 Gy in each of 5 fractions is 35 Gy": `level`'s dose read as a dose per fraction, the reading that the
    level (or a goal far above it) asks about; None where that reading is no slip, in one fraction (it is the
    total then) or where the total is more than courses give (`LARGEST_COURSE_GY`)."""
    total = level.plan_dose_gy * fractions
    if fractions == 1 or total > LARGEST_COURSE_GY:
        return None
    return (f"{format_number(level.plan_dose_gy)} Gy in each of {course_text(fractions)} is "
            f"{format_number(round(total, 4))} Gy")


def _is_slip(level: DoseLevel) -> bool:
    """Whether the level's dose per fraction is outside what courses give (`_levels` reports it): a goal or a
    level compared with it would be blamed for the level's slip."""
    low, high = PLAUSIBLE_GY_PER_FRACTION
    return not low <= level.dose_per_fraction_gy <= high


def _levels(protocol: ProtocolDocument) -> Iterator[Issue]:
    assert protocol.prescription is not None
    low, high = PLAUSIBLE_GY_PER_FRACTION
    course = course_text(protocol.prescription.fractions)
    for index, level in enumerate(protocol.prescription.levels):
        per_fraction = level.dose_per_fraction_gy
        if _is_slip(level):
            slip = (
                "a dose per fraction written as the total? `dose` is the total over all fractions (e.g. 50 Gy for "
                "2 Gy x 25)" if per_fraction < low else "cGy written as Gy? (e.g. 5000 cGy, or 50 Gy)"
            )
            yield Issue(
                ("prescription", "levels", index, "dose"),
                f"{format_number(level.plan_dose_gy)} Gy in {course} is {per_fraction:.3g} Gy per fraction, outside "
                f"the {format_number(low)}-{format_number(high)} Gy external-beam courses give: {slip}",
            )


def _highest(protocol: ProtocolDocument) -> tuple[int, DoseLevel] | None:
    """The highest dose level that is no slip itself, with its index; None when every level is one."""
    assert protocol.prescription is not None
    levels = [(index, level) for index, level in enumerate(protocol.prescription.levels) if not _is_slip(level)]
    return max(levels, key=lambda item: item[1].dose.gy) if levels else None


def _levels_far_below(protocol: ProtocolDocument) -> Iterator[Issue]:
    """A level more than `PLAUSIBLE_GOAL_TO_LEVEL` below the highest (neither a slip by `_levels`): in a short
    course a dose per fraction written as the total is within the per-fraction window (6.3 Gy in 5 fractions is
    1.26 Gy per fraction), and a level stated in % goals alone gives no goal to compare. The highest level's
    place is named (`related`): the other number the message compares."""
    prescription = protocol.prescription
    assert prescription is not None
    found = _highest(protocol)
    if found is None:
        return
    top, highest = found
    fractions = prescription.fractions
    for index, level in enumerate(prescription.levels):
        ratio = level.dose.gy / highest.dose.gy
        if _is_slip(level) or ratio >= 1 / PLAUSIBLE_GOAL_TO_LEVEL:
            continue
        slips = []
        if (as_total := _as_total(level, fractions)) is not None:
            slips.append(f"a dose per fraction written as the total? `dose` is the total over all fractions "
                         f"({as_total})")
        if 1 / PLAUSIBLE_GOAL_TO_LEVEL <= 100 * ratio <= PLAUSIBLE_GOAL_TO_LEVEL:
            written = format_number(round(100 * level.dose.gy, 4))
            slips.append(f'"{written} cGy" written for {written} Gy?')
        yield Issue(
            ("prescription", "levels", index, "dose"),
            f"{format_number(level.dose.gy)} Gy is {100 * ratio:.2g}% of the highest dose level ({highest.target}'s "
            f"{format_number(highest.dose.gy)} Gy), far below any elective level of a boost: "
            + (", or ".join(slips) if slips else "a dose in the wrong unit?"),
            related=("prescription", "levels", top),
        )


def _target_doses(protocol: ProtocolDocument, statings: list[_Stating]) -> Iterator[Issue]:
    """A dose a target's own goal or a term on a target states (`_Stating.own`) more than `PLAUSIBLE_GOAL_TO_LEVEL`
    from its level, either way (the first such, one issue a goal or term): a variation of "50.4 cGy" for 50.4 Gy makes
    any coverage between them an acceptable variation; a hard `min_dose PTV 70 cGy` constrains nothing and a
    `quadratic_underdose PTV 7800 Gy` drives the whole optimum (audit s20/t4 F1). An EQD2 or BED dose is compared with
    the level in its own quantity and alpha/beta (`_level_as`): converting it to a physical dose would be the same
    comparison through the same model. Against a level that is a slip itself (`_levels`) the comparison says nothing."""
    for stating in statings:
        level = stating.level
        if level is None or _is_slip(level) or not stating.own:
            continue
        reference = _level_as(protocol, level, stating.this_course, stating.quantity, stating.alpha_beta)
        if reference is None:
            continue
        reference_gy, described = reference
        if stating.quantity == "physical":  # the level by name: "PTV's dose level (78 Gy)"
            share = "share of the dose level from this course" if stating.this_course else "dose level"
            described = f"{level.target}'s {share} ({format_number(reference_gy)} Gy)"
        else:
            described = f"{level.target}'s dose level in {stating.quantity} ({described})"
        for dose in stating.own:
            ratio = dose.gy / reference_gy
            if 1 / PLAUSIBLE_GOAL_TO_LEVEL <= ratio <= PLAUSIBLE_GOAL_TO_LEVEL:
                continue
            slip = "cGy written as Gy" if ratio > 1 else "Gy written as cGy, or a dose per fraction"
            per_fraction, related = _level_per_fraction(protocol, level, ratio) if ratio > 1 else ("", None)
            yield Issue(
                dose.loc,
                f'{stating.subject(dose)} is {f"{100 * ratio:.2g}% of" if ratio < 1 else f"{ratio:.3g} times"} '
                f"{described}: a dose in the wrong unit? ({slip}; {stating.totals}){per_fraction}",
                related=related,
            )
            break


def _target_level(protocol: ProtocolDocument, structure: str) -> DoseLevel | None:
    """The dose level a target's dose goals are held to from both sides: its own, or the one its `dose_level_of`
    names (a boost's CTV, held to its PTV's). An organ naming a level is not: its limits lie far below it."""
    spec = protocol.structures.get(structure)
    level = protocol.stated_level(structure)
    if level is None or (level.target != structure and (spec is None or spec.role != "target")):
        return None
    return level


def _level_per_fraction(
    protocol: ProtocolDocument, level: DoseLevel, ratio: float
) -> tuple[str, tuple[str | int, ...] | None]:
    """The other slip a goal `ratio` times `level` may be: the level is a dose per fraction written as the total
    (7 Gy for 7 Gy x 5; a short course's per fraction dose is inside `PLAUSIBLE_GY_PER_FRACTION`), said when the goal
    would be plausible against the level times the fractions and that total is one courses give (`LARGEST_COURSE_GY`:
    78 Gy in 39 fractions is no 2 Gy x 39 slip); the text to add and the level's place (`related`), or nothing. Every organ limit of a site template then reads as too high, and the line to change is the level's."""
    prescription = protocol.prescription
    assert prescription is not None
    fractions = prescription.fractions
    as_total = _as_total(level, fractions)
    if as_total is None or ratio / fractions > PLAUSIBLE_GOAL_TO_LEVEL:
        return "", None
    index = prescription.levels.index(level)
    return (
        f"; or is the dose level {level.target} {format_number(level.dose.gy)} Gy (prescription.levels[{index}]) a dose "
        f"per fraction written as the total? ({as_total})",
        ("prescription", "levels", index),
    )


def _doses_above(protocol: ProtocolDocument, statings: list[_Stating]) -> Iterator[Issue]:
    """A dose a goal or term states (`_Stating.others`: not a target's own) more than `PLAUSIBLE_GOAL_TO_LEVEL` times
    the highest dose level (the first such, one issue a goal or term), on its course (with a prior course the levels
    are composite; this course's share for a goal on this course alone) and in its quantity (an EQD2 or BED dose
    against the level's EQD2 or BED in the structure's alpha/beta: 150 Gy BED is an ordinary limit for 36.25 Gy in 5
    fractions). An organ limit of "Max <= 7500 Gy" can never fail; a hard `max_dose SpinalCord 4500 Gy` (cGy meant)
    is that limit in the optimizer, which is what protects the organ (audit s20/t4 F1). Against a level that is a slip
    itself (`_levels`) the comparison says nothing. In a short course the highest level may be the slip instead (a
    dose per fraction written as the total, inside the per-fraction window): the message asks that too, naming the
    level's line (`_level_per_fraction`), since every correct organ limit of a site template then reads as too high;
    and the level's own line leads with the question (`_level_asked`): with 7 / 6.3 / 5.6 Gy in 5 fractions the user
    got 14 errors at a template's correct lines and none at the line to change (review s19/r1 F6)."""
    assert protocol.prescription is not None
    highest = max(protocol.prescription.levels, key=lambda level: level.dose.gy)
    if _is_slip(highest):
        return
    found = list(_above(protocol, highest, statings))
    asked = [(stating, subject) for stating, subject, issue in found if issue.related is not None]
    if asked:
        yield _level_asked(protocol, highest, asked)
    yield from (issue for _, _, issue in found)


def _above(
    protocol: ProtocolDocument, highest: DoseLevel, statings: list[_Stating]
) -> Iterator[tuple[_Stating, str, Issue]]:
    """`_doses_above`' issue of each goal and term against the `highest` level, with the goal or term and its subject
    as the issue quotes it."""
    for stating in statings:
        if not stating.others:
            continue
        reference = _level_as(protocol, highest, stating.this_course, stating.quantity, stating.alpha_beta)
        if reference is None:
            continue
        reference_gy, described = reference
        for dose in stating.others:
            ratio = dose.gy / reference_gy
            if ratio > PLAUSIBLE_GOAL_TO_LEVEL:
                subject = stating.subject(dose)
                per_fraction, related = _level_per_fraction(protocol, highest, ratio)
                yield stating, subject, Issue(
                    dose.loc,
                    f"{subject} is {ratio:.3g} times the highest dose level ({described}): a dose in the wrong unit? "
                    f"(cGy written as Gy; {stating.totals}){per_fraction}",
                    related=related,
                )
                break


def _level_asked(protocol: ProtocolDocument, level: DoseLevel, asked: list[tuple[_Stating, str]]) -> Issue:
    """One issue at `level`'s dose asking whether it is a dose per fraction written as the total, for the goals and
    terms (`asked`, each with its subject as its own issue quotes it) whose doses are more than
    `PLAUSIBLE_GOAL_TO_LEVEL` times it and plausible against its total."""
    assert protocol.prescription is not None
    fractions = protocol.prescription.fractions
    index = protocol.prescription.levels.index(level)
    first = asked[0][1]  # the goal or term as quoted: '"D0.03cc <= 45 Gy"'
    more = " and ".join(sorted({f"{stating.noun}s" for stating, _ in asked[1:]}))
    goals = f"{first} and {len(asked) - 1} more {more} state" if len(asked) > 1 else f"{first} states"
    as_total = _as_total(level, fractions)
    assert as_total is not None, "asked only where _level_per_fraction found the level readable as per fraction"
    total = format_number(round(level.plan_dose_gy * fractions, 4))
    return Issue(
        ("prescription", "levels", index, "dose"),
        f"{format_number(level.dose.gy)} Gy in {course_text(fractions)}: a dose per fraction written as the total? "
        f"`dose` is the total over all fractions ({as_total}): {goals} a dose more than "
        f"{format_number(PLAUSIBLE_GOAL_TO_LEVEL)} times this level, plausible against {total} Gy (each at its line)",
    )


def _level_as(
    protocol: ProtocolDocument, level: DoseLevel, this_course: bool, quantity: DoseQuantity, alpha_beta: Dose | None
) -> tuple[float, str] | None:
    """The dose level `level` on this course alone (`this_course`) or the composite, in `quantity` with `alpha_beta`,
    in Gy, and how to name it: what a goal and an optimization term are compared with alike; None when it cannot be
    told (an isoeffective dose without a ratio, or a composite needing the prior course's fractions: both reported by
    their own rules)."""
    prescription = protocol.prescription
    assert prescription is not None
    physical_gy = level.plan_dose_gy if this_course else level.dose.gy
    shown = f"{level.target}'s {format_number(physical_gy)} Gy{' from this course' if this_course else ''}"
    if quantity == "physical":
        return physical_gy, shown
    if alpha_beta is None:
        return None
    courses = [(level.plan_dose_gy, prescription.fractions)]
    prior = prescription.prior
    if not this_course and prior is not None and prior.dose.gy > 0:
        if prior.fractions is None:
            return None
        courses.insert(0, (prior.dose.gy, prior.fractions))
    isoeffective = sum(float(isoeffective_gy(gy, fractions, alpha_beta.gy, quantity)) for gy, fractions in courses)
    given = " then ".join(f"{format_number(gy)} Gy in {course_text(fractions)}" for gy, fractions in courses)
    course = f"{shown} in {course_text(prescription.fractions)}" if len(courses) == 1 else f"{shown}: {given}"
    described = f"{format_number(round(isoeffective, 2))} Gy {quantity}: {course}, alpha/beta {alpha_beta}"
    return isoeffective, described
