"""A structure renamed between two versions of a protocol, as one line of `specc diff` (audit s20/t1 F1).

Without it a rename read as the removal and addition of the structure, its goals, terms and level, and of every
expression naming it: a reviewer compared a dozen lines by eye to see that nothing else changed, which is where a
slipped threshold hides.
"""

from __future__ import annotations

import re
from collections import Counter

from specc.protocol.diff_change import RENAMED, Change
from specc.protocol.models import Protocol, SiteTemplate
from specc.protocol.names import name_key


def with_renames(old: Protocol | SiteTemplate, new: Protocol | SiteTemplate, changes: list[Change]) -> list[Change]:
    """`changes` with each renamed structure as one line in place of its removal and addition and of every change
    the new name explains (its goals, terms and level, other structures' expressions naming it): a removed and an
    added structure are one renamed where reading the old name as the new leaves no change that names either.
    Anything else changed about it keeps every line: the rename line says nothing else changed, so it must hold.
    Only a pairing that is the one possible is a rename: Femur_L and Femur_R renamed FemoralHead_R and
    FemoralHead_L (same definitions, goals and terms) were paired in file order, left with right, and the line
    advised making Femur_L an alias of FemoralHead_R (review s20/r1 F1); such removals and additions stay as they
    are."""
    removed = [name for name in old.structures if name not in new.structures]
    added = [name for name in new.structures if name not in old.structures]
    fits = {(was, now) for was in removed for now in added if _left_by_rename(old, new, changes, was, now) is not None}
    for was, now in sorted(fits):
        if sum(1 for pair in fits if pair[0] == was) > 1 or sum(1 for pair in fits if pair[1] == now) > 1:
            continue  # either name pairs with another as well: which is which is not the diff's to guess
        left = _left_by_rename(old, new, changes, was, now)
        if left is None:
            continue
        kept, at = left
        kept.insert(at, Change("structure", was, was, now, field=RENAMED, note=_rename_note(new, was, now)))
        changes = kept
    return changes


def _left_by_rename(
    old: Protocol | SiteTemplate, new: Protocol | SiteTemplate, changes: list[Change], was: str, now: str
) -> tuple[list[Change], int] | None:
    """The changes `was` renamed `now` does not explain, and where among them the removal of `was` stood; None
    where it is not a rename: the two structures differ apart from the name (an alias of the old name aside), or a
    change left names either."""
    name = re.compile(rf"(?<![\w.-]){re.escape(was)}(?![\w.-])")

    def read(text: str | None) -> str | None:
        return None if text is None else name.sub(now, text)

    before = old.structures[was].model_dump(mode="json")
    after = new.structures[now].model_dump(mode="json")
    after["aliases"] = [alias for alias in after["aliases"] if name_key(alias) != name_key(was)]
    if before != after:
        return None
    removals = Counter((c.section, read(c.item), c.field, read(c.old)) for c in changes if c.new is None)
    additions = Counter((c.section, c.item, c.field, c.new) for c in changes if c.old is None)
    # a removal and an addition that are one once the old name reads as the new cancel, each once
    removals_left, additions_left = removals & additions, removals & additions
    kept: list[Change] = []
    at = 0
    for change in changes:
        if change.field == RENAMED:  # another structure's, found before
            kept.append(change)
            continue
        if change.section == "structure" and change.item in (was, now):
            at = len(kept) if change.item == was else at
            continue  # the two definitions, equal as compared above
        if change.old is not None and change.new is not None:
            if read(change.old) == change.new:
                continue
        else:
            left, key = ((removals_left, (change.section, read(change.item), change.field, read(change.old)))
                         if change.new is None else (additions_left, (change.section, change.item, change.field,
                                                                      change.new)))
            if left[key] > 0:
                left[key] -= 1
                continue
        kept.append(change)
    named = re.compile(rf"(?<![\w.-])({re.escape(was)}|{re.escape(now)})(?![\w.-])")
    if any(named.search(" ".join(filter(None, (c.item, c.old, c.new, c.note)))) for c in kept if c.field != RENAMED):
        return None
    return kept, at


def _rename_note(new: Protocol | SiteTemplate, was: str, now: str) -> str:
    """What a rename does to the cases already contoured: a case's structure names are matched to a protocol's name
    and aliases (case aside), so one that names it `was` no longer matches unless `was` is one of them."""
    said = "definition, goals and terms unchanged"
    if name_key(was) == name_key(now):
        return f"{said}; cases contoured {was} still match it (names compare case aside)"
    if any(name_key(alias) == name_key(was) for alias in new.structures[now].aliases):
        return f"{said}; cases contoured {was} still match it: an alias of {now}"
    return f"{said}; a case contoured {was} no longer matches: add {was} to the aliases of {now} to keep such cases"
