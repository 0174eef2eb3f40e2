"""TG-263 DVH metrics of the goal grammar, measured on an exact DVH.

A metric's value comes out in `metric.unit`: Gy for doses, % or cc for volumes. A volume
at a relative dose (`V95%`) needs the prescription of the structure it is measured on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from specc.evaluate.dvh import DVH, UndefinedMetric
from specc.protocol.units import Dose

if TYPE_CHECKING:
    from specc.protocol.metrics import Metric

_DOSE_QUANTITIES = frozenset({"D", "DC", "Mean", "Max", "Min"})


def _dose_threshold_gy(metric: Metric, prescription: Dose | None) -> float:
    """The dose of a V / CV metric in Gy: written in Gy, or as % of the prescription."""
    if metric.dose is not None:
        return metric.dose.gy
    if metric.dose_percent is None:
        raise UndefinedMetric(f"{metric} names no dose")
    if prescription is None:
        raise UndefinedMetric(f"{metric} is relative to a prescription, and this structure has none")
    return metric.dose_percent / 100.0 * prescription.gy


def _dose_gy(metric: Metric, dvh: DVH) -> float:
    if metric.quantity == "Max":
        return dvh.max
    if metric.quantity == "Min":
        return dvh.min
    if metric.quantity == "Mean":
        return dvh.mean
    if metric.volume is None:
        raise UndefinedMetric(f"{metric} names no volume")
    if metric.quantity == "D":
        return dvh.dose_at_volume(metric.volume)
    return dvh.dose_at_cold_volume(metric.volume)


def measure(metric: Metric, dvh: DVH, prescription: Dose | None) -> float:
    """The value of `metric` on `dvh`, in `metric.unit`.

    Raises UndefinedMetric when the metric has no value here (a volume larger than the
    structure, a relative dose without a prescription).
    """
    if metric.quantity in _DOSE_QUANTITIES:
        return _dose_gy(metric, dvh)
    threshold_gy = _dose_threshold_gy(metric, prescription)
    if metric.quantity == "V":
        return dvh.volume_at_dose(threshold_gy, metric.unit)
    if metric.quantity == "CV":
        return dvh.volume_below_dose(threshold_gy, metric.unit)
    raise UndefinedMetric(f"unknown metric quantity {metric.quantity!r}")


def dvh_point(metric: Metric, threshold: float, dvh: DVH, prescription: Dose | None) -> tuple[float, float] | None:
    """Where a goal's threshold sits on the cumulative DVH plane: (dose Gy, volume %).

    Used to draw goal markers; None for a mean-dose goal (no point of the curve), when a
    relative dose has no prescription to refer to, or when the goal's volume is not a share of
    this structure (50 cc of a 49 cc organ: no point of its curve).
    """
    point = _point(metric, threshold, dvh, prescription)
    return point if point is None or 0.0 <= point[1] <= 100.0 else None


def _percent(volume_value: float, unit: str, dvh: DVH) -> float:
    return volume_value if unit == "%" else 100.0 * volume_value / dvh.volume_cc


def _point(metric: Metric, threshold: float, dvh: DVH, prescription: Dose | None) -> tuple[float, float] | None:
    if metric.quantity == "Max":
        return threshold, 0.0
    if metric.quantity == "Min":
        return threshold, 100.0
    if metric.quantity in ("D", "DC"):
        hot_percent = _percent(metric.volume.value, metric.volume.unit, dvh)
        return threshold, hot_percent if metric.quantity == "D" else 100.0 - hot_percent
    if metric.quantity in ("V", "CV"):
        try:
            dose_gy = _dose_threshold_gy(metric, prescription)
        except UndefinedMetric:
            return None
        percent = _percent(threshold, metric.unit, dvh)
        return dose_gy, percent if metric.quantity == "V" else 100.0 - percent
    return None
