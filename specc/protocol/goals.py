"""Clinical goals: a DVH metric on a structure compared with a threshold, with a priority.

Compact form (one string, as protocols and papers write them):

    D95% >= 78 Gy
    V70Gy[%] <= 20 (variation 25, priority 2)
    D95% >= 95% (variation 93%)        # 95% of this structure's prescription

The optional parenthesis holds the acceptable-variation threshold (a minor deviation, which
must lie on the lenient side of the threshold) and the priority (1 = must, the default).
`str(goal)` prints this form and parsing it gives the same goal, for a goal whose limit is a number.
The mapping form (`GoalMapping`) says the same with keys.

`EQD2` or `BED` in the parenthesis states the goal in an isoeffective dose (the structure's
`alpha_beta` converts each voxel's dose, `specc.protocol.isoeffect`), and `this course` judges
it on this plan's dose alone where a protocol with a prior course judges the composite:

    Max <= 50 Gy (EQD2)                  # cumulative cord limit of a re-irradiation
    V60Gy[%] <= 30 (BED, priority 2)     # 30% at most receives a BED of 60 Gy
    Max <= 25 Gy (EQD2, this course)     # the re-irradiation course alone

A mapping goal's limit may be a table by a structure's volume (`specc.protocol.volume_table`): the goal
then holds the table (`by_volume`) and no threshold until the compile stage reads the table at the
structure's volume on the case (`Goal.at_volume`), which every later stage sees. Its `str` is a summary
("Max <= 50%-77% by PTV volume, 1.8-163 cc": the extreme limits and rows), one text for every case of a cohort,
which does not parse back: the rows between are not in it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictInt, Tag, model_validator
from pydantic.json_schema import SkipJsonSchema

from specc.protocol.isoeffect import ISOEFFECTIVE, DoseQuantity
from specc.protocol.metrics import DOSE_METRIC_PATTERN, Metric, MetricUnit
from specc.protocol.suggest import did_you_mean
from specc.protocol.units import DOSE_UNITS, VOLUME_SPELLINGS, Dose, format_number, in_base_unit
from specc.protocol.volume_table import VolumeTable, VolumeTableMapping
from specc.terms.base import SourceLocation

Comparator = Literal["<=", ">=", "<", ">"]
COMPARATORS: tuple[Comparator, ...] = ("<=", ">=", "<", ">")
Course = Literal["composite", "this"]
THIS_COURSE = "this course"  # the compact form's item
LOWER_BOUNDS: tuple[Comparator, ...] = (">=", ">")
DEFAULT_PRIORITY = 1

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*(?P<value>{_NUMBER})\s*(?P<unit>[^\d\s.+-][^\s]*)?\s*$")
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
    text = written if isinstance(written, str) else format_number(written)  # 76, not YAML's 76.0 a mapping took
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f'cannot read {what} "{text}": expected a number and a unit, e.g. "78 Gy" or "20%"')
    value, unit = float(match["value"]), match["unit"] or ""
    if not math.isfinite(value) or math.copysign(1.0, value) < 0:  # "-0 Gy" too: no limit is written with a minus
        raise ValueError(f'{what} "{text}" must be a finite, non-negative number')
    if metric.is_index:
        if unit:
            raise ValueError(f'{what} "{text}" of {metric}: the index is a ratio, written without a unit ("{value:g}")')
        return Threshold(value=value)
    if metric.unit == "Gy":
        if unit == "%":
            return Threshold(value=value, relative=True)
        if unit in DOSE_UNITS:
            return Threshold(value=in_base_unit(match["value"], DOSE_UNITS[unit]))
        if not unit:
            raise ValueError(
                f'{what} {text} of {metric} has no unit: write "{text} Gy", "{text} cGy" '
                f'or a percentage of the prescription ("{text}%")'
            )
        raise ValueError(f'unknown unit "{unit}" in {what} "{text}" of {metric}{_unit_hint(unit, metric)}')
    volume_unit = VOLUME_SPELLINGS.get(unit) if unit else metric.unit
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


def _limit_form(value: Any) -> str:
    """Which form a written limit is in, so that an error in a table is reported alone (not also as "expected
    text" and "expected a number", the other forms of the union)."""
    return "table" if isinstance(value, (dict, VolumeTableMapping)) else "number"


# A mapping goal's limit: a number with its unit, or a table by a structure's volume on the case.
WrittenLimit = Annotated[
    Annotated[str | float, Tag("number")] | Annotated[VolumeTableMapping, Tag("table")], Discriminator(_limit_form)
] | None
_BY_VOLUME = " Or a table by a structure's volume on the case: {by_volume_of, volume_cc, limit, variation}."
# What the JSON Schema says of a mapping goal on a dose metric (D95%, Mean, ...): its limit and variation are not bare
# numbers, which `parse_threshold` refuses ("threshold 56 of D2% has no unit"), so an editor flags them too.
_DOSE_LIMITS_HAVE_UNITS = {
    "if": {"properties": {"metric": {"pattern": DOSE_METRIC_PATTERN}}, "required": ["metric"]},
    "then": {
        "properties": {
            key: {"not": {"type": "number"}, "description": 'A dose limit has a unit: "56 Gy", "5600 cGy" or "107%".'}
            for key in (*COMPARATORS, "variation")
        }
    },
}


class GoalMapping(BaseModel):
    """The mapping form of a goal: `{metric: D95%, ">=": 78 Gy, variation: 76 Gy, priority: 2}`."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, json_schema_extra=_DOSE_LIMITS_HAVE_UNITS
    )

    metric: str = Field(description="DVH metric in TG-263 notation, e.g. D95%, V20Gy[%], Mean.")
    at_most: WrittenLimit = Field(default=None, alias="<=", description="Upper limit (inclusive)." + _BY_VOLUME)
    at_least: WrittenLimit = Field(default=None, alias=">=", description="Lower limit (inclusive)." + _BY_VOLUME)
    below: WrittenLimit = Field(default=None, alias="<", description="Upper limit (exclusive)." + _BY_VOLUME)
    above: WrittenLimit = Field(default=None, alias=">", description="Lower limit (exclusive)." + _BY_VOLUME)
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
        if isinstance(self.limits()[0][1], VolumeTableMapping) and self.variation is not None:
            raise ValueError("a goal whose limit is a table by volume gives its variation in the table, row by row "
                             "(`variation: [...]` beside `limit`), not beside the comparator")
        return self

    def limits(self) -> list[tuple[Comparator, str | float | VolumeTableMapping]]:
        pairs: list[tuple[Comparator, WrittenLimit]] = [
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
    threshold: Threshold | None = Field(
        default=None, description="The limit; none while it is a table by volume not yet read on a case (`by_volume`)."
    )
    variation: Threshold | None = None
    by_volume: VolumeTable | None = Field(
        default=None, description="The limits by a structure's volume, read on each case (`at_volume`)."
    )
    at_volume_cc: float | None = Field(
        default=None, description="The volume of `by_volume`'s structure on the case the limits were read at."
    )
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
            _not_text_split_at_a_colon(data.entry)
            return {"structure": data.structure, **fields_from_mapping(GoalMapping.model_validate(data.entry))}
        if data.entry is None:
            raise ValueError(
                f"{data.structure} holds no goal here (nothing is written after its key or its dash): write its goals, "
                f'e.g. {data.structure}: ["Mean <= 40 Gy"], or leave it out of goals'
            )
        raise ValueError(
            f'a goal is a string such as "D95% >= 78 Gy" or a mapping with `metric` and a comparator, '
            f"got {data.entry!r}"
        )

    @model_validator(mode="after")
    def _check(self) -> Goal:
        if self.threshold is None and self.by_volume is None:
            raise ValueError("a goal needs a threshold (or a table by volume)")
        if self.threshold is not None:
            self._check_limits(self.threshold, self.variation)
        if self.by_volume is not None:
            for row, (threshold, variation) in enumerate(table_rows(self.by_volume)):
                try:
                    self._check_limits(threshold, variation)
                except ValueError as error:
                    at = format_number(self.by_volume.volumes_cc[row])
                    raise ValueError(f"the table's {at} cc row (volume_cc[{row}]): {error}") from None
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

    def _check_limits(self, threshold: Threshold, variation: Threshold | None) -> None:
        """A threshold and its variation are in the metric's unit, the variation on the lenient side."""
        for name, limit in (("threshold", threshold), ("variation", variation)):
            if limit is None:
                continue
            if limit.relative and not self.metric.is_dose:
                raise ValueError(f"{name} of {self.metric} is a volume; only dose thresholds may be relative")
            if self.metric.unit == "%" and limit.value > 100:
                raise ValueError(f"{name} of {self.metric}: a volume cannot exceed 100%")
        if variation is not None:
            if variation.relative != threshold.relative:
                raise ValueError("write the variation in the same form as the threshold (both in % or both in Gy)")
            lenient = variation.value < threshold.value if self.is_lower_bound else variation.value > threshold.value
            if not lenient:
                side = "below" if self.is_lower_bound else "above"
                raise ValueError(
                    f"variation {variation.text(self.metric.unit)} must lie {side} the threshold "
                    f"{threshold.text(self.metric.unit)} (it is the acceptable deviation)"
                )

    @property
    def per_case(self) -> bool:
        """Whether the goal's limit is a table by volume not yet read on a case (it has no threshold yet)."""
        return self.threshold is None

    @property
    def limit_source(self) -> str | None:
        """Where a limit read from a table came from ("from the table by PTV volume at 22.04 cc, between the 13.2
        and 22 cc rows"); None for a limit the protocol states as a number."""
        table, volume = self.by_volume, self.at_volume_cc
        if table is None or volume is None:
            return None
        return f"from the table by {table.structure} volume at {table.volume_text(volume)} cc, {table.rows_text(volume)}"

    def at_volume(self, volume_cc: float) -> Goal:
        """The goal with its table read at `volume_cc` (the table's structure on a case); itself when its limit is a
        number. A ValueError for a volume outside the table."""
        if self.by_volume is None:
            return self
        limit, variation = self.by_volume.at(volume_cc)
        relative = self.by_volume.relative
        return self.model_copy(update={
            "threshold": Threshold(value=limit, relative=relative),
            "variation": None if variation is None else Threshold(value=variation, relative=relative),
            "at_volume_cc": volume_cc,
        })

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
        if self.threshold is None:
            relative = self.by_volume is not None and self.by_volume.relative
        else:
            relative = self.threshold.relative or (self.variation is not None and self.variation.relative)
        return relative or self.metric.dose_percent is not None

    @property
    def isoeffective(self) -> bool:
        """Whether the goal is stated in EQD2 or BED, not in physical dose."""
        return self.quantity in ISOEFFECTIVE

    @property
    def qualifiers(self) -> list[str]:
        """What the parenthesis says of the dose a goal is on ("EQD2", "this course"), in its written order."""
        return qualifiers(self.quantity, self.course)

    @property
    def value_unit(self) -> str:
        """The unit of the goal's measured value: the metric's, with the isoeffective quantity named."""
        unit = self.metric.unit
        return f"{unit} {self.quantity}" if self.isoeffective and unit == "Gy" else unit

    @property
    def threshold_value(self) -> float:
        """The threshold in `metric.unit` (Gy for dose metrics, total over the course)."""
        if self.threshold is None:
            raise ValueError(f"{self.structure} {self.text}: its limit is a table by volume, read on each case "
                             "(`at_volume`), and this goal was not")
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
            self.reference_dose, self.quantity, self.course, self.by_volume, self.at_volume_cc,
        )

    def __eq__(self, other: object) -> bool:
        # Two goals are equal when they state the same requirement, wherever and however written.
        return isinstance(other, Goal) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        unit = self.metric.unit
        extras = list(self.qualifiers)
        if self.by_volume is not None:  # the table, not one case's reading of it: the text is the cohort's
            table = self.by_volume
            if table.variations is not None:
                extras.append(f"variation {span_text(table.variations, table.relative, unit)}")
            limit = f"{span_text(table.limits, table.relative, unit)} by {table.structure} volume, {table.range_text}"
        else:
            assert self.threshold is not None, "`_check`: a goal without a table has a threshold"
            if self.variation is not None:
                extras.append(f"variation {self.variation.text(unit)}")
            limit = self.threshold.text(unit)
        if self.priority != DEFAULT_PRIORITY:
            extras.append(f"priority {self.priority}")
        tail = f" ({', '.join(extras)})" if extras else ""
        return f"{self.metric} {self.comparator} {limit}{tail}"


def qualifiers(quantity: str, course: str | None) -> list[str]:
    """What a goal's parenthesis says of the dose it is on ("EQD2", "this course"), in its written order: with the
    structure, metric and side, what tells two goals apart (`Goal.qualifiers`, and `specc diff`'s `goal_identity`,
    which a plan record's goal reaches too; templates read the same fields through the grammar)."""
    return ([quantity] if quantity in ISOEFFECTIVE else []) + ([THIS_COURSE] if course == "this" else [])


def span_text(values: tuple[float, ...], relative: bool, unit: MetricUnit) -> str:
    """A table column as its lowest and highest values ("50%-77%", "2.9-5.9")."""
    low, high = (Threshold(value=value, relative=relative).text(unit) for value in (min(values), max(values)))
    if low == high:
        return low
    return f"{low.removesuffix(f' {unit}')}-{high}" if unit else f"{low}-{high}"  # "0.27-24.45 cc", "50%-77%"


def table_points(*goals: Goal) -> list[dict[str, float]]:
    """The volumes (by structure) to compare goals with tables at: each table's rows, the rows of two tables by one
    structure's volume where both state a limit, every pair of rows of two tables by different structures'. A limit
    between two rows is the straight line between them, so what holds at every point holds between them. Goals
    without a table give one point, `{}`."""
    tables: dict[str, list[tuple[float, ...]]] = {}
    for goal in goals:
        if goal.by_volume is not None:
            tables.setdefault(goal.by_volume.structure, []).append(goal.by_volume.volumes_cc)
    columns = {name: sorted({volume for rows in each for volume in rows
                             if all(other[0] <= volume <= other[-1] for other in each)})
               for name, each in tables.items()}
    return [dict(zip(columns, volumes)) for volumes in itertools.product(*columns.values())]


def read_at(goal: Goal, point: Mapping[str, float]) -> Goal:
    """`goal` with its table read at `point`'s volume of the table's structure (itself when its limit is a number)."""
    return goal if goal.by_volume is None else goal.at_volume(point[goal.by_volume.structure])


def resolved_column(goal: Goal, values: tuple[float, ...] | None) -> tuple[float, ...] | None:
    """A column of `goal`'s table in the metric's unit (% of the prescription resolved), so that tables written in %
    and in Gy compare alike (consistency's repeated goals, diff's changed limits)."""
    if values is None or goal.by_volume is None:
        return values
    return tuple(Threshold(value=value, relative=goal.by_volume.relative).resolve(goal.reference_dose)
                 for value in values)


def table_rows(table: VolumeTable) -> list[tuple[Threshold, Threshold | None]]:
    """Each row of `table` as the threshold and variation it gives a case of that row's volume."""
    variations = table.variations or (None,) * len(table.limits)
    return [(Threshold(value=limit, relative=table.relative),
             None if variation is None else Threshold(value=variation, relative=table.relative))
            for limit, variation in zip(table.limits, variations)]


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


def _not_text_split_at_a_colon(entry: dict[Any, Any]) -> None:
    """Refuse a mapping that is a compact goal YAML split at a ": " (`- Mean <= 40 Gy (priority 3): bladder`):
    one key, not a key of the mapping form, that starts as a goal does (a metric, then a comparator). Read as a
    mapping it gave 'missing required key "metric"' and 'unknown key "Mean <= 40 Gy (priority 3)"', neither
    saying that the colon made it one (audit s20/t1 F6)."""
    if len(entry) != 1:
        return
    ((key, value),) = entry.items()
    if not isinstance(key, str) or key in GoalMapping.model_fields or key in COMPARATORS:
        return
    match = _COMPACT.match(key)
    if match is None or match["cmp"] is None:
        return
    written = key if value is None else f"{key}: {value}"
    raise ValueError(
        f'YAML read the goal "{written}" as a mapping, its ": " taken for a key\'s: write the goal as one quoted '
        f'text ("{key}"; a remark after it goes in a # comment)'
    )


def fields_from_mapping(mapping: GoalMapping) -> dict[str, Any]:
    metric = Metric.parse(mapping.metric)
    ((comparator, limit),) = mapping.limits()
    fields: dict[str, Any] = {
        "metric": metric,
        "comparator": comparator,
        **({"by_volume": _table(limit, metric)} if isinstance(limit, VolumeTableMapping)
           else {"threshold": parse_threshold(limit, metric)}),
        "priority": mapping.priority,
        "quantity": mapping.quantity,
        "course": mapping.course,
    }
    if mapping.variation is not None:
        fields["variation"] = parse_threshold(mapping.variation, metric, "variation")
    return fields


def _table(written: VolumeTableMapping, metric: Metric) -> VolumeTable:
    """A table's limits read in `metric`'s unit, all in one form (all in % of the prescription, or none)."""
    def column(name: str, values: list[Any]) -> list[Threshold]:
        return [parse_threshold(value, metric, f"{name}[{row}]") for row, value in enumerate(values)]

    limits = column("limit", written.limit)
    variations = None if written.variation is None else column("variation", written.variation)
    cells = [("limit", row, text, limit) for row, (text, limit) in enumerate(zip(written.limit, limits))]
    cells += [("variation", row, text, variation)
              for row, (text, variation) in enumerate(zip(written.variation or [], variations or []))]
    relative = [cell for cell in cells if cell[3].relative]  # only a dose metric's limits may be relative
    absolute = [cell for cell in cells if not cell[3].relative]
    if relative and absolute:  # the fewer named (on a tie, those not in the form of the first row's limit)
        odd_relative = len(relative) < len(absolute) or (len(relative) == len(absolute) and not cells[0][3].relative)
        odd = relative if odd_relative else absolute
        named = ", ".join(f'{name}[{row}] "{text}" (the {format_number(written.volume_cc[row])} cc row)'
                          for name, row, text, _ in odd)
        forms = ("in % of the prescription", "in Gy")
        where, other = forms if odd_relative else forms[::-1]
        raise ValueError(f"{named} {'is' if len(odd) == 1 else 'are'} {where} where the table's other values are "
                         f"{other}: write every limit and variation of the table in one form, all in % of the "
                         "prescription or all in Gy, not some of each")
    return VolumeTable(
        structure=written.by_volume_of,
        volumes_cc=tuple(written.volume_cc),
        limits=tuple(limit.value for limit in limits),
        variations=None if variations is None else tuple(variation.value for variation in variations),
        relative=bool(relative),
    )
