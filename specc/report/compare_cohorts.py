"""Cohorts side by side: one protocol version against another over the same cases.

Revising a class solution is judged over a cohort: does the new version pass more goals, on
which cases does it lose? Each cohort is the folder `specc cohort` wrote: its cohort.csv
lists the cases, and each planned case's plan.json holds its values, read as written (nothing
recomputed). Cases are named and matched by their folder: the case id made safe for a file
name, and numbered (-2, -3) when a cohort plans one case id twice (two scans of one patient),
so that such a cohort is compared like any other, each case under the name the cohort table and
page give it; a goal is counted per status over the cases each
cohort planned (an unconverged plan's goals count as NOT CONVERGED, never as passed, and its
values enter no median), and, with two cohorts, the median of the per-case differences over
the cases both planned shows which way the change moved it. A case listed twice in a cohort
(the same case content, so the same plan) is one patient: counted twice, it would weigh double
in every count, median and paired difference, so it is counted once and a warning says so.
"""

from __future__ import annotations

import csv
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from specc.evaluate import PlanRecord
from specc.evaluate.record import ProtocolInfo
from specc.report.compare import (
    COMPARE_PAGE, CONTENT_CHANGED, CompareError, Measured, Notice, numbered, protocol_difference,
    protocol_with_digests, protocols_compared, read_record, recorded_goals, written_now,
)
from specc.report.identity import PLAN_JSON
from specc.report.html import STATUS_LABELS, environment, style_sheet
from specc.report.write import write_page

# The order statuses are counted in, best first.
STATUS_ORDER = ("pass", "variation", "fail", "not_evaluated", "not_converged")


def plan_identity(record: PlanRecord) -> tuple[str, str, str | None]:
    """What makes two plans of a cohort one: the case's content, the protocol's and, for a checked dose,
    the dose file's. Two case files with the same content give the same plan; counted twice, they would
    weigh one patient double in every count and median."""
    dose = record.dose_source.sha256 if record.dose_source is not None else None
    return record.case.sha256, record.protocol.sha256, dose


@dataclass(frozen=True)
class ComparedCohort:
    label: str
    summary: Path  # its cohort.csv
    plans: dict[str, PlanRecord]  # by folder name (the case id, numbered when repeated): the cases it planned
    unplanned: list[str]  # cases it could not plan (case id, else case file), with why

    @property
    def repeated(self) -> dict[str, str]:
        """Each case whose plan is one listed before it (`plan_identity`), with that case's folder: a case
        file listed twice, listed but not counted."""
        first: dict[tuple[str, str, str | None], str] = {}
        return {
            folder: earlier for folder, record in self.plans.items()
            if (earlier := first.setdefault(plan_identity(record), folder)) != folder
        }

    @property
    def counted(self) -> dict[str, PlanRecord]:
        """Its plans, each counted once: what its goal statistics are taken over."""
        repeated = self.repeated
        return {folder: record for folder, record in self.plans.items() if folder not in repeated}

    @property
    def protocol(self) -> str:
        """The protocol of its plans as a plan comparison names its plans' (`protocols_compared`: "name vVERSION",
        several when they differ), or "(no plan)"."""
        return protocols_compared(self.plans.values()) or "(no plan)"

    @property
    def unconverged(self) -> list[str]:
        """Its cases whose solver did not converge (their goals count as NOT CONVERGED)."""
        return sorted(case for case, record in self.plans.items() if not record.converged)

    @property
    def protocol_sha256s(self) -> list[str]:
        """The SHA-256 of its plans' protocol: one, unless the cohort mixes protocols. What tells two
        protocols of one name and version apart."""
        return sorted(protocol.sha256 for protocol in self.protocol_files)

    @property
    def protocol_files(self) -> list[ProtocolInfo]:
        """Its plans' protocols, one per file (by SHA-256) in its cases' order, each with its own name, version and
        hashes: what the pages show a cohort's protocols by, so that a name is never beside another's hashes."""
        return list({record.protocol.sha256: record.protocol for record in self.plans.values()}.values())

    @property
    def protocols_with_digests(self) -> str:
        """Its protocols as the warnings and the console give them, each beside its own hashes
        (`compare.protocol_with_digests`): "Site v2 v1.0.0 (SHA-256 e940fdf7671d), Site v1 v1.0.0 (SHA-256
        b33aff542d26)"."""
        return ", ".join(protocol_with_digests(protocol) for protocol in self.protocol_files)


@dataclass(frozen=True)
class CohortGoalRow:
    """A goal over each cohort's planned cases."""

    structure: str
    text: str
    unit: str
    scope: str  # "nominal", or "worst" (its worst setup-error scenario)
    counts: list[Counter]  # per cohort: reported status -> cases
    medians: list[float | None]  # per cohort: median value over the cases that measured it
    paired_median: float | None  # two cohorts: median over the cases both measured of (second - first)
    paired_cases: int
    # Its limit is read on each case from a table by a structure's volume (`Measured.limit`): its median is over
    # values judged against different limits, and each case's limit is on the case's own row.
    limit_per_case: bool = False


def cases_text(count: int) -> str:
    """"1 case", "2 cases": how pages and warnings count cases."""
    return f"{count} case" if count == 1 else f"{count} cases"


def read_cohorts(summaries: Sequence[Path], labels: Sequence[str] = ()) -> list[ComparedCohort]:
    """The cohorts whose cohort.csv files are `summaries`, labelled (default: their folders' names)."""
    if len(summaries) < 2:
        raise CompareError("give at least two cohort folders to compare")
    if labels and len(labels) != len(summaries):
        raise CompareError(f"{len(labels)} labels for {len(summaries)} cohorts: give one --label per cohort, or none")
    return numbered([read_cohort(summary, labels[index] if labels else None) for index, summary in enumerate(summaries)])


def _unplanned(row: dict[str, str]) -> str:
    """A case of cohort.csv without a plan, led by its status as cohort.csv's solver_status and the terminal give
    it (`infeasible`, `error`, ...), then its case SHA-256 where it was read, then why: a message led by the
    solver's fallback ("SPECC-LBFGS did not solve this program ...") read as a solver failure, not as the
    clinical conflict of an infeasible case (audit c3 F5)."""
    return (f"{row['case_id'] or row['case_file']}: {row.get('solver_status') or 'no plan'}"
            + (f" (case SHA-256 {row['case_sha256'][:12]})" if row.get("case_sha256") else "")
            + (f": {row['error']}" if row["error"] else ""))


def read_cohort(summary: Path, label: str | None = None) -> ComparedCohort:
    """The cohort whose cohort.csv is `summary`; its planned cases' plan.json read as written, keyed
    by their folder's name (unique within a cohort, even when one case id was planned twice)."""
    try:
        with summary.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise CompareError(f"{summary}: no such file (give a folder written by `specc cohort`)") from None
    if rows and not {"case_id", "case_file", "folder", "error"} <= set(rows[0]):
        raise CompareError(f"{summary}: not a specc cohort summary (no case_id / case_file / folder / error columns)")
    plans, unplanned = {}, []
    for row in rows:
        if not row["folder"]:
            unplanned.append(_unplanned(row))
            continue
        folder = Path(row["folder"]).name
        if folder in plans:
            raise CompareError(f"{summary}: folder {folder!r} is listed twice (not as specc cohort wrote it)")
        plans[folder] = read_record(summary.parent / folder / PLAN_JSON)
    return ComparedCohort(label or summary.parent.name, summary, plans, unplanned)


def cohort_goal_rows(cohorts: Sequence[ComparedCohort]) -> list[CohortGoalRow]:
    """Every goal of any plan of any cohort, counted per cohort (a case listed twice once: `counted`)."""
    measured: dict[tuple[str, str, str], list[dict[str, Measured]]] = {}
    units: dict[tuple[str, str, str], str] = {}
    for index, cohort in enumerate(cohorts):
        for case, record in cohort.counted.items():
            for key, unit, value in recorded_goals(record):
                measured.setdefault(key, [{} for _ in cohorts])[index][case] = value
                units[key] = unit
    rows = []
    for (structure, text, scope), by_cohort in sorted(measured.items(), key=lambda item: item[0][2] == "worst"):
        counts = [Counter(m.status for m in cases.values()) for cases in by_cohort]
        # An unconverged plan is counted (as NOT CONVERGED) but its values move no median.
        usable = [{case: m.value for case, m in cases.items() if m.value is not None and m.status != "not_converged"}
                  for cases in by_cohort]
        medians = [_median(list(values.values())) for values in usable]
        paired: list[float] = []
        if len(cohorts) == 2:
            first, second = usable
            paired = [second[case] - first[case] for case in first.keys() & second.keys()]
        per_case = any(m.limit is not None for cases in by_cohort for m in cases.values())
        rows.append(CohortGoalRow(
            structure, text, units[(structure, text, scope)], scope, counts, medians, _median(paired), len(paired),
            per_case,
        ))
    return rows


def cohort_warnings(cohorts: Sequence[ComparedCohort]) -> list[Notice]:
    """Each plan's own warnings (`PlanRecord.warnings`, by case: the cohort run printed none of them, nor did its
    page: review s18 R2), protocols that differ (by SHA-256; by content fingerprint where names and versions are
    the same: `protocol_difference`, protocol files that keep their content a note), cases listed twice, cases a
    comparison cannot pair, different data under one case name, cases left unplanned, unconverged plans."""
    out = [Notice(f"{cohort.label}: {folder}: {warning}") for cohort in cohorts
           for folder, record in cohort.plans.items() for warning in record.warnings]
    out += _protocol_warnings(cohorts)
    for cohort in cohorts:
        out += [
            Notice(f"{cohort.label}: {folder} is the same case as {earlier} (case SHA-256 "
                   f"{cohort.plans[folder].case.sha256[:12]}), listed twice: counted once in the goal statistics")
            for folder, earlier in cohort.repeated.items()
        ]
    every = set().union(*(cohort.counted for cohort in cohorts))
    for cohort in cohorts:
        missing = sorted(every - set(cohort.plans))
        if missing:
            out.append(Notice(f"{cohort.label}: no plan for {', '.join(missing)} (planned in another cohort)"))
        if cohort.unplanned:
            out.append(Notice(f"{cohort.label}: {cases_text(len(cohort.unplanned))} without a plan: "
                              f"{'; '.join(cohort.unplanned)}"))
    for case in sorted(every):
        hashes = {cohort.plans[case].case.sha256 for cohort in cohorts if case in cohort.plans}
        if len(hashes) > 1:
            out.append(Notice(f"case {case}: different case data in different cohorts (case SHA-256 differs)"))
    for cohort in cohorts:
        if cohort.unconverged:
            out.append(Notice(f"{cohort.label}: {', '.join(cohort.unconverged)} did not converge; their goals count "
                              "as NOT CONVERGED"))
    return out


def _protocol_warnings(cohorts: Sequence[ComparedCohort]) -> list[Notice]:
    """A cohort whose plans were made with different protocols; cohorts whose protocols differ. Where their names
    and versions are the same, said by the content fingerprint as `specc compare` says it of plans
    (`protocol_difference`): most loudly a protocol edited without a new version; a comment edit as one."""
    out = []
    for cohort in cohorts:
        if len(cohort.protocol_sha256s) > 1:
            out.append(_protocols_text(
                f"{cohort.label}: its plans were made with {len(cohort.protocol_sha256s)} different protocols",
                f"{cohort.label}: its plans' protocols", [cohort], cohort.protocols_with_digests))
    planned = [cohort for cohort in cohorts if cohort.plans]
    if len({tuple(cohort.protocol_sha256s) for cohort in planned}) > 1:
        listed = "; ".join(f"{cohort.label}: {cohort.protocols_with_digests}" for cohort in planned)
        out.append(_protocols_text("the cohorts' protocols differ", "the cohorts' protocols", planned, listed))
    return out


def _protocols_text(other: str, shared: str, cohorts: Sequence[ComparedCohort], listed: str) -> Notice:
    """Protocols whose files differ over `cohorts`' plans, led by `other` where they are other protocols (other
    names or versions, or other content under one: `protocol_difference`), else by `shared` as sharing one name
    and version, with how their files differ (same content, a note; or not told)."""
    protocols_of = [record.protocol for cohort in cohorts for record in cohort.plans.values()]
    if len({(protocol.name, protocol.version) for protocol in protocols_of}) > 1:
        return Notice(f"{other} ({listed})")  # other names or versions: other protocols, as meant
    difference = protocol_difference(protocols_of)
    if difference is None or difference == CONTENT_CHANGED:
        return Notice(f"{other} ({listed})" + (f": {difference.text}" if difference else ""))
    return Notice(f"{shared} share a name and version ({listed}): {difference.text}", difference.warning)


def render_cohort_comparison(cohorts: Sequence[ComparedCohort]) -> str:
    """The cohort comparison page. Its first page says when it was compared and by which specc, and the PDF's
    document information gives author, creator, that time and the protocols' versions, as a plan comparison's
    (`compare.render_comparison`)."""
    css = style_sheet()
    return environment().get_template("compare_cohorts.html").render(
        heading="Cohort comparison", names=" vs ".join(cohort.label for cohort in cohorts),
        cohorts=cohorts, rows=cohort_goal_rows(cohorts), warnings=cohort_warnings(cohorts), css=css,
        status_labels=STATUS_LABELS, status_order=STATUS_ORDER,
        not_converged=[f"{cohort.label}: {case}" for cohort in cohorts for case in cohort.unconverged],
        written=written_now(),
        protocols=protocols_compared(record for cohort in cohorts for record in cohort.plans.values()),
    )


def write_cohort_comparison(out_dir: str | Path, cohorts: Sequence[ComparedCohort], pdf: bool = False) -> list[Path]:
    """Write compare.html (and compare.pdf when `pdf`) into `out_dir`; returns the paths written."""
    return write_page(out_dir, COMPARE_PAGE, render_cohort_comparison(cohorts), pdf)


def _median(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None
