"""DVH metrics in AAPM TG-263 notation: D95%, D2cc, D0.03cc, V20Gy[%], V95%, CV15Gy, DC5%, Mean, Max, Min.

A metric names what is measured on a structure's dose; `unit` is the unit of the measured
value (Gy for dose metrics, % or cc for volume metrics), which is also the unit of a goal's
threshold. `V95%` is a volume at 95% of a prescription: the dose is resolved by the goal
that uses it, because the metric alone does not know the prescription.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import ValidationInfo, model_validator

from specc.protocol.units import DOSE_UNITS, Dose, TextValue, Volume, format_number, in_base_unit, text_in_a_file

Quantity = Literal["D", "V", "Mean", "Max", "Min", "CV", "DC", "CI", "PCI", "GI", "R50", "HI"]
MetricUnit = Literal["Gy", "%", "cc", ""]
# Plan-quality indices of a prescription target, measured on the whole dose grid against its
# prescription (evaluate/indices.py): ratios, written without a unit.
INDEX_QUANTITIES: dict[str, str] = {
    "CI": "RTOG conformity index: prescription isodose volume / target volume",
    "PCI": "Paddick conformity index: (target volume in the prescription isodose)^2 / (target volume x isodose volume)",
    "GI": "Paddick gradient index: half-prescription isodose volume / prescription isodose volume",
    "R50": "half-prescription isodose volume / target volume",
    "HI": "ICRU 83 homogeneity index: (D2% - D98%) / D50%",
}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_AT_VOLUME = re.compile(rf"^(?P<q>DC|D)(?P<num>{_NUMBER})(?P<u>%|cc)(?:\[(?P<ru>Gy)\])?$")
_AT_DOSE = re.compile(rf"^(?P<q>CV|V)(?P<num>{_NUMBER})(?P<u>Gy|cGy|%)(?:\[(?P<ru>%|cc)\])?$")
_STATISTIC = re.compile(r"^(?P<q>Mean|Max|Min)(?:\[(?P<ru>Gy)\])?$")
_INDEX = re.compile(r"^(?P<q>CI|PCI|GI|R50|HI)$")


def _schema_pattern(*patterns: re.Pattern[str]) -> str:
    """The patterns as one JSON Schema (ECMA-262) pattern.

    Named groups `(?P<q>...)` are Python syntax, and one name in several alternatives is not
    a valid regex anywhere: editors would reject the whole schema. Plain groups match the same.
    """
    return "|".join(re.sub(r"\(\?P<\w+>", "(", pattern.pattern) for pattern in patterns)


# The metrics that measure a dose (Gy), for the JSON Schema: their limits are written with a unit.
DOSE_METRIC_PATTERN = _schema_pattern(_AT_VOLUME, _STATISTIC)

EXAMPLES = "D95%, D2cc, D0.03cc, DC5%, V20Gy[%], V20Gy[cc], V95%, CV15Gy, Mean, Max, Min, CI, PCI, GI, R50, HI"


class Metric(TextValue):
    """A TG-263 DVH metric; build it with `Metric.parse("D95%")`, print it with `str()`."""

    text_schema: ClassVar[dict[str, Any]] = {
        "pattern": _schema_pattern(_AT_VOLUME, _AT_DOSE, _STATISTIC, _INDEX),
        "description": f"A DVH metric in TG-263 notation: {EXAMPLES}.",
        "examples": ["D95%", "D0.03cc", "V20Gy[%]", "Mean"],
    }

    quantity: Quantity
    volume: Volume | None = None
    dose: Dose | None = None
    dose_percent: float | None = None
    unit: MetricUnit

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, str):
            return _fields(data)
        if not isinstance(data, (dict, Metric)):
            raise ValueError(f"a metric is written as text in TG-263 notation ({EXAMPLES}), got {data!r}")
        text_in_a_file(cls, data, info, "metric")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Metric:
        # Guards programmatic construction; parsed text is consistent by construction.
        at_volume = self.quantity in ("D", "DC")
        at_dose = self.quantity in ("V", "CV")
        if at_volume != (self.volume is not None):
            raise ValueError(f"metric {self.quantity} {'needs' if at_volume else 'takes no'} volume")
        if at_dose != ((self.dose is None) != (self.dose_percent is None)):
            raise ValueError(f"metric {self.quantity} {'needs one' if at_dose else 'takes no'} dose")
        if self.unit not in _RESULT_UNITS[self.quantity]:
            raise ValueError(f"metric {self.quantity} cannot be measured in {self.unit}")
        if self.dose_percent is not None and not (self.dose_percent >= 0 and self.dose_percent < float("inf")):
            raise ValueError(f"dose percentage must be finite and non-negative, got {self.dose_percent}")
        return self

    @classmethod
    def parse(cls, text: str) -> Metric:
        """Parse TG-263 text; raises ValueError with a suggestion when the text is not a metric."""
        return cls(**_fields(text))

    @property
    def is_dose(self) -> bool:
        """Whether the measured value is a dose (Gy) rather than a volume."""
        return self.unit == "Gy"

    @property
    def is_index(self) -> bool:
        """A plan-quality index of a prescription target (CI, PCI, GI, R50, HI), not a DVH point."""
        return self.quantity in INDEX_QUANTITIES

    def __str__(self) -> str:
        if self.volume is not None:
            unit = "%" if self.volume.unit == "%" else "cc"
            return f"{self.quantity}{format_number(self.volume.value)}{unit}"
        if self.dose is not None:
            return f"{self.quantity}{format_number(self.dose.gy)}Gy[{self.unit}]"
        if self.dose_percent is not None:
            return f"{self.quantity}{format_number(self.dose_percent)}%[{self.unit}]"
        return self.quantity


_RESULT_UNITS: dict[str, tuple[MetricUnit, ...]] = {
    "D": ("Gy",),
    "DC": ("Gy",),
    "Mean": ("Gy",),
    "Max": ("Gy",),
    "Min": ("Gy",),
    "V": ("%", "cc"),
    "CV": ("cc",),
    **{quantity: ("",) for quantity in INDEX_QUANTITIES},
}


def _fields(text: str) -> dict[str, Any]:
    stripped = text.strip()
    if match := _AT_VOLUME.match(stripped):
        value = float(match["num"])
        if match["u"] == "%" and value > 100:
            raise ValueError(f'metric "{text}": a volume cannot exceed 100%')
        return {"quantity": match["q"], "volume": Volume(value=value, unit=match["u"]), "unit": "Gy"}
    if match := _AT_DOSE.match(stripped):
        quantity, result = match["q"], match["ru"]
        if quantity == "CV" and result not in (None, "cc"):
            raise ValueError(f'metric "{text}": CV is a volume in cc; write {quantity}{match["num"]}{match["u"]}')
        unit = result or ("cc" if quantity == "CV" else "%")
        fields: dict[str, Any] = {"quantity": quantity, "unit": unit}
        if match["u"] == "%":
            fields["dose_percent"] = float(match["num"])
        else:
            fields["dose"] = Dose(gy=in_base_unit(match["num"], DOSE_UNITS[match["u"]]))
        return fields
    if match := _STATISTIC.match(stripped):
        return {"quantity": match["q"], "unit": "Gy"}
    if match := _INDEX.match(stripped):
        return {"quantity": match["q"], "unit": ""}
    raise ValueError(f'unknown metric "{text}"{_hint(stripped)}')


def _hint(text: str) -> str:
    suggestion = suggest_metric(text)
    if suggestion and _EXPONENT.search(text):
        return f' (a metric writes its number as a decimal, without an exponent: "{suggestion}")'
    return f' (did you mean "{suggestion}"?)' if suggestion else f" (expected TG-263 notation: {EXAMPLES})"


_STATISTIC_SPELLINGS = {
    "mean": "Mean", "dmean": "Mean", "average": "Mean", "avg": "Mean",
    "max": "Max", "dmax": "Max", "maximum": "Max",
    "min": "Min", "dmin": "Min", "minimum": "Min",
}
_UNIT_SPELLINGS = {"gy": "Gy", "cgy": "cGy", "cc": "cc", "cm3": "cc", "ml": "cc", "%": "%"}
_LOOSE = re.compile(rf"^(?P<q>dc|cv|d|v)(?P<num>{_NUMBER})(?P<u>[a-z%0-9]*)(?P<rest>\[.*\])?$")
_EXPONENT = re.compile(rf"{_NUMBER}[eE][+-]?\d+")


def _decimal(number: re.Match[str]) -> str:
    """A number written with an exponent ("1e-05") as the decimal it means ("0.00001"), where there is one."""
    value = float(number[0])
    return format_number(value) if 0 < value < float("inf") else number[0]


def suggest_metric(text: str) -> str | None:
    """A valid metric close to a mistyped one: "V70" -> "V70Gy", "dmax" -> "Max", "d95" -> "D95%", "D1e-05cc" ->
    "D0.00001cc"."""
    squeezed = _EXPONENT.sub(_decimal, re.sub(r"[\s_]", "", text))
    folded = squeezed.casefold()
    base = re.sub(r"\[.*\]$", "", folded)
    if base in _STATISTIC_SPELLINGS:
        return _STATISTIC_SPELLINGS[base]
    match = _LOOSE.match(folded)
    if not match:
        return None
    quantity = match["q"].upper()
    unit = _UNIT_SPELLINGS.get(match["u"]) if match["u"] else ("%" if quantity in ("D", "DC") else "Gy")
    if unit is None:
        return None
    result = {"[%]": "[%]", "[cc]": "[cc]"}.get(match["rest"] or "", "")
    candidate = f"{quantity}{match['num']}{unit}{result}"
    try:
        Metric.parse(candidate)
    except ValueError:
        return None
    return candidate
