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
`structure_def`. PortPy's code reads it as text (`Structures.evaluate_expression`, as in
Paraspinal_1Fx.json's `"BRPLX_L - (PTV + 3)"`): operators applied strictly left to right, `+` a
union or, before a whole number, a margin in mm, `-` a difference or an inner margin, the result
clipped to BODY; that reading is written in specc's language (`(BRPLX_L - expand(PTV, 3mm)) &
BODY`), and text PortPy's parser would skip, hang on or fail on is listed. An older object form
(`{"type": "boolean", "expression": "(LUNG_L | LUNG_R) - GTV"}`), which that code does not read,
is taken where Python's precedence, PortPy's left-to-right order and specc's agree. Only a file
without a `structure_def` has its `A_NOT_B` name read as `A - B`. Names with a TG-263 target
prefix (GTV, CTV, ITV, PTV) get the target role, the others with criteria the organ-at-risk role, and every contoured
non-target is `if_contoured` because PortPy skips a criterion whose structure the patient lacks.
Everything else is listed as untranslated with why, in the result and as comments at the top of
the YAML; a file of which nothing translates is an error. Each dose in Gy a criterion states is held to the
prescription by the protocol's own plausibility rule (`specc.protocol.plausibility`) as the criterion is read: 4500
Gy under a 60 Gy prescription is 4500 cGy written as Gy, and one such criterion is listed, naming its field and
value, while the rest translate. The output is checked with the protocol parser before it is returned.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from specc.errors import SpeccError
from specc.protocol import Protocol, ProtocolError, parse_protocol_text
from specc.protocol.goals import Goal
from specc.protocol.plausibility import LARGEST_MARGIN_MM, plausible_doses
from specc.protocol.structures import (
    Difference,
    Expand,
    Intersection,
    Ring,
    Shrink,
    StructureExpr,
    StructureRef,
    Union,
    parse_expression,
)
from specc.protocol.units import format_number

# TG-263 target names start with these; every other structure with a criterion is an organ at risk.
_TARGET_PREFIXES = ("GTV", "CTV", "ITV", "PTV")
_NOT = re.compile(r"^(?P<a>[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*?)_NOT_(?P<b>[A-Za-z0-9_]+)$")
# PortPy clips every structure it derives from a structure_def to this structure (Structures.create_opt_structures).
_PORTPY_BODY = "BODY"
# A token of PortPy's structure_def text: an operand (a structure name, or a margin in whole mm) starts with a letter or
# digit and runs on over letters, digits and `-_.$^`, so `CORD-TREATED` is one name; `+ - | &` and parentheses.
_PORTPY_TOKEN = re.compile(r"\s*(?:(?P<operand>[^\W_][\w\-.$^]*)|(?P<symbol>[-+|&()]))")


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
    per_fraction, fractions = _prescription(criteria, path)
    items = criteria.get("criteria")
    if not isinstance(items, list) or not items:
        raise CriteriaError(f"{path}: no 'criteria' list (nothing to translate)")
    prescription = {
        "fractions": fractions,
        "levels": [{"target": target, "dose": f"{format_number(round(per_fraction * fractions, 6))} Gy"}],
    }
    translation = _translate(items, _prescribed(target, prescription))
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
        "prescription": prescription,
        "goals": goals,
    }
    header = [f"# Translated from {path.name} (PortPy clinical criteria)."] + [f"# {note}" for note in notes]
    if untranslated:
        header.append("# Not translated (review these by hand):")
        header += [f"#   - {item}" for item in untranslated]
    text = "\n".join(header) + "\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)
    try:  # each criterion was checked as it was read: a refusal here is a value the checks do not foresee
        parse_protocol_text(text, filename=f"<translation of {path.name}>")
    except ProtocolError as error:
        raise CriteriaError(
            f"{path}: the translated protocol does not validate (no protocol written):\n{error}"
        ) from None
    return ConvertedProtocol(
        yaml_text=text, goals=sum(len(g) for g in goals.values()), untranslated=untranslated, notes=notes
    )


def _prescription(criteria: dict, path: Path) -> tuple[float, int]:
    """PortPy's dose per fraction (Gy) and number of fractions, each refused naming its field unless it is one:
    every %-of-prescription goal is judged against their product, so 2.5 fractions must not become 2 (4 Gy where
    the file says 5 Gy) nor `true` 1, and a NaN or Infinity (which Python's json writes) has no dose to judge by."""
    missing = [key for key in ("pres_per_fraction_gy", "num_of_fractions") if criteria.get(key) is None]
    if missing:
        raise CriteriaError(
            f"{path}: needs numeric 'pres_per_fraction_gy' and 'num_of_fractions' ({' and '.join(missing)} not given)"
        )
    per_fraction, fractions = _finite(criteria["pres_per_fraction_gy"]), _finite(criteria["num_of_fractions"])
    if per_fraction is None or per_fraction <= 0:
        written = json.dumps(criteria["pres_per_fraction_gy"])
        raise CriteriaError(f"{path}: pres_per_fraction_gy {written} is not a finite, positive number of Gy")
    if fractions is None or fractions < 1 or not fractions.is_integer():
        written = json.dumps(criteria["num_of_fractions"])
        raise CriteriaError(f"{path}: num_of_fractions {written} is not a whole number >= 1")
    if not math.isfinite(per_fraction * fractions):
        raise CriteriaError(f"{path}: the prescription {per_fraction} Gy x {int(fractions)} is not a finite dose")
    return per_fraction, int(fractions)


def _finite(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else: a boolean, text, null, NaN, Infinity, or an integer
    past a float's range (JSON integers have no bound)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


@dataclass
class _Translation:
    goals: dict[str, list[str]] = field(default_factory=dict)  # compact goal texts by structure
    definitions: dict[str, str] = field(default_factory=dict)  # structure_def expressions by structure
    untranslated: list[str] = field(default_factory=list)  # each criterion not translated, with why
    merged: list[str] = field(default_factory=list)  # notes: criteria on one metric read as one goal


def _prescribed(target: str, prescription: dict[str, Any]) -> Protocol | None:
    """The prescription alone, as a protocol, for holding each criterion's doses to it (`_plausible`); None when
    the prescription itself does not validate (a target name specc cannot take, a dose level no course gives):
    no criterion explains that, and the translated protocol's check reports it for the whole file."""
    try:
        return Protocol.model_validate({
            "specc": 1, "name": "prescription", "site": "unspecified", "version": "1.0.0",
            "structures": {target: {"role": "target"}}, "prescription": prescription,
        })
    except (ProtocolError, ValidationError):
        return None


def _translate(items: list[Any], course: Protocol | None) -> _Translation:
    """Each criterion read and its doses held to the prescription, then those on one structure and metric merged
    into one goal."""
    translation = _Translation()
    untranslated: list[tuple[int, str]] = []
    read: dict[tuple[str, str], list[tuple[int, _Criterion]]] = {}  # by structure and metric, in file order
    for index, item in enumerate(items):
        try:
            criterion = _criterion(item)
            _plausible(item, criterion, course)
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
    """PortPy's `structure_def` of a derived structure, as a specc expression."""
    definition = (item.get("parameters") or {}).get("structure_def")
    if definition is None:
        return None
    if isinstance(definition, str):
        derived = Intersection(_portpy_expression(definition), StructureRef(_PORTPY_BODY))
        expression = str(derived)
        assert parse_expression(expression) == derived  # specc reads back what PortPy's text means
    elif isinstance(definition, dict) and definition.get("type") == "boolean":
        expression = _boolean_definition(definition)
    else:
        raise _Untranslatable(f"structure_def {json.dumps(definition)} is not an expression specc can read")
    if structure in parse_expression(expression).names():
        raise _Untranslatable(f"structure_def of {structure} refers to itself")
    if known.get(structure, expression) != expression:
        raise _Untranslatable(f"structure_def {expression!r} differs from {structure}'s earlier {known[structure]!r}")
    return expression


def _boolean_definition(definition: dict) -> str:
    """The object form's expression, where no reading of its precedence changes it. PortPy's code does not read this
    form (it hands structure_def to its text parser), so which order its author meant is open: Python's
    (`-` before `&` before `|`), PortPy's text parser's (left to right) and specc's (`&` first) must agree."""
    expression = definition.get("expression")
    if not isinstance(expression, str):
        raise _Untranslatable("structure_def has no expression text")
    try:
        parsed = parse_expression(expression)
    except ValueError as error:
        raise _Untranslatable(f"structure_def expression {expression!r} is not a specc expression ({error})") from None
    names = parsed.names()
    portpy = _portpy_tree(expression)
    if set(portpy.names()) != set(names):
        raise _Untranslatable(
            f"structure_def expression {expression!r}: PortPy's parser reads the names {list(portpy.names())}, "
            f"specc {list(names)}"
        )
    specc = _truth_table(parsed, names)
    if specc != _python_truth_table(expression, names) or specc != _truth_table(portpy, names):
        raise _Untranslatable(
            f"structure_def expression {expression!r} reads differently under Python's operator precedence, "
            "PortPy's left-to-right parser and specc's precedence: parenthesize it"
        )
    return expression


def _portpy_expression(text: str) -> StructureExpr:
    """A string structure_def as PortPy's `Structures.evaluate_expression` evaluates it. Its scanner never gets past
    a one-character operand with whitespace on both sides (`A | B - C` hangs), so such text is refused too."""
    for match in re.finditer(r"(?<=\s)[^\W_](?=\s)", text):
        raise _Untranslatable(
            f"structure_def {text!r}: PortPy's parser does not finish on the one-character operand "
            f"{match[0]!r} between spaces (it never evaluates this definition)"
        )
    return _portpy_tree(text)


def _portpy_tree(text: str) -> StructureExpr:
    """PortPy's reading of structure_def text, as specc's expression tree: `+ - | &` applied strictly left to right
    (no precedence) within parentheses; after `+` / `-` a whole number is a margin in mm (`Structures.expand` /
    `shrink` of the left side, PortPy's `margin_mm`), a structure a union / difference. What PortPy would skip
    without a word (other characters) or fail on (a decimal margin it reads as a structure name, a margin
    elsewhere, unbalanced parentheses) is refused, naming it."""
    tokens: list[str] = []
    position = 0
    while text[position:].strip():
        match = _PORTPY_TOKEN.match(text, position)
        if not match:
            character = text[position:].lstrip()[0]
            raise _Untranslatable(
                f"structure_def {text!r}: PortPy's parser skips {character!r} without a word: its meaning is not known"
            )
        tokens.append(match["operand"] or match["symbol"])
        position = match.end()
    if not tokens:
        raise _Untranslatable("structure_def is empty")
    expression, end = _portpy_sequence(text, tokens, 0)
    if end < len(tokens):
        raise _Untranslatable(f"structure_def {text!r}: {tokens[end]!r} where PortPy expects an operator or the end")
    return expression


def _portpy_sequence(text: str, tokens: list[str], start: int) -> tuple[StructureExpr, int]:
    """Operands joined by operators, folded from the left; returns the tree and the index after it."""
    left, index = _portpy_operand(text, tokens, start)
    if isinstance(left, float):
        raise _Untranslatable(
            f"structure_def {text!r}: a margin ({format_number(left)}) must follow a structure and + or -"
        )
    while index < len(tokens) and tokens[index] in ("+", "-", "|", "&"):
        operator = tokens[index]
        right, index = _portpy_operand(text, tokens, index + 1)
        if not isinstance(right, float):
            left = {"+": Union, "|": Union, "-": Difference, "&": Intersection}[operator](left, right)
        elif operator not in ("+", "-"):
            raise _Untranslatable(f"structure_def {text!r}: PortPy fails on a margin after {operator!r}")
        elif right == 0:
            raise _Untranslatable(f"structure_def {text!r}: a 0 mm margin (PortPy's shrink fails on it)")
        elif right > LARGEST_MARGIN_MM and operator == "-":
            raise _Untranslatable(f"structure_def {text!r}: a shrink by {format_number(right)} mm, beyond any clinical "
                                  f"margin ({format_number(LARGEST_MARGIN_MM)} mm), which specc refuses as a likely "
                                  "unit slip")
        elif right > LARGEST_MARGIN_MM:
            # A region far around a structure (PortPy's `+ inf` for "beyond"), not a margin: specc refuses a margin
            # that large as a likely unit slip and writes the region as the structure and a ring around it.
            left = Union(left, Ring(left, 0.0, right))
        else:
            margins = (right, right, right)
            left = Expand(left, margins) if operator == "+" else Shrink(left, margins)
    return left, index


def _portpy_operand(text: str, tokens: list[str], index: int) -> tuple[StructureExpr | float, int]:
    """A structure name, a margin in whole mm (a float; `inf` is PortPy's 500 mm), or a parenthesized sequence."""
    if index == len(tokens):
        raise _Untranslatable(f"structure_def {text!r} ends where PortPy expects a structure")
    token = tokens[index]
    if token == "(":
        inner, index = _portpy_sequence(text, tokens, index + 1)
        if index == len(tokens) or tokens[index] != ")":
            raise _Untranslatable(f"structure_def {text!r}: a '(' is not closed")
        return inner, index + 1
    if token in ("+", "-", "|", "&", ")"):
        raise _Untranslatable(f"structure_def {text!r}: {token!r} where PortPy expects a structure")
    if re.fullmatch(r"[0-9]+", token):
        return float(token), index + 1
    if token == "inf":  # PortPy's stand-in for an unbounded margin
        return 500.0, index + 1
    if re.fullmatch(r"[0-9]*\.[0-9]*", token):
        raise _Untranslatable(
            f"structure_def {text!r}: PortPy reads {token!r} as a structure name, not a margin (only whole mm are)"
        )
    return StructureRef(token), index + 1


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
            metric = _point(parameters, "dose_gy", "V{}Gy")
        elif "dose_perc" in parameters:
            metric = _point(parameters, "dose_perc", "V{}%")
        else:
            raise _Untranslatable("dose_volume_V without parameters.dose_gy or dose_perc")
    elif kind == "dose_volume_D":
        if "volume_perc" in parameters:
            metric = _point(parameters, "volume_perc", "D{}%")
        elif "volume_cc" in parameters:
            metric = _point(parameters, "volume_cc", "D{}cc")
        else:
            raise _Untranslatable("dose_volume_D without parameters.volume_perc or volume_cc")
    else:
        raise _Untranslatable(f"criterion {kind!r} has no specc equivalent")
    units = {"volume_perc": "%", "volume_cc": "cc"} if kind == "dose_volume_V" else {"dose_gy": "Gy", "dose_perc": "%"}
    limit, goal = _pick(constraints, "limit", units), _pick(constraints, "goal", units)
    if limit is None and goal is None:
        raise _Untranslatable(f"no limit_* or goal_* constraint in {sorted(constraints)}")
    return _Criterion(structure.strip(), metric, limit, goal)


def _plausible(item: dict, criterion: _Criterion, course: Protocol | None) -> None:
    """Each dose in Gy the criterion states, alone in a goal, through the protocol's plausibility rule against the
    prescription (`course`): a dose it refuses (a limit of 4500 Gy, or 600, under 60 Gy: cGy written as Gy) would
    refuse the whole translated protocol, so the criterion is listed instead, naming the field and its value. One
    goal a dose, so the field is known; a limit that becomes a goal's variation is held to the same factor."""
    if course is None:
        return
    for name, value, text in _stated_doses(item, criterion):
        goal = Goal.parse(text, criterion.structure)  # its metric was read back (`_point`), its dose is finite
        issue = next(plausible_doses(course.model_copy(update={"goals": [goal]})), None)
        if issue is not None:
            raise _Untranslatable(f"{name} {json.dumps(value)}: {issue.message}")


def _stated_doses(item: dict, criterion: _Criterion) -> Iterator[tuple[str, Any, str]]:
    """Each dose in Gy the criterion states (a V metric's dose point, a dose metric's limit and goal), as its field,
    the value as the file writes it and a goal that states that dose alone. A % of the prescription is none."""
    if criterion.metric.startswith("V"):
        bound = criterion.goal or criterion.limit
        if "dose_gy" in item["parameters"] and bound is not None:
            threshold = f"{criterion.metric}[{bound.unit}] <= {format_number(bound.value)}"
            yield "parameters.dose_gy", item["parameters"]["dose_gy"], threshold
        return
    for side, bound in (("limit", criterion.limit), ("goal", criterion.goal)):
        if bound is not None and bound.unit == "Gy":
            yield f"{side}_dose_gy", item["constraints"][f"{side}_dose_gy"], f"{criterion.metric} <= {bound}"


def _point(parameters: dict, key: str, form: str) -> str:
    """The metric at the criterion's dose or volume point (`form` with `{}` for it, "D{}%"), its number written as
    the decimal the metric grammar reads back to the same value (1e-30 is "D0.000000000000000000000000000001%",
    never "D1e-30%"); a value no metric can take is listed, naming the field and its value, so the file's other
    criteria still translate."""
    value = _amount(parameters[key], f"parameters.{key}", percent_volume=key == "volume_perc")
    return form.format(format_number(value))


def _amount(value: Any, name: str, *, percent_volume: bool) -> float:
    """A dose or volume the file gives (a point, limit or goal): a finite, non-negative number, and a volume in %
    at most 100; anything else is untranslatable, named as `name` and the value as the file writes it."""
    number = _finite(value)
    if number is None or number < 0:
        raise _Untranslatable(f"{name} {json.dumps(value)} is not a finite, non-negative number")
    if percent_volume and number > 100:
        raise _Untranslatable(f"{name} {json.dumps(value)}: a volume cannot exceed 100%")
    return number


def _pick(constraints: dict, prefix: str, units: dict[str, str]) -> _Bound | None:
    found = [key for key in units if f"{prefix}_{key}" in constraints]
    if len(found) > 1:
        raise _Untranslatable(f"both {' and '.join(prefix + '_' + key for key in found)} given")
    if not found:
        return None
    key = f"{prefix}_{found[0]}"
    return _Bound(_amount(constraints[key], key, percent_volume=found[0] == "volume_perc"), units[found[0]])


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
