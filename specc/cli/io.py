"""`specc import` and `specc export`: cases in from matRad, PortPy and DICOM (and protocols from PortPy criteria and
matRad objectives); plans out as RT Dose, RT Plan and DVH tables."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from specc.cli.app import app, console, error_console, fail, imports_uninterrupted
from specc.errors import SpeccError

if TYPE_CHECKING:
    from specc.case.importers import ImportedCase
    from specc.export.result_file import PlanResult
    from specc.export.staging import StagedExport
    from specc.protocol.units import Dose

IMPORT_FORMATS = ("matrad", "portpy", "dicom", "portpy-criteria", "matrad-objectives")
# Formats whose output is a protocol, not a case.
_PROTOCOL_FORMATS = ("portpy-criteria", "matrad-objectives")
EXPORT_FORMATS = ("rtdose", "rtplan", "dicom", "dvh")
# Options that only make sense when specc computes the influence matrix itself.
_ENGINE_OPTIONS = ("--beams", "--beamlet", "--grid", "--target")


@app.command("import")
def import_command(
    format: str = typer.Argument(..., help=f"Source format: {', '.join(IMPORT_FORMATS)}."),
    source: Path = typer.Argument(..., help="A .mat file (matrad, matrad-objectives), a patient folder (portpy, dicom) or a criteria JSON."),
    out: Path = typer.Option(..., "--out", "-o", help="Case file to write (HDF5), or protocol YAML for portpy-criteria and matrad-objectives."),
    beams: str | None = typer.Option(None, "--beams", help="dicom, matrad without dij: a number of equispaced beams ('7'), or gantry angles in deg, 0 to <360: '0,72,144' or with the unit, which one angle needs: '90 deg' (on each too: '0 deg, 72 deg'; default 7; matrad: pln's angles when it has them)."),
    beamlet: float | None = typer.Option(None, "--beamlet", help="dicom, matrad without dij: beamlet size in mm (default 5)."),
    grid: str | None = typer.Option(None, "--grid", help="dicom, matrad without dij: dose grid spacing in mm, 'S' (z on the CT slices) or 'SX,SY,SZ' (default 3)."),
    target: list[str] = typer.Option([], "--target", help="dicom, matrad without dij: structure the beams cover (default: typed PTV/CTV/GTV, matrad: TARGET); portpy-criteria: prescribed target (default PTV, PortPy's default); matrad-objectives: NAME or NAME=DOSE ('PTV=60 Gy'), a target to prescribe (default: every TARGET, at the dose of its objectives)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Structure to leave out on purpose (repeatable)."),
    hu_table: Path | None = typer.Option(None, "--hu-table", help="dicom, portpy, matrad without ct.cube: CSV of HU, relative electron density."),
    case_id: str | None = typer.Option(None, "--case-id", help="Case id (default: from the source)."),
    fractions: int | None = typer.Option(None, "--fractions", help="matrad-objectives: number of fractions, for a workspace whose pln states none (a different number than pln.numOfFractions is refused)."),
) -> None:
    """Import a case (or PortPy criteria or a matRad workspace's objectives as a protocol) and report what was read."""
    if format not in IMPORT_FORMATS:
        fail(f"unknown import format '{format}'; choose one of {', '.join(IMPORT_FORMATS)}")
    if fractions is not None and format != "matrad-objectives":
        fail("--fractions is for matrad-objectives only (a case's fractions are the protocol's)")
    given = {"--beams": beams, "--beamlet": beamlet, "--grid": grid, "--target": target or None}
    misplaced = [name for name in _ENGINE_OPTIONS if given[name] is not None and format not in ("dicom", "matrad")]
    if format in _PROTOCOL_FORMATS:
        misplaced = [name for name in misplaced if name != "--target"]
    if misplaced:
        fail(
            f"{', '.join(misplaced)} only apply to dicom import and to matrad workspaces without a dij "
            "(other sources bring their own influence matrix)"
        )
    try:
        if format == "portpy-criteria":
            _import_criteria(source, out, target[0] if target else "PTV", len(target))
            return
        if format == "matrad-objectives":
            _import_objectives(source, out, target, exclude, fractions)
            return
        table = None
        if hu_table is not None:
            from specc.case.importers.hu_density import read_hu_table

            table = read_hu_table(hu_table)
        imported = _import_case(format, source, beams, beamlet, grid, target, exclude, table, case_id)
        imported.case.save(out)
    except SpeccError as error:
        fail(error)
    for line in imported.summary_lines():
        console.print(line, markup=False, highlight=False)
    console.print(f"wrote {out}", markup=False)


def _import_case(
    format: str,
    source: Path,
    beams: str | None,
    beamlet: float | None,
    grid: str | None,
    target: list[str],
    exclude: list[str],
    table: tuple[tuple[float, float], ...] | None,
    case_id: str | None,
) -> ImportedCase:
    from specc.case.importers import import_dicom, import_matrad, import_portpy
    from specc.case.importers.hu_density import DEFAULT_HU_TABLE

    # The engine's options the user gave; each importer's own defaults stand for the others.
    given = {
        "beams": _beams(beams) if beams is not None else None,
        "beamlet_mm": beamlet,
        "grid_mm": _grid(grid) if grid is not None else None,
        "targets": target or None,
        "hu_table": table,
    }
    engine = {key: value for key, value in given.items() if value is not None}
    if format == "matrad":
        return import_matrad(source, exclude=exclude, case_id=case_id, engine=engine)
    if format == "portpy":
        return import_portpy(source, exclude=exclude, hu_table=table or DEFAULT_HU_TABLE, case_id=case_id)
    return import_dicom(source, exclude=exclude, case_id=case_id, **engine)


def _import_criteria(source: Path, out: Path, target: str, targets_given: int) -> None:
    from specc.case.importers.portpy_criteria import convert_portpy_criteria

    if targets_given > 1:
        fail("portpy-criteria takes one --target (the structure the prescription is for)")
    converted = convert_portpy_criteria(source, target=target)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(converted.yaml_text)
    console.print(f"wrote {out}: {converted.goals} goals, prescription to {target}", markup=False)
    for note in converted.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    for item in converted.untranslated:
        console.print(f"not translated: {item}", markup=False, highlight=False)


def _import_objectives(source: Path, out: Path, target: list[str], exclude: list[str], fractions: int | None) -> None:
    from specc.case.importers.matrad_objectives import convert_matrad_objectives

    translated = convert_matrad_objectives(
        source, fractions=fractions, targets=_prescribed(target) if target else None, exclude=exclude, out=out
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(translated.yaml_text)
    levels = ", ".join(f"{name} {dose}" for name, dose in translated.levels.items())
    console.print(
        f"wrote {out}: {translated.terms} terms, {translated.goals} goals, prescription {levels} in "
        f"{translated.fractions} fractions",
        markup=False,
        highlight=False,
    )
    for item in translated.untranslated:
        console.print(f"not translated: {item}", markup=False, highlight=False)


def _prescribed(target: list[str]) -> dict[str, Dose | None]:
    """--target NAME or NAME=DOSE, each a target to prescribe, with its dose when given."""
    from specc.protocol.units import Dose

    targets: dict[str, Dose | None] = {}
    for text in target:
        name, _, dose = text.rpartition("=") if "=" in text else (text, "", "")
        try:
            targets[name.strip()] = Dose.parse(dose) if dose else None
        except ValueError as error:
            fail(f"--target {text}: {error}")
    return targets


def _beams(text: str) -> int | list[float]:
    """--beams: a whole number is a count of beams; gantry angles are a comma list or carry 'deg' ('90 deg').

    Each angle may carry its unit ('0 deg, 72 deg'), as an angle is written; one that is not a
    finite number is refused here, naming it, rather than reaching the engine as nan.
    """
    stripped = text.strip()
    example = stripped if re.fullmatch(r"[0-9.]+", stripped) else "90"
    how = f"one beam at a gantry angle is --beams '{example} deg', several '0,72,144' or '0 deg, 72 deg'"
    parts = [part.strip() for part in stripped.split(",")]
    numbers = [part.removesuffix("deg").removesuffix("°").strip() for part in parts]
    if len(parts) == 1 and numbers[0] == parts[0]:
        try:
            count = int(stripped)
        except ValueError:
            fail(f"--beams: expected a number of beams (a whole number) or gantry angles, got '{text}'; {how}")
        if count < 1:
            fail(f"--beams {text}: the number of beams must be at least 1; {how}")
        return count
    values = []
    for part, number in zip(parts, numbers):
        if not part:
            continue  # '90,': the trailing comma of one angle
        quoted = f"'{part}'" if part == stripped else f"'{part}' in '{text}'"
        try:
            value = float(number)
        except ValueError:
            fail(f"--beams: {quoted} is not a gantry angle (degrees, e.g. '72' or '72 deg'); {how}")
        if not math.isfinite(value):
            fail(f"--beams: {quoted} is not a gantry angle: angles are finite numbers of degrees, 0 to less than 360")
        values.append(value)
    if not values:
        fail(f"--beams: no gantry angle in '{text}'; {how}")
    return values


def _grid(text: str) -> float | tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        fail(f"--grid: expected a spacing in mm or 'SX,SY,SZ', got '{text}'")
    if len(values) not in (1, 3):
        fail(f"--grid: give one spacing or three (x, y, z), got '{text}'")
    return values[0] if len(values) == 1 else values


@app.command("export")
def export_command(
    format: str = typer.Argument(..., help=f"Output format: {', '.join(EXPORT_FORMATS)}."),
    result: Path = typer.Argument(
        ..., help="result.h5 written by specc plan (or its folder); for dvh also a plan folder or its plan.json (e.g. of specc check)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="rtdose, rtplan: the .dcm file to write; dicom: the folder for the study; dvh: the folder for the tables."),
    case: Path | None = typer.Option(None, "--case", help="The case file, when it moved since planning."),
    machine: str = typer.Option(
        "", "--machine",
        help="rtplan, dicom: the Treatment Machine Name to write (default: empty, for the planning system to set); "
             "rtdose: the one given to `export rtplan`, so that the RT Dose references that RT Plan.",
    ),
) -> None:
    """Export a planned dose as DICOM RT Dose, its MLC segments as DICOM RT Plan, the whole plan as a DICOM study
    (CT, RT Structure Set, RT Plan, RT Dose), or its DVHs and goal results as CSV and JSON.

    Whole or nothing: the files appear at OUT only once all are written; an error or Ctrl-C leaves none."""
    if format not in EXPORT_FORMATS:
        fail(f"unknown export format '{format}'; choose one of {', '.join(EXPORT_FORMATS)}")
    if machine and format == "dvh":
        fail("--machine is for rtdose, rtplan and dicom only")
    staged: list[StagedExport] = []  # the export, once staged: whether it is in place decides what Ctrl-C means
    try:  # from the first import on: Ctrl-C anywhere before the move says that nothing was exported
        # Its first imports (matplotlib through specc.report, pydicom: a second or more), a Ctrl-C during them
        # held until they are done, as `specc plan` holds its own: one stopped half-way left matplotlib
        # half-initialized, and the clean-up's import of the staging module then ended in a traceback.
        with imports_uninterrupted():
            from specc.export.dicom_identity import check_text_value
            from specc.report.identity import PLAN_JSON, RESULT_H5
        if machine:  # refused before anything is written; the limits are those every DICOM object is checked against
            problem = check_text_value("SH", machine)
            if problem is not None:
                fail(f"--machine {machine!r} {problem}: it is written as the RT Plan's TreatmentMachineName")
        if result.is_dir() and (result / RESULT_H5).exists() and format != "dvh":
            result = result / RESULT_H5
        record_file = result / PLAN_JSON if result.is_dir() else result if result.suffix == ".json" else None
        if record_file is not None and format != "dvh":
            fail(f"{result}: {format} needs the result.h5 of specc plan (a checked dose is already its own RT Dose)")
        if record_file is not None:
            _export_record_tables(record_file, out, staged)
        else:
            _export_result(format, result, out, case, machine, staged)
    except SpeccError as error:
        fail(error)
    except KeyboardInterrupt as interrupt:
        if staged and staged[0].committed:  # once the hold was released: the files are all in place
            _say_complete()
            return
        failed = None
        if staged:  # a move can fail only once the export is staged, its module imported whole: a cached import
            from specc.export.staging import ExportError

            failed = interrupt.__cause__ if isinstance(interrupt.__cause__, ExportError) else None
        said = f"interrupted during a move that failed: {failed}" if failed else "interrupted: nothing exported"
        error_console.print(Text(said, style="red"), soft_wrap=True)
        raise typer.Exit(130) from None


# What the terminal says after an export: lines, each printed once the files are in place.
_Said = list[Text]


def _export_result(
    format: str, result: Path, out: Path, case: Path | None, machine: str, staged: list[StagedExport]
) -> None:
    from specc.export import read_result
    from specc.export.staging import StagedExport
    from specc.report.identity import SEGMENTS_JSON

    plan_result = read_result(result)  # a damaged plan record inside is refused when an exporter reads it
    segments_path = plan_result.path.parent / SEGMENTS_JSON
    if format == "rtdose" and machine and not segments_path.exists():
        fail(f"--machine names the machine of the RT Plan the RT Dose references, and {result} has no "
             f"{SEGMENTS_JSON} beside it: an optimized fluence has no RT Plan")
    hint = {"rtdose": "RD.dcm", "rtplan": "RP.dcm"}.get(format, "")
    with StagedExport(out, folder=format in ("dicom", "dvh"), file_hint=hint) as export:
        staged.append(export)
        if format == "rtdose":
            written, said = _export_rtdose(plan_result, segments_path, case, export.path, machine)
        elif format == "rtplan":
            written, said = _export_rtplan(plan_result, segments_path, case, export.path, machine)
        elif format == "dicom":
            written, said = _export_study(plan_result, segments_path, case, export.path, machine)
        else:
            from specc.export.dvh_tables import write_dvh_tables

            loaded = plan_result.load_case(case) if plan_result.record_json is None else None
            written = write_dvh_tables(plan_result, export.path, loaded)
            said = _convergence(plan_result.converged, _why_not_converged(plan_result), _TABLES_SAYS)
        export.commit()
        _say_written(export, written, said)


def _export_rtdose(plan_result, segments_path: Path, case: Path | None, path: Path, machine: str
                   ) -> tuple[list[Path], _Said]:
    from specc.export.dicom_identity import DicomIdentity
    from specc.export.rtdose import NO_RT_PLAN_NOTE, write_rtdose
    from specc.export.rtplan import rtplan_uid

    plan_uid = None
    if segments_path.exists():  # the RT Dose references the RT Plan of this plan's own segments only
        from specc.export.segments import read_segments

        # with the case, as `export rtplan` checks them: segments whose weights were moved within a beam keep
        # its count and sum, and the RT Plan referenced would not deliver this dose
        plan_result.check_segments(read_segments(segments_path), segments_path, plan_result.load_case(case))
        plan_uid = rtplan_uid(plan_result, segments_path, machine)
    written = [write_rtdose(plan_result, path, plan_uid)]
    said = _convergence(plan_result.converged, _why_not_converged(plan_result), _DOSE_SAYS)
    said.append(Text(
        "RT Dose in the source study's Frame of Reference" if DicomIdentity.of(plan_result).linked
        else "the case did not come from DICOM: the RT Dose has the case's own study and Frame of Reference"
    ))
    if plan_uid is None:
        said.append(Text(NO_RT_PLAN_NOTE))
    else:
        command = "specc export rtplan" + (f" --machine {machine}" if machine else "")
        said.append(Text(
            f"it references the RT Plan {plan_uid}, the one `{command}` writes from {segments_path}"
            + ("" if machine else "; for one exported with --machine, give the same --machine here")
        ))
    return written, said


def _export_rtplan(plan_result, segments_path: Path, case: Path | None, path: Path, machine: str) -> tuple[list[Path], _Said]:
    from specc.export.rtplan import write_rtplan
    from specc.export.segments import read_segments

    segments = read_segments(segments_path)
    exported = write_rtplan(plan_result, segments, segments_path, plan_result.load_case(case), path, machine)
    return [exported.path], _rtplan_said(segments, exported.notes)


def _export_study(plan_result, segments_path: Path, case: Path | None, folder: Path, machine: str) -> tuple[list[Path], _Said]:
    from specc.export.dicom_study import write_dicom_study
    from specc.export.segments import read_segments

    segments = read_segments(segments_path) if segments_path.exists() else None
    study = write_dicom_study(
        plan_result, plan_result.load_case(case), folder, (segments, segments_path) if segments else None, machine
    )
    said = _rtplan_said(segments, study.notes) if segments is not None else [Text(f"note: {note}") for note in study.notes]
    said += _convergence(plan_result.converged, _why_not_converged(plan_result), _DOSE_SAYS)
    return study.paths, said


def _say_written(staged: StagedExport, written: list[Path], said: _Said) -> None:
    """What the export says, then each file where it now is (a study's CT slices in one line). Called
    after `commit`: a Ctrl-C from there on is held (`StagedExport`), the export being complete; one
    after the hold is released is caught by `export_command`, which says the same."""
    for line in said:
        console.print(line, soft_wrap=True)
    final = [staged.final(path) for path in written]
    ct = [path for path in final if path.name.startswith("CT_")] if staged.folder else []
    if ct:
        console.print(f"wrote {len(ct)} CT slices {ct[0].name} .. {ct[-1].name} in {staged.out}", markup=False)
    for path in final:
        if path not in ct:
            console.print(f"wrote {path}", markup=False)
    if staged.interrupt_held:
        _say_complete()


def _rtplan_said(segments, notes: list[str]) -> _Said:
    said = []
    if not segments.converged:
        said.append(
            Text("NOT CONVERGED", style="bold red")
            + Text(f": the plan's solver ended '{segments.solver_status}'; the RT Plan's label, name and description say so")
        )
    said += [Text(f"note: {note}") for note in notes]
    said.append(Text(
        "RT Plan approval status UNAPPROVED; meterset weights are beamlet weights, not monitor units: "
        "the planning system computes the dose and sets them"
    ))
    return said


def _export_record_tables(record_file: Path, out: Path, staged: list[StagedExport]) -> None:
    from specc.export.dvh_tables import write_record_tables
    from specc.export.staging import StagedExport
    from specc.report.compare import read_record

    record = read_record(record_file)
    with StagedExport(out, folder=True) as export:
        staged.append(export)
        written = write_record_tables(record, export.path)
        export.commit()
        _say_written(export, written, _convergence(record.converged, record.why_not_converged(), _TABLES_SAYS))


def _say_complete() -> None:
    """A Ctrl-C once the files were moved into place: exit 0, the files are all there, as said."""
    console.print("Ctrl-C came once the files were written: the export is complete", markup=False)


_TABLES_SAYS = "dvh.csv (plan_status column) and dvh.json (converged, solver_status) say so"
_DOSE_SAYS = "the RT Dose's SeriesDescription, DoseComment and ImageComments say so"


def _why_not_converged(result: PlanResult) -> str:
    """The record's `PlanRecord.why_not_converged`, or in its words (`PlanRecord.solver_ended`) result.h5's root
    status where the file holds no record."""
    from specc.evaluate import PlanRecord

    if result.record is not None:
        return result.record.why_not_converged()
    return PlanRecord.solver_ended(result.solver_status)


def _convergence(converged: bool | None, why: str, where: str) -> _Said:
    """A plan that did not converge, or whose result.h5 cannot say whether it did, is said so loudly; `why`: the
    record's `why_not_converged` (a result.h5's: `_why_not_converged`)."""
    if converged is None:
        return [
            Text("CONVERGENCE UNKNOWN", style="bold red")
            + Text(f": the result holds no plan record and no solver status, so whether its solver converged "
                   f"is not known; check the plan before use: {where}")
        ]
    if not converged:
        return [
            Text("NOT CONVERGED", style="bold red")
            + Text(f": {why}; not a usable plan: {where}")
        ]
    return []
