"""`specc plan` and `specc compile`: argument parsing and printing around `specc.plan`."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.cells import cell_len
from rich.status import Status
from rich.table import Table
from rich.text import Text

from specc.cli.app import app, console, error_console, fail, imports_uninterrupted, status_text
from specc.errors import SpeccError

if TYPE_CHECKING:
    from specc.case import Case
    from specc.evaluate import GoalRecord, PlanRecord, RobustnessRecord
    from specc.evaluate.indices import OutsideHotSpot
    from specc.pipeline import CaseProgress, CohortEntry, CohortOutcome, PlanOutcome, PlanSession
    from specc.protocol import Protocol



def goal_value(goal: GoalRecord, value: float | None = None) -> str:
    """The goal's measured value (or `value`, another plan's or scenario's of the same goal)."""
    value = goal.value if value is None else value
    return "-" if value is None else f"{goal.shown(value)} {goal.unit}"


def goal_text(goal: GoalRecord) -> Text:
    """The goal as written and, for a limit written in % of the prescription, its dose: "D2% <= 107% (70.62 Gy)"."""
    from specc.report.limits import resolved_limits

    limits = resolved_limits(goal)
    return Text(goal.text) + Text(f" ({limits})" if limits else "", style="dim")


def _how_robust(robustness: RobustnessRecord) -> str:
    if not robustness.optimized:
        return "checked only"
    return "optimized robustly" + (", worst case" if robustness.objective == "worst_case" else "")


def print_robustness(record: PlanRecord) -> None:
    from specc.protocol.models import offset_text

    robustness = record.robustness
    assert robustness is not None, "a robustness table needs the plan's robustness check"
    setup = "/".join(f"{size:g}" for size in robustness.setup_error_mm)
    setup += " mm"
    if robustness.rotation_error_deg is not None:
        setup += ", rotation " + "/".join(f"{angle:g}" for angle in robustness.rotation_error_deg) + " deg"
    if robustness.random_error_mm is not None:
        setup += ", random " + "/".join(f"{size:g}" for size in robustness.random_error_mm) + " mm SD"
    table = Table("structure", "goal", "nominal", "worst", "in", "status",
                  title=f"Setup error {setup} ({len(robustness.scenarios_mm)} scenarios, worst shown; "
                  f"{_how_robust(robustness)})")
    labels = robustness.scenario_labels or [offset_text(offset) for offset in robustness.scenarios_mm]
    for goal in robustness.goals:
        same = record.goal_named(goal.structure, goal.text)
        nominal = goal_value(same, goal.nominal) if goal.nominal is not None else "-"
        worst = goal_value(same, goal.worst) if goal.worst is not None else "-"
        # every position showing the worst value (the nominal one too): a tie has no single worst
        where = ", ".join(label for label, value in zip(["nominal", *labels], [goal.nominal, *goal.scenario_values])
                          if value is not None and goal.worst is not None and goal_value(same, value) == worst)
        table.add_row(goal.structure, goal_text(same), nominal, worst, where or "-", status_text(goal.status))
    console.print(table)
    console.print("(the patient shifted in LPS: +x left, +y posterior, +z superior)", style="dim")
    for note in robustness.notes:
        console.print(f"note: {note}", markup=False)


class StagePrinter:
    """Rich progress for the pipeline: a spinner while a stage runs, a line when it ends.

    A stage that reports steps while it runs (a solve by priorities, `StageProgress`) keeps its one
    spinner, whose text names the step, and each step's end is a line of its own: a goals-only solve
    of minutes said nothing between "done compile" and "done solve" (audit a1 F11). Rich shows one
    live display at a time: the spinner is updated, never a second one started."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._status: Status | None = None
        self._stage: str | None = None  # the stage whose spinner runs

    def __call__(self, stage: str, seconds: float | None) -> None:
        if self.quiet:
            return
        if self._status is not None and self._stage is not None and stage != self._stage:
            self._step(self._status, self._stage, stage, seconds)
            return
        self.stop()
        if seconds is None:
            self._stage = stage
            self._status = console.status(Text(f"{stage} ..."))  # a spinner reads a str as markup
            self._status.start()
            return
        console.print(Text.assemble(("  done ", "green"), (f"{stage:<14}", "bold"), f"{seconds:7.2f} s"))

    @staticmethod
    def _step(status: Status, stage: str, step: str, seconds: float | None) -> None:
        """A step of the running `stage`: its spinner names it while it runs; a line when it ends."""
        if seconds is None:
            status.update(Text(f"{stage}: {step} ..."))
            return
        console.print(Text.assemble(("    done ", "green"), step, f"  {seconds:.2f} s"))
        status.update(Text(f"{stage} ..."))

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        self._stage = None

    def phantom_progress(self, name: str) -> Callable[[int, int], None] | None:
        """Per-beam progress while a phantom's influence matrix is computed."""
        if self.quiet:
            return None

        def report(done: int, total: int) -> None:
            if self._status is not None:
                self._status.update(Text(f"phantom {name}: dose of beam {done}/{total} ..."))

        return report


def _load_case(
    case_path: Path | None, phantom: str | None, grid: float | None, beams: int | None, printer: StagePrinter
) -> Case | Path:
    """The case object or path for the library, from --case or --phantom (built in memory)."""
    if (case_path is None) == (phantom is None):
        raise SpeccError("give exactly one of --case CASE.h5 or --phantom NAME")
    if case_path is not None:
        if grid is not None or beams is not None:
            raise SpeccError("--grid and --beams apply to --phantom only (a case file has its own grid and beams)")
        return case_path
    from specc.case.phantoms import build_phantom

    printer(f"phantom {phantom}", None)
    started = time.perf_counter()
    case = build_phantom(
        phantom,
        beams=beams if beams is not None else 9,
        grid_mm=grid if grid is not None else 5.0,
        progress=printer.phantom_progress(phantom),
    )
    printer(f"phantom {phantom}", time.perf_counter() - started)
    return case


_CASE = typer.Option(None, "--case", help="Case file (HDF5) to plan on.")
_PHANTOM = typer.Option(None, "--phantom", help="Plan on a built-in phantom instead (see `specc phantom --list`).")
_GRID = typer.Option(None, "--grid", help="With --phantom: dose grid spacing in mm (default 5).")
_BEAMS = typer.Option(None, "--beams", help="With --phantom: number of equispaced beams (default 9).")


# The solvers `optimization.solver.name` takes (a test holds the two to one list): "..." read as any cvxpy solver,
# which specc refuses since the protocol's limits reach only these (fx-lim's note).
SOLVER_HELP = ("Solver to use: SPECC-LBFGS (the default fast path), CLARABEL, OSQP, SCS or HIGHS; overrides "
               "optimization.solver.name.")


@app.command()
def plan(
    protocol: Path = typer.Argument(..., help="Protocol file (YAML)."),
    cases: list[Path] | None = typer.Option(None, "--case", help="Case file (HDF5) to plan on."),
    phantom: str | None = _PHANTOM,
    out: Path = typer.Option(..., "--out", "-o", help="Folder for report.html, plan.json and result.h5."),
    solver: str | None = typer.Option(None, "--solver", help=SOLVER_HELP),
    pdf: bool = typer.Option(False, "--pdf", help="Also write report.pdf (needs WeasyPrint)."),
    strict: bool = typer.Option(
        False, "--strict", help="Exit 2 when the plan did not converge, or a priority-1 goal fails or reads NOT "
        "EVALUATED (except on an organ marked if_contoured that the case does not contour)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors and the final line."),
    grid: float | None = _GRID,
    beams: int | None = _BEAMS,
    watch: bool = typer.Option(
        False, "--watch", help="After the plan, plan again whenever the protocol file (or a template it extends) "
        "is saved; a changed weight or level re-solves warm, without recompiling. Stop with Ctrl-C."
    ),
    prior_dose: list[Path] = typer.Option(
        [], "--prior-dose", help="A prior course's dose (result.h5 or RT Dose; repeatable, summed), for a protocol "
        "with `prescription.prior`: goals are judged on the composite (docs/composite.md)."
    ),
) -> None:
    """Plan a case with a protocol: compile, solve, evaluate on the full grid, write the report.

    Exit code 0 when the solve gave a plan (goal failures are in the report; a plan that did not converge is
    written and labelled NOT CONVERGED), 1 when it did not (nothing is written, and an earlier plan in OUT is
    removed, so that it is not taken for this run's), 2 with --strict when the plan did not converge, or a
    priority-1 goal fails or reads NOT EVALUATED, except on an organ marked if_contoured that the case does not
    contour (with --watch: the last plan's).
    """
    printer = StagePrinter(quiet)
    earlier: list[Path] = []  # the plan OUT held as the run began; none known before it looked (`stop_interrupted`)
    # From here on Ctrl-C removes the earlier plan in OUT and says so: also in the seconds of the imports, which
    # stopped the run without a word, leaving the earlier plan (audit s20/t2 F1).
    try:
        with imports_uninterrupted():
            from specc.case import Case
            from specc.composite import with_prior_dose
            from specc.pipeline import PlanSession, check_plan_folder, plan_files
            from specc.protocol import load_protocol
        earlier = plan_files(out)
        if cases and len(cases) > 1:
            raise SpeccError(
                "`specc plan` plans one case; for several, run `specc cohort PROTOCOL CASE.h5 CASE.h5 ... --out DIR`"
            )
        check_plan_folder(out)  # before a load and a solve that a folder no plan can go into would waste
        # The protocol first: a typo in it should not wait for a phantom's dose engine.
        loaded = load_protocol(protocol)
        _check_prior(loaded, prior_dose)
        seen = _snapshot(_files_of(loaded, protocol))  # what is planned: a save from now on is a change
        case_or_path = _load_case(cases[0] if cases else None, phantom, grid, beams, printer)
        case_path = None if isinstance(case_or_path, Case) else case_or_path
        case = case_or_path if isinstance(case_or_path, Case) else _read_case(case_or_path, printer)
        case = with_prior_dose(case, prior_dose)
        session = PlanSession(case, out, case_path, solver=solver, pdf=pdf, progress=printer)
        outcome = session.plan(loaded)
    except SpeccError as error:
        printer.stop()
        fail_unwritten(out, error, earlier)
    except KeyboardInterrupt:
        printer.stop()
        stop_interrupted(out, "plan", earlier)
    except Exception:  # a bug: its traceback shows, and the earlier plan is not this run's either
        printer.stop()
        _say_discarded(out)
        raise
    code = said_after_the_run(lambda: (_print_outcome(outcome, quiet, strict), note_beside(out, earlier, outcome.paths)),
                              outcome.exit_code(strict), "plan")
    if not watch:
        raise typer.Exit(code)

    files = _files_of(loaded, protocol)
    console.print(f"watching {', '.join(map(str, files))}: save to plan again; Ctrl-C to stop")
    held = session.last_plan  # the plan in OUT: what a save that gives none keeps, and the next one is compared with
    try:
        for _ in _changes(lambda: files, seen):
            started = time.perf_counter()
            held = session.last_plan
            try:
                loaded = load_protocol(protocol)
                outcome = session.plan(loaded)
            except SpeccError as error:  # a half-edited file: say where, keep the last plan, keep watching
                printer.stop()
                error_console.print(Text("error: ", style="red") + Text(str(error)), soft_wrap=True)
                code = _no_plan_for_save(session, out, "see the error above", code)
                continue
            files = _files_of(loaded, protocol)
            planned = _print_outcome(outcome, quiet, strict, before=held.record if held is not None else None)
            if outcome.succeeded:
                code = planned
                console.print(f"planned again in {time.perf_counter() - started:.2f} s; watching")
            else:
                code = _no_plan_for_save(session, out, outcome.solve.status, code)
    except KeyboardInterrupt:  # Ctrl-C, also in the middle of a plan: stop the spinner, say what OUT holds
        printer.stop()
        if held is not None and session.last_plan is None:  # stopped writing a new plan, which removed the last
            stop_interrupted(out, "plan", held.paths)
        code = _stopped_watch(session, out, code)
    raise typer.Exit(code)


def _stopped_watch(session: PlanSession, out: Path, code: int) -> int:
    """Ctrl-C ends a watch: where the plan OUT holds is not of the protocol files as they are now (the last save
    gave no plan, or was still being planned), a warning names OUT, its plan's time and both protocol SHA-256, for
    that plan carries the name and version of every save and would otherwise pass, silently, for the file on
    disk (audit s18/a4 F2). Returns 1 then, the code of a run that gave no plan, so that a script reading the exit
    code does not take it for one; else `code`, the last plan's."""
    from specc.approval import protocol_sha256_now

    last = session.last_plan
    if last is None or last.record is None:
        return code
    record = last.record
    now = protocol_sha256_now(record)
    if now == record.protocol.sha256:
        return code
    created = datetime.fromisoformat(record.created).astimezone().strftime("%H:%M:%S")
    files = ", ".join(record.protocol.files)
    said_now = f"SHA-256 {now[:12]}" if now is not None else "one of them no longer readable"
    error_console.print(Text("warning: ", style="bold yellow") + Text(
        f"{out} holds the plan of an earlier save (from {created}; protocol SHA-256 {record.protocol.sha256[:12]}), "
        f"not of {files} as saved now ({said_now}): the last save gave no plan, or was still being planned; exit 1"),
        soft_wrap=True)
    return 1


def _no_plan_for_save(session: PlanSession, out: Path, reason: str, code: int) -> int:
    """--watch: a save that gave no plan; one line says what OUT holds now. Returns the exit code of the plan
    there (`code`, the last plan's), 1 when it holds none."""
    last = session.last_plan
    if last is None or last.record is None:
        console.print(f"no plan for this save: {reason}; {out} holds no plan; watching", markup=False)
        return 1
    created = datetime.fromisoformat(last.record.created).astimezone().strftime("%H:%M:%S")
    console.print(f"no plan for this save: {reason}; the last plan (from {created}) stays in {out}; watching",
                  markup=False)
    return code


def fail_unwritten(out: Path, error: SpeccError, earlier: Sequence[Path] = ()) -> NoReturn:
    """An error before the plan was written into `out`: the error, then the earlier plan there removed
    as after a failed solve (`discard_unwritten_plan`) and a line naming its files, and what else `out` still
    holds (`note_beside`; `earlier`: the plan files it held as the run began); exit 1.

    The library removes it itself where the error came while the plan was written (a full disk): its notes
    on the error name the files (`specc.pipeline.staged_plan`), and are printed here."""
    error_console.print(Text("error: ", style="bold red") + Text(str(error)), soft_wrap=True)
    _say_discarded(out, getattr(error, "__notes__", []), error)
    note_beside(out, earlier, [])
    raise typer.Exit(1)


def note_beside(out: Path, earlier: Sequence[Path], written: Sequence[Path], read: Sequence[Path] = ()) -> None:
    """Where this run replaced (or removed) an earlier plan in `out`, a note naming the exports `out` still holds
    (`beside_the_plan`; `read`: what the run read there, e.g. a check's RT Dose): that plan's RT Dose and DVH
    tables stayed beside the new plan, or in its place, without a word, and read as this run's (audit s20/t2 F3).
    Nothing where `out` held no plan, nor where its plan is still there (an approved folder, a file that could not
    be removed: the exports are still that plan's; review s20/r2 F2)."""
    from specc.pipeline import beside_the_plan, plan_files

    if not earlier or (not written and plan_files(out)):
        return
    beside = beside_the_plan(out, written, read)
    if beside:
        now = "beside this run's plan" if written else "though this run wrote no plan"
        error_console.print(Text("note: ", style="yellow") + Text(
            f"{out} still holds {', '.join(beside)} {now}: files exported from the earlier plan there (an RT Dose, "
            "DVH tables) are not of this run; export them again or remove them"), soft_wrap=True)


def _say_discarded(out: Path, said: Sequence[str] = (), error: SpeccError | None = None) -> None:
    """`said` (what the library removed, or could not), then the earlier plan in `out` removed
    (`discard_unwritten_plan`) and a line naming its files; where it cannot be, a warning that the files left
    are an earlier run's (once: not again where `said` has it, nor where the `error` printed above is the refusal
    of the same files: `Discarded.said`)."""
    from specc.pipeline import discard_earlier_plan

    discarded = discard_earlier_plan(out).said(error)
    lines = [*said, *(line for line in discarded if line not in said)]
    for line in lines:
        warning = line.startswith("warning: ")
        text = Text("warning: ", style="yellow") + Text(line.removeprefix("warning: ")) if warning else Text(line)
        error_console.print(text, soft_wrap=True)


def stop_interrupted(out: Path, what: str, earlier: list[Path]) -> NoReturn:
    """Ctrl-C before the `what` ("plan", "check") was written into `out`: the earlier plan there is removed
    as for any plan not produced (`discard_unwritten_plan`), one line says so; exit 130 (128 + SIGINT).

    `earlier`: the plan files `out` held before this run began, which the library may have removed already;
    empty where the run stopped before it looked (its imports): nothing of it was removed then but what is now."""
    from specc.pipeline import discard_earlier_plan

    discarded = discard_earlier_plan(out)
    kept = discarded.kept
    removed = kept is None and (bool(discarded.removed) or bool(earlier) and not any(path.exists() for path in earlier))
    said = f"; the earlier plan in {out} was removed" if removed else ""
    error_console.print(Text(f"interrupted: no {what} written{said}", style="red"), soft_wrap=True)
    if kept is not None:
        error_console.print(Text("warning: ", style="yellow") + Text(str(kept)), soft_wrap=True)
    raise typer.Exit(130)


def stop_cohort(
    stopped: KeyboardInterrupt, noun: str, what: str, out: Path, found: dict[Path, tuple[int, int, int]] | None
) -> NoReturn:
    """Ctrl-C during a cohort run of `noun`s ("case", "export") each giving a `what` ("plan", "check") into `out`:
    the item it stopped, whether an earlier plan was removed from its folder, the items finished; exit 130.

    Stopped before the first item (its imports, the protocol) or after the last (the cohort page), the earlier
    run's cohort.csv and pages in `out` are removed (those still as `found` when the run began: `cohort_files`;
    None: it had not looked yet), as when it stops during an item: left, they read as this run's (audit s20/t2 F1)."""
    from specc.pipeline import CohortInterrupted, remove_earlier_cohort

    if not isinstance(stopped, CohortInterrupted):
        removed, kept = remove_earlier_cohort(out, found)
        names, were = ", ".join(path.name for path in removed), "was" if len(removed) == 1 else "were"
        said = f"; the earlier run's {names} in {out} {were} removed" if removed else ""
        error_console.print(Text(f"interrupted{said}", style="red"), soft_wrap=True)
        for line in kept:
            error_console.print(Text("warning: ", style="yellow") + Text(line), soft_wrap=True)
        raise typer.Exit(130)
    said = f"interrupted: no {what} written for {stopped.item}"
    if stopped.folder is not None and any(path.parent == stopped.folder for path in stopped.removed):
        said += f"; the earlier plan in {stopped.folder} was removed"
    finished = ", ".join(_case_name(entry) for entry in stopped.finished)
    said += f"; {noun}s finished before it: {finished} (in {stopped.summary})" if finished else f"; no {noun} finished"
    error_console.print(Text(said + "; no cohort page written", style="red"), soft_wrap=True)
    for line in stopped.kept:
        error_console.print(Text("warning: ", style="yellow") + Text(line), soft_wrap=True)
    raise typer.Exit(130)


def _check_prior(loaded: Protocol, prior_dose: list[Path]) -> None:
    """Before any case is read: a composite protocol and a prior dose go together."""
    mismatch = loaded.prescription.prior_mismatch(bool(prior_dose))
    if mismatch is not None:
        raise SpeccError(f"{loaded.source.path}: {mismatch}")


def _read_case(path: Path, printer: StagePrinter) -> Case:
    from specc.case import Case

    printer("load case", None)
    started = time.perf_counter()
    case = Case.load(path)
    printer("load case", time.perf_counter() - started)
    return case


# Seconds between looks at the watched files.
_POLL_S = 0.5


def _files_of(loaded: Protocol, path: Path) -> list[Path]:
    """The files a protocol was read from: the file itself and the templates it extends."""
    return [Path(name) for name in loaded.source.files] if loaded.source is not None else [path]


def _snapshot(files: list[Path]) -> list[bytes | None]:
    return [path.read_bytes() if path.exists() else None for path in files]


def _changes(watched: Callable[[], list[Path]], seen: list[bytes | None]) -> Iterator[None]:
    """Yields each time the files `watched()` names hold other bytes than `seen` or the last look (forever).

    `seen`: their bytes when the protocol was read, so that a save while a plan runs is not missed.
    """
    while True:
        time.sleep(_POLL_S)
        now = _snapshot(watched())
        if now != seen:
            seen = now
            yield


def said_after_the_run(say: Callable[[], object], code: int, what: str) -> int:
    """`say` what a run gave, once every file of it is in place (or none was written), and return its `code`.

    A Ctrl-C while that prints comes too late to undo anything: exit 130 would read "interrupted: no plan
    written" beside a complete plan in OUT (audit b2 N3), so the run's own code stands and a line says why."""
    try:
        say()
    except KeyboardInterrupt:
        console.print(f"Ctrl-C came after the {what} had ended: what it wrote stands (exit {code})")
    return code


def _print_outcome(outcome: PlanOutcome, quiet: bool, strict: bool, before: PlanRecord | None = None) -> int:
    """The notes, goals and files of a plan (or why there is none); returns the exit code.

    `before`: the plan this one replaces (--watch), whose goal values are shown beside the new ones.
    """
    for note in outcome.notes:
        if not quiet:
            console.print(Text("note: ", style="yellow") + Text(note))
    if not outcome.succeeded:
        error_console.print(
            Text("error: ", style="bold red") + Text(f"no plan: {outcome.solve.status}: {outcome.solve.message}"),
            soft_wrap=True,
        )
        return outcome.exit_code(strict)

    record = outcome.record
    assert record is not None
    if not quiet:
        earlier = _earlier_goals(before, record) if before is not None else None
        fluence_values = record.delivery.fluence_goal_values if record.delivery is not None else None
        columns = ["structure", "goal", "value", "status"] + (["before"] if earlier is not None else [])
        columns += ["optimized fluence"] if fluence_values is not None else []
        title = "Clinical goals" + (" (delivered segments)" if record.delivery is not None else "")
        if record.prior_dose is not None:
            own = any(goal.course == "this" for goal in record.goals)
            title += " on the composite (prior course + this plan)" + (" but those marked this course" if own else "")
        table = Table(*columns, title=title)
        for index, goal in enumerate(record.goals):
            cells: list[str | Text] = [goal.structure, goal_text(goal), goal_value(goal), status_text(goal.status)]
            if earlier is not None:
                was = earlier.get(index)
                cells.append("(new goal)" if was is None else _before_cell(was, goal))
            if fluence_values is not None:
                fluence_value = fluence_values[index]
                cells.append(goal_value(goal, fluence_value) if fluence_value is not None else "-")
            table.add_row(*cells)
        console.print(table)
        print_not_evaluated(record)
        if record.normalization is not None:
            console.print(record.normalization.describe(), markup=False)
        if record.robustness is not None:
            print_robustness(record)
        if not outcome.solve.converged:
            console.print(Text(f"NOT CONVERGED: {outcome.solve.message}", style="bold magenta"))
    outside = outcome.evaluation.outside_hot_spot if outcome.evaluation is not None else None
    print_summary(f"{outcome.solve.status} ({outcome.solve.solver})", record, outcome.paths, strict, outside)
    return outcome.exit_code(strict)


def print_not_evaluated(record: PlanRecord) -> None:
    """Under the goal table, why each goal reads NOT EVALUATED (its cell says only "-"), as `specc check` does: the
    reason was printed only with --strict, or as a note for an organ not contoured (audit s18/b1 F8). A plan that
    did not converge reads NOT CONVERGED on every goal: its goals that could not be measured are said too."""
    for goal in record.goals:
        if goal.measured_status == "not_evaluated":
            console.print(Text(f"not evaluated: {goal.structure} {goal.text}: {goal.note}"), soft_wrap=True)


def _earlier_goals(before: PlanRecord, record: PlanRecord) -> dict[int, GoalRecord]:
    """--watch: the goals of the plan in OUT by the index of the same goal in the new plan, paired as `specc diff`
    pairs goals (structure, metric, side, dose): a tuned threshold or priority is the goal changed, whose earlier
    value the dosimetrist wants beside the new one; a goal added, or one whose pairing would be a guess, has none."""
    from specc.report.compare import pair_recorded_goals

    index = {id(goal): number for number, goal in enumerate(record.goals)}
    return {index[id(now)]: was for paired in pair_recorded_goals(before.goals, record.goals) for was, now in paired.pairs}


def _before_cell(was: GoalRecord, now: GoalRecord) -> Text:
    """The earlier plan's value and status of a goal and, where the goal changed since, what it was."""
    cell = Text(goal_value(was) + " ") + status_text(was.status)
    if was.text != now.text:
        cell += Text(f" (goal was {was.text})")
    elif (was.threshold, was.variation) != (now.threshold, now.variation):  # a % of a prescription that moved
        variation = f", variation {was.shown(was.variation)} {was.unit}" if was.variation is not None else ""
        cell += Text(f" (limit was {was.shown(was.threshold)} {was.unit}{variation})")
    return cell


def print_summary(
    head: str, record: PlanRecord, paths: list[Path], strict: bool, outside_hot_spot: OutsideHotSpot | None = None
) -> None:
    """The last line of a plan or a check (NOT CONVERGED first for such a plan): goal counts, a hot spot outside
    the targets (`outside_hot_spot`: a goals-only plan can pass every goal with 168% in normal tissue, which a
    signer must not learn from the eleventh note) and files; with --strict, what it stops on: the failed
    must-goals, and each must-goal not evaluated (but where the protocol allows the case to lack its structure)
    with its reason. Before it, even with --quiet, the record's warnings (`PlanRecord.warnings`: what a signer must
    see before the goals, e.g. a prior dose unlike the declared prior course, whose plan adds almost nothing)."""
    for warning in record.warnings:
        error_console.print(Text("warning: ", style="bold red") + Text(warning), soft_wrap=True)
    split = record.not_evaluated_split()
    counts = ", ".join(f"{n} {status}" + (f" ({split})" if status == "not_evaluated" and split else "")
                       for status, n in record.goal_counts().items()) or "no goals"
    if record.robustness is not None:
        counts += "; worst setup-error scenario: " + ", ".join(f"{n} {status}" for status, n in record.robust_counts().items())
    if outside_hot_spot is not None:
        counts += f"; {outside_hot_spot.headline}"
    if not record.converged:  # also under --quiet, where this line is all that is printed
        head = f"NOT CONVERGED: {head}"
    console.print(f"{head}; goals: {counts}; wrote {', '.join(str(path) for path in paths)}")
    if strict:
        for line in strict_stops(record):
            error_console.print(Text(f"--strict: {line}", style="red"), soft_wrap=True)


def strict_stops(record: PlanRecord) -> list[str]:
    """What --strict stops on in `record`, a line each: the failed must-goals together (where one fails only in a
    setup-error scenario, which), then each must-goal not evaluated with its reason; first, a plan that did not
    converge, none of whose goals can be vouched for (its measured values may read pass: audit s20/t2 F2)."""
    lines = []
    if not record.converged:
        lines.append(f"the plan did not converge ({record.why_not_converged()}): none of its goals can be vouched for")
    if failed := record.failed_must_goals():
        lines.append("priority-1 goals failed: " + "; ".join(
            f"{goal.structure} {goal.text} ({_failed_where(record, goal)})" for goal in failed))
    lines += [f"priority-1 goal not evaluated: {goal.structure} {goal.text} ({goal.source}): "
              f"{record.not_evaluated_reason(goal)}" for goal in record.unevaluated_must_goals()]
    return lines


def _failed_where(record: PlanRecord, goal: GoalRecord) -> str:
    scenario = record.scenario_failure(goal)
    return goal.source if scenario is None else f"{goal.source}; {scenario}"


@app.command()
def cohort(
    protocol: Path = typer.Argument(..., help="Protocol file (YAML)."),
    cases: list[Path] = typer.Argument(..., help="Case files (HDF5), e.g. cases/*.h5."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for one folder per case and cohort.csv."),
    solver: str | None = typer.Option(None, "--solver", help=SOLVER_HELP),
    pdf: bool = typer.Option(False, "--pdf", help="Also write each case's report.pdf (needs WeasyPrint)."),
    strict: bool = typer.Option(
        False, "--strict", help="Count a plan that did not converge, or a priority-1 goal failed or NOT EVALUATED "
        "(except on an organ marked if_contoured that the case does not contour) as exit code 2 (the run's and the "
        "case's in cohort.csv)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors and the summary table."),
) -> None:
    """Plan every case with one protocol: OUT/CASE_ID/ per case, OUT/cohort.csv for the cohort.

    A case that fails (cannot be read, compiled or solved) is reported, an earlier plan in its
    folder is removed, and the others are planned. Exit code: the worst case's (1 when any case
    has no plan, else 2 with --strict when a plan did not converge or a priority-1 goal failed or reads NOT
    EVALUATED, except on an organ marked if_contoured that the case does not contour, else 0).
    """
    printer = StagePrinter(quiet)
    found = None  # the cohort files OUT held as the run began (`stop_cohort`)
    try:  # the imports too: a Ctrl-C during them left an earlier run's cohort.csv and page without a word
        with imports_uninterrupted():
            from specc.pipeline import cohort_files, plan_cohort
        found = cohort_files(out)
        outcome = plan_cohort(
            protocol, cases, out, solver=solver, pdf=pdf, progress=printer,
            case_progress=cohort_progress(printer, quiet, "case"), strict=strict,
        )
    except SpeccError as error:
        printer.stop()
        fail(error)
    except KeyboardInterrupt as stopped:
        printer.stop()
        stop_cohort(stopped, "case", "plan", out, found)
    planned = sum(1 for entry in outcome.entries if entry.outcome is not None and entry.outcome.succeeded)
    finish_cohort(outcome, f"{planned} of {len(outcome.entries)} cases planned", strict)


def cohort_progress(printer: StagePrinter, quiet: bool, noun: str) -> CaseProgress:
    """What the terminal shows of each item of a cohort run (cases planned, exports checked): its start,
    its error or failed solve and the earlier plan removed from its folder, a second listing of one case,
    its notes."""
    from specc.pipeline import earlier_plan_removed

    def report(index: int, total: int, item: str, entry: CohortEntry | None) -> None:
        if entry is None:
            if not quiet:
                console.print(Text(f"{noun} {index}/{total}: {item}", style="bold"))
            return
        printer.stop()
        if entry.error is not None:
            # "ITEM: error: ...", as its failed solve's line: a case error that starts with the file already (it could
            # not be read) does not name it twice, nor in another order (audit s20/t2 F7)
            error_console.print(Text(f"  {item}: error: ", style="red") + Text(entry.error.removeprefix(f"{item}: ")),
                                soft_wrap=True)
            if entry.removed:
                error_console.print(Text(f"  {earlier_plan_removed(entry.removed)}"), soft_wrap=True)
            # not the error's own files again: a case stopped by the earlier plan's files it could not remove names
            # them (both held as text here; `Discarded.said` decides on the files where the error is at hand)
            if entry.kept is not None and entry.kept not in entry.error:
                error_console.print(Text("  warning: ", style="yellow") + Text(entry.kept), soft_wrap=True)
        elif entry.outcome is not None and not entry.outcome.succeeded:
            error_console.print(
                Text(f"  {item}: no plan: {entry.outcome.status}: ", style="red") + Text(entry.outcome.message)
            )
        if entry.same_as is not None and entry.record is not None:
            error_console.print(
                Text("  warning: ", style="yellow")
                + Text(f"{item} is the same case as {entry.same_as} (case SHA-256 {entry.record.case.sha256[:12]}): "
                       "counted once in cohort.html"),
                soft_wrap=True,
            )
        if entry.outcome is not None and not quiet:
            for note in entry.outcome.notes:
                console.print(Text("  note: ", style="yellow") + Text(note))
        for warning in entry.record.warnings if entry.record is not None else []:  # as `specc plan` says them, -q too
            error_console.print(Text("  warning: ", style="bold red") + Text(warning), soft_wrap=True)

    return report


def finish_cohort(outcome: CohortOutcome, done: str, strict: bool) -> NoReturn:
    """The cohort's table, plan folders beside it that are not this run's, a NOT CONVERGED line per case whose
    solver did not converge (counted in the last line, as cohort.html's banner names them: audit s18/b1 F4), what
    was done and written, and the run's exit code (a plan that did not converge is planned: 0 without --strict)."""
    from specc.pipeline import beside_the_plan
    from specc.report.cohort_page import plans_not_in_run

    console.print(cohort_table(outcome, console.width))
    listed = {entry.folder.name for entry in outcome.entries if entry.folder is not None and entry.record is not None}
    others = plans_not_in_run(outcome.summary_csv.parent, listed)
    if others:
        console.print(Text("note: ", style="yellow") + Text(
            f"{', '.join(others)} in {outcome.summary_csv.parent}: an earlier run's plans, not part of this run "
            "(not in cohort.csv)"), soft_wrap=True)
    for entry in outcome.entries:  # a case folder is the cohort's: an export in it is of an earlier run's plan
        written = entry.outcome.paths if entry.outcome is not None else []
        beside = beside_the_plan(entry.folder, written) if entry.folder is not None else []
        if beside:  # review s20/r2 F4: a cohort run again left them beside the new plans without a word
            console.print(Text("note: ", style="yellow") + Text(
                f"{_case_name(entry)}: {entry.folder} still holds {', '.join(beside)}: files exported from an earlier "
                "run's plan there are not of this run; export them again or remove them"), soft_wrap=True)
    unconverged = [entry for entry in outcome.entries if entry.record is not None and not entry.record.converged]
    for entry in unconverged:  # also under --quiet: the table's status column alone read "iteration_limit"
        console.print(Text(f"NOT CONVERGED: {_case_name(entry)}: {entry.record.why_not_converged()}: not a usable "
                           "plan; its goals count as NOT CONVERGED", style="bold magenta"), soft_wrap=True)
    if unconverged:
        done += f", {len(unconverged)} NOT CONVERGED"
    for entry in outcome.entries if strict else []:  # what stops --strict, by case (it exited 2 without a word)
        for line in strict_stops(entry.record) if entry.record is not None else []:
            error_console.print(Text(f"--strict: {_case_name(entry)}: {line}", style="red"), soft_wrap=True)
    written = ", ".join(str(path) for path in [outcome.summary_csv, *outcome.pages])
    console.print(f"{done}; wrote {written}")
    raise typer.Exit(outcome.exit_code(strict))


def cohort_table(outcome: CohortOutcome, width: int) -> Table:
    """Cases down, each with its solver status, in `width` columns (the terminal's; 80 in a log file): each
    goal's value and reported status in a column per goal where that fits; else the case's goals counted
    per status and its failed goals by name, each goal's value left to cohort.csv and cohort.html; else,
    where a case name leaves too little room even for those columns, one block per case, its name on its
    own lines and its status, counts and failed goals under it. A caption says what did not fit.

    The case names the patient: it is never cut; a name wider than `width` (a DICOM UID and its folder) is
    folded onto more lines. The other columns fold their text instead of ending it with an ellipsis. A
    table is shown only where every column's longest word fits, the case name counted whole: squeezed into
    too few columns it showed no header, status or value at all (audit c3 F1: 24 goals in 80 columns,
    every column but the case 0-2 characters wide; audit r2 F5: a 90-character case name hid every column
    but the case, itself cut)."""
    from specc.pipeline import goal_columns

    goals = len(outcome.protocol.goals)
    names = [_case_name(entry) for entry in outcome.entries]
    longest = max(map(cell_len, names), default=0)
    unnamed = [""] * len(names)

    def per_goal(shown: list[str]) -> Table:
        return _cohort_table(outcome, shown, goal_columns(outcome.protocol), lambda record: _goal_cells(record, goals))

    def counted(shown: list[str]) -> Table:
        return _cohort_table(outcome, shown, ["goals", "failed goals"], _goal_counts)

    values = "each goal's value: cohort.csv and cohort.html"
    named = f" beside the longest case name, {longest} characters"
    table = per_goal(names)
    if _fits(table, width):
        return table
    beside = named if _fits(per_goal(unnamed), width) else ""
    table = counted(names)
    if _fits(table, width):
        table.caption = f"{values} (a column for each of the {goals} goals does not fit in {width} columns{beside})"
        return table
    beside = named if _fits(counted(unnamed), width) else ""
    blocks = _cohort_blocks(outcome, names)
    blocks.caption = (f"{values} (neither a column for each of the {goals} goals nor the goals counted per case "
                      f"fit in {width} columns{beside})")
    return blocks


def _fits(table: Table, width: int) -> bool:
    """Whether `table` fits in `width` columns with every column's longest word whole."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(sys.maxsize), table).minimum <= width


def _cohort_table(
    outcome: CohortOutcome, names: list[str], columns: list[str],
    cells: Callable[[PlanRecord | None], list[str | Text]],
) -> Table:
    """The cohort's table (`_cohort_title`): case (`names`, one per entry), solver status, then `columns`,
    filled per case by `cells(its record, None without a plan)`."""
    table = _cohort_title(outcome)
    # never cut, and measured so: the width a table needs counts each case name whole
    table.add_column("case", no_wrap=True, min_width=max(map(cell_len, names), default=0))
    for column in ["status", *columns]:
        table.add_column(column, overflow="fold")
    for name, entry in zip(names, outcome.entries):
        table.add_row(name, status_text(entry.status), *cells(entry.record))
    return table


def _cohort_blocks(outcome: CohortOutcome, names: list[str]) -> Table:
    """The cohort as one block per case (`_cohort_title`), for a case name too wide for a table's columns:
    the name, folded where wider than the terminal, then, indented, "status optimal, 23 pass, 1 fail;
    failed: Organ: Mean <= 1 Gy"."""
    from rich.console import Group
    from rich.padding import Padding

    table = _cohort_title(outcome)
    table.show_header, table.show_lines = False, True
    table.add_column("case", overflow="fold")
    for name, entry in zip(names, outcome.entries):
        said = Text("status ") + status_text(entry.status)
        if entry.record is not None:
            counts, failed = _goal_counts(entry.record)
            said += Text(", ") + counts + (Text("; failed: ") + failed if failed != "-" else Text(""))
        table.add_row(Group(Text(name, overflow="fold"), Padding(said, (0, 0, 0, 2))))
    return table


def _cohort_title(outcome: CohortOutcome) -> Table:
    """An empty table titled with the protocol's name and SHA-256 and the number of cases."""
    source = outcome.protocol.source
    digest = f" (protocol SHA-256 {source.sha256[:12]})" if source is not None else ""
    return Table(title=f"{outcome.protocol.name}: cohort of {len(outcome.entries)}{digest}")


def _goal_cells(record: PlanRecord | None, goals: int) -> list[str | Text]:
    """Each goal's value and reported status; "-" for each of the `goals` without a plan."""
    if record is None:
        return ["-"] * goals
    return [Text(goal_value(goal) + " ") + status_text(goal.status) for goal in record.goals]


def _goal_counts(record: PlanRecord | None) -> list[str | Text]:
    """The goals per reported status, best first ("23 pass, 1 fail"), and the failed goals by name; "-" for
    both without a plan."""
    from specc.report.compare_cohorts import STATUS_ORDER

    if record is None:
        return ["-", "-"]
    counts = record.goal_counts()
    ordered = [*(status for status in STATUS_ORDER if status in counts), *(s for s in counts if s not in STATUS_ORDER)]
    counted = Text(", ").join(Text(f"{counts[status]} ") + status_text(status) for status in ordered)
    failed = "; ".join(f"{goal.structure}: {goal.text}" for goal in record.goals if goal.status == "fail")
    return [counted, failed or "-"]


def _case_name(entry: CohortEntry) -> str:
    """The case as the cohort's page and `specc compare` name it: a case id planned twice is told apart
    by its folder (`c-shape-2`)."""
    name = entry.case_id or entry.case_file
    if entry.folder is not None and entry.folder.name != name:
        return f"{name} ({entry.folder.name})"
    return name


@app.command("compile")
def compile_command(
    protocol: Path = typer.Argument(..., help="Protocol file (YAML)."),
    case: Path | None = _CASE,
    phantom: str | None = _PHANTOM,
    grid: float | None = _GRID,
    beams: int | None = _BEAMS,
    explain: bool = typer.Option(
        False, "--explain", help="Print the optimization derived from the prescription and goals, as YAML to paste "
        "into the protocol and tune (nothing is compiled)."
    ),
    prior_dose: list[Path] = typer.Option([], "--prior-dose", help="A prior course's dose, as for `specc plan`."),
) -> None:
    """Compile a protocol against a case and print the program's size (nothing is solved)."""
    from specc.case import Case
    from specc.compile.derive import derive_optimization, explain_warning, explain_yaml, structure_volumes_cc
    from specc.composite import with_prior_dose
    from specc.planning import compile_for_plan
    from specc.protocol import load_protocol

    printer = StagePrinter(quiet=True)
    try:
        loaded = load_protocol(protocol)
        case_or_path = _load_case(case, phantom, grid, beams, printer)
        case_object = case_or_path if isinstance(case_or_path, Case) else Case.load(case_or_path)
        if not explain:
            _check_prior(loaded, prior_dose)
        case_object = with_prior_dose(case_object, prior_dose)
        if explain:
            derived = derive_optimization(loaded, structure_volumes_cc(loaded, case_object))
            if loaded.optimization is not None and loaded.optimization.terms:
                typer.echo("# note: this protocol has its own optimization section, which `specc plan` uses;")
                typer.echo("# below is what its goals alone would give.")
            typer.echo(explain_yaml(loaded, derived), nl=False)
            if derived.per_case:  # also on stderr: a paste of stdout alone must not lose it
                typer.echo(f"warning: {explain_warning(derived).removeprefix('WARNING: ')}", err=True)
            return
        compiled = compile_for_plan(loaded, case_object)  # as `specc plan` compiles it
        program = compiled.program
    except SpeccError as error:
        fail(error)

    from specc.solve.clinical import estimated_solve_memory

    stats = program.stats
    # the route the solve will take decides the figure: CLARABEL's peak is 8-12x the fast path's (audit a5 F2)
    memory_bytes, route = estimated_solve_memory(program, compiled.settings, compiled.goal_priorities)
    table = Table("structure", "voxels", "entries", "nonzeros", "sampled", title=f"{loaded.name} on {case_object.case_id}")
    for structure in stats.structures:
        table.add_row(
            structure.name, str(structure.voxels), str(structure.entries), str(structure.nonzeros), "yes" if structure.sampled else ""
        )
    console.print(table)
    console.print(
        f"variables {stats.variables}, constraints {stats.constraints}, dose entries {stats.dose_entries}, "
        f"beamlets {stats.beamlets}, nonzeros {stats.nonzeros}, "
        f"estimated memory {memory_bytes / 2**20:.0f} MiB ({route}), compiled in {stats.compile_time_s:.2f} s"
    )
    from specc.compile.derive import step_names, step_of

    optimization = compiled.protocol.optimization
    steps = step_names(optimization) if optimization is not None else []
    ranked = len(steps) > 1  # terms without priorities are one weighted program, solved once
    order = "; ".join(f"{number}. {name}" for number, name in enumerate(steps, start=1))
    console.print(Text(f"terms (solved in steps: {order}):" if ranked else "terms:", style="bold"))
    for term in program.terms:  # one line each, not a table: the protocol path must stay whole
        step = f"  [{step_of(term.term, steps)}]" if ranked else ""
        console.print(Text(f"  {term.source}  {'hard' if term.hard else 'soft'}  {term.label}{step}"), soft_wrap=True)
    for warning in compiled.protocol.template_warnings:  # as `specc validate` and a plan's record say it
        console.print(Text("warning: ", style="bold red") + Text(str(warning)), soft_wrap=True)
    for note in program.notes:
        console.print(Text("note: ", style="yellow") + Text(note))
