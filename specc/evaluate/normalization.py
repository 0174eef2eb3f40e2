"""Prescription normalization: scale the plan so one dose metric hits its prescribed value.

Clinics normalize after optimization (e.g. "PTV_High D95% = 100% of prescription"). Dose is
linear in fluence, so scaling the fluence by k scales every dose metric (D, DC, Mean, Max,
Min) by k: k = target / measured, exactly. Volume metrics are not linear in the fluence and
cannot define a normalization. The scaling is applied to fluence and dose before any goal is
evaluated, and recorded with the values before and after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from specc.evaluate.context import EvaluationError
from specc.evaluate.dvh import DVH
from specc.evaluate.metrics import measure
from specc.protocol.units import Dose

if TYPE_CHECKING:
    from specc.protocol.metrics import Metric

_LINEAR_QUANTITIES = frozenset({"D", "DC", "Mean", "Max", "Min"})


def normalization_factor(metric: Metric, target_value: float, dvh: DVH, prescription: Dose | None) -> float:
    """The factor that brings `metric` (in metric.unit) on `dvh` to `target_value`."""
    if metric.quantity not in _LINEAR_QUANTITIES:
        raise EvaluationError(f"cannot normalize on {metric}: only dose metrics scale with the fluence")
    measured = measure(metric, dvh, prescription)
    if measured <= 0:
        raise EvaluationError(f"cannot normalize on {metric}: it is {measured:g} {metric.unit} before normalization")
    return target_value / measured
