"""A plan solved on a sample, checked on every voxel and solved there when the sample may have cost too much.

A sampled structure (`specc.compile.voxels`) makes the program smaller, but its optimum is
not the every-voxel optimum. `specc.compile.sampling` values the sampled terms on every
voxel at the plan; their total excess over the sample's estimate is, on average, an upper
bound on how far the plan lies above the every-voxel optimum, and its size either way shows
how far the sample's estimate can be off at a fluence (the other part of that gap). When it
is more than the optimizer's own accuracy (`SAMPLE_TOLERANCE` of the objective; of an
objective of 0, `ABSOLUTE_SLIP`) in either direction, the sample is too coarse to trust to
that accuracy, and the protocol is compiled on every voxel:

* a certified fast-path plan of one step goes on from the sampled plan on the fast path: most
  of the work is done, so it costs a fraction of a cold every-voxel solve (measured in
  docs/performance.md, eighth pass);
* any other plan (priority steps, hard DVH limits and their exact refinement, a requested
  cvxpy solver: interior-point solves, which do not start warm) is solved again on every
  voxel by the same pipeline (`solve_clinical`). Until audit s19/b2 F1/F3 such a plan kept
  its sample with a note only, and the exact refinement exploited it: it drove a sampled
  `Max <= 35 Gy` penalty to 0 by dosing the unsampled voxels (prostate, 10 mm: tissue max
  56.78 Gy; 34.96 Gy on every voxel), the plan read `optimal` with no warning. Adding the
  voxels that carry the excess to the sample as exact rows and solving again (row
  generation) was measured against it: docs/performance.md, "Sampled plans solved again".

A protocol that sets its own `sample_voxels` has chosen its sample and keeps it; so does a
plan whose solve did not end optimal, and one whose every-voxel solve does not end optimal.
Where such a plan's sample cost more than the accuracy, the plan carries a warning
(`SolveResult.warnings`: plan.json, the report's banner, the terminal), not only a note: the
goals of its sampled structures may fail for the sample, not for the physics.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from specc.compile import compile_protocol
from specc.compile.sampling import SampledTerm, sampled_terms, sampling_excess, sampling_note
from specc.solve.clinical import solve_clinical
from specc.solve.first_order.solver import FIRST_ORDER_SOLVER, FirstOrderSolver
from specc.solve.priorities import ABSOLUTE_SLIP

if TYPE_CHECKING:
    from specc.case import Case
    from specc.compile import CompiledProgram
    from specc.protocol import Protocol
    from specc.solve.choice import SolverSettings
    from specc.solve.priorities import StepProgress
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


def check_sample(
    protocol: Protocol,
    case: Case,
    program: CompiledProgram,
    result: SolveResult,
    settings: SolverSettings,
    tolerance: float = SAMPLE_TOLERANCE,
    progress: StepProgress | None = None,
) -> CheckedSolve:
    """Value the sampled terms of `result`'s plan on every voxel; solve on every voxel when they cost too much
    (module docstring). `progress`: told of the every-voxel solve's steps, as of the first solve's."""
    if result.fluence is None:
        return CheckedSolve(program, result)
    found = sampled_terms(program, case, result.fluence)
    summary = sampling_note(found, result.objective)
    notes = [term.note() for term in found] + ([summary] if summary else [])
    excess = sampling_excess(found)
    if not found or not _beyond(excess, result.objective, tolerance):
        return CheckedSolve(program, result, found, notes)
    why = _why(excess, result.objective, tolerance)
    chosen = protocol.optimization is not None and protocol.optimization.solver.sample_voxels is not None
    if chosen or result.status != "optimal":
        reason = ("the protocol sets its own optimization.solver.sample_voxels" if chosen
                  else f"the solve ended {result.status}")
        return _kept(program, result, found, notes, why, reason)
    every_voxel = compile_protocol(protocol, case, sample_limit=None)
    if result.solver == FIRST_ORDER_SOLVER and not program.hard_dvh_terms():
        return _finished_warm(every_voxel, program, result, settings, found, notes, why)
    options = protocol.optimization.solver if protocol.optimization is not None else None
    again = solve_clinical(
        every_voxel, settings, None, options.slip_percent if options else None,
        options.coverage_slip_gy if options else None, progress=progress,
    )
    if again.status != "optimal":
        return _kept(program, result, found, notes, why,
                     f"solved again on every voxel, it ended {again.status} ({again.message})")
    message = (
        f"{result.message} Then, as {why}, the protocol was compiled on every voxel and solved again: {again.message}"
    )
    again = dataclasses.replace(
        again, message=message, solve_time_s=result.solve_time_s + again.solve_time_s,
        iterations=(result.iterations or 0) + (again.iterations or 0),
    )
    notes = [f"Sampling: {why}: the plan was solved again on every voxel, by the same steps (objective "
             f"{_shown(result.objective)} on the sample, {_shown(again.objective)} on every voxel)"]
    return CheckedSolve(every_voxel, again, [], notes)


def _beyond(excess: float, objective: float | None, tolerance: float) -> bool:
    """Whether the sampled terms' excess on every voxel is more than the optimizer's accuracy (module docstring)."""
    if objective is None or objective <= 0.0:
        return abs(excess) > ABSOLUTE_SLIP
    return abs(excess) > tolerance * objective


def _why(excess: float, objective: float | None, tolerance: float) -> str:
    if objective is None or objective <= 0.0:
        return (f"the sampled terms were {abs(excess):.4g} {'higher' if excess > 0 else 'lower'} on every voxel than "
                f"on the sample, where the objective reached {_shown(objective)}")
    return (
        f"the sampled terms were {100 * abs(excess / objective):.3f}% of the objective "
        f"{'higher' if excess > 0 else 'lower'} on every voxel than on the sample, more than the optimizer's "
        f"accuracy ({100 * tolerance:g}%)"
    )


def _shown(objective: float | None) -> str:
    return "n/a" if objective is None else f"{objective:.6g}"


def _kept(
    program: CompiledProgram, result: SolveResult, found: list[SampledTerm], notes: list[str], why: str, reason: str
) -> CheckedSolve:
    """The sampled plan, kept although its sample cost more than the accuracy: with a warning naming the terms."""
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
    return CheckedSolve(program, dataclasses.replace(result, warnings=[*result.warnings, warning]), found, notes)


def _finished_warm(
    every_voxel: CompiledProgram, program: CompiledProgram, result: SolveResult, settings: SolverSettings,
    found: list[SampledTerm], notes: list[str], why: str,
) -> CheckedSolve:
    """A one-step fast-path plan, finished on every voxel by the fast path from the sampled plan."""
    finished = FirstOrderSolver(every_voxel).solve(settings, start=result.fluence)
    if finished.status != "optimal":
        return _kept(program, result, found, notes, why,
                     f"finishing on every voxel from the sampled plan did not certify ({finished.message})")
    message = (
        f"{result.message} Then, as {why}, the protocol was compiled on every voxel and the fast path went on "
        f"from that plan: {finished.message}"
    )
    finished = dataclasses.replace(
        finished,
        message=message,
        iterations=(result.iterations or 0) + (finished.iterations or 0),
        solve_time_s=result.solve_time_s + finished.solve_time_s,
    )
    notes = [f"Sampling: {why}: the plan was finished on every voxel, warm from the sampled plan "
             f"(objective {_shown(result.objective)} on the sample, {finished.objective:.6g} on every voxel)"]
    return CheckedSolve(every_voxel, finished, [], notes)
