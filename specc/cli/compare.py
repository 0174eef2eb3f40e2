"""`specc compare`: plans, or cohorts, side by side, from the files `specc plan` / `specc cohort` wrote."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from specc.cli.app import app, console, error_console, fail, status_text
from specc.errors import SpeccError

if TYPE_CHECKING:
    from specc.report.compare import Notice


@app.command("compare")
def compare_command(
    paths: list[Path] = typer.Argument(
        ..., help="Two or more plans (folders written by `specc plan`, or their plan.json), or cohort folders "
        "(written by `specc cohort`)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write compare.html (and compare.pdf) into."),
    label: list[str] = typer.Option([], "--label", help="A name per plan or cohort, in order (default: folder names)."),
    pdf: bool = typer.Option(False, "--pdf", help="Also write compare.pdf (WeasyPrint)."),
) -> None:
    """Compare plans goal by goal (and their worst setup-error scenarios), or cohorts case by case."""
    from specc.pipeline import COHORT_CSV

    cohorts = [path / COHORT_CSV for path in paths if (path / COHORT_CSV).is_file()]
    try:
        if cohorts and len(cohorts) != len(paths):
            fail("give plans or cohort folders, not both")
        written = _compare_cohorts(cohorts, label, out, pdf) if cohorts else _compare_plans(paths, label, out, pdf)
    except SpeccError as error:
        fail(error)
    console.print(f"wrote {', '.join(str(path) for path in written)}", markup=False)


def _warn(notices: list[Notice]) -> None:
    """Each warning, and each note as one, by its severity (`Notice.warning`): protocol files that keep their
    content are a note, as approve says it (review s20/r2 F7: compare still called a comment edit a warning)."""
    for notice in notices:
        kind = "warning: " if notice.warning else "note: "
        error_console.print(Text(kind, style="bold yellow") + Text(notice.text), soft_wrap=True)


def _compare_plans(paths: list[Path], labels: list[str], out: Path, pdf: bool) -> list[Path]:
    from specc.report.compare import goal_rows, measurement_warnings, read_plans, warnings, write_comparison

    compared = read_plans(paths, labels)
    written = write_comparison(out, compared, pdf=pdf)
    _warn(warnings(compared))
    title = "Clinical goals" + (" (measured on different grids or masks: see the warning)"
                                if measurement_warnings(compared) else "")
    table = Table("structure", "goal", *(plan.label for plan in compared), title=title)
    for row in goal_rows(compared):
        goal = row.text + (" (worst setup error)" if row.scope == "worst" else "")
        cells: list[str | Text] = [row.structure, goal]
        for measured in row.measured:
            if measured is None:
                cells.append(Text("not a goal", style="dim"))
            else:
                value = "-" if measured.value is None else f"{measured.shown} {row.unit}"
                cell = Text(value + " ") + status_text(measured.status)
                if row.limits_differ and measured.limit is not None:  # a table's limit, read on each plan's case
                    cell += Text(f"\nlimit {measured.limit}", style="dim")
                cells.append(cell)
        table.add_row(*cells)
    console.print(table)
    return written


def _compare_cohorts(summaries: list[Path], labels: list[str], out: Path, pdf: bool) -> list[Path]:
    from specc.report.compare_cohorts import (
        STATUS_ORDER, cases_text, cohort_goal_rows, cohort_warnings, read_cohorts, write_cohort_comparison,
    )

    cohorts = read_cohorts(summaries, labels)
    written = write_cohort_comparison(out, cohorts, pdf=pdf)
    _warn(cohort_warnings(cohorts))
    for cohort in cohorts:
        protocols = cohort.protocols_with_digests or "no plan"
        twice = f" ({len(cohort.repeated)} listed twice, counted once)" if cohort.repeated else ""
        console.print(f"{cohort.label}: {protocols}; {cases_text(len(cohort.plans))} planned{twice}",
                      markup=False, highlight=False)
    paired = len(cohorts) == 2
    table = Table("structure", "goal", *(cohort.label for cohort in cohorts), *(["median paired difference"] if paired else []),
                  title="Clinical goals over the cohort (cases per status; median)")
    for row in cohort_goal_rows(cohorts):
        goal = row.text + (" (worst setup error)" if row.scope == "worst" else "")
        cells: list[str | Text] = [row.structure, goal]
        for counts, median in zip(row.counts, row.medians):
            text = Text()
            for status in STATUS_ORDER:
                if counts[status]:
                    text += status_text(status) + Text(f" {counts[status]} ")
            cells.append(text + Text("" if median is None else f"| {median:.2f} {row.unit}"))
        if paired:
            cells.append("-" if row.paired_median is None else f"{row.paired_median:+.2f} {row.unit} ({row.paired_cases})")
        table.add_row(*cells)
    console.print(table)
    return written
