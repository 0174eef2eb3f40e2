"""A matRad workspace's cst objectives and constraints translated into a specc protocol (YAML text).

The structures are the cst rows matRad optimizes, of type TARGET (role target), OAR (role
oar) and EXTERNAL (role other: a Body is no organ to block or spare as such), named as
`specc import matrad` names them in the case of the same workspace (`cst_names`: cst{i,2},
trimmed), with cst{i,5}.visibleColor; the terms come from cst{i,6} (`matrad_cst_functions`
reads both of matRad's formats, `matrad_objective_kinds` maps each class). matRad's DVH
objectives and its constraints are goals too, so the report judges the plan on them. The
prescription is what matRad does not state as such: the fractions come from
pln.numOfFractions (or the caller, for a workspace without it), each target's dose level
from its own objectives (`_LEVEL_SOURCES`), or from the caller. matRad's overlap priorities
decide which voxels a structure's functions see (`_optimization_voxels`): where they take
voxels away, the terms and the goals of those functions go on a derived structure
(`PTV_opt: PTV - CTV`), and where they take every voxel there is neither. Everything left
out is listed, in the result and as comments at the top of the YAML, and the output is
checked with the protocol parser before it is returned.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from specc.case.importers.mat_file import load_mat
from specc.case.importers.matrad import cst_names, cst_row_indices, stated_fractions, visible_color
from specc.case.importers.matrad_cst_functions import CstFunction, ObjectivesError, cst_functions
from specc.case.importers.matrad_objective_kinds import NOTES, OBJECTIVE_PRIORITY, Untranslatable, translate
from specc.protocol import ProtocolError, parse_protocol_text
from specc.protocol.structures import FUNCTIONS
from specc.protocol.units import Dose, format_number

# The cst types whose functions matRad optimizes (matRad_objectiveFunction, matRad_constraintFunctions), as roles.
_ROLES = {"TARGET": "target", "OAR": "oar", "EXTERNAL": "other"}
# A target's dose level, when the caller gives none: the dose of the first of these kinds it has
# (the highest, when it has several of that kind): the doses matRad pulls the target to.
_LEVEL_SOURCES = (
    ("DoseObjectives.matRad_SquaredDeviation", "squared deviation objective"),
    ("DoseObjectives.matRad_SquaredUnderdosing", "squared underdosing objective"),
    ("DoseObjectives.matRad_MinDVH", "min DVH objective"),
)
# Where matRad versions record that the optimization is not of physical dose.
_QUANTITY_FIELDS = (("propOpt", "quantityOpt"), ("propOpt", "bioOptimization"), ("bioParam", "quantityOpt"),
                    ("bioOptimization",))
_PHYSICAL = ("", "none", "physicalDose")


@dataclass
class TranslatedProtocol:
    """The protocol's YAML text and what it holds; `untranslated` lists everything left out."""

    yaml_text: str
    terms: int
    goals: int
    levels: dict[str, Dose]
    fractions: int
    untranslated: list[str] = field(default_factory=list)
    # clinical structure -> the derived structure its terms and goals are on (matRad's overlap priorities)
    optimized_on: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _CstRow:
    """What matRad's overlap priorities read of a cst row."""

    index: int  # 0-based
    name: str  # the specc name: cst{i,2} trimmed
    written: str  # cst{i,2} as written
    priority: float  # cst{i,5}.Priority: the lower, the higher the priority
    has_functions: bool  # cst{i,6} is not empty: only such a row takes voxels from others
    excluded: bool  # left out of the case (--exclude): matRad's overlap priorities still count it


@dataclass
class _OptimizationVoxels:
    """The rows that take voxels from a structure's functions in matRad, and whether any are left."""

    takers: list[_CstRow]
    empty: bool


def convert_matrad_objectives(
    path: str | Path,
    *,
    fractions: int | None = None,
    targets: Mapping[str, Dose | None] | None = None,
    exclude: Sequence[str] = (),
    out: str | Path | None = None,
) -> TranslatedProtocol:
    """Translate the cst objectives of a matRad workspace.

    `fractions` is the number of fractions of a workspace without pln.numOfFractions; with it,
    only the same number is accepted. `targets` names the targets that get a dose level, each
    with its dose or None to take it from its objectives; left out, every TARGET gets one from
    its objectives. `exclude` leaves cst structures out, matched as `specc import matrad
    --exclude` matches them (`cst_names`). `out` is the file the caller writes the protocol to: a
    validation error of the translation names its lines there.
    """
    path = Path(path)
    source = str(path)
    workspace = load_mat(path, names=("cst", "pln"))
    cst = workspace.get("cst")
    if not isinstance(cst, np.ndarray) or cst.dtype != object or cst.ndim != 2 or cst.shape[1] < 6:
        raise ObjectivesError(
            f"{source}: needs 'cst', a cell array with 6 columns (the 6th holds the objectives); "
            + ("it has none" if cst is None else "this one has not")
        )
    pln = workspace.get("pln") if isinstance(workspace.get("pln"), dict) else {}
    course = _fractions(pln, fractions, source)
    untranslated = _quantity(pln)

    names = cst_names(cst, exclude, source, ObjectivesError)
    structures: dict[str, dict[str, Any]] = {}
    functions: dict[str, list[CstFunction]] = {}
    rows: list[_CstRow] = []
    for row in range(cst.shape[0]):
        name = names.kept.get(row) or names.excluded[row]
        kind = _kind(cst, row, name, source)
        row_functions = cst_functions(cst, row, name, source)
        rows.append(_CstRow(row, name, cst[row, 1], _priority(cst, row, name, source), bool(row_functions),
                            row in names.excluded))
        if row in names.excluded or kind not in _ROLES:
            why = "excluded on request" if row in names.excluded else (
                f"cst type {kind}: matRad optimizes the functions of TARGET, OAR and EXTERNAL rows only "
                "(matRad_objectiveFunction)"
            )
            held = f"; its {len(row_functions)} cst{{{row + 1},6}} function(s) with it" if row_functions else ""
            untranslated.append(f"{_shown(rows[-1])}: {why}{held}")
            continue
        structures[name] = {"role": _ROLES[kind]}
        color = visible_color(cst, row)
        if color is not None:
            structures[name]["color"] = color
        functions[name] = row_functions

    if not any(row.has_functions for row in rows):
        raise ObjectivesError(
            f"{source}: the workspace holds no objectives or constraints: every cst{{i,6}} is empty (a workspace "
            "saved by pyRadPlan's StructureSet.to_matrad carries none; in matRad, define them before saving): "
            "nothing to translate. Write the protocol's goals by hand, or start from a template in protocols/"
        )
    kept = {row.name: row for row in rows if not row.excluded}
    voxels = _optimization_voxels(cst, rows, [kept[name] for name, held in functions.items() if held], source)
    terms: list[dict[str, Any]] = []
    goals: dict[str, list[str]] = {}
    notes: list[str] = []
    ignored_penalties: list[str] = []
    for name, row_functions in functions.items():
        if name in voxels and voxels[name].empty:
            untranslated.append(
                f"{_ranked(kept[name])}: every voxel of it is in a cst row of higher overlap priority with functions, "
                f"{', '.join(_ranked(taker) for taker in voxels[name].takers)}, so matRad optimizes none of its "
                f"{len(row_functions)} cst{{{kept[name].index + 1},6}} function(s) (matRad_setOverlapPriorities): "
                "no term and no goal from them"
            )
            continue
        for function in row_functions:
            label = f"{function.where} ({name}, {function.kind})"
            try:
                translation = translate(function, source)
            except Untranslatable as reason:
                untranslated.append(f"{label}: {reason}")
                continue
            for goal in translation.goals:
                if goal not in goals.setdefault(name, []):
                    goals[name].append(goal)
            terms += translation.terms
            notes += [note for note in translation.notes if note not in notes]
            untranslated += [f"{label}: {part}" for part in translation.left_out]
            if translation.ignored_penalty is not None:
                ignored_penalties.append(translation.ignored_penalty)

    levels, level_lines = _levels(structures, functions, targets, source)
    reduced = [name for name in dict.fromkeys(term["structure"] for term in terms) if name in voxels]
    optimized_on = _place_terms(terms, structures, voxels, rows, cst, untranslated)
    goals = {optimized_on.get(name, name): structure_goals for name, structure_goals in goals.items()}
    document: dict[str, Any] = {
        "specc": 1,
        "name": f"{path.stem} (matRad objectives)",
        "site": "unspecified",
        "version": "1.0.0",
        "description": f"Translated from the cst objectives of the matRad workspace {path.name} by specc import "
        "matrad-objectives.",
        "structures": structures,
        "prescription": {
            "fractions": course[0],
            "levels": [{"target": name, "dose": str(dose)} for name, dose in levels.items()],
        },
    }
    if goals:
        document["goals"] = goals
    if terms:
        document["optimization"] = {"terms": terms}
    overlaps = [f"{name} -> {derived}: {structures[derived]['expression']}" for name, derived in optimized_on.items()]
    overlaps += [f"{name}: its terms and goals stay on {name}, with voxels matRad leaves out (see below)"
                 for name in reduced if name not in optimized_on]
    header = _header(path, course, level_lines, notes, ignored_penalties, overlaps, bool(terms), bool(goals),
                     untranslated)
    text = header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)
    try:
        parse_protocol_text(text, filename=str(out) if out is not None else f"<translation of {path.name}>")
    except ProtocolError as error:  # e.g. contradictory constraints in the workspace itself
        unwritten = f" (not written to {out})" if out is not None else ""
        raise ObjectivesError(f"{source}: the translated protocol{unwritten} does not validate:\n{error}") from None
    return TranslatedProtocol(
        yaml_text=text,
        terms=len(terms),
        goals=sum(len(g) for g in goals.values()),
        levels=levels,
        fractions=course[0],
        untranslated=untranslated,
        optimized_on=optimized_on,
    )


def _kind(cst: np.ndarray, row: int, name: str, source: str) -> str:
    kind = cst[row, 2]
    if not isinstance(kind, str):
        raise ObjectivesError(f"{source}: cst{{{row + 1},3}} ({name}) is not a type (TARGET, OAR, EXTERNAL, IGNORED)")
    return kind.strip()


def _priority(cst: np.ndarray, row: int, name: str, source: str) -> float:
    """cst{row,5}.Priority, the overlap priority matRad reads of every row before it optimizes."""
    properties = cst[row, 4]
    if not isinstance(properties, dict) or "Priority" not in properties:
        raise ObjectivesError(
            f"{source}: cst{{{row + 1},5}} ({name}) has no Priority: matRad_setOverlapPriorities reads the overlap "
            "priority of every cst row before it optimizes and stops with an error without one; set "
            f"cst{{{row + 1},5}}.Priority (1 the highest) and save the workspace again"
        )
    value = properties["Priority"]
    numbers = np.array([])
    if not isinstance(value, str):
        try:
            numbers = np.asarray(value, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            pass
    if numbers.size != 1:
        raise ObjectivesError(f"{source}: cst{{{row + 1},5}}.Priority ({name}) is not a number")
    return float(numbers[0])  # NaN compares false both ways, in MATLAB as here: such a row neither gives nor takes


def _fractions(pln: dict, given: int | None, source: str) -> tuple[int, str]:
    """The number of fractions and where it came from: pln.numOfFractions, or the caller's for a workspace
    without it. Both must agree: matRad divided the doses by pln's (matRad_fractionateCstFunctions), and
    `specc check` of the workspace judges its plan in pln's fractions, so another number would be a protocol
    that neither matRad's objectives nor its plan are."""
    if given is not None and given < 1:
        raise ObjectivesError(f"the number of fractions must be at least 1, got {given}")
    stated = stated_fractions(pln, "pln", source, ObjectivesError)
    if stated is None:
        if given is None:
            raise ObjectivesError(
                f"{source}: no pln.numOfFractions, and matRad's doses are totals over the course: give the number "
                "of fractions (--fractions N)"
            )
        return given, "given"
    if given is not None and given != stated:
        raise ObjectivesError(
            f"{source}: --fractions {given}, but pln.numOfFractions is {stated}: matRad divided these objectives' "
            f"doses by {stated} (matRad_fractionateCstFunctions), and `specc check` judges the workspace's plan in "
            f"{stated} fractions; leave --fractions out (it is for workspaces without pln.numOfFractions), or change "
            "pln.numOfFractions in matRad and save the workspace again"
        )
    return stated, "pln.numOfFractions"


def _quantity(pln: dict) -> list[str]:
    """A line for each pln field saying matRad optimized something other than physical dose."""
    found = []
    for path in _QUANTITY_FIELDS:
        value: Any = pln
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value not in _PHYSICAL:
            found.append(
                f"pln.{'.'.join(path)} '{value}': matRad optimized a biological quantity; specc optimizes physical "
                "dose, and the doses are translated as physical Gy"
            )
    return found


# --- overlap priorities -----------------------------------------------------------------------------
def _optimization_voxels(
    cst: np.ndarray, rows: Sequence[_CstRow], owners: Sequence[_CstRow], source: str
) -> dict[str, _OptimizationVoxels]:
    """For each row in `owners` whose functions matRad optimizes on fewer voxels than its own, by name: the
    rows that take voxels from it, and whether any are left.

    matRad_setOverlapPriorities (called by matRad_fluenceOptimization first) removes from cst{j,4}
    the voxels of every other row k, whatever its type, with cst{k,5}.Priority < cst{j,5}.Priority
    and a non-empty cst{k,6} (a row without functions takes nothing, since matRad 2017); equal
    priorities keep the overlap in both. It works on the CT grid, before matRad_resizeCstToGrid
    samples each mask on the dose grid by nearest neighbour; sampling point by point keeps a
    difference of masks a difference, so the same subtraction on the case's masks (sampled the
    same way) gives matRad's optimization voxels. Only rows sharing CT voxels take any.
    """
    held: dict[int, np.ndarray] = {}

    def ct_voxels(row: _CstRow) -> np.ndarray:
        if row.index not in held:
            held[row.index] = cst_row_indices(cst, row.index, row.name, source, ObjectivesError)
        return held[row.index]

    found: dict[str, _OptimizationVoxels] = {}
    for own in owners:
        higher = [row for row in rows if row.has_functions and row.priority < own.priority]
        if not higher:
            continue
        mine = ct_voxels(own)
        inside = np.zeros(int(mine.max()) + 1 if mine.size else 0, dtype=bool)  # a mask: O(voxels) per pair
        inside[mine] = True

        def within(row: _CstRow) -> np.ndarray:
            theirs = ct_voxels(row)
            return theirs[theirs < inside.size]

        takers = [row for row in higher if inside[within(row)].any()]
        for row in takers:
            inside[within(row)] = False
        if takers:
            found[own.name] = _OptimizationVoxels(takers, empty=not inside.any())
    return found



def _place_terms(
    terms: list[dict[str, Any]],
    structures: dict[str, dict[str, Any]],
    voxels: dict[str, _OptimizationVoxels],
    rows: Sequence[_CstRow],
    cst: np.ndarray,
    untranslated: list[str],
) -> dict[str, str]:
    """Put the terms of each structure whose optimization voxels matRad reduces on a derived structure,
    `Body_opt: Body - (PTV | Rectum)`, and return clinical name -> derived name (the caller moves the
    goals of those functions there too).

    The rows subtracted must be structures of the protocol, hence of the case: a TARGET, OAR or
    EXTERNAL row is one already, a row of another type (IGNORED) is added with role other; a row left
    out of the case (--exclude, as `specc import matrad --exclude`) cannot be, and is listed. The derived
    structure of a target keeps role target (specc optimizes a target on every voxel, never on a
    sample, as matRad does); any other has role other.
    """
    with_terms = {term["structure"] for term in terms}
    taken = {name.casefold() for name in [*(row.name for row in rows), *structures]}
    optimized_on: dict[str, str] = {}
    for name in list(structures):
        if name not in with_terms or name not in voxels:
            continue
        written = []
        for row in voxels[name].takers:
            why = "excluded from the case" if row.excluded else None
            if why is None and _quoted(row.name) is None:
                why = "named with both quote characters, which a structure expression cannot write"
            if why is None:
                written.append(row)
                continue
            untranslated.append(
                f"{name}: its terms also see the voxels it shares with {_ranked(row)}, which matRad's overlap "
                f"priorities leave out of {name}'s functions: {_shown(row)} is {why}"
            )
        if written and _quoted(name) is None:
            untranslated.append(
                f"{name}: named with both quote characters, which a structure expression cannot write: its terms "
                f"also see the voxels it shares with {', '.join(_ranked(row) for row in written)}, which matRad's "
                "overlap priorities leave out of its functions"
            )
            continue
        if not written:
            continue
        for row in written:
            if row.name not in structures:
                structures[row.name] = {"role": "other"}
                color = visible_color(cst, row.index)
                if color is not None:
                    structures[row.name]["color"] = color
        derived = _free_name(f"{name}_opt", taken)
        subtracted = " | ".join(str(_quoted(row.name)) for row in written)
        structures[derived] = {
            "role": "target" if structures[name]["role"] == "target" else "other",
            "expression": f"{_quoted(name)} - " + (subtracted if len(written) == 1 else f"({subtracted})"),
        }
        optimized_on[name] = derived
    for term in terms:
        term["structure"] = optimized_on.get(term["structure"], term["structure"])
    return optimized_on


_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _quoted(name: str) -> str | None:
    """`name` as a structure expression writes it; None when it cannot (both quote characters)."""
    if _BARE_NAME.fullmatch(name) and name not in FUNCTIONS:
        return name
    for quote in ('"', "'"):
        if quote not in name:
            return f"{quote}{name}{quote}"
    return None


def _free_name(wanted: str, taken: set[str]) -> str:
    """`wanted`, or `wanted2`, `wanted3`, ...: the first no cst row or protocol structure has (in any case)."""
    name, number = wanted, 1
    while name.casefold() in taken:
        number += 1
        name = f"{wanted}{number}"
    taken.add(name.casefold())
    return name


def _shown(row: _CstRow) -> str:
    """The row's specc name, and how cst{i,2} writes it where that differs (leading or trailing spaces)."""
    return row.name if row.written == row.name else f"{row.name} (cst{{{row.index + 1},2}} {row.written!r})"


def _ranked(row: _CstRow) -> str:
    return f"{_shown(row)} (Priority {format_number(row.priority)})"


def _levels(
    structures: dict[str, dict[str, Any]],
    functions: dict[str, list[CstFunction]],
    targets: Mapping[str, Dose | None] | None,
    source: str,
) -> tuple[dict[str, Dose], list[str]]:
    """Each prescribed target's dose level, and a line saying where it came from."""
    candidates = [name for name, spec in structures.items() if spec["role"] == "target"]
    if targets is None:
        targets = dict.fromkeys(candidates)
    if not targets:
        raise ObjectivesError(f"{source}: cst has no TARGET structure to prescribe to")
    levels: dict[str, Dose] = {}
    lines: list[str] = []
    for name, given in targets.items():
        if name not in candidates:
            raise ObjectivesError(
                f"{source}: --target {name}: not a TARGET structure of cst (targets: {', '.join(candidates) or 'none'})"
            )
        if given is not None:
            levels[name] = given
            lines.append(f"{name} {given} (given)")
            continue
        found = _level_from_objectives(functions[name], source)
        if found is None:
            raise ObjectivesError(
                f"{source}: target '{name}' has no squared deviation, squared underdosing or min DVH objective to "
                f"take its dose level from: give it (--target '{name}=60 Gy'), or prescribe other targets only "
                "(--target NAME)"
            )
        levels[name], where = found
        lines.append(f"{name} {levels[name]}: the dose of its {where}")
    unprescribed = [name for name in candidates if name not in levels]
    if unprescribed:
        lines.append(f"no dose level for {', '.join(unprescribed)} (not named with --target)")
    return levels, lines


def _level_from_objectives(functions: list[CstFunction], source: str) -> tuple[Dose, str] | None:
    for class_name, description in _LEVEL_SOURCES:
        of_kind = [function for function in functions if function.class_name == class_name]
        doses = [(function.dose(0, source), function.where) for function in of_kind]
        doses = [(dose, where) for dose, where in doses if dose > 0]
        if doses:
            dose, where = max(doses)
            return Dose(gy=dose), f"{description} {where}"
    return None


def _header(
    path: Path,
    course: tuple[int, str],
    levels: list[str],
    notes: list[str],
    ignored_penalties: list[str],
    overlaps: list[str],
    has_terms: bool,
    has_goals: bool,
    untranslated: list[str],
) -> str:
    paragraphs = [
        f"Translated from {path.name} (matRad cst objectives and constraints) by specc import matrad-objectives.",
        f"Prescription: {course[0]} fractions ({course[1]}); " + "; ".join(levels) + ".",
    ]
    if has_terms:
        paragraphs.append(
            "Weights are matRad's penalties. Both matRad and specc sum weight x f(dose per fraction) over the terms, "
            "with every dose divided by the fractions, and average over a structure's voxels (matRad 1/N, specc the "
            "relative volumes), so a weight means the same where the function is the same:"
        )
        paragraphs += [f"  - {NOTES[note]}" for note in notes]
        if ignored_penalties:
            paragraphs.append("Stored penalties matRad does not read (old format, see above):")
            paragraphs += [f"  - {line}" for line in ignored_penalties]
        if overlaps:
            paragraphs.append(
                "Overlap priorities: matRad optimizes a structure's functions on its voxels less those of every cst "
                "row with a strictly higher overlap priority (a lower cst{i,5}.Priority) that has functions of its "
                "own; equal priorities share their overlap (matRad_setOverlapPriorities). So the terms of these "
                "structures, and the goals made of the same functions, are on derived ones (a row that cannot be "
                "subtracted is listed below):"
            )
            paragraphs += [f"  - {line}" for line in overlaps]
            paragraphs.append(
                "On the same voxels the functions are matRad's, the squared ones exactly: the case's masks are "
                "matRad's sampled on the dose grid by nearest neighbour (matRad_resizeCstToGrid), and sampling "
                "voxel by voxel keeps a difference of masks a difference."
            )
        else:
            paragraphs.append(
                "Overlap priorities (cst{i,5}.Priority) take no voxel from a structure with terms: the terms are on "
                "the clinical structures, the voxels matRad optimizes them on."
            )
    else:
        paragraphs.append("No objective was translated: specc derives the optimization from the goals.")
    if has_goals:
        paragraphs.append(
            f"Goals: matRad's DVH objectives (priority {OBJECTIVE_PRIORITY}) and its dose, mean-dose and DVH "
            "constraints (priority 1) are goals too, so that the report judges the plan on them. Each is on the "
            "structure its function's terms are on: the clinical one (cst{i,2}), or its derived _opt structure where "
            "overlap priorities take voxels from it, since matRad's function holds only on the voxels left (a Body "
            "V40Gy[%] <= 5 judged on the whole Body would count the PTV inside it). A structure matRad optimizes "
            "on no voxel has neither terms nor goals (listed below)."
        )
    if untranslated:
        paragraphs.append("Not translated (review these by hand):")
        paragraphs += [f"  - {item}" for item in untranslated]
    lines = []
    for paragraph in paragraphs:
        indent = "    " if paragraph.startswith("  - ") else ""
        lines += textwrap.wrap(paragraph, width=108, subsequent_indent=indent, break_on_hyphens=False)
    return "".join(f"# {line}\n" for line in lines)
