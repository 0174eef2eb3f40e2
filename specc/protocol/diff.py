"""What changed, clinically, between two versions of a protocol.

A clinic keeps its protocols under version control and reviews each change. A text diff of
the YAML shows what was typed, not what the protocol now means: a goal inherited from a site
template changes without a line of the protocol file changing, "7020 cGy" and "70.2 Gy" are
the same dose, and a reordered mapping is no change at all. This compares the two validated,
template-merged protocols instead, item by item (header, prescription, structures, goals
keyed by structure, metric and comparator, optimization terms, solver options, delivery,
robustness), each value in the protocol's own normalized form.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from specc.protocol.models import Protocol, SiteTemplate

_HEADER = ("name", "site", "version", "description", "references", "authors", "approval")
# Changes that do not change what is planned or how it is judged.
_COSMETIC = {("structure", "color"), ("header", "description"), ("header", "references"), ("header", "authors")}


@dataclass(frozen=True)
class Change:
    """One difference: `old` None for an addition, `new` None for a removal."""

    section: str  # header, prescription, structure, goal, term, solver, delivery, robustness
    item: str
    old: str | None
    new: str | None
    field: str = ""  # what changed within the item ("" for an added or removed item)

    @property
    def cosmetic(self) -> bool:
        return (self.section, self.field or self.item) in _COSMETIC

    def line(self) -> str:
        """The change as one line: "+ ..." added, "- ..." removed, "~ ...: old -> new" changed."""
        where = f"{self.section} {self.item}" + (f" {self.field}" if self.field else "")
        if self.old is not None and self.new is not None:
            text = f"~ {where}: {self.old} -> {self.new}"
        else:
            value = self.new if self.old is None else self.old
            assert value is not None
            shown = self.section if value.startswith(self.item) else where  # a term's label starts with its item
            text = f"{'+' if self.old is None else '-'} {shown}: {value}"
        return text + (" (cosmetic)" if self.cosmetic else "")


@dataclass(frozen=True)
class ProtocolDiff:
    old: Protocol | SiteTemplate
    new: Protocol | SiteTemplate
    changes: list[Change]

    @property
    def version_unchanged(self) -> bool:
        """True when something that changes the plan or its judgement changed but `version` did not."""
        substantive = [c for c in self.changes if not c.cosmetic and not (c.section == "header" and c.item == "version")]
        return bool(substantive) and self.old.version == self.new.version


def diff_protocols(old: Protocol | SiteTemplate, new: Protocol | SiteTemplate) -> ProtocolDiff:
    """Every difference between `old` and `new`, section by section, in protocol order."""
    before, after = _dump(old), _dump(new)
    changes: list[Change] = []
    for key in _HEADER:
        if before[key] != after[key]:
            changes.append(Change("header", key, _text(before[key]), _text(after[key])))
    changes += _prescription(before["prescription"], after["prescription"])
    changes += _keyed("structure", before["structures"], after["structures"])
    changes += _goals(old, new)
    optimization_before, optimization_after = before["optimization"] or {}, after["optimization"] or {}
    changes += _terms(old, new, optimization_before.get("terms", []), optimization_after.get("terms", []))
    changes += _fields("solver", "solver", optimization_before.get("solver"), optimization_after.get("solver"))
    changes += _fields("delivery", "delivery", before["delivery"], after["delivery"])
    changes += _fields("robustness", "robustness", before["robustness"], after["robustness"])
    return ProtocolDiff(old, new, changes)


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


def _prescription(before: dict | None, after: dict | None) -> list[Change]:
    """Fractions, each level by target, normalization, prior course (a site template may have no prescription)."""
    if before is None or after is None:
        return [] if before == after else [Change("prescription", "prescription", _text(before), _text(after))]
    changes = _fields("prescription", "prescription", {"fractions": before["fractions"]}, {"fractions": after["fractions"]})
    levels_before = {f"level {level['target']}": {"dose": level["dose"]} for level in before["levels"]}
    levels_after = {f"level {level['target']}": {"dose": level["dose"]} for level in after["levels"]}
    changes += _keyed("prescription", levels_before, levels_after)
    changes += _fields("prescription", "normalization", before.get("normalization"), after.get("normalization"))
    changes += _fields("prescription", "prior course", before.get("prior"), after.get("prior"))
    return changes


def _goals(old: Protocol | SiteTemplate, new: Protocol | SiteTemplate) -> list[Change]:
    """Goals keyed by structure, metric, comparator and dose quantity (a cord's "Max <= 45 Gy" and its
    "Max <= 50 Gy (EQD2)" are two goals); changed when what judges them changed (the threshold, the
    acceptable variation, the priority; not the spelling: "78 Gy" and "7800 cGy" are one)."""
    def keyed(protocol: Protocol | SiteTemplate) -> dict[str, Any]:
        return {_goal_item(goal): goal for goal in protocol.goals}

    def judged(goal: Any) -> tuple:
        # Thresholds as stored (Gy, or % of a prescription a template may leave to its protocols).
        variation = goal.variation.model_dump() if goal.variation is not None else None
        return goal.threshold.model_dump(), variation, goal.priority

    def shown(goal: Any) -> str:
        return goal.text

    before, after = keyed(old), keyed(new)
    changes = []
    for key in dict.fromkeys([*before, *after]):
        was, now = before.get(key), after.get(key)
        if was is None or now is None:
            changes.append(Change("goal", key, shown(was) if was else None, shown(now) if now else None))
        elif judged(was) != judged(now):
            fields = [name for name, a, b in zip(("threshold", "variation", "priority"), judged(was), judged(now)) if a != b]
            changes.append(Change("goal", key, shown(was), shown(now), field=", ".join(fields)))
    return changes


def _goal_item(goal: Any) -> str:
    qualifiers = goal.qualifiers
    return f"{goal.structure} {goal.metric} {goal.comparator}" + (f" ({', '.join(qualifiers)})" if qualifiers else "")


def _terms(
    old: Protocol | SiteTemplate, new: Protocol | SiteTemplate, before: list[dict], after: list[dict]
) -> list[Change]:
    """Terms as a multiset: the unchanged ones cancel; of the rest, a single term of a kind and
    structure on each side is one term changed field by field, the others are removed or added
    (shown by their labels, as the report's optimization log shows them)."""
    labels = {id(dump): term.label() for protocol, dumps in ((old, before), (new, after))
              for term, dump in zip(protocol.optimization.terms if protocol.optimization else [], dumps)}
    unchanged = Counter(_text(term) for term in before) & Counter(_text(term) for term in after)
    left, right = _without(before, unchanged), _without(after, unchanged)
    changes = []
    for identity in dict.fromkeys(_identity(term) for term in [*left, *right]):
        olds = [term for term in left if _identity(term) == identity]
        news = [term for term in right if _identity(term) == identity]
        if len(olds) == len(news) == 1:
            changes += _fields("term", _identity_text(olds[0]), olds[0], news[0])
            continue
        changes += [Change("term", _identity_text(term), labels[id(term)], None) for term in olds]
        changes += [Change("term", _identity_text(term), None, labels[id(term)]) for term in news]
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
