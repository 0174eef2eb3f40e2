"""A plan solved on a sample, checked on every voxel and solved there when the sample may have cost too much.

A sampled structure (`specc.compile.voxels`) makes the program smaller, but its optimum is
not the every-voxel optimum. `specc.compile.sampling` values the sampled terms on every
voxel at the plan; their total excess over the sample's estimate is, on average, an upper
bound on how far the plan lies above the every-voxel optimum, and its size either way shows
how far the sample's estimate can be off at a fluence (the other part of that gap). When it
is more than the optimizer's own accuracy (`SAMPLE_TOLERANCE` of the objective; of an
objective of 0, `ABSOLUTE_SLIP`) in either direction, the sample is too coarse to trust to
that accuracy, and the protocol is compiled on every voxel. A plan of priority steps is judged
step by step (`StepSample`): each step's sampled terms against that step's objective at the
plan, since each step is an objective of its own, minimized and then kept by the later steps
(until review s19/r4 F2 every step's excess was summed and measured against the last step's
objective, so that steps' excesses could cancel):

* a certified fast-path plan of one step goes on from the sampled plan on the fast path: most
  of the work is done, so it costs a fraction of a cold every-voxel solve (measured in
  docs/performance-history.md, eighth pass);
* any other plan (priority steps, hard DVH limits and their exact refinement, a requested
  cvxpy solver: interior-point solves, which do not start warm) is solved again on every
  voxel by the same pipeline (`solve_clinical`). Until audit s19/b2 F1/F3 such a plan kept
  its sample with a note only, and the exact refinement exploited it: it drove a sampled
  `Max <= 35 Gy` penalty to 0 by dosing the unsampled voxels (prostate, 10 mm: tissue max
  56.78 Gy; 34.96 Gy on every voxel), the plan read `optimal` with no warning. Adding the
  voxels that carry the excess to the sample as exact rows and solving again (row
  generation) was measured against it: docs/performance-history.md, "Sampled plans solved again".

A protocol that sets its own `sample_voxels` has chosen its sample and keeps it; so does a
plan whose solve did not end optimal, and one whose every-voxel solve does not end optimal.
Where such a plan's sample cost more than the accuracy, the plan carries a warning
(`SolveResult.warnings`: plan.json, the report's banner, the terminal), not only a note: the
goals of its sampled structures may fail for the sample, not for the physics. A plan solved on
every voxel after its sample proved too coarse says so (`CheckedSolve.too_coarse`), so that a
session's next plan of the same structures compiles on every voxel from the start
(`specc.planning.SampleMemory`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard

from specc.compile import compile_protocol
from specc.compile.derive import term_priorities
from specc.compile.sampling import SampledTerm, sampled_terms, sampling_excess
from specc.solve.clinical import solve_clinical
from specc.solve.first_order.solver import FIRST_ORDER_SOLVER, FirstOrderSolver
from specc.solve.priorities import ABSOLUTE_SLIP, StepMemory, plan_steps

if TYPE_CHECKING:
    from specc.case import Case
    from specc.compile import CompiledProgram
    from specc.protocol import Protocol
    from specc.solve.choice import SolverSettings
    from specc.solve.priorities import Step, StepProgress
    from specc.solve.result import SolveResult

# The accuracy for a plan's objective, which the fast path's certificate is built
# to meet (`Tolerances`): a sample that may cost more than this is not kept.
SAMPLE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class CheckedSolve:
    """The plan and the program it solves (the every-voxel one after a finish), with what sampling cost."""

    program: CompiledProgram
    result: SolveResult
    sampled: list[SampledTerm] = field(default_factory=list)  # at the plan, when it kept its sample
    notes: list[str] = field(default_factory=list)
    # The sample cost more than the accuracy and the plan came from every voxel: a re-plan of the same
    # structures can compile on every voxel from the start (`specc.planning.SampleMemory`).
    too_coarse: bool = False


@dataclass(frozen=True)
class StepSample:
    """The sampled terms of one priority step (of a plan of one step: of its objective), against that objective.

    The excess is judged step by step (review s19/r4 F2): a step's objective is what its solve minimized
    and the later steps kept, so that is what its sampled terms' excess is measured against. Summed over
    the steps and measured against the last one's objective, a priority-2 excess could be cancelled by a
    priority-3 term's negative one, and 0.1% of a small last step over-triggered.
    """

    name: str | None  # "step 2 (priority 2 penalties)"; None for a plan of one step
    objective: float | None  # the step's objective at the plan, on the sample
    terms: list[SampledTerm]

    @property
    def excess(self) -> float:
        return sampling_excess(self.terms)

    def beyond(self, tolerance: float) -> bool:
        """Whether its excess on every voxel is more than the optimizer's accuracy (module docstring)."""
        return _beyond(self.excess, self.objective, tolerance)

    def note(self) -> str | None:
        """Its sampled terms' excess on every voxel against its objective, the plan note. A step's is worded as a
        plan's of one step with the step named, so that a plan of steps reads as one of a single step. A plan's
        objective of 0 gives no note (a share of 0 is no measure; `why` says an excess beyond the optimizer's
        accuracy); a step's says what the step reached."""
        if not self.terms:
            return None
        if _measures(self.objective):
            share = f"{100.0 * self.excess / self.objective:+.3f}% of {self._objective} {self.objective:.6g}"
        elif self.name is None:
            return None
        else:
            share = f"{self._objective} reached {_shown(self.objective)}"
        meaning = ("" if self.name is not None else "; on average this bounds how far the plan lies above the "
                   "every-voxel optimum, and its size shows how far the sample's estimate can be off")
        return (
            f"Sampling: on every voxel {self._terms} add {self.excess:.4g} ({share}) to their value on the sample"
            f"{meaning} (`optimization.solver.sample_voxels: all` removes {'both' if self.name is None else 'it'})"
        )

    def why(self, tolerance: float) -> str:
        """How its excess is beyond the optimizer's accuracy, for a plan's message and warning (`beyond`)."""
        way = "higher" if self.excess > 0 else "lower"
        if not _measures(self.objective):
            return (f"{self._terms} were {abs(self.excess):.4g} {way} on every voxel than on the sample, where "
                    f"{self._objective} reached {_shown(self.objective)}")
        return (f"{self._terms} were {100 * abs(self.excess / self.objective):.3f}% of {self._objective} {way} on "
                f"every voxel than on the sample, more than the optimizer's accuracy ({100 * tolerance:g}%)")

    @property
    def _terms(self) -> str:
        return "the sampled terms" if self.name is None else f"the sampled terms of {self.name}"

    @property
    def _objective(self) -> str:
        return "the objective" if self.name is None else "that step's objective"


def check_sample(
    protocol: Protocol,
    case: Case,
    program: CompiledProgram,
    result: SolveResult,
    settings: SolverSettings,
    tolerance: float = SAMPLE_TOLERANCE,
    progress: StepProgress | None = None,
    steps: StepMemory | None = None,
) -> CheckedSolve:
    """Value the sampled terms of `result`'s plan on every voxel; solve on every voxel when they cost too much
    (module docstring). `progress`: told of the every-voxel solve's steps, labelled as such ("every voxel:
    step 1/4: ..."), or a terminal would read the solve as starting over. `steps`: the session's priority steps
    (`StepMemory`), which then holds the every-voxel solve's."""
    if result.fluence is None:
        return CheckedSolve(program, result)
    found = sampled_terms(program, case, result.fluence)
    samples = step_samples(program, result, found)
    notes = [term.note() for term in found] + [note for sample in samples if (note := sample.note()) is not None]
    beyond = [sample for sample in samples if sample.beyond(tolerance)]
    if not beyond:
        return CheckedSolve(program, result, found, notes)
    why = "; ".join(sample.why(tolerance) for sample in beyond)
    chosen = protocol.optimization is not None and protocol.optimization.solver.sample_voxels is not None
    if chosen or result.status != "optimal":
        reason = ("the protocol sets its own optimization.solver.sample_voxels" if chosen
                  else f"the solve ended {result.status}")
        return _kept(program, result, found, notes, why, reason)
    every_voxel = compile_protocol(protocol, case, sample_limit=None)
    if result.solver == FIRST_ORDER_SOLVER and not program.hard_dvh_terms():
        return _finished_warm(every_voxel, program, result, settings, found, samples, notes, why)
    options = protocol.optimization.solver if protocol.optimization is not None else None
    again = solve_clinical(
        every_voxel, settings, None, options.slip_percent if options else None,
        options.coverage_slip_gy if options else None, steps=steps, progress=_every_voxel(progress),
    )
    if again.status != "optimal":
        return _kept(program, result, found, notes, why,
                     f"solved again on every voxel, it ended {again.status} ({again.message})", again)
    return _in_its_place(every_voxel, samples, result, again, why, "solved again",
                         "solved again on every voxel, by the same steps")


def step_samples(program: CompiledProgram, result: SolveResult, found: list[SampledTerm]) -> list[StepSample]:
    """`found` grouped by the priority step of its terms, each step with its objective at `result`'s plan.

    The steps are `solve_clinical`'s (the terms' own priorities). A plan of one step is judged against its
    objective, as solved; a step's objective is the sum of its terms' values in the plan's log (`result.terms`,
    of the problem the plan solves: every term, the earlier and later steps' kept by their bounds or limits).
    """
    steps = plan_steps(program, term_priorities([compiled.term for compiled in program.terms]))
    if len(steps) <= 1:
        return [StepSample(None, result.objective, found)]
    if len(result.terms) != len(program.terms):
        raise ValueError(f"the plan's log has {len(result.terms)} terms, its program {len(program.terms)}")
    index_of = {term.index: term for term in found}
    return [
        StepSample(
            f"step {number} ({step.name})", _step_objective(result, step),
            [index_of[i] for i in step.terms if i in index_of],
        )
        for number, step in enumerate(steps, start=1)
    ]


def _step_objective(result: SolveResult, step: Step) -> float | None:
    """The step's objective at the plan: its terms' values in the plan's log (a term no solve valued counts 0)."""
    if not result.usable:
        return None
    values = [result.terms[i].objective_contribution for i in step.terms]
    return float(sum(value for value in values if value is not None))


def _every_voxel(progress: StepProgress | None) -> StepProgress | None:
    """`progress` with the every-voxel solve's steps labelled as a second solve (review s19/r4 F5)."""
    if progress is None:
        return None
    return lambda label, seconds: progress(f"every voxel: {label}", seconds)


def _beyond(excess: float, objective: float | None, tolerance: float) -> bool:
    """Whether the sampled terms' excess on every voxel is more than the optimizer's accuracy (module docstring)."""
    if not _measures(objective):
        return abs(excess) > ABSOLUTE_SLIP
    return abs(excess) > tolerance * objective


def _measures(objective: float | None) -> TypeGuard[float]:
    """Whether a share of `objective` measures an excess: of an objective of 0 (or none) it is no measure."""
    return objective is not None and objective > 0.0


def _compared(sampled: list[StepSample], every_voxel: list[StepSample]) -> str:
    """Each step's objective in the sampled plan (on its sample) and in the every-voxel plan."""
    if len(sampled) == 1 and sampled[0].name is None:
        before, after = sampled[0].objective, every_voxel[0].objective
        return f"objective {_shown(before)} on the sample, {_shown(after)} on every voxel"
    pairs = "; ".join(f"{before.name}: {_shown(before.objective)} -> {_shown(after.objective)}"
                      for before, after in zip(sampled, every_voxel))
    return f"each step's objective, the sampled plan's on its sample -> the every-voxel plan's: {pairs}"


def _shown(objective: float | None) -> str:
    return "n/a" if objective is None else f"{objective:.6g}"


def _kept(
    program: CompiledProgram, result: SolveResult, found: list[SampledTerm], notes: list[str], why: str, reason: str,
    again: SolveResult | None = None,
) -> CheckedSolve:
    """The sampled plan, kept although its sample cost more than the accuracy: with a warning naming the terms.
    `again`: the every-voxel solve that did not end optimal, whose time the plan's solve time includes (F6)."""
    worst = sorted(found, key=lambda term: term.on_sample - term.on_every_voxel)
    named = "; ".join(f"{term.label}: {term.on_sample:.4g} on the sample, {term.on_every_voxel:.4g} on every voxel"
                      for term in worst[:3])
    structures = ", ".join(sorted({term.structure for term in found}))
    warning = (
        f"The plan was optimized on a sample of the voxels of {structures}, and kept so ({reason}), but {why}: the plan "
        f"may lie further from the every-voxel optimum than that, and a goal on {structures} may fail because of the "
        f"sample, not because the plan cannot meet it ({named}). Set optimization.solver.sample_voxels: all to "
        "optimize on every voxel"
    )
    kept = dataclasses.replace(result, warnings=[*result.warnings, warning])
    if again is not None:  # review s19/r4 F6: a re-solve of minutes was missing from the plan's time and message
        kept = dataclasses.replace(
            kept, solve_time_s=result.solve_time_s + again.solve_time_s,
            message=f"{result.message} Then, as {why}, the protocol was compiled on every voxel: {reason} "
                    f"({again.solve_time_s:.2f} s); the sampled plan is kept.",
        )
    return CheckedSolve(program, kept, found, notes)


def _finished_warm(
    every_voxel: CompiledProgram, program: CompiledProgram, result: SolveResult, settings: SolverSettings,
    found: list[SampledTerm], samples: list[StepSample], notes: list[str], why: str,
) -> CheckedSolve:
    """A one-step fast-path plan, finished on every voxel by the fast path from the sampled plan."""
    finished = FirstOrderSolver(every_voxel).solve(settings, start=result.fluence)
    if finished.status != "optimal":
        return _kept(program, result, found, notes, why,
                     f"finishing on every voxel from the sampled plan did not certify ({finished.message})", finished)
    return _in_its_place(every_voxel, samples, result, finished, why, "the fast path went on from that plan",
                         "finished on every voxel, warm from the sampled plan")


def _in_its_place(
    every_voxel: CompiledProgram, samples: list[StepSample], result: SolveResult, again: SolveResult, why: str,
    went: str, how: str,
) -> CheckedSolve:
    """`again`, the every-voxel plan, in place of the sampled `result`: the time and iterations of both, its message
    after the sampled plan's with `why` and how it went on (`went`: "solved again"), and a note comparing each
    step's objective in both plans (`how`: "solved again on every voxel, by the same steps"): a reader sees the
    sampled solve, why it was not kept and what the second one changed."""
    message = f"{result.message} Then, as {why}, the protocol was compiled on every voxel and {went}: {again.message}"
    solved = dataclasses.replace(
        again, message=message, solve_time_s=result.solve_time_s + again.solve_time_s,
        iterations=(result.iterations or 0) + (again.iterations or 0),
    )
    compared = _compared(samples, step_samples(every_voxel, again, []))
    return CheckedSolve(every_voxel, solved, [], [f"Sampling: {why}: the plan was {how} ({compared})"], too_coarse=True)
