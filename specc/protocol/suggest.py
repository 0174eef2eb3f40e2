"""Near-match suggestions for typos ("fractons" -> "fractions")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from specc.protocol.names import looks_alike


def near_match(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `word`, ignoring case, or None when nothing is close."""
    options = list(candidates)
    by_folded = {option.casefold(): option for option in options}
    if word.casefold() in by_folded:
        return by_folded[word.casefold()]
    close = difflib.get_close_matches(word.casefold(), list(by_folded), n=1, cutoff=0.7)
    return by_folded[close[0]] if close else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean "x"?)' or '' when no candidate is close. A candidate that differs from `word` only in
    characters that do not show (a no-break space, a zero-width space) is written with escapes, both of them:
    "did you mean "Core "?" for "Core" cannot be acted on."""
    match = near_match(word, candidates)
    if match is None or match == word:
        return ""
    if looks_alike(match, word):
        return f" (did you mean {ascii(match)}? you wrote {ascii(word)}: they differ in characters that do not show)"
    return f' (did you mean "{match}"?)'
