"""`specc compare`: plans side by side, from the plan.json files `specc plan` wrote."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from specc.cli.app import app, console, error_console, fail, status_text
from specc.errors import SpeccError


@app.command("compare")
def compare_command(
    plans: list[Path] = typer.Argument(..., help="Two or more plans: folders written by `specc plan`, or their plan.json."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write compare.html (and compare.pdf) into."),
    label: list[str] = typer.Option([], "--label", help="A name per plan, in order (default: each plan's folder name)."),
    pdf: bool = typer.Option(False, "--pdf", help="Also write compare.pdf (WeasyPrint)."),
) -> None:
    """Compare plans goal by goal (and their worst setup-error scenarios), with their DVHs overlaid."""
    from specc.report.compare import goal_rows, read_plans, warnings, write_comparison

    try:
        compared = read_plans(plans, label)
        paths = write_comparison(out, compared, pdf=pdf)
    except SpeccError as error:
        fail(error)
    for warning in warnings(compared):
        error_console.print(Text("warning: ", style="bold yellow") + Text(warning), soft_wrap=True)
    table = Table("structure", "goal", *(plan.label for plan in compared), title="Clinical goals")
    for row in goal_rows(compared):
        goal = row.text + (" (worst setup error)" if row.scope == "worst" else "")
        cells: list[str | Text] = [row.structure, goal]
        for measured in row.measured:
            if measured is None:
                cells.append(Text("not a goal", style="dim"))
            else:
                value = "-" if measured.value is None else f"{measured.value:.2f} {row.unit}"
                cells.append(Text(value + " ") + status_text(measured.status))
        table.add_row(*cells)
    console.print(table)
    console.print(f"wrote {', '.join(str(path) for path in paths)}", markup=False)
