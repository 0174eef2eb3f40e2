"""A plan solved on a sample, checked on every voxel and finished there when the sample may have cost too much.

A sampled structure (`specc.compile.voxels`) makes the program smaller, but its optimum is
not the every-voxel optimum. `specc.compile.sampling` values the sampled terms on every
voxel at the plan; their total excess over the sample's estimate is, on average, an upper
bound on how far the plan lies above the every-voxel optimum, and its size either way shows
how far the sample's estimate can be off at a fluence (the other part of that gap). When it
is more than the optimizer's own accuracy (`SAMPLE_TOLERANCE` of the objective) in either
direction, the sample is too coarse to trust to that accuracy: the protocol is compiled
on every voxel and the fast path goes on from the sampled plan: most of the work is done,
so it costs a fraction of a cold every-voxel solve (measured in docs/performance.md, eighth
pass). Only a certified fast-path plan on the default sample is finished this way: a
protocol that sets its own `sample_voxels` has chosen its sample; a plan from a cvxpy solver
(priorities, a requested solver) or with hard DVH limits (a CVaR solve by the reference
solver, then an exact refinement) keeps its sample and its notes say what the sample cost,
since an interior-point solve on every voxel can take minutes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from specc.compile import compile_protocol
from specc.compile.sampling import SampledTerm, sampled_terms, sampling_excess, sampling_note
from specc.solve.first_order.solver import FIRST_ORDER_SOLVER, FirstOrderSolver

if TYPE_CHECKING:
    from specc.case import Case
    from specc.compile import CompiledProgram
    from specc.protocol import Protocol
    from specc.solve.choice import SolverSettings
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
) -> CheckedSolve:
    """Value the sampled terms of `result`'s plan on every voxel; finish on every voxel when they cost too much."""
    if result.fluence is None:
        return CheckedSolve(program, result)
    found = sampled_terms(program, case, result.fluence)
    summary = sampling_note(found, result.objective)
    notes = [term.note() for term in found] + ([summary] if summary else [])
    chosen = protocol.optimization is not None and protocol.optimization.solver.sample_voxels is not None
    # A refined plan solved the compiled program with its DVH limits exact, not the program a finish would solve.
    refined = bool(program.hard_dvh_terms())
    if (chosen or refined or not found or result.solver != FIRST_ORDER_SOLVER or result.status != "optimal"
            or not result.objective):
        return CheckedSolve(program, result, found, notes)
    excess = sampling_excess(found) / result.objective
    if abs(excess) <= tolerance:
        return CheckedSolve(program, result, found, notes)

    every_voxel = compile_protocol(protocol, case, sample_limit=None)
    finished = FirstOrderSolver(every_voxel).solve(settings, start=result.fluence)
    why = (
        f"the sampled terms were {100 * abs(excess):.3f}% of the objective {'higher' if excess > 0 else 'lower'} on "
        f"every voxel than on the sample, more than the optimizer's accuracy ({100 * tolerance:g}%)"
    )
    if finished.status != "optimal":
        notes.append(
            f"Sampling: {why}; finishing on every voxel from the sampled plan did not certify "
            f"({finished.message}), so the plan is the sampled one"
        )
        return CheckedSolve(program, result, found, notes)
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
             f"(objective {result.objective:.6g} on the sample, {finished.objective:.6g} on every voxel)"]
    return CheckedSolve(every_voxel, finished, [], notes)
