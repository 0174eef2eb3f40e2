"""Clinical goals: a DVH metric on a structure compared with a threshold, with a priority.

Compact form (one string, as protocols and papers write them):

    D95% >= 78 Gy
    V70Gy[%] <= 20 (variation 25, priority 2)
    D95% >= 95% (variation 93%)        # 95% of this structure's prescription

The optional parenthesis holds the acceptable-variation threshold (a minor deviation, which
must lie on the lenient side of the threshold) and the priority (1 = must, the default).
`str(goal)` prints this form and parsing it gives the same goal. The mapping form
(`GoalMapping`) says the same with keys.

`EQD2` or `BED` in the parenthesis states the goal in an isoeffective dose (the structure's
`alpha_beta` converts each voxel's dose, `specc.protocol.isoeffect`), and `this course` judges
it on this plan's dose alone where a protocol with a prior course judges the composite:

    Max <= 50 Gy (EQD2)                  # cumulative cord limit of a re-irradiation
    V60Gy[%] <= 30 (BED, priority 2)     # 30% at most receives a BED of 60 Gy
    Max <= 25 Gy (EQD2, this course)     # the re-irradiation course alone
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator
from pydantic.json_schema import SkipJsonSchema

from specc.protocol.isoeffect import ISOEFFECTIVE, DoseQuantity
from specc.protocol.metrics import Metric, MetricUnit
from specc.protocol.suggest import did_you_mean
from specc.protocol.units import DOSE_UNITS, Dose, format_number
from specc.terms.base import SourceLocation

Comparator = Literal["<=", ">=", "<", ">"]
COMPARATORS: tuple[Comparator, ...] = ("<=", ">=", "<", ">")
Course = Literal["composite", "this"]
THIS_COURSE = "this course"  # the compact form's item
LOWER_BOUNDS: tuple[Comparator, ...] = (">=", ">")
DEFAULT_PRIORITY = 1

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*(?P<value>{_NUMBER})\s*(?P<unit>[^\d\s.+-][^\s]*)?\s*$")
_VOLUME_UNITS = {"%": "%", "cc": "cc", "cm3": "cc", "ml": "cc", "mL": "cc"}
_COMPACT = re.compile(
    r"^\s*(?P<metric>[^\s<>=≤≥()]+)\s*(?P<cmp><=|>=|==|=<|=>|=|<|>|≤|≥)?\s*(?P<threshold>[^()]*?)\s*"
    r"(?:\((?P<extras>[^()]*)\))?\s*$"
)
_COMPARATOR_FIXES = {"≤": "<=", "≥": ">=", "=<": "<=", "=>": ">="}


class Threshold(BaseModel):
    """A goal limit in the unit of its metric's value, or a percentage of the prescription."""

    model_config = ConfigDict(frozen=True)

    value: float = Field(ge=0, allow_inf_nan=False)
    relative: bool = Field(
        default=False, description="true: `value` is a percentage of the structure's prescription dose"
    )

    def text(self, unit: MetricUnit) -> str:
        number = format_number(self.value)
        if self.relative or unit == "%":
            return f"{number}%"
        return f"{number} {unit}" if unit else number

    def resolve(self, reference: Dose | None) -> float:
        """The limit in the metric's unit (Gy for a relative dose threshold)."""
        if not self.relative:
            return self.value
        if reference is None:
            raise ValueError("a threshold in % of the prescription needs the protocol's prescription")
        return _resolved(self.value, reference.gy)


def _resolved(percent: float, reference_gy: float) -> float:
    """`percent` of `reference_gy` without the binary rounding of the product (107% of 78 Gy is 83.46 Gy, not
    83.46000000000001): records and tables hand these numbers to other systems, which compare them as written."""
    return round(percent / 100.0 * reference_gy, 9)


def parse_threshold(written: Any, metric: Metric, what: str = "threshold") -> Threshold:
    """Read a threshold written as text or a number, in the unit of `metric`'s value."""
    if isinstance(written, bool) or not isinstance(written, (str, int, float)):
        raise ValueError(f"{what} must be a number with a unit, e.g. \"78 Gy\" or \"20%\", got {written!r}")
    text = str(written)
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f'cannot read {what} "{text}": expected a number and a unit, e.g. "78 Gy" or "20%"')
    value, unit = float(match["value"]), match["unit"] or ""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f'{what} "{text}" must be a finite, non-negative number')
    if metric.is_index:
        if unit:
            raise ValueError(f'{what} "{text}" of {metric}: the index is a ratio, written without a unit ("{value:g}")')
        return Threshold(value=value)
    if metric.unit == "Gy":
        if unit == "%":
            return Threshold(value=value, relative=True)
        if unit in DOSE_UNITS:
            return Threshold(value=value * DOSE_UNITS[unit])
        if not unit:
            raise ValueError(
                f'{what} {text} of {metric} has no unit: write "{text} Gy", "{text} cGy" '
                f'or a percentage of the prescription ("{text}%")'
            )
        raise ValueError(f'unknown unit "{unit}" in {what} "{text}" of {metric}{_unit_hint(unit, metric)}')
    volume_unit = _VOLUME_UNITS.get(unit) if unit else metric.unit
    if volume_unit is None:
        raise ValueError(f'unknown unit "{unit}" in {what} "{text}" of {metric}{_unit_hint(unit, metric)}')
    if volume_unit != metric.unit:
        other = f"{metric.quantity}{str(metric)[len(metric.quantity):].split('[')[0]}[{volume_unit}]"
        raise ValueError(
            f'{what} "{text}" is in {volume_unit} but {metric} measures {metric.unit}'
            + (f' (use "{other}" for a volume in {volume_unit})' if metric.quantity == "V" else "")
        )
    if volume_unit == "%" and value > 100:
        raise ValueError(f'{what} "{text}" of {metric}: a volume cannot exceed 100%')
    return Threshold(value=value)


def _unit_hint(unit: str, metric: Metric) -> str:
    allowed = ["Gy", "cGy", "%"] if metric.unit == "Gy" else [metric.unit]
    hint = did_you_mean(unit, allowed)
    return hint or f" (expected {' or '.join(allowed)})"


class GoalMapping(BaseModel):
    """The mapping form of a goal: `{metric: D95%, ">=": 78 Gy, variation: 76 Gy, priority: 2}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    metric: str = Field(description="DVH metric in TG-263 notation, e.g. D95%, V20Gy[%], Mean.")
    at_most: str | float | None = Field(default=None, alias="<=", description="Upper limit (inclusive).")
    at_least: str | float | None = Field(default=None, alias=">=", description="Lower limit (inclusive).")
    below: str | float | None = Field(default=None, alias="<", description="Upper limit (exclusive).")
    above: str | float | None = Field(default=None, alias=">", description="Lower limit (exclusive).")
    variation: str | float | None = Field(
        default=None, description="Acceptable-variation threshold, on the lenient side of the limit."
    )
    priority: StrictInt = Field(default=DEFAULT_PRIORITY, ge=1, description="1 = must; larger = less important.")
    quantity: DoseQuantity = Field(
        default="physical",
        description="The dose the goal is stated in: physical (default), or EQD2 / BED by the linear-quadratic "
        "model with the structure's `alpha_beta`.",
    )
    course: Course = Field(
        default="composite",
        description="With a prior course: `composite` (default) judges prior + this plan, `this` this plan alone.",
    )

    @model_validator(mode="after")
    def _one_comparator(self) -> GoalMapping:
        if len(self.limits()) != 1:
            raise ValueError('a goal needs exactly one of the keys "<=", ">=", "<", ">"')
        return self

    def limits(self) -> list[tuple[Comparator, str | float]]:
        pairs: list[tuple[Comparator, str | float | None]] = [
            ("<=", self.at_most), (">=", self.at_least), ("<", self.below), (">", self.above)
        ]
        return [(comparator, value) for comparator, value in pairs if value is not None]


@dataclass(frozen=True)
class GoalEntry:
    """A goal as written under its structure in a protocol (compact text or mapping)."""

    structure: str
    entry: Any


class Goal(BaseModel):
    """A clinical goal, evaluated on the final dose and reported."""

    model_config = ConfigDict(frozen=True)

    structure: str
    metric: Metric
    comparator: Comparator
    threshold: Threshold
    variation: Threshold | None = None
    priority: int = Field(default=DEFAULT_PRIORITY, ge=1)
    quantity: DoseQuantity = Field(default="physical", description="physical, or the isoeffective EQD2 / BED.")
    course: Course = Field(default="composite", description="With a prior course: the composite's, or this plan's alone.")
    text: str = Field(default="", description="The goal as written in the protocol.")
    # The prescription that relative thresholds and V95%-style metrics refer to; set by `Protocol`.
    reference_dose: Dose | None = None
    source: SkipJsonSchema[SourceLocation | None] = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _from_entry(cls, data: Any) -> Any:
        if not isinstance(data, GoalEntry):
            return data
        if isinstance(data.entry, str):
            return {"structure": data.structure, **parse_compact(data.entry)}
        if isinstance(data.entry, dict):
            return {"structure": data.structure, **fields_from_mapping(GoalMapping.model_validate(data.entry))}
        raise ValueError(
            f'a goal is a string such as "D95% >= 78 Gy" or a mapping with `metric` and a comparator, '
            f"got {data.entry!r}"
        )

    @model_validator(mode="after")
    def _check(self) -> Goal:
        for name, limit in (("threshold", self.threshold), ("variation", self.variation)):
            if limit is None:
                continue
            if limit.relative and not self.metric.is_dose:
                raise ValueError(f"{name} of {self.metric} is a volume; only dose thresholds may be relative")
            if self.metric.unit == "%" and limit.value > 100:
                raise ValueError(f"{name} of {self.metric}: a volume cannot exceed 100%")
        if self.variation is not None:
            if self.variation.relative != self.threshold.relative:
                raise ValueError("write the variation in the same form as the threshold (both in % or both in Gy)")
            lenient = (
                self.variation.value < self.threshold.value
                if self.is_lower_bound
                else self.variation.value > self.threshold.value
            )
            if not lenient:
                side = "below" if self.is_lower_bound else "above"
                raise ValueError(
                    f"variation {self.variation.text(self.metric.unit)} must lie {side} the threshold "
                    f"{self.threshold.text(self.metric.unit)} (it is the acceptable deviation)"
                )
        if self.quantity in ISOEFFECTIVE:
            if self.metric.is_index:
                raise ValueError(f"{self.metric} is a ratio of physical isodose volumes; it has no {self.quantity}")
            if self.needs_reference:
                raise ValueError(
                    f"a goal in {self.quantity} states its doses in Gy {self.quantity}: a percentage of the "
                    "prescription (a physical dose) has no single isoeffective value"
                )
        if not self.text:
            return self.model_copy(update={"text": str(self)})
        return self

    @classmethod
    def parse(cls, text: str, structure: str, reference_dose: Dose | None = None) -> Goal:
        """A goal from its compact form; `reference_dose` resolves % of prescription."""
        return cls(structure=structure, reference_dose=reference_dose, **parse_compact(text))

    @property
    def is_lower_bound(self) -> bool:
        return self.comparator in LOWER_BOUNDS

    @property
    def needs_reference(self) -> bool:
        """Whether the goal refers to a prescription (relative threshold or V95%-style metric)."""
        relative = self.threshold.relative or (self.variation is not None and self.variation.relative)
        return relative or self.metric.dose_percent is not None

    @property
    def isoeffective(self) -> bool:
        """Whether the goal is stated in EQD2 or BED, not in physical dose."""
        return self.quantity in ISOEFFECTIVE

    @property
    def qualifiers(self) -> list[str]:
        """What the parenthesis says of the dose a goal is on ("EQD2", "this course"), in its written order:
        with the structure, metric and side, what tells two goals apart (`specc diff`; templates read the
        same fields through the grammar)."""
        return ([self.quantity] if self.isoeffective else []) + ([THIS_COURSE] if self.course == "this" else [])

    @property
    def value_unit(self) -> str:
        """The unit of the goal's measured value: the metric's, with the isoeffective quantity named."""
        unit = self.metric.unit
        return f"{unit} {self.quantity}" if self.isoeffective and unit == "Gy" else unit

    @property
    def threshold_value(self) -> float:
        """The threshold in `metric.unit` (Gy for dose metrics, total over the course)."""
        return self.threshold.resolve(self.reference_dose)

    @property
    def variation_value(self) -> float | None:
        return None if self.variation is None else self.variation.resolve(self.reference_dose)

    @property
    def metric_dose_gy(self) -> float | None:
        """The dose level of a V or CV metric in Gy (V95% resolved against the prescription)."""
        if self.metric.dose is not None:
            return self.metric.dose.gy
        if self.metric.dose_percent is None:
            return None
        if self.reference_dose is None:
            raise ValueError(f"{self.metric} needs the protocol's prescription")
        return _resolved(self.metric.dose_percent, self.reference_dose.gy)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.structure, self.metric, self.comparator, self.threshold, self.variation, self.priority,
            self.reference_dose, self.quantity, self.course,
        )

    def __eq__(self, other: object) -> bool:
        # Two goals are equal when they state the same requirement, wherever and however written.
        return isinstance(other, Goal) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        unit = self.metric.unit
        extras = list(self.qualifiers)
        if self.variation is not None:
            extras.append(f"variation {self.variation.text(unit)}")
        if self.priority != DEFAULT_PRIORITY:
            extras.append(f"priority {self.priority}")
        tail = f" ({', '.join(extras)})" if extras else ""
        return f"{self.metric} {self.comparator} {self.threshold.text(unit)}{tail}"


def parse_compact(text: str) -> dict[str, Any]:
    """Fields of a goal from its compact text (everything but the structure)."""
    match = _COMPACT.match(text)
    if not match or not match["threshold"]:
        raise ValueError(
            f'cannot read goal "{text}": expected METRIC COMPARATOR THRESHOLD, e.g. "D95% >= 78 Gy" '
            f'or "V70Gy[%] <= 20 (variation 25, priority 2)"'
        )
    comparator = match["cmp"]
    spaced = re.match(r"^\s*(?P<metric>[^<>=≤≥()]*?)\s*(?:<=|>=|<|>|≤|≥|=)", text)
    if comparator is None and spaced and " " in spaced["metric"].strip():
        joined = "".join(spaced["metric"].split())
        raise ValueError(f'goal "{text}": write the metric without spaces ("{joined}")')
    if comparator is None or comparator in ("=", "=="):
        raise ValueError(f'goal "{text}" needs one of the comparators <=, >=, <, >')
    if comparator in _COMPARATOR_FIXES:
        raise ValueError(f'goal "{text}": write "{_COMPARATOR_FIXES[comparator]}" instead of "{comparator}"')
    metric = Metric.parse(match["metric"])
    fields: dict[str, Any] = {
        "metric": metric,
        "comparator": comparator,
        "threshold": parse_threshold(match["threshold"], metric),
        "text": text,
    }
    for item in (match["extras"] or "").split(","):
        if not item.strip():
            if match["extras"] is not None:
                raise ValueError(
                    f'goal "{text}": empty item in parentheses (expected "variation X", "priority N", "EQD2" or "BED")'
                )
            continue
        name, _, value = item.strip().partition(" ")
        if " ".join(item.split()) == THIS_COURSE:
            if "course" in fields:
                raise ValueError(f'goal "{text}": "{THIS_COURSE}" is given twice')
            fields["course"] = "this"
        elif name in ISOEFFECTIVE and not value.strip():
            if "quantity" in fields:
                raise ValueError(f'goal "{text}": give one dose quantity (EQD2 or BED)')
            fields["quantity"] = name
        elif name == "variation" and "variation" not in fields:
            fields["variation"] = parse_threshold(value.strip(), metric, "variation")
        elif name == "priority" and "priority" not in fields:
            if not re.fullmatch(r"\s*0*[1-9]\d*\s*", value):  # 0 too: the message names the field
                raise ValueError(f'goal "{text}": priority must be a whole number >= 1, got "{value.strip()}"')
            fields["priority"] = int(value)
        elif name in ("variation", "priority"):
            raise ValueError(f'goal "{text}": {name} is given twice')
        else:
            hint = did_you_mean(name, ["variation", "priority", *ISOEFFECTIVE])
            expected = ' (expected "variation X", "priority N", "EQD2", "BED" or "this course")'
            raise ValueError(f'goal "{text}": unknown item "{name}" in parentheses{hint or expected}')
    return fields


def fields_from_mapping(mapping: GoalMapping) -> dict[str, Any]:
    metric = Metric.parse(mapping.metric)
    ((comparator, limit),) = mapping.limits()
    fields: dict[str, Any] = {
        "metric": metric,
        "comparator": comparator,
        "threshold": parse_threshold(limit, metric),
        "priority": mapping.priority,
        "quantity": mapping.quantity,
        "course": mapping.course,
    }
    if mapping.variation is not None:
        fields["variation"] = parse_threshold(mapping.variation, metric, "variation")
    return fields
