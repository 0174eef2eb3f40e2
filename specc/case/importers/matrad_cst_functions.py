"""The optimization functions of a matRad cst (cst{i,6}), read in either format matRad has saved.

matRad >= 2.10 holds objectives and constraints as objects, which a workspace stores as the
structs `struct(obj)` makes: `className` ('DoseObjectives.matRad_SquaredOverdosing'),
`parameters` (a cell: doses as totals in Gy, volumes in %, exponents), `robustness` and,
for objectives, `penalty`. matRad <= 2.1 (and the phantom files it still ships) held a struct
array per structure with `type` ('square overdosing', ...), `dose`, `volume`, `EUD` and
`penalty`; matRad reads those through `convertOldOptimizationStruct`, and this module reads
them the same way into the same `CstFunction`, so the translation knows one format: that
includes what the conversion loses (the penalty of a DVH, mean or EUD objective, the
exponent of a 'max EUD constraint'). A
function that is not a struct, or a field it needs that is missing or not a number, is an
error naming its cst cell and field: a translation that guessed would silently change a plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from specc.errors import SpeccError


class ObjectivesError(SpeccError):
    """A matRad workspace whose cst objectives cannot be read or translated (names file and field)."""


@dataclass(frozen=True)
class Parameter:
    """One parameter of a function and the field it came from, for the errors that name it."""

    value: Any
    field: str  # 'parameters{2}' (matRad >= 2.10), 'volume' (matRad <= 2.1) or what the old type implies


@dataclass(frozen=True)
class CstFunction:
    """One objective or constraint of a cst row, in matRad's current terms whichever format held it."""

    where: str  # 'cst{2,6}{1}' (a cell of structs) or 'cst{2,6}(1)' (an old struct array)
    structure: str
    class_name: str | None  # 'DoseObjectives.matRad_SquaredOverdosing'; None: an old type matRad has no class for
    parameters: tuple[Parameter, ...]
    penalty: Parameter | None
    robustness: str
    old_type: str | None = None
    # An old DVH, mean or EUD objective: matRad's conversion keeps no penalty (`_OLD_PENALIZED`), so `penalty` is
    # the class default, 1, and `ignored_penalty` what the struct stores (None: nothing).
    default_penalty: bool = False
    ignored_penalty: Any = None

    @property
    def kind(self) -> str:
        """How the workspace names the function: its old `type`, else its class without the package."""
        if self.old_type is not None:
            return self.old_type
        return (self.class_name or "").rsplit(".", 1)[-1]

    def number(self, index: int, source: str) -> float:
        """Parameter `index` (0-based) as a number; infinity is allowed (matRad's 'no bound')."""
        if index >= len(self.parameters):
            raise ObjectivesError(
                f"{source}: {self.where} ({self.structure}, {self.kind}) has {len(self.parameters)} parameters; "
                f"parameters{{{index + 1}}} is needed"
            )
        return _number(self.parameters[index], self.where, source)

    def dose(self, index: int, source: str) -> float:
        """A dose parameter (total Gy): a number, not negative."""
        value = self.number(index, source)
        if value < 0:
            field = self.parameters[index].field
            raise ObjectivesError(f"{source}: {self.where}.{field} is a negative dose ({value:g})")
        return value

    def penalty_value(self, source: str) -> float:
        """The objective's penalty: a finite number, not negative (0 switches it off in matRad)."""
        if self.penalty is None:
            raise ObjectivesError(
                f"{source}: {self.where} ({self.structure}, {self.kind}) is an objective without a penalty"
            )
        value = _number(self.penalty, self.where, source)
        if not math.isfinite(value) or value < 0:
            raise ObjectivesError(f"{source}: {self.where}.penalty must be a finite number >= 0, got {value:g}")
        return value


# matRad's convertOldOptimizationStruct (matRad_DoseOptimizationFunction.m): each old type, its class and where
# each parameter comes from (a field of the old struct, or a value the type implies: 0 and Inf are matRad's
# 'no bound'). 'max EUD constraint' is not here: the conversion writes its exponent to `S.parameters{1}` (a
# typo for `s`), so matRad's constraint has none and cannot be evaluated (`matrad_objective_kinds` says so).
_OLD_TYPES: dict[str, tuple[str, tuple[str | float, ...]]] = {
    "square deviation": ("DoseObjectives.matRad_SquaredDeviation", ("dose",)),
    "square overdosing": ("DoseObjectives.matRad_SquaredOverdosing", ("dose",)),
    "square underdosing": ("DoseObjectives.matRad_SquaredUnderdosing", ("dose",)),
    "min DVH objective": ("DoseObjectives.matRad_MinDVH", ("dose", "volume")),
    "max DVH objective": ("DoseObjectives.matRad_MaxDVH", ("dose", "volume")),
    "mean": ("DoseObjectives.matRad_MeanDose", ("dose",)),
    "EUD": ("DoseObjectives.matRad_EUD", ("dose", "EUD")),
    "max dose constraint": ("DoseConstraints.matRad_MinMaxDose", (0.0, "dose")),
    "min dose constraint": ("DoseConstraints.matRad_MinMaxDose", ("dose", math.inf)),
    "min mean dose constraint": ("DoseConstraints.matRad_MinMaxMeanDose", ("dose", math.inf)),
    "max mean dose constraint": ("DoseConstraints.matRad_MinMaxMeanDose", (0.0, "dose")),
    "min EUD constraint": ("DoseConstraints.matRad_MinMaxEUD", ("EUD", "dose", math.inf)),
    "max DVH constraint": ("DoseConstraints.matRad_MinMaxDVH", ("dose", 0.0, "volume")),
    "min DVH constraint": ("DoseConstraints.matRad_MinMaxDVH", ("dose", "volume", 100.0)),
}
# The old objective types whose `penalty` the conversion copies; the others (DVH, mean, EUD) get the class's
# default penalty, 1, whatever the old struct stores.
_OLD_PENALIZED = ("square deviation", "square overdosing", "square underdosing")
_DEFAULT_PENALTY = 1.0


def cst_functions(cst: np.ndarray, row: int, structure: str, source: str) -> list[CstFunction]:
    """The functions of cst row `row` (0-based): a cell of structs, an old struct array, or none."""
    held = cst[row, 5]
    label = f"cst{{{row + 1},6}}"
    if isinstance(held, np.ndarray) and held.dtype == object:  # a cell: {j} indexing
        items = [(f"{label}{{{k + 1}}}", item) for k, item in enumerate(held.ravel(order="F"))]
    elif isinstance(held, dict):  # a 1x1 struct array of the old format
        items = [(f"{label}(1)", held)]
    elif isinstance(held, list):
        items = [(f"{label}({k + 1})", item) for k, item in enumerate(held)]
    elif isinstance(held, np.ndarray) and held.size == 0:  # [] for a structure without objectives
        items = []
    else:
        raise ObjectivesError(
            f"{source}: {label} ({structure}) is neither a cell of objective structs nor a struct array"
        )
    # An empty struct holds no function: pyRadPlan's StructureSet.to_matrad writes one ({} or {struct()}) in every
    # cst{i,6}, as its export carries no objectives.
    return [_function(item, where, structure, source) for where, item in items if not _empty_struct(item)]


def _empty_struct(item: Any) -> bool:
    return isinstance(item, dict) and not item


def _function(item: Any, where: str, structure: str, source: str) -> CstFunction:
    if not isinstance(item, dict):
        raise ObjectivesError(
            f"{source}: {where} ({structure}) is not a struct: a matRad object saved as an object cannot be read "
            "outside MATLAB; store struct(obj) in cst{i,6}, as matRad's own files do"
        )
    robustness = item.get("robustness", "none")
    robustness = robustness if isinstance(robustness, str) and robustness else "none"
    penalty = Parameter(item["penalty"], "penalty") if "penalty" in item else None
    if "className" in item:
        class_name = item["className"]
        if not isinstance(class_name, str) or not class_name:
            raise ObjectivesError(f"{source}: {where}.className is not a class name")
        held = item.get("parameters")
        if not isinstance(held, np.ndarray) or held.dtype != object:
            raise ObjectivesError(f"{source}: {where}.parameters is not a cell ({class_name})")
        parameters = tuple(Parameter(value, f"parameters{{{k + 1}}}") for k, value in enumerate(held.ravel(order="F")))
        return CstFunction(where, structure, class_name, parameters, penalty, robustness)
    if "type" in item:
        old_type = item["type"]
        if not isinstance(old_type, str):
            raise ObjectivesError(f"{source}: {where}.type is not text")
        if old_type not in _OLD_TYPES:
            return CstFunction(where, structure, None, (), penalty, robustness, old_type)
        class_name, fields = _OLD_TYPES[old_type]
        parameters = tuple(_old_parameter(item, name, old_type, where, source) for name in fields)
        if not class_name.startswith("DoseObjectives.") or old_type in _OLD_PENALIZED:
            return CstFunction(where, structure, class_name, parameters, penalty, robustness, old_type)
        ignored = penalty.value if penalty is not None else None
        penalty = Parameter(_DEFAULT_PENALTY, f"penalty (matRad's default: type '{old_type}' keeps no penalty)")
        return CstFunction(where, structure, class_name, parameters, penalty, robustness, old_type, True, ignored)
    raise ObjectivesError(
        f"{source}: {where} ({structure}) has neither className (matRad >= 2.10) nor type (matRad <= 2.1)"
    )


def _old_parameter(item: dict, name: str | float, old_type: str, where: str, source: str) -> Parameter:
    if not isinstance(name, str):
        return Parameter(name, f"(implied by type '{old_type}')")
    if name not in item:
        raise ObjectivesError(f"{source}: {where} (type '{old_type}') has no field '{name}'")
    return Parameter(item[name], name)


def _number(parameter: Parameter, where: str, source: str) -> float:
    values = np.array([])
    if not isinstance(parameter.value, str):  # numpy would read the text '60' as a number; MATLAB does not
        try:
            values = np.asarray(parameter.value, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            pass
    if values.size != 1 or math.isnan(values[0]):
        raise ObjectivesError(f"{source}: {where}.{parameter.field} is not a number")
    return float(values[0])
