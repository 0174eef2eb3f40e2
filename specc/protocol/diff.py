"""What changed, clinically, between two versions of a protocol.

A clinic keeps its protocols under version control and reviews each change. A text diff of
the YAML shows what was typed, not what the protocol now means: a goal inherited from a site
template changes without a line of the protocol file changing, "7020 cGy" and "70.2 Gy" are
the same dose, and a reordered mapping is no change at all. This compares the two validated,
template-merged protocols instead, item by item (header, prescription, structures, goals
keyed by structure, metric and side (upper or lower limit), optimization terms, solver options, delivery,
robustness), each value in the protocol's own normalized form. A goal in % of the prescription
is compared by the limit it resolves to as well: a level added or changed moves it, though no
goal line changed.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from typing import Protocol as TypingProtocol

from specc.protocol.diff_change import Change
from specc.protocol.diff_origins import TemplateFile, TemplateFiles, item_origin, structure_origin, template_changes
from specc.protocol.diff_renames import with_renames
from specc.protocol.goals import (DEFAULT_PRIORITY, LOWER_BOUNDS, Goal, Threshold, qualifiers, resolved_column,
                                  span_text)
from specc.protocol.models import Protocol, SiteTemplate
from specc.protocol.templates import LIMITS_FOR_DOSE_PER_FRACTION, PER_FRACTION_PRECISION, fractionation_misfit
from specc.protocol.templates import asks_less  # validate's judgement of a loosened override
from specc.protocol.units import format_number
from specc.protocol.volume_table import VolumeTable

_HEADER = ("name", "site", "version", "description", "references", "authors", "approval")


@dataclass(frozen=True)
class ProtocolDiff:
    old: Protocol | SiteTemplate
    new: Protocol | SiteTemplate
    changes: list[Change]
    old_templates: list[TemplateFile] = dataclasses.field(default_factory=list)  # nearest first
    new_templates: list[TemplateFile] = dataclasses.field(default_factory=list)

    @property
    def version_problem(self) -> str | None:
        """Why the new version number does not fit the change, or None: something that changes the plan or its
        judgement changed, and `version` was not raised (kept, lowered, or changed in build metadata only,
        which semantic versioning ignores: two different protocols would carry one version)."""
        substantive = [c for c in self.changes if not c.cosmetic and not c.provenance
                       and not (c.section == "header" and c.item == "version")]
        if not substantive:
            return None
        if self.old.version == self.new.version:
            return f"the protocol changed but its version did not (still {self.new.version})"
        step = _version_not_raised(self.old.version, self.new.version)
        return f"the protocol changed but its version was not raised: {step}" if step else None


def diff_protocols(old: Protocol | SiteTemplate, new: Protocol | SiteTemplate) -> ProtocolDiff:
    """Every difference between `old` and `new`, section by section, in protocol order."""
    before, after = _dump(old), _dump(new)
    changes: list[Change] = []
    for key in _HEADER:
        if before[key] != after[key]:
            note = _version_not_raised(old.version, new.version) if key == "version" else None
            changes.append(Change("header", key, _text(before[key]), _text(after[key]), note=note or ""))
    old_files, new_files = TemplateFiles(old), TemplateFiles(new)
    changes += template_changes(old_files.templates, new_files.templates)
    changes += _prescription(old, new, before["prescription"], after["prescription"])
    changes += _limits_per_fraction(old, new, before, after)
    changes += [structure_origin(change, old, new, old_files, new_files)
                for change in _keyed("structure", before["structures"], after["structures"])]
    changes += _goals(old, new, old_files, new_files)
    optimization_before, optimization_after = before["optimization"] or {}, after["optimization"] or {}
    changes += _terms(old, new, optimization_before.get("terms", []), optimization_after.get("terms", []),
                      (old_files, new_files))
    changes += _fields("solver", "solver", optimization_before.get("solver"), optimization_after.get("solver"))
    changes += _fields("delivery", "delivery", before["delivery"], after["delivery"])
    changes += _fields("robustness", "robustness", before["robustness"], after["robustness"])
    changes = with_renames(old, new, changes)
    return ProtocolDiff(old, new, changes, old_files.templates, new_files.templates)


def _version_not_raised(old: str | None, new: str | None) -> str | None:
    """How `new` fails to be a later version than `old`, or None when it is (or either is missing: a
    site template need not state one)."""
    if old is None or new is None:
        return None
    if version_precedence(new) == version_precedence(old):
        return f"{new} differs from {old} only in build metadata, which semantic-versioning precedence ignores"
    if version_precedence(new) < version_precedence(old):
        return f"{new} is lower than {old} in semantic-versioning precedence"
    return None


def version_precedence(version: str) -> tuple:
    """A sort key in semantic-versioning precedence (semver.org, 11): MAJOR.MINOR.PATCH as numbers, a
    pre-release below its release and compared identifier by identifier (numbers numerically and below
    text, more identifiers higher when the others are equal), build metadata ignored."""
    release, _, pre = version.split("+", 1)[0].partition("-")
    numbers = tuple(int(part) for part in release.split("."))
    if not pre:
        return numbers, (1,)
    return numbers, (0, *((0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split(".")))


def _dump(protocol: Protocol | SiteTemplate) -> dict[str, Any]:
    """The protocol as normalized JSON values (doses as "70.2 Gy" whatever was written)."""
    return protocol.model_dump(mode="json")


def _text(value: Any) -> str | None:
    """A value as a reader scans it: a mapping as "key: value, ..." without its empty fields."""
    if value is None:
        return None
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_text(item)}" for key, item in value.items() if item not in (None, [], ""))
    if isinstance(value, list):
        return "[" + ", ".join(_text(item) or "null" for item in value) + "]"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_number(value)  # as the file wrote it: "weight: 100", not the model's 100.0
    return value if isinstance(value, str) else json.dumps(value)


def _fields(section: str, item: str, before: dict | None, after: dict | None) -> list[Change]:
    """A mapping compared field by field (added or removed whole when one side has none)."""
    if before == after:
        return []
    if before is None or after is None:
        return [Change(section, item, _text(before), _text(after))]
    return [
        Change(section, item, _text(before.get(key)), _text(after.get(key)), field=key)
        for key in dict.fromkeys([*before, *after])
        if before.get(key) != after.get(key)
    ]


def _keyed(section: str, before: dict[str, dict], after: dict[str, dict]) -> list[Change]:
    """Items by key: added, removed, or changed field by field."""
    changes = []
    for key in dict.fromkeys([*before, *after]):
        if key not in after:
            changes.append(Change(section, key, _text(before[key]), None))
        elif key not in before:
            changes.append(Change(section, key, None, _text(after[key])))
        else:
            changes += _fields(section, key, before[key], after[key])
    return changes


def _prescription(
    old: Protocol | SiteTemplate, new: Protocol | SiteTemplate, before: dict | None, after: dict | None
) -> list[Change]:
    """Fractions, each level by target, normalization, prior course (a site template may have no prescription).
    A change of the fractions or of a level's dose says what each level then gives per fraction (2 -> 2.333 Gy
    for 70 Gy from 35 to 30 fractions): what the organ limits in physical dose were set for, which the totals
    alone do not show."""
    if before is None or after is None:
        return [] if before == after else [Change("prescription", "prescription", _text(before), _text(after))]
    assert old.prescription is not None and new.prescription is not None  # dumped from them
    was = {level.target: level for level in old.prescription.levels}
    now = {level.target: level for level in new.prescription.levels}
    changes = []
    if before["fractions"] != after["fractions"]:
        per_fraction = [f"{target} {_gy(was[target].dose_per_fraction_gy)} -> {_gy(level.dose_per_fraction_gy)} Gy"
                        for target, level in now.items() if target in was]
        changes.append(Change("prescription", "fractions", str(before["fractions"]), str(after["fractions"]),
                              note=f"{_per_fraction(new)}: {', '.join(per_fraction)}" if per_fraction else ""))
    levels_before = {f"level {level['target']}": {"dose": level["dose"]} for level in before["levels"]}
    levels_after = {f"level {level['target']}": {"dose": level["dose"]} for level in after["levels"]}
    for change in _keyed("prescription", levels_before, levels_after):
        target = change.item.removeprefix("level ")
        if change.new is None:  # what the level gave, as an added one says what it gives
            changes.append(dataclasses.replace(change, note=f"{_gy(was[target].dose_per_fraction_gy)} Gy "
                                                            f"{_per_fraction(old)}"))
        elif change.old is None:
            note = f"{_gy(now[target].dose_per_fraction_gy)} Gy {_per_fraction(new)}"
            changes.append(dataclasses.replace(change, note=note))
        else:
            note = (f"{_gy(was[target].dose_per_fraction_gy)} -> {_gy(now[target].dose_per_fraction_gy)} Gy "
                    f"{_per_fraction(new)}")
            changes.append(dataclasses.replace(change, note=note))
    changes = _with_warning_change(old, new, changes)
    changes += _fields("prescription", "normalization", before.get("normalization"), after.get("normalization"))
    changes += _fields("prescription", "prior course", before.get("prior"), after.get("prior"))
    return changes


def _with_warning_change(
    old: Protocol | SiteTemplate, new: Protocol | SiteTemplate, changes: list[Change]
) -> list[Change]:
    """`changes` of the fractions and levels, the first saying so where they move the dose per fraction across
    `limits_for_dose_per_fraction` (unchanged: `_limits_per_fraction` says it where the key changed)."""
    warned = [_misfit(protocol) is not None for protocol in (old, new)]
    if not changes or warned[0] == warned[1] or old.limits_for_dose_per_fraction != new.limits_for_dose_per_fraction:
        return changes
    assert new.limits_for_dose_per_fraction is not None  # one of the two is warned, by the same key
    low, high = (format_number(dose.gy) for dose in new.limits_for_dose_per_fraction)
    said = (f"now outside {LIMITS_FOR_DOSE_PER_FRACTION} {low}-{high} Gy: warned" if warned[1] else
            f"now inside {LIMITS_FOR_DOSE_PER_FRACTION} {low}-{high} Gy: no longer warned")
    first = changes[0]
    return [dataclasses.replace(first, note=f"{first.note}; {said}" if first.note else said), *changes[1:]]


def _per_fraction(protocol: Protocol | SiteTemplate) -> str:
    """What a level's dose over the fractions is: with a prior course the levels are composite, and the dose per
    fraction this plan's share."""
    assert protocol.prescription is not None
    return "per fraction" + (" from this course" if protocol.prescription.prior is not None else "")


def _gy(value: float) -> str:
    """A dose per fraction in Gy as the messages show it (0.001 Gy: 2.333)."""
    return format_number(round(value, PER_FRACTION_PRECISION))


def _limits_per_fraction(
    old: Protocol | SiteTemplate, new: Protocol | SiteTemplate, before: dict, after: dict
) -> list[Change]:
    """`limits_for_dose_per_fraction`, a top-level key: a protocol may write it over its template's and so turn the
    template's warning off, which a review should see (review s19/r1 F2); the note says when the warning comes or
    goes."""
    key = LIMITS_FOR_DOSE_PER_FRACTION
    if before[key] == after[key]:
        return []
    warned = [_misfit(protocol) is not None for protocol in (old, new)]
    note = "" if warned[0] == warned[1] else (
        "this protocol is now warned of its dose per fraction" if warned[1] else
        "this protocol is no longer warned of its dose per fraction")
    return [Change("header", key, _text(before[key]), _text(after[key]), note=note)]


def _misfit(protocol: Protocol | SiteTemplate) -> str | None:
    return fractionation_misfit(protocol.limits_for_dose_per_fraction, protocol.prescription, extends=False)


def _goals(
    old: Protocol | SiteTemplate, new: Protocol | SiteTemplate, old_files: TemplateFiles, new_files: TemplateFiles
) -> list[Change]:
    """Goals paired as `pair_goals` pairs them; a pair is changed when what judges it changed: the comparator,
    the threshold, the acceptable variation or the priority as written (not the spelling: "78 Gy" and
    "7800 cGy" are one), or the limit a goal in % of the prescription resolves to (a level added or changed
    moves it). A changed goal that asks less says how, as `specc validate` says it of a goal replacing a
    template's; each names the template file it is written in."""
    changes = []
    for paired in pair_goals(old.goals, new.goals, _written):
        item = paired.identity
        for was, now in paired.pairs:
            change = _goal_change(item, was, now, old, new)
            if change is None:
                continue
            looser = asks_less(was, now)
            note = "; ".join([*([f"asks less: {', '.join(looser)}"] if looser else []), *filter(None, [change.note])])
            changes.append(dataclasses.replace(change, note=note,
                                               origin=item_origin(was.source, now.source, old_files, new_files)))
        changes += [Change("goal", item, goal.text, None, origin=item_origin(goal.source, None, old_files, new_files))
                    for goal in paired.removed]
        changes += [Change("goal", item, None, goal.text, origin=item_origin(None, goal.source, old_files, new_files))
                    for goal in paired.added]
    return changes


class IdentifiedGoal(TypingProtocol):
    """What tells two goals apart, as a protocol's `Goal` holds it and a plan record's goal (plan.json) too."""

    @property
    def structure(self) -> str: ...
    @property
    def metric(self) -> object: ...  # a `Metric`, or its text ("D95%")
    @property
    def comparator(self) -> str: ...
    @property
    def quantity(self) -> str: ...
    @property
    def course(self) -> str | None: ...


G = TypeVar("G", bound=IdentifiedGoal)


def goal_identity(goal: IdentifiedGoal) -> str:
    """"The same goal" in two versions of a protocol or two plans of them: its structure, metric, side (upper
    or lower limit, named by the non-strict comparator: "Max <" and "Max <=" are one) and the dose it is on,
    as a template's goals are overridden: a cord's "Max <= 45 Gy" and its "Max <= 50 Gy (EQD2)" are two
    goals, "Max < 45 Gy" is the first one changed. The threshold, variation and priority are what may
    change of it. A record's course is None without a prior course, the composite's by default."""
    side = ">=" if goal.comparator in LOWER_BOUNDS else "<="
    written = qualifiers(goal.quantity, goal.course)
    return f"{goal.structure} {goal.metric} {side}" + (f" ({', '.join(written)})" if written else "")


@dataclass(frozen=True)
class PairedGoals(Generic[G]):
    """The goals of one identity (`goal_identity`) in a version before and one after."""

    identity: str
    pairs: list[tuple[G, G]]  # (before, after) of one goal: written alike, or the one goal changed
    removed: list[G]  # before only
    added: list[G]  # after only


def pair_goals(before: Sequence[G], after: Sequence[G], written: Callable[[G], Hashable]) -> list[PairedGoals[G]]:
    """The goals of two versions paired by identity, one `PairedGoals` per identity in the order first met.

    One identity may hold several goals ("Max <= 45 Gy" and "Max <= 35 Gy (priority 2)"): those `written`
    alike on both sides are paired first, a single one left on each side is one goal changed, and the
    others are removed or added, none hidden behind another of its identity (a pairing that would be a
    guess is not made). `written`: what a goal states (its comparator, limits and priority)."""
    was_by, now_by = _by_identity(before), _by_identity(after)
    out = []
    for identity in dict.fromkeys([*was_by, *now_by]):
        was, now = was_by.get(identity, []), now_by.get(identity, [])
        pairs = []
        for goal in list(was):
            alike = next((other for other in now if written(other) == written(goal)), None)
            if alike is not None:
                pairs.append((goal, alike))
                was = [other for other in was if other is not goal]
                now = [other for other in now if other is not alike]
        if len(was) == len(now) == 1:
            pairs.append((was.pop(), now.pop()))
        out.append(PairedGoals(identity, pairs, was, now))
    return out


def _by_identity(goals: Sequence[G]) -> dict[str, list[G]]:
    grouped: dict[str, list[G]] = {}
    for goal in goals:
        grouped.setdefault(goal_identity(goal), []).append(goal)
    return grouped


def _written(goal: Goal) -> tuple[str, Threshold | VolumeTable | None, Threshold | None, int]:
    """What a goal states as written (its thresholds in Gy, or in % of a prescription, or its table by volume)."""
    return goal.comparator, goal.threshold or goal.by_volume, goal.variation, goal.priority


def _limits(goal: Goal) -> tuple[object, ...] | None:
    """The threshold, variation and metric dose (V95%) in Gy, a table by volume's rows each so resolved, or None
    where a site template leaves the prescription a goal in % refers to to its protocols."""
    if goal.needs_reference and goal.reference_dose is None:
        return None
    if goal.by_volume is not None:  # every row moves with a new level where the table is in % of it
        table = goal.by_volume
        return (table.structure, table.volumes_cc, resolved_column(goal, table.limits),
                resolved_column(goal, table.variations), goal.metric_dose_gy)
    return goal.threshold_value, goal.variation_value, goal.metric_dose_gy


def _relative(goal: Goal) -> bool:
    """Whether `goal`'s limit is written in % of its prescription (a table's, or its threshold)."""
    if goal.by_volume is not None:
        return goal.by_volume.relative
    assert goal.threshold is not None, "a goal without a table has a threshold"
    return goal.threshold.relative


def _goal_change(
    item: str, was: Goal, now: Goal, old: Protocol | SiteTemplate, new: Protocol | SiteTemplate
) -> Change | None:
    """`was` -> `now` of one key, or None when both state and resolve to the same."""
    names = ("comparator", "threshold", "variation", "priority")
    fields = [name for name, a, b in zip(names, _written(was), _written(now)) if a != b]
    limits_before, limits_after = _limits(was), _limits(now)
    comparable = limits_before is not None and limits_after is not None
    moved = comparable and limits_before != limits_after
    if not fields and not moved:
        return None
    notes = []
    if comparable and not moved and {"threshold", "variation"} & set(fields):
        # "D95% >= 50 Gy" -> "D95% >= 100%" of a 50 Gy level: listed, since the goal now follows its level
        # (or no longer does), but what a plan is judged by today is the same.
        notes.append("the same limit")
        if _relative(was) != _relative(now):
            follows, level = ("now follows", _reference(new, now)) if _relative(now) else (
                "no longer follows", _reference(old, was))
            notes[-1] += f": the goal {follows} the level {level}"
    if was.reference_dose is not None and now.reference_dose is not None and was.reference_dose != now.reference_dose:
        notes.append(f"its reference level changed: {_reference(old, was)} -> {_reference(new, now)}")
    # A priority change shows both priorities, the default 1 too (audit s19/b2 F4), also beside another note
    # (review s19/r4 F4: "Max <= 80% (priority 2) [80% = 48 Gy] -> Max <= 80% [80% = 52.8 Gy]" said neither).
    shown = _with_priority if "priority" in fields else _as_written
    if "priority" in fields:
        meaning = _priority_meaning(was, now, old, new)
        notes.extend([meaning] if meaning else [])
        if not notes or notes == [meaning]:
            return Change("goal", item, shown(was), shown(now), field=", ".join(fields), note="; ".join(notes))
    if not notes:
        return Change("goal", item, was.text, now.text, field=", ".join(fields))
    field = ", ".join(fields) or "limit"
    return Change("goal", item, _resolved(was, shown(was)), _resolved(now, shown(now)), field=field,
                  note="; ".join(notes))


def _as_written(goal: Goal) -> str:
    return goal.text


def _with_priority(goal: Goal) -> str:
    """A goal as written, with its priority where the text leaves it out as the default (1): "D10% <= 45 Gy"
    became priority 1 from 2, which "(priority 2) -> D10% <= 45 Gy" did not say."""
    if goal.priority != DEFAULT_PRIORITY or "priority" in goal.text:
        return goal.text
    if goal.text.endswith(")") and " (" in goal.text:
        return f"{goal.text[:-1]}, priority {DEFAULT_PRIORITY})"
    return f"{goal.text} (priority {DEFAULT_PRIORITY})"


def _priority_meaning(was: Goal, now: Goal, old: Protocol | SiteTemplate, new: Protocol | SiteTemplate) -> str:
    """What a priority change does to the program derived from the goals: priority 1 is a hard limit there, any
    other a penalty (docs/optimizer.md). "" where the protocol writes its own optimization terms (a goal's
    priority then only ranks the report), or the change is between two penalties."""
    if not (_goals_only(new) or _goals_only(old)):
        return ""
    if now.priority == DEFAULT_PRIORITY and _goals_only(new):
        return "now a hard limit of the program derived from the goals, no longer a penalty"
    if was.priority == DEFAULT_PRIORITY and _goals_only(old):
        return "no longer a hard limit of the program derived from the goals: a penalty, which may give way"
    return ""


def _goals_only(protocol: Protocol | SiteTemplate) -> bool:
    """Whether specc derives `protocol`'s optimization from its goals (it writes no terms of its own)."""
    return isinstance(protocol, Protocol) and (protocol.optimization is None or not protocol.optimization.terms)


def _resolved(goal: Goal, text: str) -> str:
    """`text`, the goal as written (`_with_priority` where its priority changed), with what its percentages of the
    prescription are in Gy: "Max <= 80% [80% = 56 Gy]"."""
    if goal.reference_dose is None:
        return text
    percentages = [(goal.metric.dose_percent, goal.metric_dose_gy)] if goal.metric.dose_percent is not None else []
    if goal.by_volume is not None:  # a table's column as its span: "60%-77% = 32.4-41.58 Gy"
        table, unit = goal.by_volume, goal.metric.unit
        pieces = [f"{span_text(column, True, unit)} = {span_text(resolved, False, unit)}"
                  for column in (table.limits, table.variations)
                  if column is not None and table.relative
                  and (resolved := resolved_column(goal, column)) is not None]
        pieces[:0] = [f"{format_number(percent)}% = {format_number(gy)} Gy" for percent, gy in percentages
                      if gy is not None]
        return text + (f" [{', '.join(pieces)}]" if pieces else "")
    percentages += [(limit.value, value) for limit, value in ((goal.threshold, goal.threshold_value),
                                                             (goal.variation, goal.variation_value))
                    if limit is not None and limit.relative]
    pieces = [f"{format_number(percent)}% = {format_number(gy)} Gy" for percent, gy in percentages if gy is not None]
    return text + (f" [{', '.join(pieces)}]" if pieces else "")


def _reference(protocol: Protocol | SiteTemplate, goal: Goal) -> str:
    """The dose level a goal's percentages refer to, as "PTV_Boost 70 Gy" (this course's share where the
    goal is on this course alone)."""
    assert protocol.prescription is not None and goal.reference_dose is not None  # a resolved goal has both
    target = protocol.reference_level(goal.structure).target
    share = " from this course" if goal.course == "this" else ""
    return f"{target} {format_number(goal.reference_dose.gy)} Gy{share}"


def _terms(
    old: Protocol | SiteTemplate, new: Protocol | SiteTemplate, before: list[dict], after: list[dict],
    files: tuple[TemplateFiles, TemplateFiles]
) -> list[Change]:
    """Terms as a multiset: the unchanged ones cancel; of the rest, a single term of a kind and
    structure on each side is one term changed field by field, the others are removed or added
    (shown by their labels, as the report's optimization log shows them)."""
    written = {id(dump): term for protocol, dumps in ((old, before), (new, after))
               for term, dump in zip(protocol.optimization.terms if protocol.optimization else [], dumps)}
    labels = {key: term.label() for key, term in written.items()}

    def origin(was: dict | None, now: dict | None) -> str:
        return item_origin(*(written[id(dump)].source if dump is not None else None for dump in (was, now)), *files)

    unchanged = Counter(_text(term) for term in before) & Counter(_text(term) for term in after)
    left, right = _without(before, unchanged), _without(after, unchanged)
    changes = []
    for identity in dict.fromkeys(_identity(term) for term in [*left, *right]):
        olds = [term for term in left if _identity(term) == identity]
        news = [term for term in right if _identity(term) == identity]
        if len(olds) == len(news) == 1:
            changes += [dataclasses.replace(change, origin=origin(olds[0], news[0]))
                        for change in _fields("term", _identity_text(olds[0]), olds[0], news[0])]
            continue
        changes += [Change("term", _identity_text(term), labels[id(term)], None, origin=origin(term, None))
                    for term in olds]
        changes += [Change("term", _identity_text(term), None, labels[id(term)], origin=origin(None, term))
                    for term in news]
    return changes


def _without(terms: list[dict], unchanged: Counter) -> list[dict]:
    """`terms` less those counted in `unchanged` (each as many times as counted)."""
    left = Counter(unchanged)
    kept = []
    for term in terms:
        key = _text(term)
        if left[key] > 0:
            left[key] -= 1
        else:
            kept.append(term)
    return kept


def _identity(term: dict) -> tuple:
    return term.get("kind"), term.get("structure")


def _identity_text(term: dict) -> str:
    kind, structure = _identity(term)
    return f"{kind} {structure}" if structure else str(kind)


