"""`specc.plan`: a protocol and a case in, a verified plan report out.

The stages run in order (compile -> solve -> evaluate -> report), each timed. A solve that
leaves no usable fluence (infeasible, unbounded, time limit, solver error) stops the
pipeline before anything is written: there is no report that could be mistaken for a plan.
Goal failures are not errors: they are what the report is for. `PlanSession` plans one case
again as its protocol changes (`specc plan --watch`), warm where the change allows.
"""

from __future__ import annotations

import csv
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from specc.case import Case
from specc.compile import ProgramStats
from specc.errors import CaseError, SpeccError
from specc.delivery import Delivered, deliver, plan_forward
from specc.evaluate import BeamSegmentsRecord, DeliveryRecord, GoalRecord, PlanEvaluation, PlanRecord, evaluate_plan
from specc.export import DerivedStructure, write_result, write_segments
from specc.export.staging import StagedExport
from specc.protocol import Protocol, ProtocolSource, load_protocol, revise_protocol
from specc.protocol.goals import Goal
from specc.protocol.units import format_number
from specc.planning import CompiledPlan, SampleMemory, compile_for_plan
from specc.report import write_report
from specc.approval import APPROVAL_JSON, ApprovalError
from specc.report.identity import PLAN_FOLDER_FILES, PLAN_JSON, REPORT_HTML, REPORT_PDF, RESULT_H5, SEGMENTS_JSON
from specc.report.cohort_page import COHORT_PAGE, write_cohort_page
from specc.report.compare_cohorts import plan_identity
from specc.report.identity import record_json
from specc.sequence import check_sequenceable
from specc.solve import SolveResult
from specc.solve.clinical import fast_path_alone
from specc.solve.first_order import FIRST_ORDER_SOLVER, WarmStart
from specc.solve.priorities import STEP_KEPT, StepMemory
from specc.solve.sample_check import CheckedSolve

if TYPE_CHECKING:
    from specc.check import CheckOutcome
    from specc.compile import ResolvedStructures

# Called with (stage, None) when a stage starts and (stage, seconds) when it ends. A stage of several steps
# (a solve by priorities: "step k/n: what it minimizes") reports each step the same way between its own start
# and end, so a call that starts while a stage runs is a step of that stage.
StageProgress = Callable[[str, float | None], None]


@dataclass(frozen=True, repr=False)
class PlanOutcome:
    """What `plan` did: the solve, the record (None without a usable solve) and the files written.

    `solve` is the optimizer's own result: its fluence is the one before the protocol's
    normalization. The plan's fluence and dose, as evaluated, reported and written, are
    `fluence` and `dose_gy` (`evaluation`, None without a plan).
    """

    solve: SolveResult
    record: PlanRecord | None
    paths: list[Path]
    timings_s: dict[str, float]
    stats: ProgramStats
    notes: list[str] = field(default_factory=list)
    evaluation: PlanEvaluation | None = None  # the plan as evaluated on the full grid (after normalization)

    @property
    def fluence(self) -> np.ndarray | None:
        """The plan's beamlet weights per fraction, after normalization (result.h5's); None without a plan."""
        return self.evaluation.fluence if self.evaluation is not None else None

    @property
    def dose_gy(self) -> np.ndarray | None:
        """The dose the goals were judged on, Gy over all fractions on the case grid (a composite plan's
        includes its prior course; `evaluation.plan_dose` is the plan's own); None without a plan."""
        return self.evaluation.dose if self.evaluation is not None else None

    @property
    def succeeded(self) -> bool:
        """The solve gave a usable plan (optimal, or inaccurate and labelled as such)."""
        return self.solve.usable and self.record is not None

    def exit_code(self, strict: bool = False) -> int:
        """0: a plan (one that did not converge too, labelled so); 1: no plan (the solve failed); 2: `strict` and the
        plan did not converge, or a priority-1 goal failed or not evaluated, other than one on a structure the
        protocol allows a case to lack (`PlanRecord.stops_strict`)."""
        if not self.succeeded:
            return 1
        assert self.record is not None  # `succeeded`
        return 2 if strict and self.record.stops_strict() else 0

    @property
    def solver_name(self) -> str:
        return self.solve.solver

    @property
    def status(self) -> str:
        """The solver's status: what a cohort lists for the case."""
        return self.solve.status

    @property
    def message(self) -> str:
        return self.solve.message

    def __repr__(self) -> str:
        """One line, what a notebook shows for an outcome: the default repr, with every array and DVH, ran to
        126,000 characters (audit b3 N4). The rest is in its fields (`record`, `notes`, `evaluation`)."""
        parts = [f"status={self.status!r}", f"converged={self.solve.converged}", f"solver={self.solver_name!r}"]
        if self.record is not None:
            parts.append("goals: " + ", ".join(f"{count} {status}" for status, count in self.record.goal_counts().items()))
        folder = f" in {self.paths[0].parent}" if self.paths else ""
        parts.append(f"files={[path.name for path in self.paths]}{folder}")
        if self.notes:
            parts.append(f"{len(self.notes)} note{'s' if len(self.notes) > 1 else ''} (.notes)")
        return f"PlanOutcome({', '.join(parts)})"


class StageTimer:
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

    @property
    def steps(self) -> StageProgress | None:
        """Where the running stage reports its steps (the progress callback itself; not timed here: each
        step's time is in the solve's log)."""
        return self._progress


def plan(
    protocol: Protocol | str | Path,
    case: Case | str | Path,
    out_dir: str | Path,
    solver: str | None = None,
    pdf: bool = False,
    progress: StageProgress | None = None,
    prior_dose: Sequence[str | Path] = (),
) -> PlanOutcome:
    """Plan `case` with `protocol` and write report.html (+ report.pdf), plan.json and result.h5.

    `solver` overrides the protocol's and the default choice. `prior_dose`: the files of a
    prior course, for a protocol with `prescription.prior` (`specc.composite`; or give a case
    `with_prior`). Raises a `SpeccError` for bad input (protocol, case, options); a failed
    solve is returned, not raised. Either way nothing is written, and the earlier plan in
    `out_dir` is removed (`discard_unwritten_plan`): left there, it would read as this run's. A
    KeyboardInterrupt (Ctrl-C), or any other exception, removes it too, and is raised on with notes
    naming the files removed (or those that could not be). The files are written aside and moved
    in whole, plan.json last (`staged_plan`: what a kill -9 leaves, docs/report.md). `out_dir` is
    checked first (`check_plan_folder`). The plan's fluence and dose: `PlanOutcome.fluence` and `.dose_gy`.
    """
    stages = StageTimer(progress)
    try:
        check_plan_folder(Path(out_dir))  # before a load and a solve that a folder no plan can go into would waste
        protocol = planned_protocol(protocol, stages)
        case_path: Path | None = None
        if not isinstance(case, Case):
            case_path = _file_argument(case, "case", "specc Case")
            with stages.stage("load case"):
                case = Case.load(case_path)
        if prior_dose:
            from specc.composite import with_prior_dose

            with stages.stage("read prior dose"):
                case = with_prior_dose(case, prior_dose)
        return _plan_case(protocol, case, case_path, Path(out_dir), solver, pdf, stages)
    except BaseException as error:  # a bug too: its traceback shows, and the earlier plan is not this run's either
        discard_earlier_plan(Path(out_dir)).note_on(error)  # the files removed, or kept, named in notes on it
        raise


def _file_argument(value: object, what: str, kind: str) -> Path:
    """The file a `plan` or `PlanSession` argument names; anything else a TypeError that says what was
    expected (a `Case` where the protocol goes: the arguments swapped), not a failure deep inside."""
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    swapped = " (arguments swapped? specc.plan(protocol, case, out_dir))" if isinstance(value, (Case, Protocol)) else ""
    raise TypeError(f"{what} must be a {kind} or the path of its file, got {type(value).__name__}{swapped}")


def planned_protocol(protocol: Protocol | str | Path, stages: StageTimer | None = None) -> Protocol:
    """The protocol a plan (or a check) uses: read from its file when given as a path (`load_protocol`, timed as
    the stage "load protocol" by `stages`), then `as_planned` (a protocol changed in memory validated again)."""
    if not isinstance(protocol, Protocol):
        path = _file_argument(protocol, "protocol", "specc Protocol")
        with (stages or StageTimer(None)).stage("load protocol"):
            protocol = load_protocol(path)
    return as_planned(protocol)


def _derived_terms_note(protocol: Protocol) -> list[str]:
    if protocol.optimization is None or not protocol.optimization.terms:
        return [
            "the protocol has no optimization terms: they were derived from its prescription "
            "and goals (see them with `specc compile --explain`)"
        ]
    return []


def _plan_case(
    protocol: Protocol, case: Case, case_path: Path | None, out: Path, solver: str | None, pdf: bool, stages: StageTimer
) -> PlanOutcome:
    return PlanSession(case, out, case_path, solver, pdf).plan(protocol, stages)


def _write_plan(
    compiled: CompiledPlan, checked: CheckedSolve, case_path: Path | None, out: Path, pdf: bool, stages: StageTimer,
    notes: list[str], delivered: Delivered | None = None, keep_last: bool = False,
) -> PlanOutcome:
    """Evaluate a solved plan on the full grid and write its files (nothing, and no earlier plan, without a solve).

    `delivered`: a forward plan's segments, whose weights are `checked`'s solve; a step-and-shoot
    protocol's fluence is sequenced here. `keep_last`: without a solve, the plan in `out` is the
    session's own last plan and stays (`PlanSession`)."""
    protocol, case, settings = compiled.protocol, compiled.case, compiled.settings
    notes = [*notes, *compiled.program.notes]
    solve, program = checked.result, checked.program
    notes.extend(checked.notes)
    if delivered is not None:
        notes.extend(delivered.notes)
    elif solve.solver != settings.name and solve.usable:  # with no plan, the error says what the solver did
        notes.append(
            f"solver: {settings.name} was chosen, but {solve.solver} produced this plan "
            "(the reason is in the solver message of the optimization log)"
        )
    # the notes of reading a prior dose (0 Gy beyond a file's grid, in the structures named): the record keeps them
    # in its prior dose, the report in its paragraph, and the terminal says them too, plan or none
    prior_notes = list(case.prior_dose.notes) if case.prior_dose is not None else []
    if not solve.usable:
        if not keep_last:
            refuse_approved_folder(out)  # approved while it solved: the files stay, as approved
            notes.extend(discard_earlier_plan(out).said())  # a file kept: said, the solve's outcome stands
        return PlanOutcome(solve, None, [], stages.timings, program.stats, [*notes, *prior_notes])

    delivery = None
    if delivered is None and protocol.delivery is not None and protocol.delivery.sequenced:
        with stages.stage("sequence"):
            delivered = deliver(compiled, solve, protocol.delivery)
        solve = delivered.result
        notes.extend(delivered.notes)
    passed = len(notes)  # the record holds these first, then what the evaluation noted itself
    with stages.stage("evaluate"):
        absent = program.structures.absent  # goals on structures this case lacks read NOT EVALUATED
        partial = program.structures.partial  # goals on organs read from some of their parts say so
        allowed = program.structures.allowed_absent  # of `absent`, those the protocol allows a case to lack
        evaluation = evaluate_plan(
            protocol, case, program.masks, solve, dict(stages.timings), notes=notes, absent=absent, partial=partial,
            allowed_absent=allowed, collapsed_targets=program.structures.collapsed_targets,  # each a warning
        )
        if delivered is not None:
            optimized = None
            if delivered.fluence_result is not None:
                # only its goal values are shown, beside the delivered plan's: no setup-error check
                optimized = evaluate_plan(protocol, case, program.masks, delivered.fluence_result, {}, setup_errors=False,
                                          absent=absent, partial=partial, allowed_absent=allowed)
            delivery = _delivery_record(delivered, evaluation, optimized)
    record = evaluation.record.model_copy(update={"timings_s": dict(stages.timings), "delivery": delivery})
    if record.normalization is not None and (exceeded := record.normalization.exceeded_note()) is not None:
        notes.append(exceeded)
    # what the evaluation itself noted (a hot spot outside the targets, the EQD2 model, the prior course) is the
    # terminal's too, not only the report's
    # (the record's prior dose notes: those of reading it, and what the protocol's use of it adds)
    notes.extend([*record.notes[passed:], *(record.prior_dose.notes if record.prior_dose is not None else prior_notes)])
    with stages.stage("report"), staged_plan(out) as staged:
        folder = staged.path  # the files are moved into `out` once all are whole
        paths = write_report(folder, record, case, evaluation, program.masks, pdf=pdf, named_in=out)
        if delivered is not None:
            with writing(out / SEGMENTS_JSON):
                paths.append(write_segments(folder / SEGMENTS_JSON, delivered.sequence, case, record))
        # One text for plan.json, result.h5's copy and the SHA-256 the report names (specc.report.identity):
        # written once as plan.json, and embedded in result.h5, which an export reads without the folder.
        plan_text = record_json(record)
        with writing(out / PLAN_JSON):
            (folder / PLAN_JSON).write_bytes(plan_text.encode("utf-8"))
        paths.append(folder / PLAN_JSON)
        # result.h5 holds the plan's own dose (what its RT Dose is), and a composite plan's prior beside it.
        prior = case.prior_dose.total_gy if case.prior_dose is not None else None
        with writing(out / RESULT_H5):
            paths.append(write_result(
                folder / RESULT_H5,
                case,
                evaluation.fluence,
                evaluation.plan_dose,
                protocol.prescription.fractions,
                record_json=plan_text,
                case_path=case_path,
                prior_dose_gy=prior,
                derived=_derived_structures(protocol, program.masks, record),
                case_roles=_case_roles(program.structures),
            ))
    paths = [staged.final(path) for path in paths]
    return PlanOutcome(solve, record, paths, stages.timings, program.stats, notes, evaluation)


def _case_roles(structures: ResolvedStructures) -> dict[str, str]:
    """The role of each case structure a protocol structure was read from: by its name or an alias, or as one of
    its `parts` (BrachialPlex_L of BrachialPlexus is an organ at risk too: an RTSTRUCT export types it ORGAN)."""
    roles = {case_name: structures.roles[name]
             for name, case_name in structures.case_names.items() if name in structures.roles}
    for name, parts in structures.parts.items():
        if name in structures.roles:
            roles.update(dict.fromkeys(parts, structures.roles[name]))
    return roles


# The plan files moved into an existing folder after every other, in this order: what a person opens, then the
# record a reader trusts (plan.json), whose presence says that the files beside it are one whole plan.
_MOVED_LAST = (REPORT_PDF, REPORT_HTML, PLAN_JSON)


@contextmanager
def staged_plan(out: Path, consequence: str = "no plan written") -> Iterator[StagedExport]:
    """Writing a plan's files: into `staged.path`, a staging folder (`StagedExport`, hidden beside `out`), then, once
    every file is whole, the earlier plan in `out` removed (plan.json first) and the new files moved in, plan.json
    last (`_MOVED_LAST`). Paths written are where they end up with `staged.final`; errors name those.

    A process killed outright (kill -9, out of memory, power loss: no clean-up runs) leaves `out` holding the
    earlier plan whole (a hidden `.OUT.XXXXXXXX.partial` beside it), one run's files without plan.json, or the new
    plan whole: plan.json is there only beside the whole plan it records (docs/report.md). Stopped otherwise
    (an error, a full disk, Ctrl-C), the staging is removed and the earlier plan too, as for a solve that gives
    no plan, and notes on the error name the files removed (`discard_earlier_plan`)."""
    earlier: list[Path] | None = None  # the earlier plan's files, once removed for the new ones
    try:
        with StagedExport(out, folder=True, what="plan", consequence=consequence, last=_MOVED_LAST,
                          refuse_other_dicom=False) as staged:
            yield staged
            earlier = remove_earlier_plan(out)
            staged.commit()
    except EarlierPlanKept as kept:  # this run's plan is whole, but cannot take the earlier one's place
        refused = EarlierPlanKept(kept.removed, kept.kept, kept.reason, f"; {consequence}, as this run's cannot take "
                                  "its place: remove that plan, or write into another folder")
        Discarded(kept.removed).note_on(refused)  # those removed before it, a note
        raise refused from kept
    except BaseException as error:
        # the earlier plan; once it was removed, this run's files moved in before a move that failed
        discarded = discard_earlier_plan(out)
        Discarded(discarded.removed if earlier is None else earlier, discarded.kept).note_on(error)
        raise


@contextmanager
def writing(path: Path, consequence: str = "no plan written") -> Iterator[None]:
    """An OS failure writing `path` (a full disk, no permission) as one line naming the file and why."""
    try:
        yield
    except OSError as error:
        raise PlanFolderError(f"cannot write {path}: {error.strerror or error}; {consequence}") from error


def _derived_structures(protocol: Protocol, masks: Mapping[str, np.ndarray], record: PlanRecord) -> list[DerivedStructure]:
    """The protocol's derived structures as planned (margins, rings), kept so that an export can hand them on."""
    colors = {structure.structure: structure.color for structure in record.structures}
    return [
        DerivedStructure(name, masks[name], colors.get(name, spec.color or "#808080"), spec.role, str(spec.expression))
        for name, spec in protocol.structures.items()
        if spec.expression is not None and name in masks
    ]


def _delivery_record(
    delivered: Delivered, evaluation: PlanEvaluation, optimized: PlanEvaluation | None
) -> DeliveryRecord:
    """What the report says of the segments; weights scaled by the delivered plan's normalization.
    `optimized`: the fluence the segments were sequenced from, evaluated (None: forward planned)."""
    factor = evaluation.record.normalization_factor
    beams = [
        BeamSegmentsRecord(
            beam=beam.beam,
            segments=len(beam.weights),
            total_weight=float(beam.weights.sum() * factor),
            smallest_weight_percent=float(100.0 * beam.weights.min() / beam.weights.sum()),
            smallest_area_cm2=float(beam.areas_cm2().min()),
            smallest_opening_cm2=float(beam.smallest_openings_cm2().min()),
        )
        for beam in delivered.sequence.beams
    ]
    return DeliveryRecord(
        technique=delivered.delivery.technique,
        intensity_levels=delivered.sequence.levels,
        sequencing=delivered.sequence.sequencing,
        segment_weights=delivered.weights,
        min_segment_weight_percent=delivered.delivery.min_segment_weight_percent,
        min_segment_area_cm2=area.cm2 if (area := delivered.delivery.min_segment_area) is not None else None,
        min_opening_area_cm2=area.cm2 if (area := delivered.delivery.min_opening_area) is not None else None,
        max_segments_per_beam=delivered.delivery.max_segments_per_beam,
        beams=beams,
        total_segments=sum(beam.segments for beam in beams),
        fluence_goal_values=[goal.value for goal in optimized.record.goals] if optimized is not None else None,
        fluence_solver=optimized.record.solver if optimized is not None else None,
    )


class PlanSession:
    """One case planned again each time its protocol changes (`specc plan --watch`).

    Tuning a protocol means changing a weight or a level and looking at the plan again. A
    change that leaves the program's dose entries as they were (the same structures named, the
    same ones hard, the same sample) is compiled on the earlier program's rows and matrix
    (`compile_protocol`'s `reuse`: no row selection). When the fast path solves the protocol
    alone (`fast_path_alone`), its solve starts from the last plan (`WarmStart`): on the same
    rows the solver that made it re-solves warm with its multipliers, on other rows the last
    fluence is the start. The plan is certified, falls back to the reference solver, is checked
    on every voxel, evaluated and reported exactly as `plan` does it; docs/compiler.md.

    A change whose solve gives no plan keeps the session's last plan in `out` (`last_plan`): it is
    the tuning's last good state, and no earlier run's. Before the session's first plan, `out`
    follows `plan`'s rule: a failed solve removes the plan found there.
    """

    def __init__(
        self, case: Case | str | Path, out: str | Path, case_path: str | Path | None = None,
        solver: str | None = None, pdf: bool = False, progress: StageProgress | None = None,
    ) -> None:
        """`case`: a `Case`, or its file (read here, as `plan` reads it; `case_path` is then that file)."""
        out = Path(out)
        check_plan_folder(out)
        if not isinstance(case, Case):
            case_file = _file_argument(case, "case", "specc Case")
            with StageTimer(progress).stage("load case"):
                case = Case.load(case_file)
            case_path = case_file if case_path is None else case_path
        self.case, self.out, self.case_path = case, out, Path(case_path) if case_path is not None else None
        self.solver, self.pdf, self.progress = solver, pdf, progress
        self._compiled: CompiledPlan | None = None  # the last plan compiled, with the program it solved
        self._warm = WarmStart()  # the last plan's fluence, and the fast-path solver that made it
        self._steps = StepMemory()  # the last plan's priority steps
        self._samples = SampleMemory()  # the samples the session's plans found too coarse (review s19/r4 F7)
        self._last: PlanOutcome | None = None  # the last plan written

    @property
    def last_plan(self) -> PlanOutcome | None:
        """The session's last plan while `out` holds its files; None before the first, or once a plan
        stopped while writing has removed them (`staged_plan`)."""
        last = self._last
        return last if last is not None and all(path.exists() for path in last.paths) else None

    def plan(self, protocol: Protocol | str | Path, stages: StageTimer | None = None) -> PlanOutcome:
        """Plan the case with `protocol` (a `Protocol`, or its file); `stages`: the timer of a caller that has
        timed earlier stages. A protocol changed in memory is validated again (`as_planned`)."""
        stages = StageTimer(self.progress) if stages is None else stages
        protocol = planned_protocol(protocol, stages)
        with stages.stage("compile"):
            if protocol.delivery is not None and protocol.delivery.segments:
                check_sequenceable(self.case)  # before a solve whose plan could not be delivered
            notes = [*changed_in_memory_note(protocol), *_derived_terms_note(protocol)]
            earlier = self._compiled.program if self._compiled is not None else None
            compiled = compile_for_plan(protocol, self.case, self.solver, reuse=earlier, samples=self._samples)
            notes += compiled.notes()
        if compiled.protocol.delivery is not None and compiled.protocol.delivery.forward:
            with stages.stage("solve"):
                delivered = plan_forward(compiled, compiled.protocol.delivery)
            self._compiled = compiled
            checked = CheckedSolve(compiled.program, delivered.result)
            return self._written(_write_plan(compiled, checked, self.case_path, self.out, self.pdf, stages, notes,
                                             delivered, keep_last=self.last_plan is not None))
        same_rows = earlier is not None and compiled.program.influence is earlier.influence
        alone = fast_path_alone(compiled.protocol, compiled.settings, compiled.goal_priorities)
        if not alone:
            self._warm.solver = None
        warm_from = self._warm.fluence if alone else None
        with stages.stage("solve"):
            checked = compiled.solve(self._warm if alone else None, self._steps, stages.steps)
        if warm_from is not None and checked.result.solver == FIRST_ORDER_SOLVER:
            rows = "compiled on the previous program's rows (no row selection), " if same_rows else ""
            notes.append(f"re-planned after a protocol change: {rows}solved warm from the previous plan "
                         "and certified like any other")
        kept = [row["step"] for row in checked.result.steps if row["status"] == STEP_KEPT]
        if kept:
            notes.append(f"re-planned after a protocol change: priority steps {', '.join(kept)} kept from the previous "
                         "plan (their terms, the hard terms and the rows are unchanged, so is their optimum); "
                         "the steps after them solved again")
        # The program the plan solves: the every-voxel one when the sample proved too coarse, whose rows the next
        # compile (on every voxel, `SampleMemory`) keeps, and with them the priority steps solved on them.
        self._compiled = replace(compiled, program=checked.program)
        self._warm.fluence = checked.result.fluence if checked.result.usable else None
        return self._written(_write_plan(compiled, checked, self.case_path, self.out, self.pdf, stages, notes,
                                         keep_last=self.last_plan is not None))

    def _written(self, outcome: PlanOutcome) -> PlanOutcome:
        if outcome.succeeded:
            self._last = outcome
        return outcome


def as_planned(protocol: Protocol) -> Protocol:
    """`protocol` validated, with the source a plan of it records: the files it was read from while its
    content is theirs; else (changed in memory after loading, `model_copy(update=...)`) validated again
    (`revise_protocol`: `model_copy` validates nothing, and a weight of -50 or 0 fractions crashed deep in
    the solve, audit b3 N1), with a source saying so and the content's own SHA-256
    (`ProtocolSource.of_content`): quoting the file would name a protocol that does not give this plan.
    A protocol read from no file (`Protocol.model_validate(...)`) is validated again too and recorded as
    built in memory with its content's SHA-256 (audit b3 N3)."""
    source = protocol.source
    if source is not None and (source.content_sha256 is None
                               or ProtocolSource.fingerprint(protocol) == source.content_sha256):
        return protocol  # as validated from its files (or of a source that took no fingerprint to compare with)
    revised = revise_protocol(protocol)
    recorded = ProtocolSource.built_in_memory(revised) if source is None else source.of_content(revised)
    return revised.model_copy(update={"source": recorded})


def changed_in_memory_note(protocol: Protocol, what: str = "plan") -> list[str]:
    """The note of a `what` ("plan", "check") made with a protocol `as_planned` records as built or changed
    in memory: its SHA-256 is of the content, which no file holds."""
    source = protocol.source
    if source is None or not source.in_memory:
        return []
    done = {"plan": "planned", "check": "checked against"}.get(what, "used")
    if source.changed_from is None:
        return [f"protocol {source.path}: the protocol SHA-256 this {what} records is of the content {done}"]
    return [f"protocol {source.path}: the protocol SHA-256 this {what} records is of the content {done}, "
            f"not of {source.changed_from}, which gives another {what}"]


class PlanFolderError(SpeccError):
    """A folder a plan cannot be written into (a file, no write permission), or a file of a plan that
    cannot be written or removed there."""


class EarlierPlanKept(PlanFolderError):
    """An earlier run's plan files that could not be removed from a folder this run writes no plan into (or whose
    plan cannot take their place: `consequence`, said after them). `kept[0]` is the file that could not be removed,
    for `reason`; the others after it are left so that the earlier plan stays whole."""

    def __init__(self, removed: list[Path], kept: list[Path], reason: str, consequence: str = "") -> None:
        self.removed, self.kept, self.reason = removed, kept, reason
        others = ", ".join(map(str, kept[1:]))
        left = f", so {others} {'stay' if len(kept) > 2 else 'stays'} beside it" if others else ""
        super().__init__(
            f"could not remove {kept[0]} ({reason}){left}: an earlier run's plan, not this run's{consequence}"
        )


def check_plan_folder(out: Path) -> None:
    """Refuse, before anything is loaded or solved, a folder no plan can be written into: an existing file,
    a folder (or the nearest existing folder above a new one) without write permission, an approved plan's.
    Found only when the plan is written, it would cost the whole solve. Nothing is created."""
    refuse_approved_folder(out)
    try:
        if out.exists() and not out.is_dir():
            raise PlanFolderError(f"{out} is a file, not a folder: a plan is written into a folder (created if new)")
        folder = out
        while not folder.exists():  # a new folder is created in the nearest one that exists
            folder = folder.parent
    except OSError as error:
        raise PlanFolderError(f"cannot use the output folder {out}: {error.strerror or error}") from error
    if not folder.is_dir():
        raise PlanFolderError(f"cannot create the output folder {out}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        why = "read-only file system" if read_only else "permission denied"
        where = f"write into {out}" if folder == out else f"create the output folder {out} in {folder}"
        raise PlanFolderError(f"cannot {where}: {why}")


def refuse_approved_folder(out: Path) -> None:
    """An approved plan's files stay as they were approved: nothing is planned over them."""
    if (out / APPROVAL_JSON).exists():
        raise ApprovalError(
            f"{out} holds an approved plan ({APPROVAL_JSON}); its files stay as approved: write this plan into another folder"
        )


def plan_files(out: Path) -> list[Path]:
    """The files of a plan (or a check) that `out` holds."""
    return [out / name for name in PLAN_FOLDER_FILES if (out / name).exists()]


def beside_the_plan(out: Path, written: Sequence[Path] = (), read: Sequence[Path] = ()) -> list[str]:
    """The exports of a plan that `out` holds besides `written` (this run's files) and `read` (what this run read
    there, e.g. the RT Dose a check measured), by name, a folder with a trailing "/": DICOM files, and folders of
    DICOM files or DVH tables (`specc export`'s outputs). After a run that removed an earlier plan from `out`, they
    are that plan's, and read as the new plan's: they stayed without a word (audit s20/t2 F3). Anything else (the
    protocol and case of a run with --out ., a user's notes) is not a plan's and not named (review s20/r2 F2)."""
    if not out.is_dir():
        return []
    names = {Path(path).name for path in written}
    taken = {Path(path).resolve() for path in read}
    return sorted(entry.name + ("/" if entry.is_dir() else "") for entry in out.iterdir()
                  if entry.name not in names and entry.resolve() not in taken and _exported(entry))


def _exported(entry: Path) -> bool:
    """Whether `entry` is what `specc export` writes: a DICOM file, or a folder holding DICOM files or DVH tables."""
    if entry.is_file():
        return entry.suffix.lower() == ".dcm"
    return entry.is_dir() and (any(entry.glob("*.dcm")) or (entry / "dvh.json").exists())


def remove_earlier_plan(out: Path) -> list[Path]:
    """Delete the files an earlier `plan` wrote into `out`: left there, they would read as this run's.
    One that cannot be deleted (no permission) raises `EarlierPlanKept`, naming it and those removed."""
    refuse_approved_folder(out)
    earlier = plan_files(out)
    for index, path in enumerate(earlier):
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            raise EarlierPlanKept(earlier[:index], earlier[index:], error.strerror or str(error)) from error
    return earlier


def earlier_plan_removed(removed: Sequence[Path]) -> str:
    """What a run that wrote no plan says of the earlier plan it removed from its folder, and why it did."""
    return (f"removed {', '.join(map(str, removed))}: they were an earlier run's plan, not this one (a run that "
            "writes no plan removes the plan in its folder, so that it is not taken for this run's)")


def discard_unwritten_plan(out: Path) -> list[Path]:
    """A plan (or check) into `out` stopped before it was written (an error in the protocol, the case or
    the compile; Ctrl-C): the earlier plan there is removed, as for a solve that gives no plan, so that it
    is not taken for this run's. An approved folder keeps its files (nothing is planned over them). Files
    that cannot be removed raise `EarlierPlanKept`: the caller warns that they are not this run's."""
    if (out / APPROVAL_JSON).exists():
        return []
    return remove_earlier_plan(out)


@dataclass(frozen=True)
class Discarded:
    """An earlier plan removed from a folder a run writes no plan into: the files `removed`, and the error naming
    those `kept` (they could not be removed: said to be an earlier run's), if any."""

    removed: list[Path]
    kept: EarlierPlanKept | None = None

    def said(self, error: BaseException | None = None) -> list[str]:
        """What a run says of it: the files removed and why, then a warning naming those kept, unless `error` (what
        stopped the run, said before) is the refusal of those same files: a second try of the folder fails on the
        file the first could not remove, and the warning would say the error's sentence again (audit s20/t2 F7)."""
        said_by_error = isinstance(error, EarlierPlanKept) and self.kept is not None and error.kept == self.kept.kept
        return ([earlier_plan_removed(self.removed)] if self.removed else []) + (
            [f"warning: {self.kept}"] if self.kept is not None and not said_by_error else [])

    def note_on(self, error: BaseException) -> None:
        """`said` of `error` as notes on it (the CLI prints them after it), each once."""
        for line in self.said(error):
            if line not in getattr(error, "__notes__", ()):
                error.add_note(line)


def discard_earlier_plan(out: Path | None) -> Discarded:
    """`discard_unwritten_plan` into `out` (None: a run that had no folder yet, nothing to do), files that cannot
    be removed given back in `kept`, not raised: each caller goes on and says so."""
    if out is None:
        return Discarded([])
    try:
        return Discarded(discard_unwritten_plan(out))
    except EarlierPlanKept as kept:
        return Discarded(kept.removed, kept)


# --- cohorts: one protocol over many cases --------------------------------------------------

COHORT_CSV = "cohort.csv"
# Called with (index, total, case file, None) when a case starts and with its entry when it ends.
CaseProgress = Callable[[int, int, str, "CohortEntry | None"], None]
# Characters kept in a case's folder name; anything else in a case id becomes "_".
_UNSAFE_IN_FOLDER = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CohortEntry:
    """One case of a cohort: where its files went, and its outcome or the error that stopped it."""

    case_file: str
    case_id: str | None  # None when the case could not be loaded
    folder: Path | None  # None when the case could not be loaded
    outcome: PlanOutcome | CheckOutcome | None  # None when an error stopped the case before a solve (or a check)
    error: str | None
    removed: list[Path] = field(default_factory=list)  # the earlier run's plan, removed from `folder` after an error
    kept: str | None = None  # the earlier run's plan files that could not be removed from `folder`, and why
    same_as: str | None = None  # the case file listed earlier in the run whose plan is of the same content
    read_sha256: str | None = None  # the case's content hash where it was read but got no record (else the record's)

    def exit_code(self, strict: bool = False) -> int:
        """What `specc plan` (or `specc check`) with the same `strict` returns for the case."""
        return 1 if self.outcome is None else self.outcome.exit_code(strict)

    @property
    def record(self) -> PlanRecord | None:
        """The case's plan (or check) record; None without one."""
        return self.outcome.record if self.outcome is not None else None

    @property
    def case_sha256(self) -> str | None:
        """The SHA-256 of the case's content (`Case.content_hash`) whenever the case was read, with a plan or
        not: a re-run of the study shows an infeasible or erring case is the same data. None: not read."""
        return self.record.case.sha256 if self.record is not None else self.read_sha256

    @property
    def status(self) -> str:
        """The solver status ("checked" for an external dose), or "error" when the case stopped before it."""
        return "error" if self.outcome is None else self.outcome.status


class CohortInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a cohort run during `item`: the entries `finished` before it (cohort.csv lists them),
    and what was done so that no earlier run's file reads as this one's (`run_cohort`)."""

    def __init__(
        self, item: str, finished: list[CohortEntry], folder: Path | None, removed: list[Path], summary: Path | None,
        kept: Sequence[str] = (),
    ) -> None:
        super().__init__(f"interrupted during {item}")
        self.item = item
        self.finished = finished
        self.folder = folder  # the item's folder; None when it stopped before one was chosen (case not yet read)
        self.removed = removed  # the earlier plan's files in `folder`, an earlier run's cohort.csv and pages
        self.summary = summary  # cohort.csv, None when no item finished (no cohort.csv is left)
        self.kept = list(kept)  # an earlier run's cohort files that could not be removed, each with why (a warning)


@dataclass(frozen=True)
class CohortOutcome:
    """Every case of a cohort in the order given, and the summary file written."""

    protocol: Protocol
    entries: list[CohortEntry]
    summary_csv: Path
    pages: list[Path]  # cohort.html (and cohort.pdf): the cohort on one page, each case linked to its report

    def exit_code(self, strict: bool = False) -> int:
        """The worst case's code: 1 (no plan) is worse than 2 (--strict: a plan not converged, a must-goal failed or
        not evaluated), 0 best."""
        codes = {entry.exit_code(strict) for entry in self.entries}
        return 1 if 1 in codes else max(codes, default=0)


def folder_name(case_id: str, taken: set[str]) -> str:
    """A folder name for `case_id` that is safe on any file system and unique in the cohort."""
    base = _UNSAFE_IN_FOLDER.sub("_", case_id).strip("._") or "case"
    name, count = base, 1
    while name in taken:
        count += 1
        name = f"{base}-{count}"
    return name


def goal_columns(protocol: Protocol) -> list[str]:
    """How each protocol goal heads its cohort.csv columns (and the terminal table's), in protocol order:
    structure, goal as written and the unit of its value ("Gy EQD2" for an EQD2 goal, as plan.json says).
    No two share a name: a protocol refuses a goal stated twice (`specc.protocol.consistency`)."""
    return [f"{goal.structure}: {goal.text}" + (f" [{goal.value_unit}]" if goal.value_unit else "")
            for goal in protocol.goals]


def write_cohort_csv(path: Path, protocol: Protocol, entries: Sequence[CohortEntry], strict: bool = False) -> Path:
    """cohort.csv: one row per case; the case's and the protocol's SHA-256 (two protocols of one name
    and version, or two cases of one id, are told apart by them; the case's wherever it was read, with
    a plan or not, so that a re-run shows an infeasible case is the same data); the exit code `specc
    plan` with the same `strict` gives the case; whether its plan converged (`true` / `false`, empty without a plan: a
    reader of the file alone saw 'iteration_limit' and no word of NOT CONVERGED); per protocol goal its measured value and reported status (and, for a
    goal whose limit is a table by a structure's volume, the limit the case was judged by, its variation and where it
    was read: each case has its own), then per goal of a robustness structure its worst value over the setup-error
    scenarios and that one's status."""
    header = ["case_id", "case_sha256", "case_file", "folder", "protocol_sha256", "solver", "solver_status",
              "converged", "exit_code", "error"]
    protocol_sha256 = protocol.source.sha256 if protocol.source is not None else ""
    columns = goal_columns(protocol)
    for column, goal in zip(columns, protocol.goals):
        header += [f"{column} value", f"{column} status", *_case_limit_columns(column, goal)]
    robust = [index for index, goal in enumerate(protocol.goals) if goal.structure in protocol.robust_structures()]
    for index in robust:
        header += [f"{columns[index]} worst value", f"{columns[index]} worst status"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for entry in entries:
            outcome, record = entry.outcome, entry.record
            row = [
                entry.case_id or "",
                entry.case_sha256 or "",
                entry.case_file,
                str(entry.folder) if entry.folder is not None and record is not None else "",
                protocol_sha256,
                outcome.solver_name if outcome else "",
                entry.status,
                "" if record is None else str(record.converged).lower(),  # a plan NOT CONVERGED: false
                entry.exit_code(strict),
                entry.error or (outcome.message if outcome and not outcome.succeeded else ""),
            ]
            recorded = record.goals if record is not None else [None] * len(protocol.goals)
            for written, goal in zip(protocol.goals, recorded):  # plan.json lists the goals in protocol order
                row += ["", ""] if goal is None else ["" if goal.value is None else f"{goal.value:.4f}", goal.status]
                row += _case_limits(written, goal)  # no plan: no value, status or limit for any goal
            if record is not None and record.robustness is not None:
                for worst in record.robustness.goals:
                    row += ["" if worst.worst is None else f"{worst.worst:.4f}", worst.status]
            else:
                row += ["", ""] * len(robust)
            writer.writerow(row)
    return path


def _case_limit_columns(column: str, goal: Goal) -> list[str]:
    """The columns of a goal whose limit is read on each case from a table by a structure's volume: the limit and
    variation (in the value's unit) and where it was read; none for a limit the protocol states as a number."""
    if goal.by_volume is None:
        return []
    return [f"{column} limit", *([f"{column} variation"] if goal.by_volume.variations is not None else []),
            f"{column} limit source"]


def _case_limits(written: Goal, goal: GoalRecord | None) -> list[str]:
    """`_case_limit_columns`' cells for one case (the full numbers plan.json holds; empty without a plan)."""
    if written.by_volume is None:
        return []
    cells = ["" if goal is None else format_number(goal.threshold)]
    if written.by_volume.variations is not None:
        cells.append("" if goal is None or goal.variation is None else format_number(goal.variation))
    return [*cells, "" if goal is None else goal.limit_source or ""]


def plan_cohort(
    protocol: Protocol | str | Path,
    cases: Sequence[str | Path],
    out_dir: str | Path,
    solver: str | None = None,
    pdf: bool = False,
    progress: StageProgress | None = None,
    case_progress: CaseProgress | None = None,
    strict: bool = False,
) -> CohortOutcome:
    """Plan each case file with one protocol into `out_dir`/<case id>/ and write `out_dir`/cohort.csv.

    A bad protocol raises (no case could be planned). A case that cannot be loaded, compiled
    or solved is recorded with its error and the next case is planned; cohort.csv is
    rewritten after every case, so it is complete up to the last case finished. `strict`: each
    row's exit code is that of `specc plan --strict`.
    """
    loaded = planned_protocol(protocol)

    def plan_one(case_file: Path, out: Path, taken: set[str]) -> CohortEntry:
        return _plan_cohort_case(loaded, case_file, out, taken, solver, pdf, progress)

    return run_cohort(loaded, cases, out_dir, plan_one, case_progress, pdf, strict)


def run_cohort(
    protocol: Protocol,
    items: Sequence[str | Path],
    out_dir: str | Path,
    run_one: Callable[[Path, Path, set[str]], CohortEntry],
    case_progress: CaseProgress | None = None,
    pdf: bool = False,
    strict: bool = False,
) -> CohortOutcome:
    """`run_one(item, out_dir, folder names taken)` for each item, cohort.csv rewritten after each,
    cohort.html (and cohort.pdf when `pdf`) at the end.

    An item that stops before its plan is written, in the folder `run_one` gave it, leaves no
    earlier run's plan there (`discard_unwritten_plan`; its entry's `removed`), as `plan` does. An
    item whose plan is of the same content as an earlier item's (a case file listed twice) is
    marked `same_as` that one (cohort.html counts it once). Ctrl-C raises `CohortInterrupted`: the
    earlier plan in the folder of the item it stopped (the name `run_one` added to the names
    taken) is removed as for a plan not produced, cohort.csv lists the items finished (removed
    when none did), and an earlier run's cohort pages are removed.
    """
    if protocol.prescription.prior is not None:
        raise CaseError(
            f"{protocol.source.path}: a protocol with a prior course needs each patient's prior dose: plan or check "
            "the cases one at a time with --prior-dose"
        )
    out = Path(out_dir)
    check_plan_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PlanFolderError(f"cannot create the output folder {out}: {error.strerror}") from None
    summary = out / COHORT_CSV
    entries: list[CohortEntry] = []
    taken: set[str] = set()
    for index, item in enumerate(items, start=1):
        if case_progress is not None:
            case_progress(index, len(items), str(item), None)
        before = set(taken)
        try:
            entry = run_one(Path(item), out, taken)
        except KeyboardInterrupt:
            raise _interrupted(str(item), entries, out, taken - before) from None
        entry = _settled(entry, entries)
        entries.append(entry)
        with writing(summary, "the cohort run stopped"):
            write_cohort_csv(summary, protocol, entries, strict)
        if case_progress is not None:
            case_progress(index, len(items), str(item), entry)
    return CohortOutcome(protocol, entries, summary, write_cohort_page(summary, protocol, pdf=pdf))


def _settled(entry: CohortEntry, earlier: Sequence[CohortEntry]) -> CohortEntry:
    """`entry` with the earlier run's plan removed from its folder when it has none of its own (a failed
    solve removed it already), and the earlier entry of the same content, if any."""
    discarded = discard_earlier_plan(entry.folder if entry.outcome is None else None)
    removed, kept = discarded.removed, str(discarded.kept) if discarded.kept is not None else None
    same_as = None
    if entry.record is not None:
        identity = plan_identity(entry.record)
        same_as = next((first.case_file for first in earlier
                        if first.record is not None and plan_identity(first.record) == identity), None)
    return replace(entry, removed=removed, kept=kept, same_as=same_as)


def _interrupted(item: str, finished: list[CohortEntry], out: Path, folders: set[str]) -> CohortInterrupted:
    """Clear up after Ctrl-C during `item`, whose folder's name is in `folders` (none: it had none yet)."""
    folder = out / next(iter(folders)) if folders else None
    removed = discard_earlier_plan(folder).removed  # files kept stay on disk: the terminal's check of them sees it
    summary = out / COHORT_CSV
    # the pages are written after the last item, so those there are an earlier run's; cohort.csv too until one finished
    pages, kept = _remove_earlier_cohort([path for path in cohort_files(out) if not (finished and path == summary)])
    return CohortInterrupted(item, finished, folder, removed + pages, summary if finished else None, kept)


def cohort_files(out: Path) -> dict[Path, tuple[int, int, int]]:
    """The cohort.csv and cohort pages `out` holds, each with what tells it from the same name written again (inode,
    size, modification time). Taken as a cohort run begins: a Ctrl-C that stops it before its first case, or after
    its last, then removes those of an earlier run and leaves its own (`remove_earlier_cohort`)."""
    found = {}
    for path in [out / COHORT_CSV, out / f"{COHORT_PAGE}.html", out / f"{COHORT_PAGE}.pdf"]:
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):  # none there: nothing of an earlier run to remove
            continue
        found[path] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return found


def remove_earlier_cohort(out: Path, found: Mapping[Path, tuple[int, int, int]] | None) -> tuple[list[Path], list[str]]:
    """Remove the cohort files in `out` still as `found` when the run began (`cohort_files`; None: it stopped before
    it looked, so that every one there is an earlier run's): left, they would read as this run's. Returns the files
    removed and, for each that could not be, why."""
    earlier = [path for path, now in cohort_files(out).items() if found is None or found.get(path) == now]
    return _remove_earlier_cohort(earlier)  # those changed since `found` were written by this run


def _remove_earlier_cohort(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Remove `paths`, an earlier run's cohort files: those removed and, for each that could not be, why."""
    removed, kept = [], []
    for path in paths:
        try:
            path.unlink()
            removed.append(path)
        except OSError as error:
            kept.append(f"could not remove {path} ({error.strerror or error}): an earlier run's, not this run's")
    return removed, kept


def _plan_cohort_case(
    protocol: Protocol,
    case_file: Path,
    out: Path,
    taken: set[str],
    solver: str | None,
    pdf: bool,
    progress: StageProgress | None,
) -> CohortEntry:
    stages = StageTimer(progress)
    try:
        with stages.stage("load case"):
            case = Case.load(case_file)
    except SpeccError as error:
        return CohortEntry(str(case_file), None, None, None, str(error))
    folder = out / folder_name(case.case_id, taken)
    taken.add(folder.name)
    try:
        outcome = _plan_case(protocol, case, case_file, folder, solver, pdf, stages)
    except SpeccError as error:
        return CohortEntry(str(case_file), case.case_id, folder, None, str(error), read_sha256=case.content_hash())
    # a plan's record holds the hash; without one (a failed solve) it is taken here, as the record would have
    unplanned = case.content_hash() if outcome.record is None else None
    return CohortEntry(str(case_file), case.case_id, folder, outcome, None, read_sha256=unplanned)
