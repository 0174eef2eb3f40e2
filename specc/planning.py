"""A protocol compiled for a case as `specc plan` compiles it, and its clinical solve.

Shared by the plan pipeline and by the delivery stage, which compiles the same protocol again
for a case whose columns are MLC segments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from specc.case import Case
from specc.compile import CompiledProgram, compile_protocol
from specc.compile.derive import with_optimization
from specc.protocol import Protocol
from specc.solve import SolverSettings, choose_solver
from specc.solve.clinical import sample_limit_for, solve_clinical
from specc.solve.first_order import WarmStart
from specc.solve.priorities import StepMemory, StepProgress
from specc.solve.sample_check import CheckedSolve, check_sample


@dataclass(frozen=True)
class CompiledPlan:
    """A protocol compiled for planning: what `specc plan` solves, as `solve()` solves it."""

    protocol: Protocol  # with its optimization (derived from the goals when it had none)
    case: Case
    program: CompiledProgram
    settings: SolverSettings
    # Protocol term index -> priority (the route and sample are chosen by it, before compiling); the solve
    # reads the program's own terms' priorities, since compiling leaves out terms on absent structures.
    goal_priorities: dict[int, int]

    def solve(
        self, warm: WarmStart | None = None, steps: StepMemory | None = None, progress: StepProgress | None = None
    ) -> CheckedSolve:
        """The clinical solve, its sample checked on every voxel (and solved there when it cost too much).

        `warm`: where the fast path starts, when it solves the program alone (a previous plan);
        `steps`: the previous plan's priority steps, kept where unchanged (`StepMemory`);
        `progress`: told as each step of a solve in several starts and ends ("step k/n: ..."), so that a
        solve of minutes is not silent (audit a1 F11).
        """
        options = self.protocol.optimization.solver
        result = solve_clinical(
            self.program, self.settings, None, options.slip_percent, options.coverage_slip_gy, warm, steps, progress
        )
        return check_sample(self.protocol, self.case, self.program, result, self.settings, progress=progress)


def compile_for_plan(
    protocol: Protocol, case: Case, solver: str | None = None, reuse: CompiledProgram | None = None
) -> CompiledPlan:
    """Derive the optimization when the protocol has none, choose the solver, compile with the
    sample that solver wants (`sample_limit_for`): the steps of `specc plan` before solving.
    `reuse`: an earlier program of the case, whose rows a compile selecting the same keeps."""
    protocol, goal_priorities = with_optimization(protocol, case)
    settings = choose_solver(solver, protocol.optimization.solver)
    return compile_terms(protocol, case, settings, goal_priorities, reuse)


def compile_terms(
    protocol: Protocol, case: Case, settings: SolverSettings, goal_priorities: Mapping[int, int],
    reuse: CompiledProgram | None = None,
) -> CompiledPlan:
    """Compile a protocol that has its optimization terms, for a chosen solver (the sample it wants)."""
    program = compile_protocol(protocol, case, sample_limit_for(protocol, settings, goal_priorities), reuse=reuse)
    return CompiledPlan(protocol, case, program, settings, dict(goal_priorities))
