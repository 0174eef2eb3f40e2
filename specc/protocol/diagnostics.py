"""Protocol errors that point at the line a physicist has to fix.

A protocol is edited by hand; an error is only useful if it names the file, line and column,
the field path and what was expected. All problems of a file are collected and reported
together, so one run of `specc validate` shows everything to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from specc.errors import SpeccError

if TYPE_CHECKING:
    from specc.protocol.goals import Goal
    from specc.protocol.models import ProtocolDocument
    from specc.terms.base import SourceLocation

# What a message names a protocol built in memory by, in place of the file it has not: one name in every stage,
# so that a message from compile reads as validate's of the same protocol.
NO_FILE = "<protocol>"


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a protocol file; line and column are 1-based, None when unknown.

    An unknown position is left out of the text rather than shown as a fake `:0:0`, which
    editors would take for a place in the file (a missing file has no line to point at).
    """

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}" if self.column is None else f":{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, str | int | None]:
        return {"file": self.file, "line": self.line, "column": self.column, "path": self.path, "message": self.message}


@dataclass(frozen=True)
class Issue:
    """A problem found on the validated model, located by its model path (like a pydantic `loc`).

    The loader turns issues into diagnostics by looking the path up in the YAML positions.
    """

    loc: tuple[str | int, ...]
    message: str
    at_key: bool = False  # point at the mapping key (a name) rather than its value
    related: tuple[str | int, ...] | None = None  # the other place the problem involves, named in the message


def diagnostic_at(
    protocol: ProtocolDocument,
    source: SourceLocation | None,
    message: str,
    *,
    field: str | None = None,
    path: tuple[str | int, ...] = (),
) -> Diagnostic:
    """`message` where `source` is written, at its `field` (a key of the item: a dvh term's `volume`) where the
    item writes one, else at the item (a goal a term is derived from writes no term field), with the path the
    writing file gives it. One rule for every error found after loading (a protocol's own per-case notes, a
    case's refusals in compile), so that each reads as `specc validate`'s do: a place without a line (`line` 0,
    a file known alone) names its file and no `:0:0`, which an editor would take for a place in it. An item no
    file places (built in memory, or added by the compiler) is named by the protocol's file and its model `path`
    (with its `field`)."""
    named = (*path, field) if path and field is not None else path
    if source is None:
        return Diagnostic(protocol_file(protocol), None, None, format_loc(named), message)
    at = source.fields.get(field, source) if field is not None else source
    line, column = (at.line, at.column) if at.line > 0 else (None, None)
    return Diagnostic(at.file, line, column, format_loc(at.path or named), message)


def protocol_file(protocol: ProtocolDocument) -> str:
    """The file a protocol was read from, `NO_FILE` for one built in memory: what names a place no file records."""
    return str(protocol.source.path) if protocol.source is not None else NO_FILE


def located_goals(goals: Iterable[Goal]) -> Iterator[tuple[tuple[str | int, ...], Goal]]:
    """Each goal with the model path an `Issue` points at it by: under its structure, at its place in that list."""
    position: dict[str, int] = {}
    for goal in goals:
        position[goal.structure] = position.get(goal.structure, -1) + 1
        yield ("goals", goal.structure, position[goal.structure]), goal


class ProtocolError(SpeccError):
    """A protocol that cannot be used; `str()` lists every diagnostic, one per line."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class ProtocolConsistencyError(ProtocolError):
    """Cross-field problems found while building a `Protocol` (undefined names, conflicting goals).

    Raised from the model validator so that pydantic does not fold the issues into one message;
    without a YAML source the diagnostics carry no position.
    """

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = list(issues)
        super().__init__(
            [Diagnostic(NO_FILE, None, None, format_loc(issue.loc), issue.message) for issue in self.issues]
        )


def format_loc(loc: tuple[str | int, ...]) -> str:
    """('goals', 'Rectum', 1, 'priority') -> 'goals.Rectum[1].priority'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
