"""Small stand-ins for the compile and evaluate stages, so term kinds can be tested alone.

A `FakeCase` holds one random non-negative influence matrix per structure (Gy per unit
beamlet weight per fraction); `FakeBuildContext` exposes `d = A @ x` per structure like the
compile stage does, `FakeEvaluationContext` the total dose of a final fluence like the
evaluate stage does (every voxel the same volume).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from specc.protocol.units import Dose


@dataclass
class FakeCase:
    influence: dict[str, np.ndarray]
    fractions: int = 5
    voxel_cc: float = 0.125
    beamlets_per_beam: int = 4
    # Relative volume of each row in the build context; None: equal volumes.
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    # x_ref, the beamlet weight the terms on the fluence are relative to (the compile stage's `ReferenceFluence`).
    reference_fluence: float = 1.0

    @property
    def n_beamlets(self) -> int:
        return next(iter(self.influence.values())).shape[1]

    def smoothness_operator(self) -> sp.csr_matrix:
        """First differences between consecutive beamlets inside each beam."""
        per_beam = self.beamlets_per_beam
        beams = self.n_beamlets // per_beam
        step = sp.diags([-np.ones(per_beam - 1), np.ones(per_beam - 1)], [0, 1], shape=(per_beam - 1, per_beam))
        return sp.block_diag([step] * beams, format="csr")

    def dose_per_fraction(self, structure: str, fluence: np.ndarray) -> np.ndarray:
        return self.influence[structure] @ fluence


def random_case(
    seed: int = 0,
    sizes: dict[str, int] | None = None,
    n_beamlets: int = 12,
    fractions: int = 5,
    weighted: bool = False,
) -> FakeCase:
    """Random influence (about 2 Gy per fraction at unit fluence) for the given structures."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"Target": 40, "Organ": 60}
    highest = 2.0 * 2.0 / n_beamlets  # mean entry 2 / n_beamlets: about 2 Gy per fraction at unit fluence
    influence = {name: rng.uniform(0.0, highest, size=(rows, n_beamlets)) for name, rows in sizes.items()}
    weights = {}
    if weighted:
        for name, rows in sizes.items():
            raw = rng.uniform(0.2, 3.0, size=rows)
            weights[name] = raw / raw.sum()
    return FakeCase(influence=influence, fractions=fractions, weights=weights)


class FakeBuildContext:
    def __init__(self, case: FakeCase) -> None:
        self.case = case
        self.n_beamlets = case.n_beamlets  # as the fast path's context gives it (`SmoothContext`)
        self._fluence = cp.Variable(case.n_beamlets, nonneg=True, name="fluence")
        self._doses: dict[str, cp.Expression] = {}

    @property
    def fluence(self) -> cp.Variable:
        return self._fluence

    def dose(self, structure: str) -> cp.Expression:
        if structure not in self._doses:
            self._doses[structure] = self.case.influence[structure] @ self._fluence
        return self._doses[structure]

    def voxel_weights(self, structure: str) -> np.ndarray:
        if structure in self.case.weights:
            return self.case.weights[structure]
        rows = self.case.influence[structure].shape[0]
        return np.full(rows, 1.0 / rows)

    def volume_cc(self, structure: str) -> float:
        return self.case.influence[structure].shape[0] * self.case.voxel_cc

    def per_fraction(self, dose: Dose) -> float:
        return dose.gy / self.case.fractions

    def smoothness_operator(self) -> sp.csr_matrix:
        return self.case.smoothness_operator()

    def reference_fluence(self) -> float:
        return self.case.reference_fluence


class FakeEvaluationContext:
    def __init__(self, case: FakeCase, fluence: np.ndarray) -> None:
        self.case = case
        self.fractions = case.fractions
        self.fluence = np.asarray(fluence, dtype=float)

    def dose(self, structure: str) -> np.ndarray:
        return self.fractions * self.case.dose_per_fraction(structure, self.fluence)

    def voxel_volume_cc(self) -> float:
        return self.case.voxel_cc

    def volume_cc(self, structure: str) -> float:
        return self.case.influence[structure].shape[0] * self.case.voxel_cc

    def smoothness_operator(self) -> sp.csr_matrix:
        return self.case.smoothness_operator()


def solve(ctx: FakeBuildContext, built_terms: list, extra_objective: cp.Expression | None = None,
          max_fluence: float = 10.0) -> np.ndarray:
    """Minimize the terms' objectives (plus `extra_objective`) under their constraints; return x.

    The fluence is bounded so that problems whose only objective rewards dose stay bounded.
    """
    objective = sum((t.objective for t in built_terms if t.objective is not None), start=cp.Constant(0.0))
    if extra_objective is not None:
        objective = objective + extra_objective
    constraints = [c for t in built_terms for c in t.constraints] + [ctx.fluence <= max_fluence]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    problem.solve(solver=cp.CLARABEL)
    assert problem.status == cp.OPTIMAL, problem.status
    return np.asarray(ctx.fluence.value, dtype=float)


def target_reward(ctx: FakeBuildContext) -> cp.Expression:
    """Push the target's mean dose up (the fluence bound in `solve` keeps the problem bounded)."""
    return -cp.sum(ctx.dose("Target")) / ctx.dose("Target").size


def fluence_cost(ctx: FakeBuildContext) -> cp.Expression:
    return cp.sum(ctx.fluence) / ctx.fluence.size


def total_dose(case: FakeCase, structure: str, fluence: np.ndarray) -> np.ndarray:
    return case.fractions * case.influence[structure] @ fluence


def solve_with(case: FakeCase, terms: list, extra) -> np.ndarray:
    ctx = FakeBuildContext(case)
    return solve(ctx, [term.build(ctx) for term in terms], extra_objective=extra(ctx))
