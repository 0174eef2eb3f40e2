"""Where a protocol item the compiler refuses is written: `file:line:column: field.path: message`.

A protocol file's own errors say where to edit, as `specc validate` says them (`Diagnostic`); an error
found only against a case (a dvh volume larger than the structure, a structure the case lacks, a
derived structure empty on its grid) must say it the same way. The loader records, with where each goal,
term, structure, dose level and prior course is written (`source`), its path in the file that writes it
and where each of its fields is (`SourceLocation.path`, `.fields`): a term or goal inherited from a
template is named in the template, at its path there. An item no file writes (built in memory, or added
by the compiler) is named by the protocol file and its model path alone. The rule is the protocol's
(`specc.protocol.diagnostics.diagnostic_at`), which its own per-case messages use too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from specc.protocol.diagnostics import diagnostic_at
from specc.protocol.yaml_source import Path as DataPath

if TYPE_CHECKING:
    from specc.protocol import Protocol
    from specc.terms.base import SourceLocation


def said_at(
    protocol: Protocol,
    source: SourceLocation | None,
    message: str,
    *,
    field: str | None = None,
    path: DataPath = (),
) -> str:
    """`message` where `source` is written, as `file:line:column: field.path: message`; at its `field` (a key of
    the item: the dvh term's `volume`) where the item writes one, else at the item (a goal a term is derived from
    writes no term field). Without `source`, the protocol file and the item's model `path` (with its `field`)."""
    return str(diagnostic_at(protocol, source, message, field=field, path=path))


def said_at_structure(protocol: Protocol, name: str, message: str, field: str | None = None) -> str:
    """`message` at structure `name`'s definition, `file:line:column: structures.NAME: message` (at its `field`,
    as `expression`, where the problem is in one). A structure no file places (one the compiler added, as a
    goals-only protocol's fall-off shell, or any of a protocol built in memory) is named as every unplaced item
    is: the protocol's file and `structures.NAME` (with the field), its path in the protocol compiled."""
    spec = protocol.structures.get(name)
    return said_at(protocol, spec.source if spec is not None else None, message, field=field,
                   path=("structures", name))
