"""`specc phantom`: build a TG-119 phantom case file, or list the phantoms."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from specc.cli.app import app, console, fail
from specc.errors import SpeccError


@app.command()
def phantom(
    name: str | None = typer.Argument(None, help="Phantom to build (see --list)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Case file to write (HDF5)."),
    beams: int = typer.Option(9, "--beams", help="Number of equispaced coplanar beams from gantry 0."),
    grid: float = typer.Option(5.0, "--grid", help="Dose grid spacing in mm."),
    beamlet: float = typer.Option(5.0, "--beamlet", help="Beamlet size in mm at the isocentre plane."),
    list_phantoms: bool = typer.Option(False, "--list", help="List the built-in phantoms and exit."),
) -> None:
    """Build a built-in TG-119 phantom case (geometry + pencil-beam influence matrix)."""
    from specc.case.phantoms import PHANTOMS, build_phantom, phantom_spec

    if list_phantoms:
        table = Table("phantom", "structures", "description")
        for phantom_name, description in PHANTOMS.items():
            spec = phantom_spec(phantom_name)
            table.add_row(phantom_name, ", ".join([*spec.regions, "Body"]), description)
        console.print(table)
        return
    if name is None:
        fail("give a phantom name (see `specc phantom --list`)")
    if out is None:
        fail("give the case file to write with --out CASE.h5")

    try:
        with Progress(
            TextColumn("{task.description}", style="bold", markup=False),  # the phantom name as typed
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"{name}: dose per beam", total=beams)
            case = build_phantom(
                name,
                beams=beams,
                grid_mm=grid,
                beamlet_mm=beamlet,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        case.save(out)
    except SpeccError as error:
        fail(error)

    influence = case.influence
    console.print(
        f"wrote {out}: {name}, grid {case.grid.shape} at {grid:g} mm, {len(case.beams)} beams, "
        f"{influence.shape[1]} beamlets, {influence.shape[0]} voxel rows, {influence.nnz} nonzeros"
    )
