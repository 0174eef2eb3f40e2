"""`specc.plan`: a protocol and a case in, a verified plan report out.

The stages run in order (compile -> solve -> evaluate -> report), each timed. A solve that
leaves no usable fluence (infeasible, unbounded, time limit, solver error) stops the
pipeline before anything is written: there is no report that could be mistaken for a plan.
Goal failures are not errors: they are what the report is for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from specc.case import Case
from specc.compile import ProgramStats, compile_protocol
from specc.compile.derive import with_optimization
from specc.evaluate import GoalRecord, PlanRecord, evaluate_plan
from specc.export import write_result
from specc.protocol import Protocol, load_protocol
from specc.report import write_report
from specc.solve import SolveResult, choose_solver
from specc.solve.clinical import solve_clinical

# Called with (stage, None) when a stage starts and (stage, seconds) when it ends.
StageProgress = Callable[[str, float | None], None]

PLAN_JSON = "plan.json"
RESULT_H5 = "result.h5"


@dataclass(frozen=True)
class PlanOutcome:
    """What `plan` did: the solve, the record (None without a usable solve) and the files written."""

    solve: SolveResult
    record: PlanRecord | None
    paths: list[Path]
    timings_s: dict[str, float]
    stats: ProgramStats
    notes: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """The solve gave a usable plan (optimal, or inaccurate and labelled as such)."""
        return self.solve.usable and self.record is not None

    def failed_must_goals(self) -> list[GoalRecord]:
        """Priority-1 goals the dose fails (beyond any acceptable variation)."""
        if self.record is None:
            return []
        return [goal for goal in self.record.goals if goal.priority == 1 and goal.measured_status == "fail"]

    def exit_code(self, strict: bool = False) -> int:
        """0: a plan; 1: no plan (the solve failed); 2: `strict` and a priority-1 goal failed."""
        if not self.succeeded:
            return 1
        return 2 if strict and self.failed_must_goals() else 0


class _Stages:
    """Times each stage and reports it to the progress callback."""

    def __init__(self, progress: StageProgress | None) -> None:
        self.timings: dict[str, float] = {}
        self._progress = progress

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self._progress is not None:
            self._progress(name, None)
        started = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - started
        if self._progress is not None:
            self._progress(name, self.timings[name])


def plan(
    protocol: Protocol | str | Path,
    case: Case | str | Path,
    out_dir: str | Path,
    solver: str | None = None,
    pdf: bool = False,
    progress: StageProgress | None = None,
) -> PlanOutcome:
    """Plan `case` with `protocol` and write report.html (+ report.pdf), plan.json and result.h5.

    `solver` overrides the protocol's and the default choice. Raises a `SpeccError` for bad
    input (protocol, case, options); a failed solve is returned, not raised, and writes nothing.
    """
    stages = _Stages(progress)
    out = Path(out_dir)
    if not isinstance(protocol, Protocol):
        with stages.stage("load protocol"):
            protocol = load_protocol(protocol)
    case_path: Path | None = None
    if not isinstance(case, Case):
        case_path = Path(case)
        with stages.stage("load case"):
            case = Case.load(case_path)

    with stages.stage("compile"):
        # A protocol with goals only gets its optimization derived (specc.compile.derive).
        protocol, goal_priorities = with_optimization(protocol, case)
        program = compile_protocol(protocol, case)
    settings = choose_solver(solver, protocol.optimization.solver)
    with stages.stage("solve"):
        solve = solve_clinical(program, settings, goal_priorities, protocol.optimization.solver.slip_percent)
    notes = list(program.notes)
    if not solve.usable:
        stale = [out / name for name in ("report.html", "report.pdf", PLAN_JSON, RESULT_H5) if (out / name).exists()]
        if stale:
            notes.append(f"{', '.join(map(str, stale))} are from an earlier run, not this one")
        return PlanOutcome(solve, None, [], stages.timings, program.stats, notes)

    with stages.stage("evaluate"):
        evaluation = evaluate_plan(
            protocol, case, program.masks, solve, dict(stages.timings), program.smoothness.get
        )
    timings = dict(stages.timings)
    record = evaluation.record.model_copy(update={"timings_s": timings})
    with stages.stage("report"):
        paths = write_report(out, record, case, evaluation, program.masks, pdf=pdf)
        record_json = record.model_dump_json(indent=2)
        plan_json = out / PLAN_JSON
        plan_json.write_text(record_json, encoding="utf-8")
        paths.append(plan_json)
        paths.append(
            write_result(
                out / RESULT_H5,
                case,
                evaluation.fluence,
                evaluation.dose,
                protocol.prescription.fractions,
                record_json=record_json,
                case_path=case_path,
            )
        )
    return PlanOutcome(solve, record, paths, stages.timings, program.stats, notes)

