"""How structure names compare, for every stage that matches or suggests them.

Names are compared in Unicode normal form NFC, case-folded: "Rückenmark" typed on Linux or Windows
(ü one character) and the same name from macOS or some DICOM exports (u and a combining diaeresis)
are one name, as "Rectum" and "RECTUM" are. Names that differ only in what does not show (a no-break
space for a space, a zero-width space) are different names that look alike: a message suggesting
one for the other must show the difference, or it could not be seen, let alone typed.

Names of the two sides of one organ ("Cochlea_L", "Cochlea_R") are a letter apart and legitimately
both in a protocol: a suggestion for a name is never a name of the other side (`other_side`).
"""

from __future__ import annotations

import re
import unicodedata

# The words a structure name gives its side in (TG-263 writes _L / _R; "Lt", "Left" are common too).
_SIDES = ({"l", "lt", "left"}, {"r", "rt", "right"})


def name_key(name: str, fold: bool = True) -> str:
    """What two structure names are compared by: NFC, and case-folded unless `fold` is False."""
    normal = unicodedata.normalize("NFC", name)
    return unicodedata.normalize("NFC", normal.casefold()) if fold else normal


def looks_alike(first: str, second: str, ignore_case: bool = False) -> bool:
    """Whether two names read the same on screen: equal once compatibility forms (a no-break space is a
    space), invisible format characters (zero-width spaces, joiners) and surrounding blanks are set aside.
    Case shows ("core" and "Core" look different) but does not count where names match ignoring it
    (`ignore_case`: a case structure against a protocol name)."""

    def seen(name: str) -> str:
        compatible = unicodedata.normalize("NFKC", name)
        visible = " ".join("".join(char for char in compatible if unicodedata.category(char) != "Cf").split())
        return visible.casefold() if ignore_case else visible

    return seen(first) == seen(second)


def has_side(name: str) -> bool:
    """Whether a name carries a word for left or right ("BrachialPlex_L", "Parotid Lt"): one side of an organ."""
    left, right = _SIDES
    return bool(set(re.split(r"[_\-.\s]+", name_key(name))) & (left | right))


def other_side(first: str, second: str) -> bool:
    """Whether two names are of opposite sides: one has a word (split at "_", "-", ".", blanks) for left
    and the other one for right ("Cochlea_L" and "Cochlae_Rt"), so neither is a slip for the other."""
    left, right = _SIDES

    def side(name: str) -> str | None:
        words = set(re.split(r"[_\-.\s]+", name_key(name)))
        return "left" if words & left and not words & right else "right" if words & right and not words & left else None

    sides = {side(first), side(second)}
    return sides == {"left", "right"}
