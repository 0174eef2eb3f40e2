"""cohort.html: one protocol over a cohort on one page, beside the cohort.csv a cohort run writes.

Auditing a class solution (`specc cohort`) or a clinic's plans (`specc check --cohort`) means
seeing the whole cohort at once: per goal, how many cases pass, vary or fail and the median
value; per case, every goal's value and status, with a link to the case's own report, which
is the one reviewed and signed. Everything is read back from cohort.csv and each case's
plan.json, as `specc compare` reads them, so the page shows what the files say.

A case file listed twice (the same case content, so the same plan) is one patient: it is
listed twice but counted once in the statistics, and the page says so. Plan folders beside
cohort.csv that it does not list (an earlier run's cases, no longer in the case list) are named
as not part of this run.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

from specc.evaluate import PlanRecord
from specc.protocol import Protocol
from specc.report.approval import PLAN_FOLDER_FILES
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
    same_as: str | None  # the folder of an earlier case of the same content (this one is not counted)


def plan_identity(record: PlanRecord) -> tuple[str, str, str | None]:
    """What makes two plans of a cohort one: the case's content, the protocol's and, for a checked dose,
    the dose file's. Two case files with the same content give the same plan; counted twice, they would
    weigh one patient double in every count and median."""
    dose = record.dose_source.sha256 if record.dose_source is not None else None
    return record.case.sha256, record.protocol.sha256, dose


def plans_not_in_run(out: Path, listed: Collection[str]) -> list[str]:
    """The folders in `out` holding a plan's files whose names are not `listed`: an earlier run's cases
    that this run did not plan (left as they are, never counted)."""
    if not out.is_dir():
        return []
    return sorted(
        folder.name for folder in out.iterdir()
        if folder.is_dir() and folder.name not in listed and any((folder / name).exists() for name in PLAN_FOLDER_FILES)
    )


def write_cohort_page(summary: Path, protocol: Protocol, pdf: bool = False) -> list[Path]:
    """Write cohort.html (and cohort.pdf when `pdf`) beside the cohort.csv `summary` of a run of `protocol`
    (named when no case was planned, whose plans would name it)."""
    cohort = read_cohort(summary)
    first: dict[tuple[str, str, str | None], str] = {}
    same_as = {folder: first.setdefault(plan_identity(record), folder) for folder, record in cohort.plans.items()}
    counted = replace(cohort, plans={folder: cohort.plans[folder] for folder in first.values()})
    rows = cohort_goal_rows([counted])
    columns = [(row.structure, row.text, row.scope) for row in rows]
    cases = []
    for folder, record in cohort.plans.items():
        measured = {key: value for key, _, value in recorded_goals(record)}
        repeated = same_as[folder] if same_as[folder] != folder else None
        cases.append(CaseRow(folder, record.case.case_id, record.case.sha256,
                             [measured.get(column) for column in columns], repeated))
    warnings = cohort_warnings([cohort]) + [
        f"{case.folder} is the same case as {case.same_as} (case SHA-256 {case.sha256[:12]}), listed twice: "
        "planned again, counted once in the goal statistics" for case in cases if case.same_as is not None
    ]
    others = plans_not_in_run(summary.parent, cohort.plans)
    if others:
        warnings.append(f"{', '.join(others)}: plan folders beside cohort.csv that it does not list (an earlier run's "
                        "cases); not part of this run, not counted")
    named = cohort.protocol if cohort.plans else f"{protocol.name} v{protocol.version}"
    digests = cohort.protocol_sha256s or ([protocol.source.sha256] if protocol.source is not None else [])
    total = len(cohort.plans) + len(cohort.unplanned)
    css = style_sheet()
    html = environment().get_template("cohort.html").render(
        heading=f"Cohort: {named}", names=f"{total} cases", protocol=named, protocol_sha256s=digests,
        cohort=cohort, rows=rows, cases=cases, warnings=warnings, css=css, status_labels=STATUS_LABELS,
        status_order=STATUS_ORDER, not_converged=cohort.unconverged,
    )
    return write_page(summary.parent, COHORT_PAGE, html, pdf)
