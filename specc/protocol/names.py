"""How structure names compare, for every stage that matches or suggests them.

Names are compared in Unicode normal form NFC, case-folded: "Rückenmark" typed on Linux or Windows
(ü one character) and the same name from macOS or some DICOM exports (u and a combining diaeresis)
are one name, as "Rectum" and "RECTUM" are. Names that differ only in what does not show (a no-break
space for a space, a zero-width space) are different names that look alike: a message suggesting
one for the other must show the difference, or it could not be seen, let alone typed.

Names of the two sides of one organ ("Cochlea_L", "Cochlea_R") are a letter apart and legitimately
both in a protocol: a suggestion for a name is never a name of the other side (`other_side`).

A near name of one side ("Carotid_R" for "Parotid_R", "Kidney_Cyst_R" for "Kidney_R") is often another organ of
that side: only a name whose words, sides aside, shorten or lengthen the other's ("BrachialPlexus_R" and
"Brachial_Plexus_R" for "BrachialPlex_R"; "Musc_Constrict_Sup" for "Musc_Constrict_S") is the same organ written
otherwise (`same_organ`).

Nor is it a structure built around the organ for planning (`margin_structure`): a planning risk volume
("SpinalCord_PRV", "SpinalCord_PRV05"), a ring ("PTV_ring"), an optimization structure ("opt_Parotid",
TG-263's "z" / "zz" prefix of a structure not to be evaluated, "zSpinalCord"). Its name is often the organ's
name and a marker, the closest name a case has, yet its maximum or mean is not the organ's: the protocol's
own header says a PRV is never an alias of its organ.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# The words a structure name gives its side in (TG-263 writes _L / _R; "Lt", "Left" are common too).
_SIDES = ({"l", "lt", "left"}, {"r", "rt", "right"})

# The words that make a structure one built around an organ for planning, not the organ (module docstring):
# PRV, ring, opt, z / zz, each may carry a size ("PRV05", "PRV5mm", "ring3").
_MARGIN_MARKER = re.compile(r"(prv|ring|opt|z+)\d*(mm)?")


def _words(key: str) -> list[str]:
    """The words of a name key, split at "_", "-", ".", "+" and blanks."""
    return [word for word in re.split(r"[_\-.+\s]+", key) if word]


def spelling_key(name: str) -> str:
    """A name key without its separators ("_", "-", ".", "+", blanks): 'Optic Nerve L' and 'OpticNerve_L' read alike,
    the everyday difference between planning systems' spellings."""
    return "".join(_words(name_key(name)))


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
    return bool(set(_words(name_key(name))) & (left | right))


def other_side(first: str, second: str) -> bool:
    """Whether two names are of opposite sides: one has a word (split at "_", "-", ".", "+", blanks) for left
    and the other one for right ("Cochlea_L" and "Cochlae_Rt"), so neither is a slip for the other."""
    left, right = _SIDES

    def side(name: str) -> str | None:
        words = set(_words(name_key(name)))
        return "left" if words & left and not words & right else "right" if words & right and not words & left else None

    sides = {side(first), side(second)}
    return sides == {"left", "right"}


def _organ_words(name: str) -> list[str]:
    """The words of a name that say the organ, case-folded: split at separators and where a capital follows a
    lower-case letter ("BrachialPlex" is brachial, plex), side words left out."""
    left, right = _SIDES
    split = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", unicodedata.normalize("NFC", name))
    return [word for word in _words(name_key(split)) if word not in left | right]


def _abbreviates(short: str, long: str) -> bool:
    """Whether word `short` can be written for `long`: its first letter, then some of the others in order ("plex" or
    "plx" for "plexus", "s" for "sup")."""
    rest = iter(long[1:])
    return short[:1] == long[:1] and all(char in rest for char in short[1:])


def same_organ(first: str, second: str) -> bool:
    """Whether two names (of one side) are one organ written otherwise (module docstring): sides aside, they are
    the same letters split otherwise ("Brachial_Plex" and "BrachialPlex"), one lengthens the other's last word
    ("BrachialPlex" and "Brachial_Plexus", not "Kidney" and "Kidney_Cyst": a new word is another structure), or they
    have as many words and each is an abbreviation of the other's ("OpticNrv" and "Optic_Nerve")."""
    words = sorted((_organ_words(first), _organ_words(second)), key=lambda found: len("".join(found)))
    short, long = ("".join(found) for found in words)
    if not short:
        return False
    starts = {sum(map(len, words[1][:index])) for index in range(len(words[1]))}  # where the longer's words begin
    if long.startswith(short) and len(short) not in starts:
        return True
    return len(words[0]) == len(words[1]) and all(
        _abbreviates(*sorted(pair, key=len)) for pair in zip(*words, strict=True))


def margin_structure(candidate: str, names: Iterable[str]) -> bool:
    """Whether `candidate` is a structure built around an organ for planning (a PRV, a ring, an optimization
    structure: module docstring): it has a marker word that none of `names` (the organ's name and aliases) has.
    The longest of `names` it contains is cut out first, so a marker written onto the name reads as one
    ("SpinalCordPRV", "zSpinalCord")."""
    keys = [name_key(name) for name in names]
    key = name_key(candidate)
    within = max((k for k in keys if k and k in key), key=len, default=None)
    rest = key.replace(within, " ", 1) if within is not None else key
    theirs = {word for k in keys for word in _words(k)}
    return any(_MARGIN_MARKER.fullmatch(word) and word not in theirs for word in _words(rest))
