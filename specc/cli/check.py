"""`specc check`: argument parsing and printing around `specc.check_export` / `specc.check_dose`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from specc.cli.app import app, console, fail, imports_uninterrupted, status_text
from specc.cli.plan import (
    StagePrinter, cohort_progress, fail_unwritten, finish_cohort, goal_text, goal_value, note_beside,
    print_not_evaluated, print_robustness, print_summary, said_after_the_run, stop_cohort, stop_interrupted,
)
from specc.errors import SpeccError

if TYPE_CHECKING:
    from specc.check import CheckOutcome


class MeasureOnOption(str, Enum):
    """Where `--measure-on` measures a matRad workspace's dose (`specc.check.MeasureOn`)."""

    ct = "ct"
    case = "case"


@app.command()
def check(
    protocol: Path = typer.Argument(..., help="Protocol file (YAML)."),
    exports: list[Path] | None = typer.Argument(
        None, help="A plan export folder: CT + RTSTRUCT + RT Dose, the plan sum or one per beam (and the RT Plan, whose "
        "fractions are checked, needed to sum beam doses); several with --cohort."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for report.html and plan.json (--cohort: one per patient)."),
    cohort: bool = typer.Option(
        False, "--cohort", help="Check every export folder given into OUT/PATIENT_ID/ and write OUT/cohort.csv "
        "(as `specc cohort` does, so `specc compare` can set the two cohorts side by side)."
    ),
    dose: Path | None = typer.Option(
        None, "--dose", help="The RT Dose file to check (with --case; with a folder: the one of several), or a matRad "
        "workspace .mat with resultGUI, measured on its CT grid with its cst structures as matRad does (--case optional: "
        "it names the case)."
    ),
    case: Path | None = typer.Option(
        None, "--case", help="A specc case file: an RT Dose is interpolated onto its grid and judged on its structures; "
        "a matRad check is filed under it (its id and SHA-256), checked to be of the workspace."
    ),
    measure_on: MeasureOnOption | None = typer.Option(
        None, "--measure-on", help="With a matRad workspace: ct (the default) measures its dose on its CT grid with "
        "its cst structures, as matRad does; case (needs --case) on the case's grid with its masks, resultGUI "
        "interpolated, as specc measures its plan of the case: the reading a comparison with that plan needs."
    ),
    grid: float | None = typer.Option(
        None, "--grid", help="With a folder: evaluate on a finer isotropic grid (mm) than the RT Dose's, interpolated."
    ),
    outside_zero: bool = typer.Option(
        False, "--outside-zero", help="Give voxels of structures beyond the dose grid 0 Gy (the exporting system's "
        "calculation volume held all the dose), instead of leaving those structures' goals NOT EVALUATED."
    ),
    per_fraction: bool = typer.Option(
        False, "--per-fraction", help="The RT Dose holds one fraction, whatever its DoseSummationType says (matRad "
        "writes FRACTION for one): it is multiplied by the protocol's fractions."
    ),
    prior_dose: list[Path] = typer.Option(
        [], "--prior-dose", help="A prior course's dose (result.h5 or RT Dose; repeatable), for a protocol with "
        "`prescription.prior`: the composite (prior + the checked dose) is judged (docs/composite.md)."
    ),
    pdf: bool = typer.Option(False, "--pdf", help="Also write report.pdf (needs WeasyPrint)."),
    strict: bool = typer.Option(
        False, "--strict",
        help="Exit 2 when the dose file says its plan did not converge, or a priority-1 goal fails or reads NOT "
        "EVALUATED, except on an organ marked if_contoured that the case does not contour (with --cohort: the run's, "
        "and each row's in cohort.csv).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors and the final line."),
) -> None:
    """Check a plan made in another system against a protocol: its RT Dose measured, nothing optimized.

    Give a plan export folder (structures from its RTSTRUCT, on the dose grid), --case CASE.h5
    with --dose RD.dcm (structures from the case), or --dose WORKSPACE.mat (matRad's plan, on its
    CT grid with its cst structures; with --case --measure-on case, on the case's grid with its masks,
    as specc's plan of the case is measured). Exit code 0 when the dose was checked (goal failures are in
    the report), 1 on bad input (with --cohort: any folder; without, the earlier check in OUT is
    removed, so that it is not taken for this run's), 2 with --strict when the dose file says its plan did not
    converge (specc's own NOT CONVERGED export: the check is labelled so too), or a priority-1 goal fails or
    reads NOT EVALUATED (an organ beyond the dose's calculation volume, a D2cc on a 1 cc organ), except on an
    organ marked if_contoured that the case does not contour.
    """
    if cohort:
        if dose is not None or case is not None or prior_dose or measure_on is not None:
            fail("--cohort checks export folders, each with its own RT Dose; --dose, --case, --measure-on and "
                 "--prior-dose do not apply")
        if not exports:
            fail("--cohort checks plan export folders: give one or more")
        _check_cohort(protocol, exports, out, grid, outside_zero, per_fraction, pdf, strict, quiet)
    printer = StagePrinter(quiet)
    earlier: list[Path] = []  # the plan OUT held as the run began; none known before it looked (`stop_interrupted`)
    try:  # the imports too: a Ctrl-C during them (seconds) left the earlier check in OUT without a word
        with imports_uninterrupted():
            from specc.check import check_dose, check_export
            from specc.pipeline import check_plan_folder, plan_files
        earlier = plan_files(out)
        check_plan_folder(out)  # before an export is read that a folder no check can go into would waste
        _refuse_combinations(exports or [], case, dose, grid, measure_on)
        if exports:
            outcome = check_export(
                protocol, exports[0], out, dose_file=dose, grid_mm=grid, outside_zero=outside_zero,
                per_fraction=per_fraction, pdf=pdf, progress=printer, prior_dose=prior_dose,
            )
        else:
            outcome = check_dose(
                protocol, case, dose, out, outside_zero=outside_zero, per_fraction=per_fraction, pdf=pdf,
                progress=printer, prior_dose=prior_dose, measure_on=(measure_on or MeasureOnOption.ct).value,
            )
    except SpeccError as error:
        printer.stop()
        fail_unwritten(out, error, earlier)
    except KeyboardInterrupt:
        printer.stop()
        stop_interrupted(out, "check", earlier)
    code = outcome.exit_code(strict)
    read = [path for path in (dose, *(exports or [])) if path is not None]  # a dose checked in OUT is no leftover
    raise typer.Exit(said_after_the_run(
        lambda: (_print_check(outcome, quiet, strict), note_beside(out, earlier, outcome.paths, read)), code, "check"))


def _print_check(outcome: CheckOutcome, quiet: bool, strict: bool) -> None:
    """The notes, goals and files of a check."""
    record = outcome.record
    if not quiet:
        for note in outcome.notes:  # the record's and the prior dose's
            console.print(Text("note: ", style="yellow") + Text(note))
        own = any(goal.course == "this" for goal in record.goals)
        title = "Clinical goals (external dose" + (
            " on the composite with the prior course" + (", but goals marked this course)" if own else ")")
            if record.prior_dose else ")"
        )
        table = Table("structure", "goal", "value", "status", title=title)
        for goal in record.goals:
            table.add_row(goal.structure, goal_text(goal), goal_value(goal), status_text(goal.status))
        console.print(table)
        print_not_evaluated(record)
        if record.robustness is not None:
            print_robustness(record)
    source = record.dose_source
    assert source is not None
    print_summary(f"checked {source.file} (sha256 {source.sha256[:12]})", record, outcome.paths, strict,
                  outcome.outside_hot_spot)


def _refuse_combinations(
    exports: list[Path], case: Path | None, dose: Path | None, grid: float | None, measure_on: MeasureOnOption | None
) -> None:
    """Options of one check that do not go together, raised as a `SpeccError`: once OUT is named, a wrong
    option is a check not produced, and the earlier one in OUT is removed as for any other error."""
    from specc.case.importers.matrad_dose import is_matrad_workspace

    matrad = dose is not None and is_matrad_workspace(dose)
    if exports and matrad:
        raise SpeccError(
            "a matRad workspace holds its own CT and structures: check it with --dose WORKSPACE.mat alone (no folder)"
        )
    if bool(exports) == (case is not None or matrad):
        raise SpeccError("give a plan export folder, --case CASE.h5 with --dose RD.dcm, or --dose WORKSPACE.mat (matRad)")
    if len(exports) > 1:
        raise SpeccError(
            f"{len(exports)} export folders: add --cohort to check each into OUT/<patient id>/ with OUT/cohort.csv"
        )
    if case is not None and dose is None:
        raise SpeccError("--case needs --dose RD.dcm: the RT Dose to check on the case")
    if matrad and grid is not None:
        raise SpeccError(
            "--grid applies to a plan export folder; a matRad workspace is measured on its CT grid, as matRad does"
        )
    if case is not None and grid is not None:
        raise SpeccError("--grid applies to a plan export folder; a case file has its own grid")
    if measure_on is not None and not matrad:
        raise SpeccError(
            "--measure-on applies to a matRad workspace (--dose WORKSPACE.mat); an RT Dose is measured on the case's "
            "grid (--case) or the export's"
        )
    if measure_on is MeasureOnOption.case and case is None:
        raise SpeccError("--measure-on case measures matRad's dose on a case's grid with its masks: give --case CASE.h5")


def _check_cohort(
    protocol: Path, exports: list[Path], out: Path, grid: float | None, outside_zero: bool, per_fraction: bool,
    pdf: bool, strict: bool, quiet: bool,
) -> None:
    printer = StagePrinter(quiet=True)
    found = None  # the cohort files OUT held as the run began (`stop_cohort`)
    try:
        with imports_uninterrupted():
            from specc.check import check_cohort
            from specc.pipeline import cohort_files
        found = cohort_files(out)
        outcome = check_cohort(
            protocol, exports, out, grid_mm=grid, outside_zero=outside_zero, per_fraction=per_fraction, pdf=pdf,
            progress=printer, case_progress=cohort_progress(printer, quiet, "export"), strict=strict,
        )
    except SpeccError as error:
        fail(error)
    except KeyboardInterrupt as stopped:
        stop_cohort(stopped, "export", "check", out, found)
    checked = sum(1 for entry in outcome.entries if entry.outcome is not None)
    finish_cohort(outcome, f"{checked} of {len(outcome.entries)} exports checked", strict)
