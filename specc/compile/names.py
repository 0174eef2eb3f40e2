"""Finding a protocol's structure among a case's structures.

Protocols are written once per site and reused on many patients, whose contours are named
by different people and systems ("Rectum", "RECTUM", "rectum_wall"). A protocol structure
matches, in order: a case structure with exactly its name, one with exactly one of its
aliases, then the same two case-insensitively. Two case structures matching at the same
step is an ambiguity the user has to resolve, never a guess.

Names are compared in Unicode normal form NFC: "Rückenmark" typed on Linux or Windows (ü as
one character) and the same name from macOS or some DICOM exports (u and a combining
diaeresis) are one name, though they differ as strings. A name that differs from another
only in characters that do not show (a no-break space, a zero-width space) is another name;
a message that suggests it shows both with `ascii()` escapes, or the difference could not
be seen, let alone typed.
"""

from __future__ import annotations

import difflib
import json
import unicodedata
from collections.abc import Iterable, Sequence


class NoMatch(LookupError):
    """No case structure matches; carries a readable explanation."""


def name_key(name: str, fold: bool = True) -> str:
    """What two structure names are compared by: NFC, and case-folded unless `fold` is False."""
    normal = unicodedata.normalize("NFC", name)
    return unicodedata.normalize("NFC", normal.casefold()) if fold else normal


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
                shown = ", ".join(_shown(c, found) for c in found)
                raise NoMatch(f"{candidate!r} matches several case structures ({shown}): rename one")
    raise NoMatch(_not_found_message(candidates, case_names))


def _looks_alike(first: str, second: str) -> bool:
    """Whether two names read the same on screen: equal once compatibility forms (a no-break space is a
    space), invisible format characters (zero-width spaces, joiners), case and surrounding blanks are set aside."""

    def seen(name: str) -> str:
        compatible = unicodedata.normalize("NFKC", name)
        visible = "".join(char for char in compatible if unicodedata.category(char) != "Cf")
        return " ".join(visible.split()).casefold()

    return seen(first) == seen(second)


def _shown(name: str, others: Iterable[str]) -> str:
    """`name` quoted; with `ascii()` escapes when another of `others` looks just like it."""
    alike = any(other != name and _looks_alike(other, name) for other in others)
    return ascii(name) if alike else repr(name)


def _not_found_message(candidates: Sequence[str], case_names: Sequence[str]) -> str:
    by_key = {name_key(c): c for c in case_names}
    near: list[str] = []
    for candidate in candidates:
        for hit in difflib.get_close_matches(name_key(candidate), list(by_key), n=2, cutoff=0.6):
            if by_key[hit] not in near:
                near.append(by_key[hit])
    unseen = [n for n in near if any(_looks_alike(n, c) for c in candidates)]
    tried = ", ".join(_shown(c, near) for c in candidates)
    listing = ", ".join(ascii(c) if c in unseen else c for c in sorted(case_names)) or "none"
    if not near:
        return f"no case structure named {tried}; the case has: {listing}."
    hint = f" Did you mean {' or '.join(_shown(n, candidates) for n in near)}?"
    if unseen:
        hint += (
            f" {' and '.join(ascii(n) for n in unseen)} differs from what the protocol writes only in characters that "
            "do not show (written as ascii() escapes): add it to `aliases` in double quotes, which keep them "
            f"(aliases: [{json.dumps(unseen[0])}]), or rename the case structure"
        )
    else:
        hint += " (add it to `aliases`)"
    return f"no case structure named {tried}; the case has: {listing}.{hint}"
