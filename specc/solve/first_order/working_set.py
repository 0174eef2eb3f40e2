"""Solving on a working set: the beamlets and voxels the plan so far says matter.

After a weight or limit change the optimum moves, but mostly within the beamlets that
carry fluence and the voxels whose dose some term pulls on. At the 5 mm C-shape's optimum
half the beamlets are at 0 with a gradient pushing them there, and 79% of the dose rows
(54% of the nonzeros) sit where no term pulls even with every dose moved by 10%. A warm
re-solve therefore runs on the submatrix of the pulled rows and the beamlets that hold or
want fluence (`WorkingSetOperator`): every product is cheaper, and beamlets that only
hover at 0 no longer slow L-BFGS-B down (docs/performance-history.md, tenth pass). A first solve
does the same once its plan has taken shape (`minimize_from_scratch`).

Nothing is assumed: the working set's plan is judged by the whole program's float64
certificate. Where beamlets outside it want fluence or rows outside it are pulled on, they
join and the run goes on from where it stopped; when the sets stop growing and the
certificate still fails, the whole program takes over from that point.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp

from specc.case.products import BLOCK_NONZEROS, select_rows
from specc.solve.first_order.assemble import DoseOperator, KktParts, SmoothProgram
from specc.solve.first_order.augmented_lagrangian import (
    AugmentedLagrangianResult,
    Outcome,
    Tolerances,
    judge,
    minimize_augmented_lagrangian,
    pulls,
)

# A row stays in the products when some term pulls on its voxel with every dose moved by up
# to this fraction of itself: a cushion for the doses the change moves.
ROW_MARGIN = 0.1
_MAX_WORKING_SETS = 6  # after that many, the whole program finishes the solve
# Inner iterations (at the end of a round) between checks of the set against the whole program:
# beamlets the moving plan comes to want join before a run converges without them (each such
# convergence cost about as many iterations again after the set grew; docs/performance-history.md, tenth pass).
CHECK_EVERY = 200
SHAPED = 0.1  # the stationarity at which a first solve leaves the whole program for working sets
LOOK_AHEAD = 20  # whole-program iterations before the first set, from a start that is not shaped


class WorkingSetOperator:
    """s A z and s A.T g on a working set: the submatrix of some rows and columns (`DoseOperator`).

    The fluence outside the columns is held at 0, so the rows' doses are exact; the other
    rows keep the dose they had when the set was chosen, where no term pulls, so that their
    gradient is 0 and the adjoint never needs them.
    """

    def __init__(self, products: DoseOperator, rows: np.ndarray, columns: np.ndarray, n_beamlets: int,
                 base_dose: np.ndarray) -> None:
        self._products = products
        self.rows, self.columns = rows, columns
        self.n_beamlets = n_beamlets
        self.base_dose = base_dose
        self.float64 = products.float64
        self.scale = products.scale

    @classmethod
    def of(cls, whole: DoseOperator, rows: np.ndarray, columns: np.ndarray, base_dose: np.ndarray
           ) -> WorkingSetOperator:
        """The set of `whole`'s operator, with its scale and the rows' part of its offset (a prior dose)."""
        offset = None if whole.offset is None else whole.offset[rows]
        products = DoseOperator(_submatrix(whole.influence, rows, columns), offset=offset, scale=whole.scale)
        return cls(products, rows, columns, whole.influence.shape[1], base_dose)

    @property
    def nonzeros(self) -> int:
        return self._products.nonzeros

    def in_float64(self) -> WorkingSetOperator:
        # No float64 copy of the set's values: it would live beside the whole matrix (every voxel of
        # the large case, weight x4: peak 3.06x the matrix with the copy; docs/performance-history.md, tenth pass).
        products = self._products.in_float64_without_copy()
        return WorkingSetOperator(products, self.rows, self.columns, self.n_beamlets, self.base_dose)

    def forget_anchor(self) -> None:
        self._products.forget_anchor()

    def forward(self, fluence: np.ndarray) -> np.ndarray:
        dose = self.base_dose.copy()
        dose[self.rows] = self._products.forward(fluence[self.columns])
        return dose

    def adjoint(self, dose_gradient: np.ndarray) -> np.ndarray:
        gradient = np.zeros(self.n_beamlets)
        gradient[self.columns] = self._products.adjoint(dose_gradient[self.rows])
        return gradient


def _submatrix(influence: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> sp.csr_matrix:
    """`influence[rows][:, columns]` by blocks of rows, so that the rows' copy with every column never lives whole."""
    nonzeros = int(np.diff(influence.indptr)[rows].sum())
    blocks = np.array_split(rows, max(1, -(-nonzeros // BLOCK_NONZEROS)))
    return sp.vstack([select_rows(influence, block)[:, columns] for block in blocks], format="csr")


def minimize_on_working_sets(
    program: SmoothProgram,
    z: np.ndarray,
    tolerances: Tolerances,
    multipliers: np.ndarray | None,
    penalty: float | None,
) -> AugmentedLagrangianResult:
    """`minimize_augmented_lagrangian` from a plan (the last one, a sampled one, a first solve's shaped one),
    run on working sets that grow as needed."""
    started = time.perf_counter()
    precise = program.with_operator(program.operator.in_float64())
    influence = program.operator.influence
    n = program.n_beamlets
    free = np.zeros(n, dtype=bool)
    rows = np.zeros(influence.shape[0], dtype=bool)
    y = np.zeros(program.n_constraints) if multipliers is None else multipliers
    runs: list[AugmentedLagrangianResult] = []
    sets: list[tuple[int, int]] = []
    operator: WorkingSetOperator | None = None
    retried = False
    while True:
        dose = precise.operator.forward(z[:n])
        parts = precise.kkt_parts(z, y, dose)
        if runs and judge(precise, z, y, parts).holds(tolerances):
            return _combined(precise, tolerances, runs, sets, z, y, parts)
        remaining = _remaining(tolerances, runs, started)
        if runs and (remaining.max_iterations <= 0 or remaining.time_limit_s == 0.0):
            stop: Outcome = "iteration_limit" if remaining.max_iterations <= 0 else "time_limit"
            return _combined(precise, tolerances, runs, sets, z, y, parts, stop)
        gradient = parts.objective_gradient[:n] + parts.constraint_gradient[:n]
        rho = 1.0 if penalty is None else penalty
        # The set grows when the whole program's certificate fails outside it: a beamlet that
        # wants fluence beyond the stationarity tolerance, a row some term pulls on. It then
        # takes every beamlet that wants any, and the rows pulled on within the margin.
        pull = pulls(precise, z, parts)[0]
        grown = (operator is None or bool(np.any(~free & (gradient < -tolerances.stationarity * pull)))
                 or bool(np.any(~rows & precise.active_entries(z, y, rho, 0.0, dose))))
        settled = not grown and runs[-1].outcome != "paused"
        if (settled and retried) or (grown and len(sets) == _MAX_WORKING_SETS):
            break  # converged twice on a set that does not grow, yet not optimal, or too many sets: the whole program decides
        # A run that converged on a set that does not grow, the whole program's certificate failing,
        # goes on once on the same set against the pull of the held beamlets now (`floors` below):
        # they were measured when the set was chosen, and where their pull has shrunk since, the set
        # passed its test while the whole program's failed, narrowly (large case, weight x1.05: 138
        # iterations on the set, then 5 on the whole program, which took a fifth of the re-solve).
        retried = settled
        if grown:
            free = free | (z[:n] > 0) | (gradient < 0)
            rows = rows | precise.active_entries(z, y, rho, ROW_MARGIN, dose)
        if operator is None and judge(precise, z, y, parts).stationarity > SHAPED:
            # A start far from its optimum (a large change) says little about where the plan goes:
            # look ahead on the whole program, start from there, and take what either point wants.
            budget = dataclasses.replace(remaining, max_iterations=min(LOOK_AHEAD, remaining.max_iterations))
            ahead = minimize_augmented_lagrangian(program, z, budget, multipliers, penalty)
            runs.append(ahead)
            remaining = _remaining(tolerances, runs, started)
            z = ahead.z
            dose = precise.operator.forward(z[:n])
            parts = precise.kkt_parts(z, y, dose)
            free = free | (z[:n] > 0) | (parts.objective_gradient[:n] + parts.constraint_gradient[:n] < 0)
            rows = rows | precise.active_entries(z, y, rho, ROW_MARGIN, dose)
        frozen = np.zeros(program.size, dtype=bool)
        frozen[:n] = ~free
        floors = tuple(pulls(precise, z, parts, among=frozen))
        if grown:
            sets.append((int(free.sum()), int(rows.sum())))
            operator = None  # the last set's matrix goes before the next is built
            operator = WorkingSetOperator.of(program.operator, np.flatnonzero(rows), np.flatnonzero(free), dose)
        run = minimize_augmented_lagrangian(program.on_working_set(operator, ~free, floors), z,
                                            dataclasses.replace(remaining, pause_after=CHECK_EVERY), y, penalty)
        runs.append(run)
        paused = run.outcome == "paused"
        if run.outcome in ("time_limit", "iteration_limit"):
            return _combined(precise, tolerances, runs, sets, run.z, run.multipliers,
                             precise.kkt_parts(run.z, run.multipliers))
        # A paused run goes on at its penalty; a converged one hands its point to a larger set
        # with the penalty it started from (as a warm re-solve does: 10 mm test case, 170 -> 90
        # iterations after the set grew).
        z, y, penalty = run.z, run.multipliers, run.penalty if paused else run.initial_penalty
    whole = minimize_augmented_lagrangian(program, z, _remaining(tolerances, runs, started), y, penalty)
    return _combined(precise, tolerances, [*runs, whole], sets, whole.z, whole.multipliers, None)


def minimize_from_scratch(program: SmoothProgram, z: np.ndarray, tolerances: Tolerances) -> AugmentedLagrangianResult:
    """A first solve: the whole program until the plan has taken shape, then its working sets.

    The whole program runs until its stationarity is `SHAPED` (a tenth of the pull), when the
    beamlets and rows that matter are known; working sets take it from there to the
    certificate (5 mm C-shape first solve 1.65 -> 0.87 s, large case 3.66 -> 2.59 s, and
    within the noise of that for a stationarity of 0.03 to 0.3; docs/performance-history.md, tenth pass).
    Its test is the certificate loosened as a whole (`shaping`).
    """
    started = time.perf_counter()
    shaped = minimize_augmented_lagrangian(program, z, shaping(tolerances))
    if shaped.outcome != "converged":
        return shaped  # a limit, or no shape even at the loose tolerance: the caller decides as for any run
    # The multipliers go on; the penalty restarts where this run started, as for a warm re-solve:
    # at its final value the first round must be solved to the certificate's stationarity at the
    # worst conditioning (10 mm soft-limits test case: 10,680 iterations instead of 2,010).
    constrained = program.n_constraints > 0
    rest = minimize_on_working_sets(program, shaped.z, _remaining(tolerances, [shaped], started),
                                    shaped.multipliers if constrained else None,
                                    shaped.initial_penalty if constrained else None)
    return dataclasses.replace(
        rest, iterations=shaped.iterations + rest.iterations, rounds=shaped.rounds + rest.rounds,
        outer_iterations=shaped.outer_iterations + rest.outer_iterations,
        evaluations=shaped.evaluations + rest.evaluations, polished=shaped.polished or rest.polished,
        nonzero_iterations=shaped.nonzero_iterations + rest.nonzero_iterations,
    )


def shaping(tolerances: Tolerances) -> Tolerances:
    """The shaping run's test: the certificate's three residuals, each loosened by the same factor, so that its
    stationarity is `SHAPED`.

    The shaping run only finds the beamlets and rows that matter; the working sets meet the limits to the
    certificate. Held to the certificate's feasibility there, its rounds (each cut at the loose stationarity, their
    multipliers from subproblems hardly solved) failed to halve the violation, the penalty grew a hundredfold and
    one round at the largest penalty took most of the solve (5 mm C-shape with a hard PTV maximum and core mean:
    1,710 -> 850 iterations; large case 2,040 -> 1,400; docs/performance-history.md, twenty-second pass).
    """
    factor = max(SHAPED / tolerances.stationarity, 1.0)
    return dataclasses.replace(
        tolerances, stationarity=factor * tolerances.stationarity, feasibility=factor * tolerances.feasibility,
        complementarity=factor * tolerances.complementarity,
    )


def _remaining(tolerances: Tolerances, runs: list[AugmentedLagrangianResult], started: float) -> Tolerances:
    spent = sum(run.iterations for run in runs)
    limit = tolerances.time_limit_s
    return dataclasses.replace(
        tolerances, max_iterations=tolerances.max_iterations - spent,
        time_limit_s=None if limit is None else max(limit - (time.perf_counter() - started), 0.0),
    )


def _combined(precise: SmoothProgram, tolerances: Tolerances, runs: list[AugmentedLagrangianResult],
              sets: list[tuple[int, int]], z: np.ndarray, y: np.ndarray, parts: KktParts | None,
              stop: Outcome | None = None) -> AugmentedLagrangianResult:
    """One result for the runs, judged on the whole program (`parts` at z; None: the last run was the whole program).

    `stop`: the budget ran out between runs (the last run may have ended otherwise, e.g. paused).
    """
    certificate, outcome = runs[-1].certificate, stop or runs[-1].outcome
    if parts is not None:
        certificate = judge(precise, z, y, parts)
        if outcome not in ("time_limit", "iteration_limit"):
            outcome = "converged" if certificate.holds(tolerances) else "uncertified"
    if parts is None:  # the whole program's own run measured them
        objective, violation = runs[-1].objective, runs[-1].violation
    else:
        objective, violation = parts.objective, float(max(parts.residuals.max(initial=0.0), 0.0))
    return AugmentedLagrangianResult(
        z=z, multipliers=y, penalty=runs[-1].penalty, outcome=outcome, objective=objective, violation=violation,
        iterations=sum(r.iterations for r in runs), outer_iterations=sum(r.outer_iterations for r in runs),
        evaluations=sum(r.evaluations for r in runs), rounds=[round_ for r in runs for round_ in r.rounds],
        certificate=certificate, polished=any(r.polished for r in runs),
        nonzero_iterations=sum(r.nonzero_iterations for r in runs),
        working_sets=tuple(sets),
    )
