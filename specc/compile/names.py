"""Finding a protocol's structure among a case's structures.

Protocols are written once per site and reused on many patients, whose contours are named
by different people and systems ("Rectum", "RECTUM", "rectum_wall"). A protocol structure
matches, in order: a case structure with exactly its name, one with exactly one of its
aliases, then the same two case-insensitively. Two case structures matching at the same
step is an ambiguity the user has to resolve, never a guess.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class NoMatch(LookupError):
    """No case structure matches; carries a readable explanation."""


def match_structure(name: str, aliases: Sequence[str], case_names: Iterable[str]) -> str:
    """The case structure name that the protocol structure `name` (with `aliases`) denotes."""
    case_names = list(case_names)
    candidates = [name, *aliases]
    for fold in (False, True):
        for candidate in candidates:
            key = candidate.casefold() if fold else candidate
            found = [c for c in case_names if (c.casefold() if fold else c) == key]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise NoMatch(f"{candidate!r} matches several case structures ({', '.join(found)}): rename one")
    raise NoMatch(_not_found_message(candidates, case_names))


def _not_found_message(candidates: Sequence[str], case_names: Sequence[str]) -> str:
    by_fold = {c.casefold(): c for c in case_names}
    near: list[str] = []
    for candidate in candidates:
        for hit in difflib.get_close_matches(candidate.casefold(), list(by_fold), n=2, cutoff=0.6):
            if by_fold[hit] not in near:
                near.append(by_fold[hit])
    tried = ", ".join(repr(c) for c in candidates)
    listing = ", ".join(sorted(case_names)) or "none"
    hint = f" Did you mean {' or '.join(repr(n) for n in near)}? (add it to `aliases`)" if near else ""
    return f"no case structure named {tried}; the case has: {listing}.{hint}"
