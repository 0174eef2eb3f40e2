"""Finding a protocol's structure among a case's structures.

Protocols are written once per site and reused on many patients, whose contours are named
by different people and systems ("Rectum", "RECTUM", "Rectum_O"). A protocol structure
matches the case structure of its own name, case aside; only a case without one is searched
for its aliases. The own name goes first because an alias may be a near relative of the organ
in another case's naming, and a case often holds both: "RECTUM" beside "Rectum_Wall" must be
the rectum. Two case structures matching at the same step (two spellings of the name, or two
aliases) are an ambiguity the user has to resolve, never a guess. Whenever the case structure
used is not the protocol's own name, `StructureMatch.note` says which, so a plan's record shows
what was measured.

A structure may name its `parts`: case structures that together make it, as TG-263 names an
organ's sides or parts ("BrachialPlex_L", "BrachialPlex_R" for the plexus; "Musc_Constrict_S",
"_M", "_I" for the constrictors). They are the last step: a case with neither the name nor an
alias reads the structure as the union of the parts it has (`PartsMatch`), and the note names
them and any part the case lacks. A part the case lacks but contours under a near name of the same organ
("BrachialPlexus_R" for "BrachialPlex_R") would leave the organ read from its other parts alone, its
maximum from one side: such a case structure, read by no protocol structure, is a near part the user
must resolve (`near_missing_parts`, `near_parts_message`), never a silent partial reading. A near name of
another organ of that side ("Carotid_R" for "Parotid_R": a parotidectomy case, among the 30 to 60 structures
a clinical case carries) is no reason to refuse the case, which the protocol could not accept otherwise: the
note and each goal name it as not taken for the part, for the reader to see. A case that
has the whole contour keeps it, as the own name keeps it over an alias, and the note names the parts
it has as unused; they are then other structures, for a protocol's own goals on a side.

Names compare as `specc.protocol.names` says (Unicode NFC, case aside); a name that only looks
like another is another name, and a message suggesting it shows both with `ascii()` escapes.
A structure of one side is never suggested for its other side ("Cochlea_R" for "Cochlea_L"), nor, as an
alias, a structure built around an organ for planning ("SpinalCord_PRV") or one another protocol structure
reads ("Mandible", read as Bone_Mandible, for Glnd_Submand_L): `not_found_message`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from specc.protocol.names import has_side, looks_alike, margin_structure, name_key, other_side, same_organ


class NoMatch(LookupError):
    """No case structure matches; carries a readable explanation."""


class AmbiguousMatch(NoMatch):
    """Several case structures match at the same step; the message names them all."""


@dataclass(frozen=True)
class StructureMatch:
    """The case structure a protocol structure denotes, and how it was found."""

    case_name: str
    alias: str | None = None  # the alias it matched; None when it is the structure's own name (case aside)
    passed_over: tuple[str, ...] = ()  # case structures matching an alias, unused since the own name matched
    # case structures matching its `parts`, unused for it since the whole matched (`resolve_structures` keeps those
    # no other protocol structure reads)
    parts_passed_over: tuple[str, ...] = ()

    def note(self, name: str) -> str | None:
        """'Rectum: read from the case's 'RECTUM'' when the case structure is not `name` itself (Unicode
        form aside), or another case structure matching an alias or a part was passed over, so the record
        names what was measured, and not the parts a case contoured both ways; None otherwise."""
        if self.alias is not None and name_key(self.alias, fold=False) == name_key(self.case_name, fold=False):
            through = " (an alias)"
        elif self.alias is not None:
            through = f" (alias {self.alias!r})"
        elif name_key(self.case_name, fold=False) != name_key(name, fold=False) or self.passed_over or (
                self.parts_passed_over):
            through = ""
        else:
            return None
        note = f"{name}: read from the case's {_quoted(self.case_name, [name])}{through}"
        if self.passed_over:
            others = ", ".join(_quoted(other, [name]) for other in self.passed_over)
            note += f"; the case's {others} (matching an alias) {'is' if len(self.passed_over) == 1 else 'are'} not used"
        if self.parts_passed_over:
            several = len(self.parts_passed_over) > 1
            parts = ", ".join(_quoted(part, [name]) for part in self.parts_passed_over)
            note += (f"; the case's {parts} ({'its parts' if several else 'its part'}) {'are' if several else 'is'} not "
                     "used for it: its goals are judged on the whole contour")
        return note


    @property
    def case_names(self) -> tuple[str, ...]:
        """The case structures whose voxels make the protocol structure: the one found."""
        return (self.case_name,)


@dataclass(frozen=True)
class PartsMatch:
    """A protocol structure read as the union of case structures that are its parts (module docstring)."""

    case_names: tuple[str, ...]  # the parts the case has, in the protocol's order
    missing: tuple[str, ...] = ()  # parts (as the protocol writes them) the case does not have
    # (missing part, unused case structures near it): of the same organ written otherwise, an error
    # (`near_parts_message`); of another organ, named where the part is said missing (`near_missing_parts`)
    respelled: tuple[tuple[str, tuple[str, ...]], ...] = ()
    not_taken: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def note(self, name: str) -> str:
        """'BrachialPlexus: read from the union of the case's 'BrachialPlex_L' and 'BrachialPlex_R' (its parts;
        the case has no structure of its name or aliases); its part 'X' is not in the case'."""
        found = [_quoted(part, [name]) for part in self.case_names]
        union = f"the union of the case's {', '.join(found[:-1])} and {found[-1]}" if len(found) > 1 else (
            f"the case's {found[0]} alone")
        note = f"{name}: read from {union} (its parts; the case has no structure of its name or aliases)"
        if self.missing:
            note += f"; {self._missing()}"
        return note

    def _missing(self) -> str:
        """"its part 'Parotid_R' is not in the case (the case's 'Carotid_R' was not taken for it)": the parts the case
        lacks, and the near names of other organs that were not read as them, so that a reader sees a part
        contoured under another name if it was."""
        several = len(self.missing) > 1
        said = (f"its part{'s' if several else ''} {', '.join(map(repr, self.missing))} "
                f"{'are' if several else 'is'} not in the case")
        for part, hits in self.not_taken:
            them = " or ".join(_quoted(hit, [part]) for hit in hits)
            said += (f" (the case's {them} {'was' if len(hits) == 1 else 'were'} not taken for "
                     f"{'it' if not several else repr(part)})")
        return said

    def judged_on(self) -> str | None:
        """What a goal on the structure is judged on when the case lacks some of its parts ("judged on the case's
        'BrachialPlex_L' alone: its part 'BrachialPlex_R' is not in the case"), for the goal itself to say, since
        its value is not the whole organ's; None when the case has every part."""
        if not self.missing:
            return None
        found = [repr(part) for part in self.case_names]
        on = f"the case's {found[0]} alone" if len(found) == 1 else f"the case's {', '.join(found[:-1])} and {found[-1]}"
        return f"judged on {on}: {self._missing()}"


def match_structure(
    name: str, aliases: Sequence[str], case_names: Iterable[str], parts: Sequence[str] = ()
) -> StructureMatch | PartsMatch:
    """The case structure(s) that the protocol structure `name` (with `aliases` and `parts`) denotes (module
    docstring). A part matched by two case structures is an ambiguity, as a name is."""
    case_names = list(case_names)
    by_key: dict[str, list[str]] = {}  # name key -> the case structures of that key, in the case's order
    for case_name in case_names:
        by_key.setdefault(name_key(case_name), []).append(case_name)
    own = by_key.get(name_key(name), [])
    by_part = {part: by_key.get(name_key(part), []) for part in parts}
    of_parts = tuple(c for part in parts for c in by_part[part])
    by_alias: dict[str, str] = {}  # case structure -> the first alias it matches
    for alias in aliases:
        for case_name in by_key.get(name_key(alias), []):
            if case_name not in own:
                by_alias.setdefault(case_name, alias)
    if len(own) == 1:
        return StructureMatch(own[0], passed_over=tuple(by_alias), parts_passed_over=of_parts)
    if len(own) > 1:
        shown = ", ".join(_quoted(c, own) for c in own)
        raise AmbiguousMatch(f"{name!r} matches several case structures ({shown}): rename one")
    if len(by_alias) == 1:
        (case_name, alias), = by_alias.items()
        return StructureMatch(case_name, alias=alias, parts_passed_over=of_parts)
    if by_alias:
        shown = ", ".join(f"{_quoted(c, by_alias)} (alias {alias!r})" for c, alias in by_alias.items())
        raise AmbiguousMatch(
            f"{name!r} matches several case structures through its aliases ({shown}) and none by its own name: "
            "rename the one to use to the protocol's name, or the others"
        )
    found: list[str] = []
    for part in parts:
        matches = by_part[part]
        if len(matches) > 1:
            shown = ", ".join(_quoted(c, matches) for c in matches)
            raise AmbiguousMatch(f"{name!r} has no case structure of its name or aliases, and its part {part!r} "
                                 f"matches several ({shown}): rename one")
        found += matches
    if found:
        return PartsMatch(tuple(found), tuple(part for part in parts if not by_part[part]))
    raise NoMatch(not_found_message([name, *aliases], case_names, parts))


def near_missing_parts(
    match: PartsMatch, names: Sequence[str], parts: Sequence[str], unused: Iterable[str]
) -> PartsMatch:
    """`match` with the case structures of `unused` (read by no protocol structure) near each part it lacks: the
    rule of `not_found_message`'s hint (`_near_parts`), of the part's side ("BrachialPlexus_R" for "BrachialPlex_R",
    never "BrachialPlex_L" nor a name without a side), never a PRV, ring or optimization structure
    (`margin_structure` against `names`, the structure's name and aliases, and `parts`). Those that are the part's
    organ written otherwise (`same_organ`) are `respelled`, for the caller to refuse (`near_parts_message`); the
    others, most often another organ of that side ("Carotid_R" for "Parotid_R"), are `not_taken`, named in the
    note and each goal's (module docstring)."""
    candidates = [*names, *parts]
    by_key = {name_key(c): c for c in unused if not margin_structure(c, candidates)}
    near = {part: hits for part, hits in _near_parts(parts, by_key).items() if part in match.missing}
    respelled = tuple((part, tuple(same)) for part, hits in near.items()
                      if (same := [hit for hit in hits if same_organ(part, hit)]))
    not_taken = tuple((part, tuple(other)) for part, hits in near.items()
                      if (other := [hit for hit in hits if not same_organ(part, hit)]))
    return replace(match, respelled=respelled, not_taken=not_taken)


def near_parts_message(name: str, match: PartsMatch, parts: Sequence[str]) -> str:
    """Why `name` is not read from the parts `match` found: a part it lacks is near a case structure nothing reads
    that is the same organ written otherwise (`near_missing_parts`, `match.respelled`), perhaps the part under
    another name, and the organ's maximum or mean over the other parts alone is not the organ's. Which it is the
    user knows, so the message says what to do in each case."""
    found = [_quoted(part, [name]) for part in match.case_names]
    alone = f"the case's {found[0]} alone" if len(found) == 1 else f"the case's {', '.join(found)} alone"
    sentences = []
    for part, hits in match.respelled:
        shown = " or ".join(_quoted(hit, [part]) for hit in hits)
        sentences.append(f"its part {part!r} is not in the case, which has {shown}, a near name no structure of the "
                         f"protocol reads. {_part_advice(name, part, hits, parts)}; otherwise give it a name unlike the "
                         "part's")
    return ". ".join(sentences) + f". As it stands {name} would be read from {alone}, its goals judged on that"


def _part_advice(name: str, part: str, hits: Sequence[str], parts: Sequence[str]) -> str:
    """What to do with case structures `hits` near `part` of `name`. Never 'add it to `parts`' for the part itself
    under another name: the part, not in the case, would read missing, and each goal partial."""
    if len(hits) > 1:
        return (f"If one of them is that part, rename it {part!r} in the case; if one is another part of {name}, add "
                "it to its `parts`")
    return (f"If it is that part, rename it {part!r} in the case; if it is another part of {name}, add it to its "
            f"`parts` (parts: [{', '.join([*parts, *hits])}])")


def _near_parts(parts: Sequence[str], by_key: Mapping[str, str]) -> dict[str, list[str]]:
    """The names of `by_key` (name key -> name) near a part (`_near`) and of its side, each under the part it is
    nearest: 'Musc_Constrict_Sup' is near all three constrictors, and a hint for each would be noise."""
    nearest: dict[str, tuple[float, str]] = {}  # case structure -> its ratio to its nearest part, that part
    for part in parts:
        for hit in _near([part], by_key):
            ratio = difflib.SequenceMatcher(None, name_key(part), name_key(hit)).ratio()
            if has_side(hit) == has_side(part) and (hit not in nearest or ratio > nearest[hit][0]):
                nearest[hit] = (ratio, part)
    return {part: hits for part in parts if (hits := [hit for hit, (_, of) in nearest.items() if of == part])}


def _near(candidates: Sequence[str], by_key: Mapping[str, str]) -> list[str]:
    """The names of `by_key` (name key -> name) near one of `candidates`: difflib's ratio 0.6 or more, two at most
    per candidate, none of the other side of any candidate (`other_side`)."""
    found: list[str] = []
    for candidate in candidates:
        for hit in difflib.get_close_matches(name_key(candidate), list(by_key), n=2, cutoff=0.6):
            if by_key[hit] not in found and not any(other_side(by_key[hit], c) for c in candidates):
                found.append(by_key[hit])
    return found


def _quoted(name: str, others: Iterable[str]) -> str:
    """`name` quoted; with `ascii()` escapes when another of `others` looks just like it."""
    alike = any(other != name and looks_alike(other, name, ignore_case=True) for other in others)
    return ascii(name) if alike else repr(name)


def not_found_message(
    names: Sequence[str], case_names: Sequence[str], parts: Sequence[str] = (),
    taken: Mapping[str, str] | None = None, listing: bool = True,
) -> str:
    """Why no case structure matches `names` (a protocol structure's name and aliases) nor `parts`, with the
    case's close names as a hint (module docstring). A hint tells the user to add the name to `aliases`, so it
    never proposes what would read another volume's dose as the organ's: a name of the other side, a structure
    built around an organ for planning (`margin_structure`: 'SpinalCord_PRV' for SpinalCord), or a case structure
    another protocol structure reads (`taken`: case structure -> that protocol structure; 'Mandible', read as
    Bone_Mandible, for Glnd_Submand_L). Those two are named as what they are instead. A case structure near one of
    `parts`, of its side, is suggested for that part, to rename or add to `parts`, never as an alias: one side read
    as the whole. `listing`: whether to list the case's structures (an error naming several structures lists them
    once)."""
    taken = dict(taken or {})
    candidates = [*names, *parts]
    by_key = {name_key(c): c for c in case_names}
    barred = [key for key, c in by_key.items() if c in taken or margin_structure(c, candidates)]

    unbarred = {key: c for key, c in by_key.items() if key not in barred}
    # a near name of a part (of its side) is that part under another name, or another part: never an alias of the whole
    by_part = _near_parts(parts, unbarred)
    of_parts = {hit for hits in by_part.values() for hit in hits}
    near = [c for c in _near(names, unbarred) if c not in of_parts and not any(other_side(c, part) for part in parts)]
    not_aliases = "".join(
        f" The case's {_quoted(c, candidates)} is read as {taken[c]}, another structure of the protocol, so it is "
        "not this one." if c in taken else
        f" {_quoted(c, candidates)} is a structure built around an organ for planning (a PRV, ring or optimization "
        "structure), never an alias of it."
        for c in _near(candidates, {key: by_key[key] for key in barred})
    )
    unseen = [n for n in near if any(looks_alike(n, c, ignore_case=True) for c in candidates)]
    tried = ", ".join(_quoted(c, near) for c in names)
    if parts:
        tried += f" nor its parts {', '.join(_quoted(c, near) for c in parts)}"
    listed = ", ".join(ascii(c) if c in unseen else c for c in sorted(case_names)) or "none"
    found = f"no case structure named {tried}" + (f"; the case has: {listed}." if listing else ".")
    parts_hint = "".join(f" Did you mean {' or '.join(_quoted(hit, [part]) for hit in hits)} for its part {part!r}? "
                         f"{_part_advice(names[0], part, hits, parts)}." for part, hits in by_part.items())
    if not near:
        return found + parts_hint + not_aliases
    hint = f" Did you mean {' or '.join(_quoted(n, candidates) for n in near)}?"
    if unseen:
        hint += (
            f" {' and '.join(ascii(n) for n in unseen)} differs from what the protocol writes only in characters that "
            "do not show (written as ascii() escapes): add it to `aliases` in double quotes, which keep them "
            f"(aliases: [{json.dumps(unseen[0])}]), or rename the case structure"
        )
    elif not parts and all(has_side(n) for n in near) and not any(has_side(c) for c in names):
        sides = [c for c in sorted(case_names) if has_side(c) and any(
            difflib.SequenceMatcher(None, name_key(c), name_key(n)).ratio() >= 0.8 for n in near)]
        hint += (f" {' and '.join(map(repr, near))} {'is one side' if len(near) == 1 else 'are sides'} of the organ, "
                 f"not the whole: list the sides as its `parts` (parts: [{', '.join(sides)}]), whose union stands "
                 "for it, or add the whole organ's contour to the case")
    else:
        hint += " (add it to `aliases`)"
    return found + hint + parts_hint + not_aliases
