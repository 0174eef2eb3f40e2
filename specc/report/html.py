"""Rendering the plan report as one self-contained HTML file (jinja2, autoescaped)."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.resources import files
from typing import TYPE_CHECKING

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

import specc
from specc.evaluate import PlanEvaluation, PlanRecord, TargetIndices
from specc.evaluate.dvh import UndefinedMetric
from specc.evaluate.indices import higher_level_targets, index_value, near_max_undefined
from specc.protocol.metrics import INDEX_QUANTITIES, Metric
from specc.protocol.models import offset_text
from specc.protocol.units import format_number as written_number
from specc.report.figures import (
    ISODOSE_PERCENTS,
    WASH_FROM_FRACTION,
    dvh_figure,
    fluence_figure,
    reference_dose_gy,
    slices_figure,
    to_data_uri,
)
from specc.report.identity import RECORD_META, record_sha256
from specc.report.limits import resolved_limits

if TYPE_CHECKING:
    from specc.case import Case

STATUS_LABELS = {
    "pass": "PASS",
    "variation": "VARIATION",
    "fail": "FAIL",
    "not_evaluated": "NOT EVALUATED",
    "not_converged": "NOT CONVERGED",
}
_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
# After each of these a file path may wrap (`path_breaks`).
_PATH_SEPARATOR = re.compile(r"(?<=[/\\])")
# How many leading digits of the plan record's SHA-256 name the plan at the top of every printed page: as many as
# `specc compare` shows of a protocol's, enough to tell two runs of one case and protocol apart on a loose page.
PLAN_ID_DIGITS = 12
# How the target-index table names each plan-quality index a goal can state, and its decimals.
_INDEX_ROWS = {
    "CI": ("CI: conformity (RTOG)", 2),
    "PCI": ("PCI: conformity (Paddick)", 3),
    "GI": ("GI: gradient (Paddick)", 2),
    "R50": ("R50: gradient", 2),
    "HI": ("HI: homogeneity (ICRU 83)", 3),
}


@dataclass(frozen=True)
class IndexRow:
    """One plan-quality index of every target, in the order of `PlanRecord.target_indices`."""

    label: str
    digits: int
    values: list[float | None]  # None: undefined for that target (no voxel at the prescription, D50% of 0 Gy)


def index_rows(record: PlanRecord) -> list[IndexRow]:
    """Each index a goal can state (`INDEX_QUANTITIES`) as a goal stating it measures it (`index_value`),
    so that the target-index table and the goal table cannot disagree."""
    rows = []
    for quantity in INDEX_QUANTITIES:
        label, digits = _INDEX_ROWS[quantity]
        metric = Metric.parse(quantity)
        rows.append(IndexRow(label, digits, [_index(metric, target) for target in record.target_indices]))
    return rows


def isodose_excludes(record: PlanRecord) -> dict[str, list[str]]:
    """The targets each target's isodose volumes leave out (those of higher dose levels), for the footnote that
    says so; by the rule the record's indices were measured with (`higher_level_targets`)."""
    levels = [(level.target, level.total_gy) for level in record.prescription.levels]
    excludes = {indices.structure: higher_level_targets(indices.structure, levels) for indices in record.target_indices}
    return {target: higher for target, higher in excludes.items() if higher}


def _index(metric: Metric, indices: TargetIndices) -> float | None:
    try:
        return index_value(metric, indices)
    except UndefinedMetric:
        return None


def format_number(value: float | None, digits: int = 2) -> str:
    """Fixed decimals for tables; 'n/a' for a missing or non-finite value."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


# Significant digits of a volume in cc: a lens (0.1 cc), a cochlea (0.05 cc) or an SRS target (0.02 cc) read
# "0.0 cc" at one decimal, as a structure that is missing would.
VOLUME_DIGITS = 3


def format_volume(value: float | None) -> str:
    """A volume in cc with `VOLUME_DIGITS` significant digits, never fewer than one decimal (1234.5, 12.3, 1.23,
    0.0150); 'n/a' for a missing or non-finite value."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0.0"
    decimals = max(1, VOLUME_DIGITS - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def format_time(iso: str) -> str:
    """An ISO 8601 time as a reader writes it, in UTC: '2025-03-04 09:15:02 UTC'."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo is not None else "")


def path_breaks(path: str) -> Markup:
    """A file path (or "file:line") that may wrap after each separator: `<wbr>` between its escaped parts. A table
    column too narrow for "protocols/tg119/prostate.yaml:49" then breaks it where a reader expects, not as
    "prostate.y / aml:49" (report.css: `.mono.path`)."""
    return Markup("<wbr>").join(escape(part) for part in _PATH_SEPARATOR.split(path))


def css_color(value: str) -> str:
    """A colour safe inside a style attribute (only #rrggbb passes)."""
    return value if _HEX_COLOR.match(value) else "#000000"


def style_sheet() -> Markup:
    """The pages' shared CSS: our own file, not user text (HTML escaping would break its quoted font names)."""
    return Markup(files("specc.report").joinpath("templates/report.css").read_text(encoding="utf-8"))


@functools.cache
def environment() -> Environment:
    """The templates' jinja2 environment (autoescaped, strict), shared by the report and the comparison. One per
    process: a new one compiles its templates again, 0.06 s for each report of a cohort or of a --watch save."""
    environment = Environment(
        loader=PackageLoader("specc.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=False,
    )
    environment.filters["fmt"] = format_number
    environment.filters["as_written"] = written_number  # a protocol's own value, every digit it was given
    environment.filters["cc"] = format_volume
    environment.filters["css_color"] = css_color
    environment.filters["path_breaks"] = path_breaks
    environment.filters["time"] = format_time
    environment.filters["offset"] = offset_text
    environment.filters["resolved_limits"] = resolved_limits
    # What every page may name: the specc writing it (not the one that made a plan or an approval, which their
    # records name) and how many digits of a SHA-256 identify a plan.
    environment.globals.update(writing_specc_version=specc.__version__, plan_id_digits=PLAN_ID_DIGITS)
    return environment


def render_html(
    record: PlanRecord, case: Case, evaluation: PlanEvaluation, masks: Mapping[str, np.ndarray]
) -> str:
    """The report page for `record`, drawing the dose and fluence held by `evaluation`."""
    figures = {
        "dvh": to_data_uri(dvh_figure(record)),
        "slices": to_data_uri(slices_figure(record, case, evaluation.dose, masks)),
    }
    if record.solver is not None:  # a checked external dose has no fluence of specc's
        figures["fluence"] = to_data_uri(fluence_figure(case, evaluation.fluence))
    css = style_sheet()
    return (
        environment()
        .get_template("report.html")
        .render(
            record=record,
            record_meta=RECORD_META,
            record_sha256=record_sha256(record),
            figures=figures,
            css=css,
            status_labels=STATUS_LABELS,
            index_rows=index_rows(record),
            isodose_excludes=isodose_excludes(record),
            outside_hot_spot=evaluation.outside_hot_spot.headline if evaluation.outside_hot_spot is not None else None,
            isodose_percents=ISODOSE_PERCENTS,
            reference_gy=reference_dose_gy(record, evaluation.dose),
            wash_percent=round(100 * WASH_FROM_FRACTION),
            near_max_undefined=near_max_undefined,  # a target under 0.03 cc: its D0.03cc reads as a goal on it would
        )
    )
