"""The protocol's structures as masks on the case grid: matched by name, or derived.

Every protocol structure becomes a boolean mask keyed by its protocol name. Plain
structures are found in the case (`names.py`); derived ones are computed from their
expression (`derived.py`) on the grid. The masks are what the compile stage optimizes on and
what the evaluate stage measures on (it must not recompute them).

A derived voxel that is not a row of the influence matrix has no dose in the case (the
case left it out, e.g. outside the body), so a derived structure is clipped to the rows and
the clipping is reported as a note; one that ends up empty is an error.

A case may hold a structure of a derived structure's name: a planner's own "Shell" in an
RTSTRUCT, or the one `specc export dicom` wrote and `specc import dicom` read back. The
protocol's expression is what its goals and terms mean, so it is used; a note names the case
structure and gives both volumes, since a goal judged on the one would not be judged on the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from specc.compile.derived import evaluate_expression
from specc.compile.names import NoMatch, match_structure
from specc.errors import CompileError

if TYPE_CHECKING:
    from specc.case import Case
    from specc.protocol import Protocol
    from specc.protocol.models import StructureSpec


@dataclass
class ResolvedStructures:
    """Masks by protocol structure name, where each came from, and what was noticed."""

    masks: dict[str, np.ndarray]
    case_names: dict[str, str]  # protocol name -> case structure name (plain structures)
    roles: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def is_target(self, name: str) -> bool:
        return self.roles.get(name) == "target"


def _where(protocol: Protocol, name: str) -> str:
    """'file:line' of a structure's definition; the protocol file for one the compiler added."""
    spec = protocol.structures.get(name)
    if spec is not None and spec.source is not None:
        return str(spec.source)
    return str(protocol.source.path) if protocol.source is not None else "(protocol)"


def _referenced_names(protocol: Protocol) -> set[str]:
    names = {goal.structure for goal in protocol.goals}
    names |= {level.target for level in protocol.prescription.levels}
    if protocol.optimization is not None:
        names |= {name for term in protocol.optimization.terms for name in term.structures()}
    for spec in protocol.structures.values():
        if spec.expression is not None:
            names |= set(spec.expression.names())
    return names


def resolve_structures(protocol: Protocol, case: Case) -> ResolvedStructures:
    """Masks of all protocol structures on the case grid (see module docstring)."""
    grid_shape = tuple(case.grid.shape)
    has_row = np.zeros(case.grid.n_voxels, dtype=bool)
    has_row[case.voxel_indices] = True
    has_row = has_row.reshape(grid_shape)
    referenced = _referenced_names(protocol)
    resolved = ResolvedStructures(masks={}, case_names={}, roles={})

    for name, spec in protocol.structures.items():
        resolved.roles[name] = spec.role
        if spec.expression is not None:
            continue
        needed = spec.role in ("target", "oar") or name in referenced
        try:
            case_name = match_structure(name, list(spec.aliases), case.structures)
        except NoMatch as error:
            if needed:
                raise CompileError(f"{_where(protocol, name)}: structure {name!r}: {error}") from None
            resolved.notes.append(f"{name}: not in the case and not used by any goal or term; skipped")
            continue
        mask = case.structures[case_name].mask
        if not mask.any():
            if needed:
                raise CompileError(
                    f"{_where(protocol, name)}: structure {name!r}: the case structure {case_name!r} of "
                    f"case {case.case_id!r} has no voxel on the dose grid (an empty contour)"
                )
            resolved.notes.append(f"{name}: the case structure {case_name!r} is empty and no goal or term uses it; skipped")
            continue
        resolved.case_names[name] = case_name
        resolved.masks[name] = mask

    def lookup(name: str) -> np.ndarray:
        if name in resolved.masks:
            return resolved.masks[name]
        raise KeyError(name)

    pending = {name: spec for name, spec in protocol.structures.items() if spec.expression is not None}
    while pending:  # derived structures may build on each other, in any order of writing
        ready = [name for name, spec in pending.items() if all(n in resolved.masks for n in spec.expression.names())]
        if not ready:
            missing = sorted({n for spec in pending.values() for n in spec.expression.names()} - set(resolved.masks))
            name = next(iter(pending))
            raise CompileError(
                f"{_where(protocol, name)}: derived structures {', '.join(sorted(pending))} refer to "
                f"{', '.join(missing) or 'each other in a cycle'}, which cannot be computed"
            )
        for name in ready:
            spec = pending.pop(name)
            try:
                mask = evaluate_expression(spec.expression, lookup, case.grid.spacing_mm)
            except ValueError as error:
                raise CompileError(f"{_where(protocol, name)}: structure {name!r} = {spec.expression}: {error}") from None
            outside = int(np.count_nonzero(mask & ~has_row))
            if outside:
                mask = mask & has_row
                resolved.notes.append(
                    f"{name}: {outside} voxels of `{spec.expression}` have no dose in the case "
                    "(not rows of the influence matrix) and were left out"
                )
            if not mask.any():
                raise CompileError(
                    f"{_where(protocol, name)}: derived structure {name!r} = {spec.expression} is empty on the case grid"
                )
            resolved.masks[name] = mask
            resolved.notes += _shadowed_case_structures(name, spec, mask, case)
    return resolved


def _shadowed_case_structures(name: str, spec: StructureSpec, mask: np.ndarray, case: Case) -> list[str]:
    """A note per case structure named like derived structure `name` (or one of its aliases, any
    case, as a plain structure is matched), which the protocol's expression replaces."""
    names = {candidate.casefold() for candidate in (name, *spec.aliases)}
    ours = np.count_nonzero(mask) * case.voxel_volume_cc
    notes = []
    for case_name, structure in case.structures.items():
        if case_name.casefold() not in names:
            continue
        same = ", the same voxels" if np.array_equal(structure.mask, mask) else ""
        notes.append(
            f"{name}: the case has its own structure {case_name!r} ({structure.n_voxels * case.voxel_volume_cc:.1f} cc); "
            f"the protocol derives {name} as `{spec.expression}` ({ours:.1f} cc{same}), and the protocol's expression "
            "is used"
        )
    return notes
