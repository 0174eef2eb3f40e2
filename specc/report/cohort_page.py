"""cohort.html: one protocol over a cohort on one page, beside the cohort.csv a cohort run writes.

Auditing a class solution (`specc cohort`) or a clinic's plans (`specc check --cohort`) means
seeing the whole cohort at once: per goal, how many cases pass, vary or fail and the median
value; per case, every goal's value and status, with a link to the case's own report, which
is the one reviewed and signed. Everything is read back from cohort.csv and each case's
plan.json, as `specc compare` reads them, so the page shows what the files say.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from specc.report.compare import Measured, recorded_goals
from specc.report.compare_cohorts import STATUS_ORDER, cohort_goal_rows, cohort_warnings, read_cohort
from specc.report.html import STATUS_LABELS, environment, style_sheet
from specc.report.write import write_page

COHORT_PAGE = "cohort"


@dataclass(frozen=True)
class CaseRow:
    """One case of the cohort: its folder (with report.html), id and every goal's measurement."""

    folder: str
    case_id: str
    sha256: str  # the case's content: two cases of one id told apart
    values: list[Measured | None]  # in the order of the page's goal columns; None: not a goal of its plan


def write_cohort_page(summary: Path, pdf: bool = False) -> list[Path]:
    """Write cohort.html (and cohort.pdf when `pdf`) beside the cohort.csv `summary`."""
    cohort = read_cohort(summary)
    rows = cohort_goal_rows([cohort])
    columns = [(row.structure, row.text, row.scope) for row in rows]
    cases = []
    for folder, record in cohort.plans.items():
        measured = {key: value for key, _, value in recorded_goals(record)}
        cases.append(CaseRow(folder, record.case.case_id, record.case.sha256, [measured.get(column) for column in columns]))
    css = style_sheet()
    html = environment().get_template("cohort.html").render(
        heading=f"Cohort: {cohort.protocol}", names=f"{len(cases)} cases", cohort=cohort, rows=rows, cases=cases,
        warnings=cohort_warnings([cohort]), css=css, status_labels=STATUS_LABELS, status_order=STATUS_ORDER,
        not_converged=cohort.unconverged,
    )
    return write_page(summary.parent, COHORT_PAGE, html, pdf)
