"""TG-263 metrics of the goal grammar and goal judgement."""

from __future__ import annotations

import numpy as np
import pytest

from specc.evaluate import DVH, UndefinedMetric, judge, measure, reported_status
from specc.evaluate.metrics import dvh_point
from specc.protocol.metrics import Metric
from specc.protocol.units import Dose


@pytest.fixture
def dvh() -> DVH:
    dose = np.random.default_rng(11).uniform(10.0, 80.0, 1000)
    return DVH.from_dose(dose, 0.008)  # 8 cc


def test_each_quantity_reads_the_dvh_in_its_unit(dvh):
    rx = Dose.parse("70 Gy")
    doses = dvh.doses_gy
    assert measure(Metric.parse("Max"), dvh, None) == doses.max()
    assert measure(Metric.parse("Min"), dvh, None) == doses.min()
    assert measure(Metric.parse("Mean"), dvh, None) == pytest.approx(doses.mean())
    assert measure(Metric.parse("D95%"), dvh, None) == np.sort(doses)[::-1][949]
    assert measure(Metric.parse("D2cc"), dvh, None) == np.sort(doses)[::-1][249]
    assert measure(Metric.parse("D0.03cc"), dvh, None) == np.sort(doses)[::-1][3]
    assert measure(Metric.parse("DC10%"), dvh, None) == np.sort(doses)[99]
    assert measure(Metric.parse("V40Gy[%]"), dvh, None) == pytest.approx(100 * np.mean(doses >= 40))
    assert measure(Metric.parse("V40Gy[cc]"), dvh, None) == pytest.approx(0.008 * np.sum(doses >= 40))
    assert measure(Metric.parse("V95%"), dvh, rx) == pytest.approx(100 * np.mean(doses >= 66.5))
    assert measure(Metric.parse("CV20Gy"), dvh, None) == pytest.approx(0.008 * np.sum(doses < 20))


def test_undefined_metrics_say_why(dvh):
    with pytest.raises(UndefinedMetric, match="prescription"):
        measure(Metric.parse("V95%"), dvh, None)
    with pytest.raises(UndefinedMetric, match="more than the whole structure"):
        measure(Metric.parse("D20cc"), dvh, None)


@pytest.mark.parametrize(
    ("value", "comparator", "threshold", "variation", "expected"),
    [
        (50.0, ">=", 50.0, None, "pass"),
        (49.0, ">=", 50.0, 47.5, "variation"),
        (47.0, ">=", 50.0, 47.5, "fail"),
        (55.0, "<=", 55.0, 57.0, "pass"),
        (56.0, "<=", 55.0, 57.0, "variation"),
        (56.0, "<=", 55.0, None, "fail"),
        (55.0, "<", 55.0, None, "fail"),
        (50.0 * (1 - 1e-12), ">=", 50.0, None, "pass"),  # rounding noise of a normalized value
        (float(np.nextafter(np.float32(75.6), np.float32(0))), ">=", 75.6, None, "pass"),  # a float32 below it
        (50.0 * (1 - 1e-5), ">=", 50.0, None, "fail"),  # 0.5 mGy short: a real shortfall
    ],
)
def test_judge(value, comparator, threshold, variation, expected):
    assert judge(value, comparator, threshold, variation) == expected


@pytest.mark.parametrize(
    ("value", "comparator", "threshold", "variation", "shown"),
    [
        (71.99988, ">=", 72.0, None, "71.9999"),  # a hard minimum met within its tolerance, the goal failed
        (72.004, ">=", 72.0, None, "72.00"),  # passed, and so it reads at two decimals
        (55.0049, "<=", 55.0, 57.0, "55.005"),  # within the variation: more decimals than 55.00
        (57.004, "<=", 55.0, 57.0, "57.004"),  # failed: 57.00 would read as within the variation
        (50.0 * (1 - 1e-12), ">=", 50.0, None, "50.00"),  # rounding noise passes and reads as the threshold
        (48.123, ">=", 50.0, None, "48.12"),
    ],
)
def test_a_goal_value_is_shown_with_the_decimals_its_judgement_needs(value, comparator, threshold, variation, shown):
    from specc.protocol.judgement import judged_text

    assert judged_text(value, comparator, threshold, variation) == shown


def test_unconverged_plans_never_pass():
    for measured in ("pass", "variation", "fail", "not_evaluated"):
        assert reported_status(measured, converged=False) == "not_converged"
        assert reported_status(measured, converged=True) == measured


def test_goal_markers_sit_at_the_threshold(dvh):
    rx = Dose.parse("70 Gy")
    assert dvh_point(Metric.parse("D95%"), 66.5, dvh, rx) == (66.5, 95.0)
    assert dvh_point(Metric.parse("D2cc"), 75.0, dvh, rx) == pytest.approx((75.0, 25.0))
    assert dvh_point(Metric.parse("Max"), 77.0, dvh, rx) == (77.0, 0.0)
    assert dvh_point(Metric.parse("V40Gy[%]"), 30.0, dvh, rx) == (40.0, 30.0)
    assert dvh_point(Metric.parse("V95%"), 98.0, dvh, rx) == pytest.approx((66.5, 98.0))
    assert dvh_point(Metric.parse("CV20Gy"), 2.0, dvh, rx) == pytest.approx((20.0, 75.0))
    assert dvh_point(Metric.parse("Mean"), 30.0, dvh, rx) is None
