"""A protocol compiled for a case as `specc plan` compiles it, and its clinical solve.

Shared by the plan pipeline and by the delivery stage, which compiles the same protocol again
for a case whose columns are MLC segments.
"""

from __future__ import annotations

import json
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


class SampleMemory:
    """The samples that proved too coarse in the plans of one case (`PlanSession`, `specc plan --watch`).

    `check_sample` solves a plan again on every voxel when its sample cost more than the optimizer's
    accuracy. A re-plan that compiled the same sample again paid the sampled solve and then a cold
    every-voxel one on every edit of a `--watch` session (review s19/r4 F7: 27.9 s against 6.9 s for a
    re-plan of the 10 mm prostate, docs/compiler.md step 3), and no priority step could be kept from
    the previous plan (they were the every-voxel solve's). Remembered by what chose the sample, the
    protocol's structures and the sample size the solver wants: while both are unchanged, the next plan
    is compiled on every voxel from the start (`compile_terms`). Any plans of one case's voxels may
    share one: a session's, or the rounds of one plan's segment weights.
    """

    def __init__(self) -> None:
        self._too_coarse: set[str] = set()

    @staticmethod
    def _key(protocol: Protocol, limit: int) -> str:
        structures = {name: spec.model_dump(mode="json") for name, spec in protocol.structures.items()}
        return json.dumps({"structures": structures, "sample_limit": limit}, sort_keys=True)

    def too_coarse(self, protocol: Protocol, limit: int | None) -> bool:
        """Whether a plan of `protocol`'s structures found the sample of `limit` voxels too coarse."""
        return limit is not None and self._key(protocol, limit) in self._too_coarse

    def remember(self, protocol: Protocol, limit: int | None, checked: CheckedSolve) -> None:
        """Keep that `checked`'s plan, compiled with a sample of `limit`, was solved on every voxel for it."""
        if checked.too_coarse and limit is not None:
            self._too_coarse.add(self._key(protocol, limit))


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
    # The plans of this case so far (None: none kept); the sample the solver wants, which `program` has
    # unless `samples` found it too coarse for these structures and it was compiled on every voxel.
    samples: SampleMemory | None = None
    sample_limit: int | None = None
    every_voxel_remembered: bool = False

    def solve(
        self, warm: WarmStart | None = None, steps: StepMemory | None = None, progress: StepProgress | None = None
    ) -> CheckedSolve:
        """The clinical solve, its sample checked on every voxel (and solved there when it cost too much).

        `warm`: where the fast path starts, when it solves the program alone (a previous plan);
        `steps`: the previous plan's priority steps, kept where unchanged (`StepMemory`);
        `progress`: told as each step of a solve in several starts and ends ("step k/n: ..."), so that a
        solve of minutes is not silent (audit a1 F11). `samples` (the compile's) learns whether the sample
        proved too coarse.
        """
        options = self.protocol.optimization.solver
        result = solve_clinical(
            self.program, self.settings, None, options.slip_percent, options.coverage_slip_gy, warm, steps, progress
        )
        checked = check_sample(
            self.protocol, self.case, self.program, result, self.settings, progress=progress, steps=steps
        )
        if self.samples is not None:
            self.samples.remember(self.protocol, self.sample_limit, checked)
        return checked

    def notes(self) -> list[str]:
        """What the plan's notes say of how it was compiled (a sample skipped for what an earlier plan found)."""
        if not self.every_voxel_remembered:
            return []
        return [f"Sampling: compiled on every voxel, not on a sample of {self.sample_limit:,} voxels: an earlier "
                "plan of the same structures found that sample cost more than the optimizer's accuracy and was "
                "solved again on every voxel"]


def compile_for_plan(
    protocol: Protocol, case: Case, solver: str | None = None, reuse: CompiledProgram | None = None,
    samples: SampleMemory | None = None,
) -> CompiledPlan:
    """Derive the optimization when the protocol has none, choose the solver, compile with the
    sample that solver wants (`sample_limit_for`): the steps of `specc plan` before solving.
    `reuse`: an earlier program of the case, whose rows a compile selecting the same keeps;
    `samples`: the samples earlier plans of the case found too coarse (`SampleMemory`)."""
    protocol, goal_priorities = with_optimization(protocol, case)
    settings = choose_solver(solver, protocol.optimization.solver)
    return compile_terms(protocol, case, settings, goal_priorities, reuse, samples)


def compile_terms(
    protocol: Protocol, case: Case, settings: SolverSettings, goal_priorities: Mapping[int, int],
    reuse: CompiledProgram | None = None, samples: SampleMemory | None = None,
) -> CompiledPlan:
    """Compile a protocol that has its optimization terms, for a chosen solver (the sample it wants; every
    voxel where `samples` holds that an earlier plan of the same structures found that sample too coarse)."""
    limit = sample_limit_for(protocol, settings, goal_priorities)
    remembered = samples is not None and samples.too_coarse(protocol, limit)
    program = compile_protocol(protocol, case, None if remembered else limit, reuse=reuse)
    return CompiledPlan(protocol, case, program, settings, dict(goal_priorities), samples, limit, remembered)
