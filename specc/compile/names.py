"""Finding a protocol's structure among a case's structures.

Protocols are written once per site and reused on many patients, whose contours are named
by different people and systems ("Rectum", "RECTUM", "rectum_wall"). A protocol structure
matches, in order: a case structure with exactly its name, one with exactly one of its
aliases, then the same two case-insensitively. Two case structures matching at the same
step is an ambiguity the user has to resolve, never a guess.

Names compare as `specc.protocol.names` says (Unicode NFC, case aside); a name that only looks
like another is another name, and a message suggesting it shows both with `ascii()` escapes.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence

from specc.protocol.names import looks_alike, name_key


class NoMatch(LookupError):
    """No case structure matches; carries a readable explanation."""


def match_structure(name: str, aliases: Sequence[str], case_names: Iterable[str]) -> str:
    """The case structure name that the protocol structure `name` (with `aliases`) denotes."""
    case_names = list(case_names)
    candidates = [name, *aliases]
    for fold in (False, True):
        for candidate in candidates:
            key = name_key(candidate, fold)
            found = [c for c in case_names if name_key(c, fold) == key]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                shown = ", ".join(_quoted(c, found) for c in found)
                raise NoMatch(f"{candidate!r} matches several case structures ({shown}): rename one")
    raise NoMatch(_not_found_message(candidates, case_names))


def _quoted(name: str, others: Iterable[str]) -> str:
    """`name` quoted; with `ascii()` escapes when another of `others` looks just like it."""
    alike = any(other != name and looks_alike(other, name, ignore_case=True) for other in others)
    return ascii(name) if alike else repr(name)


def _not_found_message(candidates: Sequence[str], case_names: Sequence[str]) -> str:
    by_key = {name_key(c): c for c in case_names}
    near: list[str] = []
    for candidate in candidates:
        for hit in difflib.get_close_matches(name_key(candidate), list(by_key), n=2, cutoff=0.6):
            if by_key[hit] not in near:
                near.append(by_key[hit])
    unseen = [n for n in near if any(looks_alike(n, c, ignore_case=True) for c in candidates)]
    tried = ", ".join(_quoted(c, near) for c in candidates)
    listing = ", ".join(ascii(c) if c in unseen else c for c in sorted(case_names)) or "none"
    if not near:
        return f"no case structure named {tried}; the case has: {listing}."
    hint = f" Did you mean {' or '.join(_quoted(n, candidates) for n in near)}?"
    if unseen:
        hint += (
            f" {' and '.join(ascii(n) for n in unseen)} differs from what the protocol writes only in characters that "
            "do not show (written as ascii() escapes): add it to `aliases` in double quotes, which keep them "
            f"(aliases: [{json.dumps(unseen[0])}]), or rename the case structure"
        )
    else:
        hint += " (add it to `aliases`)"
    return f"no case structure named {tried}; the case has: {listing}.{hint}"
