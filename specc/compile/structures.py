"""The protocol's structures as masks on the case grid: matched by name, or derived.

Every protocol structure becomes a boolean mask keyed by its protocol name. Plain
structures are found in the case (`names.py`); derived ones are computed from their
expression (`derived.py`) on the grid. The masks are what the compile stage optimizes on and
what the evaluate stage measures on (it must not recompute them).

A derived voxel that is not a row of the influence matrix has no dose in the case (the
case left it out, e.g. outside the body), so a derived structure is clipped to the rows and
the clipping is reported as a note.

A structure with `parts` (an organ TG-263 names by side or part: the brachial plexus as BrachialPlex_L and
BrachialPlex_R) that the case contours only by those parts is their union (`parts`); the note says which case
structures made it and which parts the case lacks. A part the case lacks while a case structure no protocol
structure reads has a near name of it (`names.near_missing_parts`) is an error naming both where that name is the
part's organ written otherwise ("BrachialPlexus_R" for BrachialPlex_R: `specc.protocol.names.same_organ`), since
that structure may be the part, and the organ's maximum would then be one side's; a near name of another organ
("Carotid_R" for Parotid_R) is named in the note and each goal's as not taken for the part, and the case is planned.
A case with the whole contour as well keeps the whole, and the note names its parts as unused (those no other protocol
structure reads: a side defined as a structure of its own reads its part). An organ read from its parts has its
goals measured on that union, as on the whole contour; where the case lacks a part, each goal says so itself (`partial`: "judged on the case's
'BrachialPlex_L' alone: ..."), as does each goal of a structure derived from it, since its value is not the
whole organ's and a cohort table or median would read it as one. A part wholly outside the dose grid leaves the whole without dose there: it is absent, as an
organ wholly outside is, since a maximum or a mean of the other parts alone is not the organ's.

Some structures may have no mask on a case, and then they are *absent*: `absent` says why, the
evaluate stage reads each of their goals NOT EVALUATED with that reason, and the compile stage
leaves their terms out with a note (`without_absent`). An organ marked `if_contoured` that the
case does not contour is absent. So is a derived structure that comes out empty, as an overlap
(`PTV & Rectum`) does on a patient where the two do not meet. One protocol serves a cohort,
and such an overlap is anatomy, not an error. An absent structure counts as an empty region
in the expressions that use it (`PTV - OpticNerve` is then the PTV). A contoured organ may have no
voxel on the grid too: a plan export's organ wholly outside the RT Dose grid, whose case has only
that grid (`without_voxels`). It is absent with that reason, as a check on a case reads an organ
wholly outside its dose, not "not contoured".

Every structure is matched before any is judged missing, so that a hint never proposes as an alias a case
structure another protocol structure reads (`names.not_found_message`), and every structure the plan cannot go
on without is reported in one error, each at its line: a case lacking eight organs is one run to fix.

Some structures must be on every case, and their emptiness stays an error naming the line: a
target, the structure a dose level, the normalization, a forward plan's block or the
setup-error check names, and a structure the compiler added (nobody wrote it; the
derivation's coverage and fall-off terms stand on it). A derived structure that is empty
because a structure it rings covers every voxel with dose (a PTV margin reaching past the body) is a mistake,
not anatomy. That error names the ringed structure and its line, since the ring may be a
fall-off shell the compiler added.

A margin keeps the voxels whose centre lies within it, so it acts in whole voxel spacings
(docs/compiler.md); a margin that is not one along an axis gives less there, and a note says
what it gives (a 3 mm PRV on a 5 mm grid is its organ). Structures the compiler added are
left out of these notes: nobody wrote their margins.

A case may hold a structure of a derived structure's name: a planner's own "Shell" in an
RTSTRUCT, or the one `specc export dicom` wrote and `specc import dicom` read back. The
protocol's expression is what its goals and terms mean, so it is used; a note names the case
structure and gives both volumes, since a goal judged on the one would not be judged on the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from specc.compile.derived import (
    AXES, CoarseMargin, MaskLookup, beyond_grid, coarse_margins, evaluate_expression, margin_nodes,
)
from specc.compile.names import (
    AmbiguousMatch, NoMatch, PartsMatch, StructureMatch, match_structure, near_missing_parts, near_parts_message,
    not_found_message,
)
from specc.compile.places import said_at_structure
from specc.protocol.diagnostics import protocol_file
from specc.protocol.names import name_key, other_side, spelling_key
from specc.protocol.suggest import did_you_mean
from specc.errors import CompileError
from specc.protocol.structures import Crop, Expand, Ring, Shrink, StructureExpr, StructureRef

if TYPE_CHECKING:
    from specc.case import Case
    from specc.protocol import Protocol
    from specc.protocol.models import SetupScenario, StructureSpec
    from specc.terms import TermBase

# Why an `if_contoured` organ the case lacks has no mask (a goal's NOT EVALUATED reason).
NOT_CONTOURED = "not contoured on this case (if_contoured: true)"

# The mask of a sub-expression on the case grid (the margin note compares a structure with its source).
MaskOf = Callable[[StructureExpr], np.ndarray]


@dataclass
class ResolvedStructures:
    """Masks by protocol structure name, where each came from, and what was noticed."""

    masks: dict[str, np.ndarray]
    case_names: dict[str, str]  # protocol name -> case structure name (plain structures)
    roles: dict[str, str]
    notes: list[str] = field(default_factory=list)
    # protocol name -> the case structures whose union it is: a plain structure the case contours by its `parts`
    parts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # protocol name -> what its goals are judged on, where that is not the whole organ: one read from only some of
    # its `parts` ("judged on the case's 'BrachialPlex_L' alone: its part 'BrachialPlex_R' is not in the case"), or
    # a derived structure built from one. Each of its goals carries it (the evaluate stage's `partial`).
    partial: dict[str, str] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)  # protocol name -> why it has no mask on this case
    # protocol name -> why: those of `absent` whose case ROI has no voxel on the grid (`resolve_structures`'s
    # `without_voxels`), for a check to count them with the structures part of which has no dose
    without_voxels: dict[str, str] = field(default_factory=dict)
    # those of `absent` the protocol allows a case to lack: an `if_contoured` organ the case does not contour (no
    # case structure of its names, or one with no voxel on the grid), and a derived structure left empty by one
    # (`expand(OpticNerve_L, 3mm)`). Their goals' NOT EVALUATED is the protocol's own allowance, which --strict lets
    # pass; the other reasons (an overlap that does not occur, an organ beyond the dose) leave a goal unmeasured.
    allowed_absent: set[str] = field(default_factory=set)
    # protocol name -> the structure (or sub-expression) it is itself: a target (role target, as every prescription
    # level's structure is) derived by a margin the grid gives as 0 mm along every axis (`_coarse_margin_notes`), its
    # mask equal to its source's. Its coverage is then the source's, with no margin at all, which a signer must
    # see before the goals (the evaluate stage's warning), not only in the note (audit s18/b1 F3).
    collapsed_targets: dict[str, str] = field(default_factory=dict)

    def is_target(self, name: str) -> bool:
        return self.roles.get(name) == "target"

    def without_absent(
        self, terms: Sequence[TermBase], scenarios: Mapping[str, SetupScenario]
    ) -> tuple[list[TermBase], list[str]]:
        """The terms whose structures all have a mask, and a note per term left out: there is nothing of
        an absent structure to optimize. A setup-error copy stands for the structure it displaces."""
        kept: list[TermBase] = []
        notes: list[str] = []
        for term in terms:
            missing = [base for name in term.structures()
                       if (base := scenarios[name].structure if name in scenarios else name) in self.absent]
            if not missing:
                kept.append(term)
                continue
            where = str(term.source) if term.source is not None else "(no source line)"
            reasons = "; ".join(f"{name} is {self.absent[name]}" for name in dict.fromkeys(missing))
            notes.append(f"{where}: {term.label()}: left out of the optimization: {reasons}")
        return kept, notes


def _where(protocol: Protocol, name: str) -> str:
    """'file:line' of a structure's definition, for a message about another place to name it by; the protocol
    file for one no file places (`protocol_file`, as `diagnostic_at` names it)."""
    spec = protocol.structures.get(name)
    if spec is not None and spec.source is not None:
        return str(spec.source)
    return protocol_file(protocol)


def _added_by_compiler(protocol: Protocol, name: str) -> bool:
    """A structure the compiler added (a fall-off shell): one with no line in a protocol read from a file."""
    return protocol.source is not None and protocol.structures[name].source is None


def _needed_whole(protocol: Protocol) -> set[str]:
    """The structures a plan or check cannot go on without (see the module docstring); the compiler's
    own are found by `_added_by_compiler`."""
    names = {name for name, spec in protocol.structures.items() if spec.role == "target"}
    names |= {level.target for level in protocol.prescription.levels}
    names |= set(protocol.robust_structures())
    if protocol.prescription.normalization is not None:
        names.add(protocol.prescription.normalization.structure)
    if protocol.delivery is not None and protocol.delivery.block is not None:
        names |= set(protocol.delivery.block)
    return names


def _referenced_names(protocol: Protocol) -> set[str]:
    names = {goal.structure for goal in protocol.goals}
    names |= {level.target for level in protocol.prescription.levels}
    if protocol.optimization is not None:
        names |= {name for term in protocol.optimization.terms for name in term.structures()}
    for spec in protocol.structures.values():
        if spec.expression is not None:
            names |= set(spec.expression.names())
    return names


def resolve_structures(
    protocol: Protocol, case: Case, without_voxels: Mapping[str, str] | None = None
) -> ResolvedStructures:
    """Masks of all protocol structures on the case grid (see module docstring).

    `without_voxels`: ROIs of the case's source that have no voxel on its grid, by name, and why (a plan
    export's organ wholly outside its RT Dose grid: `ExportedPlan.outside_grid`). They are contoured, so a
    protocol structure matching one is absent with that reason, never 'not contoured', and matched as any
    case structure is (aliases, case aside; two matches stay an error). One that must be whole is an error
    naming its line and the reason."""
    without_voxels = dict(without_voxels or {})
    grid_shape = tuple(case.grid.shape)
    has_row = np.zeros(case.grid.n_voxels, dtype=bool)
    has_row[case.voxel_indices] = True
    has_row = has_row.reshape(grid_shape)
    referenced = _referenced_names(protocol)
    resolved = ResolvedStructures(masks={}, case_names={}, roles={})

    case_names = [*case.structures, *without_voxels]
    matches: dict[str, StructureMatch | PartsMatch | NoMatch] = {}  # every plain structure's, before any hint
    for name, spec in protocol.structures.items():
        if spec.expression is not None:
            continue
        try:
            matches[name] = match_structure(name, spec.aliases, case_names, spec.parts)
        except NoMatch as error:
            matches[name] = error
    # case structure -> the protocol structure reading it: a hint never proposes it as another's alias
    taken = {case_name: name for name, match in matches.items() if not isinstance(match, NoMatch)
             for case_name in match.case_names}
    missing: list[str] = []  # needed structures no case structure matches, reported together
    errors: dict[str, str] = {}  # by structure: what else stops the plan, in the protocol's order with `missing`

    for name, spec in protocol.structures.items():
        resolved.roles[name] = spec.role
        if spec.expression is not None:
            continue
        needed = spec.role in ("target", "oar") or name in referenced
        match = matches[name]
        if isinstance(match, NoMatch):
            spelled = (None if isinstance(match, AmbiguousMatch)  # two matches stay that error
                       else _spelled_otherwise([name, *spec.aliases], [c for c in case_names if c not in taken]))
            if spec.if_contoured and spelled is not None:
                errors[name] = said_at_structure(
                    protocol, name, f"structure {name!r} (if_contoured: true) is not in the case under its "
                    f"name or aliases, but the case contours {spelled!r}, the same name but for spaces, underscores "
                    f"or hyphens: the organ is contoured, so it must be planned and judged; add {spelled!r} to its "
                    "`aliases`, or rename the case structure"
                )
            elif spec.if_contoured and not isinstance(match, AmbiguousMatch):  # two matches stay an error
                resolved.absent[name] = NOT_CONTOURED
                resolved.allowed_absent.add(name)
                hint = not_found_message([name, *spec.aliases], case_names, spec.parts, taken)
                resolved.notes.append(
                    f"{name}: {NOT_CONTOURED}: its goals read NOT EVALUATED ({hint}){_near_protocol_name(protocol, name)}"
                )
            elif needed and isinstance(match, AmbiguousMatch):
                errors[name] = said_at_structure(protocol, name, f"structure {name!r}: {match}")
            elif needed:
                missing.append(name)
                errors[name] = ""  # written by `_unresolved`, once it is known how many there are
            else:
                resolved.notes.append(f"{name}: not in the case and not used by any goal or term; skipped")
            continue
        if isinstance(match, PartsMatch):
            match = near_missing_parts(match, [name, *spec.aliases], spec.parts,
                                       [c for c in case_names if c not in taken])
            if match.respelled:
                parts = near_parts_message(name, match, spec.parts)
                errors[name] = said_at_structure(protocol, name, f"structure {name!r}: {parts}", field="parts")
                continue
        if isinstance(match, StructureMatch) and match.parts_passed_over:
            match = replace(match, parts_passed_over=tuple(c for c in match.parts_passed_over if c not in taken))
        try:
            _resolve_plain(protocol, case, name, spec, match, needed, without_voxels, resolved)
        except CompileError as error:
            errors[name] = str(error)
    if errors:
        raise CompileError(_unresolved(protocol, case_names, errors, missing, taken))

    nowhere = np.zeros(grid_shape, dtype=bool)

    def lookup(name: str) -> np.ndarray:
        if name in resolved.masks:
            return resolved.masks[name]
        if name in resolved.absent:
            return nowhere
        raise KeyError(name)

    def known(name: str) -> bool:
        return name in resolved.masks or name in resolved.absent

    whole = _needed_whole(protocol)
    pending = {name: spec for name, spec in protocol.structures.items() if spec.expression is not None}
    while pending:  # derived structures may build on each other, in any order of writing
        ready = [name for name, spec in pending.items() if all(known(n) for n in spec.expression.names())]
        if not ready:
            missing = sorted({n for spec in pending.values() for n in spec.expression.names() if not known(n)})
            name = next(iter(pending))
            raise CompileError(said_at_structure(
                protocol, name, f"derived structures {', '.join(sorted(pending))} refer to "
                f"{', '.join(missing) or 'each other in a cycle'}, which cannot be computed", field="expression",
            ))
        for name in ready:
            spec = pending.pop(name)
            try:
                mask = evaluate_expression(spec.expression, lookup, case.grid.spacing_mm)
            except ValueError as error:
                raise CompileError(said_at_structure(
                    protocol, name, f"structure {name!r} = {spec.expression}: {error}", field="expression"
                )) from None
            outside = int(np.count_nonzero(mask & ~has_row))
            if outside:
                mask = mask & has_row
                resolved.notes.append(
                    f"{name}: {outside} voxels of `{spec.expression}` have no dose in the case "
                    "(not rows of the influence matrix) and were left out"
                )
            if not mask.any():
                message = _empty_message(protocol, name, spec.expression, lookup, has_row, case)
                if message is not None or name in whole or _added_by_compiler(protocol, name):
                    raise CompileError(message or said_at_structure(
                        protocol, name, f"derived structure {name!r} = {spec.expression} is empty on the "
                        f"case grid{_absent_parts(spec.expression, resolved)}, and a {_whole_because(protocol, name)} "
                        "must be on every case", field="expression",
                    ))
                resolved.absent[name] = f"empty on this case (`{spec.expression}` has no voxel" + (
                    f"{_absent_parts(spec.expression, resolved)})"
                )
                if any(part in resolved.allowed_absent for part in spec.expression.names()):
                    resolved.allowed_absent.add(name)  # made empty by an organ the case may lack
                resolved.notes.append(f"{name}: {resolved.absent[name]}: its goals read NOT EVALUATED")
                continue
            if not _added_by_compiler(protocol, name):
                resolved.notes += _beyond_grid_notes(name, spec.expression, lookup, case, mask)
                notes, itself = _coarse_margin_notes(
                    name, spec.expression, tuple(case.grid.spacing_mm), mask,
                    lambda source: evaluate_expression(source, lookup, case.grid.spacing_mm) & has_row,
                )
                resolved.notes += notes
                if itself is not None and resolved.is_target(name):  # a dose level's structure is one too
                    resolved.collapsed_targets[name] = str(itself)
            resolved.masks[name] = mask
            if built_on := [other for other in dict.fromkeys(spec.expression.names()) if other in resolved.partial]:
                resolved.partial[name] = "; ".join(f"built from {other} ({resolved.partial[other]})" for other in built_on)
            resolved.notes += _shadowed_case_structures(name, spec, mask, case)
    return resolved


def _resolve_plain(
    protocol: Protocol, case: Case, name: str, spec: StructureSpec, match: StructureMatch | PartsMatch,
    needed: bool, without_voxels: Mapping[str, str], resolved: ResolvedStructures,
) -> None:
    """Plain structure `name`, matched to `match`: its mask into `resolved`, or absent (with why), or a
    CompileError naming its line where it is `needed` and has no voxel."""
    if (read_from := match.note(name)) is not None:
        resolved.notes.append(read_from)
    if outside := [case_name for case_name in match.case_names if case_name in without_voxels]:
        why = without_voxels[outside[0]]
        _without_voxels(protocol, name, outside[0], why if isinstance(match, StructureMatch) else
                        f"its part {outside[0]!r} has no dose ({why})", resolved)
        return
    masks = [case.structures[case_name].mask for case_name in match.case_names]
    mask = masks[0] if len(masks) == 1 else np.logical_or.reduce(masks)
    if not mask.any():
        contour = (f"the case structure {match.case_names[0]!r}" if len(match.case_names) == 1 else
                   f"the case structures {', '.join(map(repr, match.case_names))} (its parts)")
        has = "has" if len(match.case_names) == 1 else "have"
        if spec.if_contoured:
            resolved.absent[name] = f"empty on this case ({contour} {has} no voxel on the grid)"
            resolved.allowed_absent.add(name)
            resolved.notes.append(f"{name}: {resolved.absent[name]}: its goals read NOT EVALUATED")
            return
        if needed:
            raise CompileError(said_at_structure(
                protocol, name, f"structure {name!r}: {contour} of case {case.case_id!r} {has} no voxel "
                "on the dose grid (an empty contour)"
            ))
        resolved.notes.append(f"{name}: {contour} {'is' if len(masks) == 1 else 'are'} empty and no goal or term "
                              "uses it; skipped")
        return
    if isinstance(match, StructureMatch):
        resolved.case_names[name] = match.case_name
    else:
        resolved.parts[name] = match.case_names
        if (judged_on := match.judged_on()) is not None:
            resolved.partial[name] = judged_on
    resolved.masks[name] = mask


def _unresolved(
    protocol: Protocol, case_names: Sequence[str], errors: Mapping[str, str], missing: Sequence[str],
    taken: Mapping[str, str],
) -> str:
    """Every structure that stops the plan, in the protocol's order, in one message (as a protocol file's errors
    are reported together): one case lacking eight organs is one run to fix, not eight. A structure in `missing`
    (no case structure matches it) is written with its hint (`not_found_message`); with several, the case's
    structures are listed once, after them."""
    several = len(errors) > 1
    lines = []
    for name, error in errors.items():
        if name in missing:
            spec = protocol.structures[name]
            hint = not_found_message([name, *spec.aliases], case_names, spec.parts, taken, listing=not several)
            error = said_at_structure(protocol, name, f"structure {name!r}: {hint}")
        lines.append(error)
    if not several:
        return lines[0]
    listed = ", ".join(sorted(case_names)) or "none"
    return "\n".join([f"{len(lines)} structures of the protocol cannot be read on this case:", *lines,
                      f"the case has: {listed}."])


def _without_voxels(protocol: Protocol, name: str, case_name: str, why: str, resolved: ResolvedStructures) -> None:
    """Plain structure `name`, matched to case ROI `case_name` that has no voxel on the grid (`why`): absent
    with that reason, or an error where it must be whole (`_needed_whole`)."""
    if name in _needed_whole(protocol):
        raise CompileError(said_at_structure(
            protocol, name, f"structure {name!r} (the case's {case_name!r}): {why}, and a "
            f"{_whole_because(protocol, name)} must be whole on every case"
        ))
    resolved.absent[name] = resolved.without_voxels[name] = why
    resolved.notes.append(f"{name}: {why}: its goals read NOT EVALUATED")


def _spelled_otherwise(names: Sequence[str], case_names: Sequence[str]) -> str | None:
    """The case structure whose name is one of `names` but for spaces, underscores, hyphens and case ('Optic Nerve
    L' for OpticNerve_L), or None. An `if_contoured` organ of such a name read "not contoured": no limit planned, its
    goals NOT EVALUATED, --strict passing, though the case contours it (audit s20/t3 F2); 'PTV 70' for 'PTV_70' is
    the everyday difference between planning systems."""
    wanted = {spelling_key(name) for name in names}
    return next((case_name for case_name in case_names if spelling_key(case_name) in wanted), None)


def _near_protocol_name(protocol: Protocol, name: str) -> str:
    """'. The protocol has a structure of a near name (did you mean "Cochlea_L"?) ...' for `if_contoured` organ
    `name` the case lacks, when another contoured structure of the protocol is named one slip from it (as an
    undefined name is told, `did_you_mean`): a misspelt name reads not contoured on every case, and this says
    so on every case, whether or not it holds the organ meant. Its other side ("Cochlea_R") is no slip."""
    others = [other for other, spec in protocol.structures.items()
              if other != name and spec.expression is None and not other_side(other, name)]
    hint = did_you_mean(name, others)
    if not hint:
        return ""
    return (f". The protocol has a structure of a near name{hint}: a misspelt name in the protocol reads not "
            "contoured on every case")


def _absent_parts(expression: StructureExpr, resolved: ResolvedStructures) -> str:
    """'; OpticNerve_L is not contoured on this case (...)' for each absent structure `expression` is made
    from: what made it empty, where one did ('; Kidney: all its voxels (37) lie outside ...' for one whose
    case ROI has no voxel, a sentence of its own)."""
    return "".join(
        f"; {name}{': ' if name in resolved.without_voxels else ' is '}{resolved.absent[name]}"
        for name in dict.fromkeys(expression.names()) if name in resolved.absent
    )


def _whole_because(protocol: Protocol, name: str) -> str:
    """Why derived structure `name` may not be absent (`_needed_whole`, `_added_by_compiler`)."""
    if _added_by_compiler(protocol, name):
        return "structure specc adds to the optimization it derives from the goals"
    if protocol.structures[name].role == "target":
        return "target"
    if any(level.target == name for level in protocol.prescription.levels):
        return "dose level's structure"
    if name in protocol.robust_structures():
        return "structure of the setup-error check"
    if protocol.prescription.normalization is not None and protocol.prescription.normalization.structure == name:
        return "normalization's structure"
    return "structure a forward plan blocks"


def _shadowed_case_structures(name: str, spec: StructureSpec, mask: np.ndarray, case: Case) -> list[str]:
    """A note per case structure named like derived structure `name` (or one of its aliases, any
    case, as a plain structure is matched), which the protocol's expression replaces."""
    names = {name_key(candidate) for candidate in (name, *spec.aliases)}
    ours = np.count_nonzero(mask) * case.voxel_volume_cc
    notes = []
    for case_name, structure in case.structures.items():
        if name_key(case_name) not in names:
            continue
        same = ", the same voxels" if np.array_equal(structure.mask, mask) else ""
        notes.append(
            f"{name}: the case has its own structure {case_name!r} ({structure.n_voxels * case.voxel_volume_cc:.1f} cc); "
            f"the protocol derives {name} as `{spec.expression}` ({ours:.1f} cc{same}), and the protocol's expression "
            "is used"
        )
    return notes


def _empty_message(
    protocol: Protocol, name: str, expression: StructureExpr, lookup: MaskLookup, has_row: np.ndarray, case: Case,
) -> str | None:
    """The error for derived structure `name`, empty because a structure it rings covers every voxel with
    dose, at the line of that structure; None when it is empty for another reason.

    A ring around such a structure has nowhere to be; the structure to change is then the ringed
    one (often a margin far too large), not the ring, which may be a fall-off shell the compiler
    added and nobody wrote.
    """
    spacing = tuple(case.grid.spacing_mm)
    rings = [node for node in margin_nodes(expression) if isinstance(node, Ring)]
    full = next((ring for ring in rings if not (has_row & ~evaluate_expression(ring.operand, lookup, spacing)).any()), None)
    if full is None:
        return None
    if _added_by_compiler(protocol, name):
        whose = f"structure {name!r} = {expression}, which specc adds to the optimization it derives from the goals,"
    else:
        whose = f"structure {name!r} = {expression} ({_where(protocol, name)})"
    ringed, at, field = f"`{full.operand}`", name, "expression"
    if isinstance(full.operand, StructureRef):
        at = full.operand.name
        spec = protocol.structures.get(at)
        written = f" = {spec.expression}" if spec is not None and spec.expression is not None else ""
        ringed, field = f"structure {at!r}{written}", "expression" if written else None
    return said_at_structure(
        protocol, at, f"{ringed} covers the whole case (all {int(has_row.sum())} voxels it holds dose for), which "
        f"leaves no room for `{full}` outside it: {whose} is empty; check the margins of {full.operand}", field=field,
    )


def _coarse_margin_notes(
    name: str, expression: StructureExpr, spacing: tuple[float, ...], mask: np.ndarray, source_mask: MaskOf
) -> tuple[list[str], StructureExpr | None]:
    """A note for derived structure `name` when a margin of it is not a whole number of voxel spacings
    along an axis where it is not zero: what the grid gives there instead (see the module docstring).

    One clause per node, each of its margins and axes in it, so that an anisotropic margin lost along
    every axis reads once; where a lost margin leaves `name` equal to its source (`source_mask` of the
    node's operand, here the structure's voxels), the note says so of `name`, the fact a reviewer acts on
    (audit b4 F7: a PTV on a 10 mm grid was its CTV, said twice of the inner `expand`). Also returned: the
    operand `name` is itself, where there is one (None otherwise), for `ResolvedStructures.collapsed_targets`."""
    coarse = coarse_margins(expression, spacing)
    if not coarse:
        return [], None
    parts = []
    itself: StructureExpr | None = None
    for node in dict.fromkeys(margin.node for margin in coarse):
        text = _node_margins([margin for margin in coarse if margin.node == node])
        if node != expression:
            text = f"in `{node}` {text}"
        operand = _unchanged_operand(node, coarse)
        if operand is not None:
            same = node == expression or np.array_equal(source_mask(operand), mask)
            text += f": {name if same else f'`{node}`'} is {operand} itself"
            if same and itself is None:
                itself = operand
        parts.append(text)
    affected = [axis for axis in AXES if any(axis in margin.axes for margin in coarse)]
    return [
        f"{name} = `{expression}`: on this {_grid_text(spacing)} grid a margin keeps the voxels whose centre lies "
        f"within it, so {'; '.join(parts)}; a finer grid, or margins in whole voxels "
        f"({_whole_voxels(affected, spacing)}), avoid it"
    ], itself


# The patient side each grid face lies on (DICOM LPS: +x left, +y posterior, +z superior), by (axis, side).
_SIDES = {(0, -1): "right", (0, 1): "left", (1, -1): "anterior", (1, 1): "posterior", (2, -1): "inferior",
          (2, 1): "superior"}


def _beyond_grid_notes(
    name: str, expression: StructureExpr, lookup: MaskLookup, case: Case, mask: np.ndarray
) -> list[str]:
    """A note for derived structure `name` when an expansion making it reaches past the dose grid's edge: the
    voxels it loses there (nothing exists outside the grid), as its voxels without dose rows get one."""
    grid, kept = case.grid, int(np.count_nonzero(mask))
    notes = []
    for beyond in beyond_grid(expression, lookup, grid.spacing_mm):
        last_centre = [grid.origin_mm[axis] + (0 if side < 0 else grid.shape[axis] - 1) * grid.spacing_mm[axis]
                       for axis, side in beyond.edges]
        edges = " and ".join(f"{AXES[axis]} = {mm:g} mm ({_SIDES[axis, side]})"
                             for (axis, side), mm in zip(beyond.edges, last_centre))
        notes.append(
            f"{name}: `{beyond.node}` reaches past the dose grid's edge at {edges}: {beyond.voxels} of its voxels "
            f"({beyond.voxels * case.voxel_volume_cc:.1f} cc) lie beyond it and are not in {name} "
            f"({kept} voxels, {kept * case.voxel_volume_cc:.1f} cc on the grid); a grid that holds the margin keeps them"
        )
    return notes


def _node_margins(margins: list[CoarseMargin]) -> str:
    """'the margin 7 mm along x, z and 5 mm along y gives 0 mm' when every one gives the same, else each
    with what it gives ('the inner distance 5 mm along x, y starts the ring at 6 mm and the outer distance ...').
    A ring's inner distance is said by where the ring starts: what it gives is what the ring leaves out, and
    "19.9 mm gives 10 mm" read as a D2cm region starting at 10 mm (audit s18/b2)."""
    written = []
    for index, margin in enumerate(margins):
        what = f"the {margin.what} " if index == 0 or margin.what != margins[index - 1].what else ""
        written.append(f"{what}{margin.written_mm:g} mm along {', '.join(margin.axes)}")
    if len({(margin.given_mm, margin.first_mm) for margin in margins}) == 1 and margins[0].first_mm is None:
        return f"{' and '.join(written)} gives {margins[0].given_mm:g} mm"
    return " and ".join(f"{text} {_outcome(margin)}" for text, margin in zip(written, margins))


def _outcome(margin: CoarseMargin) -> str:
    if margin.first_mm is not None:
        return f"starts the ring at {margin.first_mm:g} mm"
    return f"gives {margin.given_mm:g} mm"


def _unchanged_operand(node: Expand | Shrink | Ring | Crop, coarse: list[CoarseMargin]) -> StructureExpr | None:
    """The operand of expand / shrink `node` when it gives 0 mm along every axis it has a margin on."""
    if not isinstance(node, (Expand, Shrink)):
        return None
    zero = {axis for margin in coarse if margin.node == node and margin.given_mm == 0 for axis in margin.axes}
    return node.operand if zero == {axis for axis, mm in zip(AXES, node.margins_mm) if mm > 0} else None


def _grid_text(spacing: tuple[float, ...]) -> str:
    if len(set(spacing)) == 1:
        return f"{spacing[0]:g} mm"
    return " × ".join(f"{mm:g}" for mm in spacing) + " mm"


def _whole_voxels(axes: list[str], spacing: tuple[float, ...]) -> str:
    """'multiples of 5 mm', or per axis on a grid whose spacing differs: 'multiples of 3 mm along x, y'."""
    by_spacing: dict[float, list[str]] = {}
    for axis in axes:
        by_spacing.setdefault(spacing[AXES.index(axis)], []).append(axis)
    if len(set(spacing)) == 1:
        return f"multiples of {spacing[0]:g} mm"
    return " and ".join(f"multiples of {mm:g} mm along {', '.join(names)}" for mm, names in by_spacing.items())
