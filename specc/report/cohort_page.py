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

A value judged on part of its organ (the case contours only some of the organ's `parts`: the left
brachial plexus alone; plan.json `partial_structure`) is no whole organ's: beside whole-organ cases it
would pass for one. Each such value is marked (`PARTIAL_MARK`), each goal row says how many of the
values its median takes are such, and a footnote says what the mark means; the case's report names the
parts used and missing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from specc.evaluate.record import ProtocolInfo
from specc.protocol import Protocol
from specc.report.identity import PLAN_FOLDER_FILES, is_staging_name
from specc.report.compare import Measured, Notice, recorded_goals, written_now
from specc.report.compare_cohorts import (
    STATUS_ORDER, cases_text, cohort_goal_rows, cohort_warnings, read_cohort,
)
from specc.report.html import STATUS_LABELS, environment, style_sheet
from specc.report.write import write_page

COHORT_PAGE = "cohort"
# The mark of a value judged on part of its organ (module docstring), explained in the page's footnote.
PARTIAL_MARK = "†"


@dataclass(frozen=True)
class CaseRow:
    """One case of the cohort: its folder (with report.html), id and every goal's measurement."""

    folder: str
    case_id: str
    sha256: str  # the case's content: two cases of one id told apart
    values: list[Measured | None]  # in the order of the page's goal columns; None: not a goal of its plan
    same_as: str | None  # the folder of an earlier case of the same content (this one is not counted)
    partial: list[bool]  # per goal column: the value is of part of its organ (`PARTIAL_MARK`)


def plans_not_in_run(out: Path, listed: Collection[str]) -> list[str]:
    """The folders in `out` holding a plan's files whose names are not `listed`: an earlier run's cases
    that this run did not plan (left as they are, never counted). A plan's staging folder (`.CASE.XXXXXXXX.partial`,
    left by a run killed while it wrote the case's files) is no plan of an earlier run."""
    if not out.is_dir():
        return []
    return sorted(
        folder.name for folder in out.iterdir()
        if folder.is_dir() and folder.name not in listed and not is_staging_name(folder.name)
        and any((folder / name).exists() for name in PLAN_FOLDER_FILES)
    )



def write_cohort_page(summary: Path, protocol: Protocol, pdf: bool = False) -> list[Path]:
    """Write cohort.html (and cohort.pdf when `pdf`) beside the cohort.csv `summary` of a run of `protocol`
    (named when no case was planned, whose plans would name it)."""
    cohort = read_cohort(summary)
    rows = cohort_goal_rows([cohort])  # a case listed twice counted once, and warned of
    columns = [(row.structure, row.text, row.scope) for row in rows]
    repeated = cohort.repeated
    cases = []
    for folder, record in cohort.plans.items():
        measured = {key: value for key, _, value in recorded_goals(record)}
        on_parts = {(goal.structure, goal.text) for goal in record.goals if goal.partial_structure}
        values = [measured.get(column) for column in columns]
        cases.append(CaseRow(folder, record.case.case_id, record.case.sha256, values, repeated.get(folder),
                             [value is not None and value.value is not None and column[:2] in on_parts
                              for column, value in zip(columns, values)]))
    # per goal column: the values its median takes (counted cases, converged) that are of part of their organ
    partial_counts = [sum(case.partial[index] for case in cases if case.same_as is None
                          and case.values[index] is not None and case.values[index].status != "not_converged")
                      for index in range(len(columns))]
    warnings = cohort_warnings([cohort])
    others = plans_not_in_run(summary.parent, cohort.plans)
    if others:
        warnings.append(Notice(f"{', '.join(others)}: plan folders beside cohort.csv that it does not list (an "
                               "earlier run's cases); not part of this run, not counted"))
    named = cohort.protocol if cohort.plans else f"{protocol.name} v{protocol.version}"
    # no plan: the protocol this run read, with its hashes where it was read from a file
    protocol_files = cohort.protocol_files or ([ProtocolInfo.of(protocol)] if protocol.source is not None else [])
    total = len(cohort.plans) + len(cohort.unplanned)
    css = style_sheet()
    html = environment().get_template("cohort.html").render(
        heading=f"Cohort: {named}", names=cases_text(total), protocol=named, protocol_files=protocol_files,
        cohort=cohort, rows=rows, cases=cases, warnings=warnings, css=css, status_labels=STATUS_LABELS,
        status_order=STATUS_ORDER, not_converged=cohort.unconverged, partial_counts=partial_counts,
        partial_mark=PARTIAL_MARK, written=written_now(),
    )
    return write_page(summary.parent, COHORT_PAGE, html, pdf)
