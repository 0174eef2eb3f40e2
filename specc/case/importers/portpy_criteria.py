"""PortPy clinical-criteria JSON translated into a specc protocol (YAML text).

PortPy states each criterion as a `type` (max_dose, mean_dose, dose_volume_V,
dose_volume_D), `parameters` (structure, dose or volume point) and `constraints` with a
hard `limit_*` and a softer `goal_*`. In specc the goal is the threshold to aim for and the
limit the acceptable variation, so `limit 52 Gy, goal 50 Gy` becomes `Max <= 50 Gy
(variation 52 Gy)`. PortPy criteria are upper bounds (PortPy passes a criterion when the
value is at or below it). PortPy's derived-structure names `A_NOT_B` become the expression
`A - B`; names with a TG-263 target prefix (GTV, CTV, ITV, PTV) get the target role, the
others with criteria the organ-at-risk role. Everything else is listed as untranslated, in the result and as comments at the
top of the YAML; the output is checked with the protocol parser before it is returned.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from specc.errors import SpeccError
from specc.protocol import parse_protocol_text
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

    goals: dict[str, list[str]] = {}
    untranslated: list[str] = []
    for number, item in enumerate(criteria.get("criteria", []), start=1):
        where = f"criteria[{number - 1}]"
        try:
            structure, goal = _goal(item)
        except _Untranslatable as reason:
            untranslated.append(f"{where} {json.dumps(item, sort_keys=True)}: {reason}")
            continue
        goals.setdefault(structure, []).append(goal)

    structures: dict[str, dict[str, Any]] = {target: {"role": "target"}}
    for name in goals:
        structures.setdefault(name, {"role": "target" if name.upper().startswith(_TARGET_PREFIXES) else "oar"})
    for name in list(structures):
        match = _NOT.match(name)
        if match:
            structures[name]["expression"] = f"{match['a']} - {match['b']}"
            for part in (match["a"], match["b"]):
                structures.setdefault(part, {"role": "other"})

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
    header = [f"# Translated from {path.name} (PortPy clinical criteria)."]
    if untranslated:
        header.append("# Not translated (review these by hand):")
        header += [f"#   - {item}" for item in untranslated]
    text = "\n".join(header) + "\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)
    parse_protocol_text(text, filename=f"{path.stem}.yaml")  # a ProtocolError here is a bug in the translation
    return ConvertedProtocol(yaml_text=text, goals=sum(len(g) for g in goals.values()), untranslated=untranslated)


class _Untranslatable(Exception):
    pass


def _goal(item: Any) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise _Untranslatable("not a criterion object")
    kind = item.get("type")
    parameters = item.get("parameters") or {}
    constraints = item.get("constraints") or {}
    structure = parameters.get("structure_name")
    if not isinstance(structure, str) or not structure.strip():
        raise _Untranslatable("no parameters.structure_name")
    if kind in ("max_dose", "mean_dose"):
        metric = "Max" if kind == "max_dose" else "Mean"
        threshold = _dose_bounds(constraints)
    elif kind == "dose_volume_V":
        if "dose_gy" in parameters:
            metric = f"V{format_number(float(parameters['dose_gy']))}Gy"
        elif "dose_perc" in parameters:
            metric = f"V{format_number(float(parameters['dose_perc']))}%"
        else:
            raise _Untranslatable("dose_volume_V without parameters.dose_gy or dose_perc")
        threshold = _volume_bounds(constraints, metric)
        metric = threshold[2]
    elif kind == "dose_volume_D":
        if "volume_perc" in parameters:
            metric = f"D{format_number(float(parameters['volume_perc']))}%"
        elif "volume_cc" in parameters:
            metric = f"D{format_number(float(parameters['volume_cc']))}cc"
        else:
            raise _Untranslatable("dose_volume_D without parameters.volume_perc or volume_cc")
        threshold = _dose_bounds(constraints)
    else:
        raise _Untranslatable(f"criterion type {kind!r} has no specc equivalent")
    value, variation = threshold[0], threshold[1]
    text = f"{metric} <= {value}" + (f" (variation {variation})" if variation else "")
    return structure.strip(), text


def _pick(constraints: dict, prefix: str, units: dict[str, str]) -> str | None:
    found = [(key, suffix) for key, suffix in units.items() if f"{prefix}_{key}" in constraints]
    if len(found) > 1:
        raise _Untranslatable(f"both {' and '.join(prefix + '_' + k for k, _ in found)} given")
    if not found:
        return None
    key, suffix = found[0]
    value = constraints[f"{prefix}_{key}"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Untranslatable(f"{prefix}_{key} is not a number")
    return f"{format_number(float(value))}{suffix}"


def _dose_bounds(constraints: dict) -> tuple[str, str | None]:
    units = {"dose_gy": " Gy", "dose_perc": "%"}
    limit, goal = _pick(constraints, "limit", units), _pick(constraints, "goal", units)
    return _ordered(limit, goal, constraints)


def _volume_bounds(constraints: dict, metric: str) -> tuple[str, str | None, str]:
    units = {"volume_perc": "", "volume_cc": ""}
    kinds = {key.split("_")[-1] for key in constraints if key.startswith(("limit_volume", "goal_volume"))}
    if len(kinds) > 1:
        raise _Untranslatable("limit and goal volumes in different units")
    limit, goal = _pick(constraints, "limit", units), _pick(constraints, "goal", units)
    unit = "cc" if kinds == {"cc"} else "%"
    bounds = _ordered(limit, goal, constraints)
    return bounds[0], bounds[1], f"{metric}[{unit}]"


def _ordered(limit: str | None, goal: str | None, constraints: dict) -> tuple[str, str | None]:
    if limit is None and goal is None:
        raise _Untranslatable(f"no limit_* or goal_* constraint in {sorted(constraints)}")
    if goal is not None and limit is not None and goal != limit:
        goal_value, goal_unit = _split(goal)
        limit_value, limit_unit = _split(limit)
        if goal_unit != limit_unit:
            raise _Untranslatable(f"goal {goal} and limit {limit} are in different units")
        if goal_value > limit_value:
            raise _Untranslatable(f"goal {goal} is looser than limit {limit} for an upper bound")
        return goal, limit
    return (goal or limit), None  # type: ignore[return-value]


def _split(threshold: str) -> tuple[float, str]:
    number = re.match(r"^[0-9.eE+-]+", threshold)
    assert number is not None  # built by _pick from a float
    return float(number.group()), threshold[number.end():]
