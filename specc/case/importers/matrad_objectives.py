"""A matRad workspace's cst objectives and constraints translated into a specc protocol (YAML text).

The structures are the cst rows of type TARGET (role target) and OAR (role oar), named as
`specc import matrad` names them in the case of the same workspace (cst{i,2}, trimmed), with
cst{i,5}.visibleColor; the terms come from cst{i,6} (`matrad_cst_functions` reads both of
matRad's formats, `matrad_objective_kinds` maps each class). matRad's DVH objectives and
its constraints are goals too, so the report judges the plan on them. The prescription is
what matRad does not state as such: the fractions come from pln.numOfFractions (or the
caller), each target's dose level from its own objectives (`_LEVEL_SOURCES`), or from the
caller. Everything left out is listed, in the result and as comments at the top of the YAML,
and the output is checked with the protocol parser before it is returned.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from specc.case.importers.mat_file import load_mat
from specc.case.importers.matrad import visible_color
from specc.case.importers.matrad_cst_functions import CstFunction, ObjectivesError, cst_functions
from specc.case.importers.matrad_objective_kinds import NOTES, OBJECTIVE_PRIORITY, Untranslatable, translate
from specc.protocol import ProtocolError, parse_protocol_text
from specc.protocol.units import Dose

_ROLES = {"TARGET": "target", "OAR": "oar"}
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


def convert_matrad_objectives(
    path: str | Path,
    *,
    fractions: int | None = None,
    targets: Mapping[str, Dose | None] | None = None,
    exclude: Sequence[str] = (),
) -> TranslatedProtocol:
    """Translate the cst objectives of a matRad workspace.

    `fractions` overrides pln.numOfFractions (required without it). `targets` names the targets
    that get a dose level, each with its dose or None to take it from its objectives; left
    out, every TARGET gets one from its objectives. `exclude` leaves cst structures out, as
    `specc import matrad --exclude` leaves them out of the case.
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

    structures: dict[str, dict[str, Any]] = {}
    functions: dict[str, list[CstFunction]] = {}
    seen: set[str] = set()
    for row in range(cst.shape[0]):
        name, kind = _row(cst, row, source)
        if name in seen:
            raise ObjectivesError(f"{source}: structure name '{name}' appears twice in cst")
        seen.add(name)
        row_functions = cst_functions(cst, row, name, source)
        if name in exclude or kind not in _ROLES:
            why = "excluded on request" if name in exclude else f"cst type {kind}, not TARGET or OAR"
            held = f"; its {len(row_functions)} cst{{{row + 1},6}} function(s) with it" if row_functions else ""
            untranslated.append(f"{name}: {why}{held}")
            continue
        structures[name] = {"role": _ROLES[kind]}
        color = visible_color(cst, row)
        if color is not None:
            structures[name]["color"] = color
        functions[name] = row_functions
    for name in exclude:
        if name not in seen:
            raise ObjectivesError(f"{source}: --exclude {name}: cst has no structure of that name")

    terms: list[dict[str, Any]] = []
    goals: dict[str, list[str]] = {}
    notes: list[str] = []
    for name, row_functions in functions.items():
        for function in row_functions:
            label = f"{function.where} ({name}, {function.kind})"
            try:
                translation = translate(function, source)
            except Untranslatable as reason:
                untranslated.append(f"{label}: {reason}")
                continue
            terms += translation.terms
            for goal in translation.goals:
                if goal not in goals.setdefault(name, []):
                    goals[name].append(goal)
            notes += [note for note in translation.notes if note not in notes]
            untranslated += [f"{label}: {part}" for part in translation.left_out]

    levels, level_lines = _levels(structures, functions, targets, source)
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
    header = _header(path, course, level_lines, notes, bool(terms), bool(goals), untranslated)
    text = header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)
    try:
        parse_protocol_text(text, filename=f"{path.stem}.yaml")
    except ProtocolError as error:  # e.g. contradictory constraints in the workspace itself
        raise ObjectivesError(f"{source}: the translated protocol does not validate:\n{error}") from None
    return TranslatedProtocol(
        yaml_text=text,
        terms=len(terms),
        goals=sum(len(g) for g in goals.values()),
        levels=levels,
        fractions=course[0],
        untranslated=untranslated,
    )


def _row(cst: np.ndarray, row: int, source: str) -> tuple[str, str]:
    name, kind = cst[row, 1], cst[row, 2]
    if not isinstance(name, str) or not name.strip():
        raise ObjectivesError(f"{source}: cst{{{row + 1},2}} is not a structure name")
    if not isinstance(kind, str):
        raise ObjectivesError(f"{source}: cst{{{row + 1},3}} ({name.strip()}) is not a type (TARGET, OAR, IGNORED)")
    return name.strip(), kind.strip()


def _fractions(pln: dict, given: int | None, source: str) -> tuple[int, str]:
    """The number of fractions and where it came from."""
    if given is not None:
        if given < 1:
            raise ObjectivesError(f"the number of fractions must be at least 1, got {given}")
        return given, "given"
    if "numOfFractions" not in pln:
        raise ObjectivesError(
            f"{source}: no pln.numOfFractions, and matRad's doses are totals over the course: give the number of "
            "fractions (--fractions N)"
        )
    value = np.asarray(pln["numOfFractions"], dtype=np.float64).ravel()
    if value.size != 1 or not value[0] >= 1 or value[0] != round(value[0]):
        raise ObjectivesError(f"{source}: pln.numOfFractions must be a positive integer, got {value.tolist()}")
    return int(value[0]), "pln.numOfFractions"


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
    else:
        paragraphs.append("No objective was translated: specc derives the optimization from the goals.")
    if has_goals:
        paragraphs.append(
            f"Goals: matRad's DVH objectives (priority {OBJECTIVE_PRIORITY}) and its dose, mean-dose and DVH "
            "constraints (priority 1) are goals too, so that the report judges the plan on them."
        )
    if untranslated:
        paragraphs.append("Not translated (review these by hand):")
        paragraphs += [f"  - {item}" for item in untranslated]
    lines = []
    for paragraph in paragraphs:
        indent = "    " if paragraph.startswith("  - ") else ""
        lines += textwrap.wrap(paragraph, width=108, subsequent_indent=indent, break_on_hyphens=False)
    return "".join(f"# {line}\n" for line in lines)
