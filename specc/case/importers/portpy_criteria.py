"""PortPy clinical-criteria JSON translated into a specc protocol (YAML text).

PortPy states each criterion's kind (max_dose, mean_dose, dose_volume_V, dose_volume_D) under
`name` (PortPy's current files and its `ClinicalCriteria` / `Evaluation` code) or `type` (older
files), `parameters` (structure, dose or volume point, and for a derived structure its
`structure_def`) and `constraints` with a hard `limit_*` and a softer `goal_*`. In specc the
goal is the threshold to aim for and the limit the acceptable variation, so `limit 52 Gy, goal
50 Gy` becomes `Max <= 50 Gy (variation 52 Gy)`. PortPy writes that pair in one criterion or in
two of the same kind, structure and dose or volume point (Lung_2Gy_30Fx.json's HEART V30Gy:
`limit_volume_perc: 50`, then `goal_volume_perc: 48`): one clinical criterion either way, so
criteria are merged on structure and metric before they become goals (two goals would fail a
plan at 49%, which PortPy counts within its limit). Two different limits (or goals) on one
metric leave open which is meant: listed, not guessed. PortPy criteria are upper bounds (PortPy
passes a criterion when the value is at or below it). A derived structure takes PortPy's own
`structure_def` boolean expression (`(LUNG_L | LUNG_R) - GTV`: PortPy's operators are specc's,
and one that Python's precedence would read otherwise is refused); only a file without one has
its `A_NOT_B` name read as `A - B`. Names with a TG-263 target prefix (GTV, CTV, ITV, PTV)
get the target role, the others with criteria the organ-at-risk role, and every contoured
non-target is `if_contoured` because PortPy skips a criterion whose structure the patient lacks.
Everything else is listed as untranslated with why, in the result and as comments at the top of
the YAML; a file of which nothing translates is an error. The output is checked with the
protocol parser before it is returned.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from specc.errors import SpeccError
from specc.protocol import parse_protocol_text
from specc.protocol.structures import Difference, Intersection, StructureExpr, StructureRef, Union, parse_expression
from specc.protocol.units import format_number

# TG-263 target names start with these; every other structure with a criterion is an organ at risk.
_TARGET_PREFIXES = ("GTV", "CTV", "ITV", "PTV")
_NOT = re.compile(r"^(?P<a>[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*?)_NOT_(?P<b>[A-Za-z0-9_]+)$")


class CriteriaError(SpeccError):
    """A PortPy criteria file that cannot be read or has no prescription."""


@dataclass
class ConvertedProtocol:
    yaml_text: str
    goals: int
    untranslated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def convert_portpy_criteria(path: str | Path, *, target: str) -> ConvertedProtocol:
    """Translate a criteria file; `target` is the structure that receives the prescription."""
    path = Path(path)
    try:
        criteria = json.loads(path.read_text())
    except FileNotFoundError:
        raise CriteriaError(f"{path}: no such file") from None
    except json.JSONDecodeError as error:
        raise CriteriaError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
    if not isinstance(criteria, dict):
        raise CriteriaError(f"{path}: expected a JSON object with 'criteria'")
    try:
        per_fraction = float(criteria["pres_per_fraction_gy"])
        fractions = int(criteria["num_of_fractions"])
    except (KeyError, TypeError, ValueError):
        raise CriteriaError(f"{path}: needs numeric 'pres_per_fraction_gy' and 'num_of_fractions'") from None
    if fractions < 1 or per_fraction <= 0:
        raise CriteriaError(f"{path}: the prescription must be positive ({per_fraction} Gy x {fractions})")

    items = criteria.get("criteria")
    if not isinstance(items, list) or not items:
        raise CriteriaError(f"{path}: no 'criteria' list (nothing to translate)")
    translation = _translate(items)
    goals, definitions, untranslated = translation.goals, translation.definitions, translation.untranslated
    if not goals:
        raise CriteriaError(
            f"{path}: none of its {len(items)} criteria could be translated (no protocol written):\n"
            + "\n".join(f"  - {item}" for item in untranslated)
        )
    structures = _structures(target, goals, definitions)
    notes = [
        f"{name}: expression {entry['expression']} read from its name (the file gives no structure_def): check it"
        for name, entry in structures.items()
        if "expression" in entry and name not in definitions
    ] + translation.merged

    document = {
        "specc": 1,
        "name": str(criteria.get("protocol_name", path.stem)),
        "site": str(criteria.get("disease_site", "unspecified")),
        "version": "1.0.0",
        "description": f"Translated from the PortPy clinical criteria {path.name} by specc import portpy-criteria.",
        "structures": structures,
        "prescription": {
            "fractions": fractions,
            "levels": [{"target": target, "dose": f"{format_number(round(per_fraction * fractions, 6))} Gy"}],
        },
        "goals": goals,
    }
    header = [f"# Translated from {path.name} (PortPy clinical criteria)."] + [f"# {note}" for note in notes]
    if untranslated:
        header.append("# Not translated (review these by hand):")
        header += [f"#   - {item}" for item in untranslated]
    text = "\n".join(header) + "\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)
    parse_protocol_text(text, filename=f"{path.stem}.yaml")  # a ProtocolError here is a bug in the translation
    return ConvertedProtocol(
        yaml_text=text, goals=sum(len(g) for g in goals.values()), untranslated=untranslated, notes=notes
    )


@dataclass
class _Translation:
    goals: dict[str, list[str]] = field(default_factory=dict)  # compact goal texts by structure
    definitions: dict[str, str] = field(default_factory=dict)  # structure_def expressions by structure
    untranslated: list[str] = field(default_factory=list)  # each criterion not translated, with why
    merged: list[str] = field(default_factory=list)  # notes: criteria on one metric read as one goal


def _translate(items: list[Any]) -> _Translation:
    """Each criterion read, then those on one structure and metric merged into one goal."""
    translation = _Translation()
    untranslated: list[tuple[int, str]] = []
    read: dict[tuple[str, str], list[tuple[int, _Criterion]]] = {}  # by structure and metric, in file order
    for index, item in enumerate(items):
        try:
            criterion = _criterion(item)
            definition = _definition(item, criterion.structure, translation.definitions)
        except _Untranslatable as reason:
            untranslated.append((index, _listed(index, item, reason)))
            continue
        read.setdefault((criterion.structure, criterion.metric), []).append((index, criterion))
        if definition is not None:
            translation.definitions[criterion.structure] = definition
    for (structure, _), group in read.items():
        try:
            goal = _merged(group)
        except _Untranslatable as reason:
            untranslated += [(index, _listed(index, items[index], reason)) for index, _ in group]
            continue
        translation.goals.setdefault(structure, []).append(goal)
        if len(group) > 1:
            numbers = " and ".join(f"criteria[{index}]" for index, _ in group)
            translation.merged.append(f"{structure}: {numbers} state one criterion, read as one goal: {goal}")
    translation.untranslated = [text for _, text in sorted(untranslated)]
    return translation


def _structures(target: str, goals: dict[str, list[str]], definitions: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Roles, derived structures and if_contoured: PortPy evaluates a criterion only when the patient has its
    structure, so every contoured non-target may be absent; the prescribed target and targets may not."""
    structures: dict[str, dict[str, Any]] = {target: {"role": "target"}}
    for name in goals:
        structures.setdefault(name, {"role": "target" if name.upper().startswith(_TARGET_PREFIXES) else "oar"})
    for name in list(structures):
        match = _NOT.match(name)
        if name in definitions:
            structures[name]["expression"] = definitions[name]
            parts: tuple[str, ...] = parse_expression(definitions[name]).names()
        elif match:
            structures[name]["expression"] = f"{match['a']} - {match['b']}"
            parts = (match["a"], match["b"])
        else:
            continue
        for part in parts:
            structures.setdefault(part, {"role": "other"})
    for entry in structures.values():
        if entry["role"] != "target" and "expression" not in entry:
            entry["if_contoured"] = True
    return structures


class _Untranslatable(Exception):
    pass


def _definition(item: dict, structure: str, known: dict[str, str]) -> str | None:
    """PortPy's `structure_def` of a derived structure, as a specc expression (PortPy's `|`, `&`, `-` are specc's)."""
    definition = (item.get("parameters") or {}).get("structure_def")  # an object: _goal checked it
    if definition is None:
        return None
    if not isinstance(definition, dict) or definition.get("type") != "boolean":
        raise _Untranslatable(f"structure_def {json.dumps(definition)} is not a boolean expression specc can read")
    expression = definition.get("expression")
    if not isinstance(expression, str):
        raise _Untranslatable("structure_def has no expression text")
    try:
        parsed = parse_expression(expression)
    except ValueError as error:
        raise _Untranslatable(f"structure_def expression {expression!r} is not a specc expression ({error})") from None
    names = parsed.names()
    if _truth_table(parsed, names) != _python_truth_table(expression, names):
        raise _Untranslatable(
            f"structure_def expression {expression!r} reads differently under Python's operator precedence "
            "(PortPy's) and specc's: parenthesize it"
        )
    if structure in names:
        raise _Untranslatable(f"structure_def of {structure} refers to itself")
    if known.get(structure, expression) != expression:
        raise _Untranslatable(f"structure_def {expression!r} differs from {structure}'s earlier {known[structure]!r}")
    return expression


def _truth_table(expression: StructureExpr, names: tuple[str, ...]) -> frozenset[int]:
    """The voxel patterns (bit k: inside names[k]) the expression contains, as specc reads it."""
    if isinstance(expression, StructureRef):
        return _membership(names.index(expression.name), len(names))
    operators = {Union: frozenset.__or__, Difference: frozenset.__sub__, Intersection: frozenset.__and__}
    if type(expression) in operators:
        left, right = _truth_table(expression.left, names), _truth_table(expression.right, names)
        return operators[type(expression)](left, right)
    raise _Untranslatable(f"structure_def expression {expression} uses margins: not a boolean expression")


def _python_truth_table(expression: str, names: tuple[str, ...]) -> frozenset[int] | None:
    """The same table read with Python's precedence (`-` before `&` before `|`), as PortPy's Python code would:
    parsed by ast, never evaluated as code. None when Python cannot read it as names and the three operators."""
    operators = {ast.BitOr: frozenset.__or__, ast.BitAnd: frozenset.__and__, ast.Sub: frozenset.__sub__}

    def table(node: ast.expr) -> frozenset[int]:
        if isinstance(node, ast.Name) and node.id in names:
            return _membership(names.index(node.id), len(names))
        if isinstance(node, ast.BinOp) and type(node.op) in operators:
            return operators[type(node.op)](table(node.left), table(node.right))
        raise ValueError(ast.dump(node))

    try:
        return table(ast.parse(expression.strip(), mode="eval").body)
    except (SyntaxError, ValueError):
        return None


def _membership(bit: int, count: int) -> frozenset[int]:
    return frozenset(pattern for pattern in range(2**count) if pattern >> bit & 1)


def _kind(item: dict) -> Any:
    """The criterion's kind: `name` in PortPy's current files, `type` in older ones."""
    name, kind = item.get("name"), item.get("type")
    if name is not None and kind is not None and name != kind:
        raise _Untranslatable(f"name {name!r} and type {kind!r} disagree")
    if name is None and kind is None:
        raise _Untranslatable("no criterion name (or type)")
    return name if name is not None else kind


@dataclass(frozen=True)
class _Bound:
    """A PortPy limit or goal: a dose (`Gy`, or `%` of the prescription) or a volume (`%` or `cc`)."""

    value: float
    unit: str

    def __str__(self) -> str:
        return f"{format_number(self.value)}{'%' if self.unit == '%' else ' ' + self.unit}"


@dataclass(frozen=True)
class _Criterion:
    """One PortPy criterion as read: its limit, its goal or both (PortPy may split the two over two criteria)."""

    structure: str
    metric: str  # Max, Mean, D33%, D2cc, V30Gy, V95%: a V metric's [%] / [cc] is its bounds' unit
    limit: _Bound | None
    goal: _Bound | None


def _listed(index: int, item: Any, reason: _Untranslatable) -> str:
    return f"criteria[{index}] {json.dumps(item, sort_keys=True)}: {reason}"


def _criterion(item: Any) -> _Criterion:
    if not isinstance(item, dict):
        raise _Untranslatable("not a criterion object")
    kind = _kind(item)
    parameters = item.get("parameters") or {}
    constraints = item.get("constraints") or {}
    if not isinstance(parameters, dict) or not isinstance(constraints, dict):
        raise _Untranslatable("parameters and constraints must be objects")
    structure = parameters.get("structure_name")
    if not isinstance(structure, str) or not structure.strip():
        raise _Untranslatable("no parameters.structure_name")
    if kind in ("max_dose", "mean_dose"):
        metric = "Max" if kind == "max_dose" else "Mean"
    elif kind == "dose_volume_V":
        if "dose_gy" in parameters:
            metric = f"V{_point(parameters, 'dose_gy')}Gy"
        elif "dose_perc" in parameters:
            metric = f"V{_point(parameters, 'dose_perc')}%"
        else:
            raise _Untranslatable("dose_volume_V without parameters.dose_gy or dose_perc")
    elif kind == "dose_volume_D":
        if "volume_perc" in parameters:
            metric = f"D{_point(parameters, 'volume_perc')}%"
        elif "volume_cc" in parameters:
            metric = f"D{_point(parameters, 'volume_cc')}cc"
        else:
            raise _Untranslatable("dose_volume_D without parameters.volume_perc or volume_cc")
    else:
        raise _Untranslatable(f"criterion {kind!r} has no specc equivalent")
    units = {"volume_perc": "%", "volume_cc": "cc"} if kind == "dose_volume_V" else {"dose_gy": "Gy", "dose_perc": "%"}
    limit, goal = _pick(constraints, "limit", units), _pick(constraints, "goal", units)
    if limit is None and goal is None:
        raise _Untranslatable(f"no limit_* or goal_* constraint in {sorted(constraints)}")
    return _Criterion(structure.strip(), metric, limit, goal)


def _point(parameters: dict, key: str) -> str:
    """The criterion's dose or volume point as the metric writes it; a non-number is listed, not a traceback."""
    value = parameters[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _Untranslatable(f"parameters.{key} {json.dumps(value)} is not a non-negative number")
    return format_number(float(value))


def _pick(constraints: dict, prefix: str, units: dict[str, str]) -> _Bound | None:
    found = [key for key in units if f"{prefix}_{key}" in constraints]
    if len(found) > 1:
        raise _Untranslatable(f"both {' and '.join(prefix + '_' + key for key in found)} given")
    if not found:
        return None
    value = constraints[f"{prefix}_{found[0]}"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Untranslatable(f"{prefix}_{found[0]} is not a number")
    return _Bound(float(value), units[found[0]])


def _merged(group: list[tuple[int, _Criterion]]) -> str:
    """One goal from the criteria on one structure and metric: the goal the threshold, the limit its variation."""
    metric = group[0][1].metric
    limit = _one("limit", [(index, criterion.limit) for index, criterion in group], metric)
    goal = _one("goal", [(index, criterion.goal) for index, criterion in group], metric)
    if limit is not None and goal is not None and limit.unit != goal.unit:
        raise _Untranslatable(f"goal {goal} and limit {limit} are in different units")
    if limit is not None and goal is not None and goal.value > limit.value:
        raise _Untranslatable(f"goal {goal} is looser than limit {limit} for an upper bound")
    threshold = goal or limit
    assert threshold is not None  # each criterion has a limit or a goal (_criterion)
    variation = limit if goal is not None and limit is not None and limit.value != goal.value else None
    volume = metric.startswith("V")
    text = f"{metric}[{threshold.unit}] <= {format_number(threshold.value)}" if volume else f"{metric} <= {threshold}"
    if variation is not None:
        text += f" (variation {format_number(variation.value) if volume else variation})"
    return text


def _one(side: str, bounds: list[tuple[int, _Bound | None]], metric: str) -> _Bound | None:
    """The one limit (or goal) the criteria give; two different ones leave open which is meant."""
    given = [(index, bound) for index, bound in bounds if bound is not None]
    if len({bound for _, bound in given}) > 1:
        stated = ", ".join(f"criteria[{index}] {bound}" for index, bound in given)
        raise _Untranslatable(f"different {side}s for {metric} ({stated}): which one is meant is left open")
    return given[0][1] if given else None
