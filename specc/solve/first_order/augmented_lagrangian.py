"""Minimize a `SmoothProgram` under its constraints: an augmented Lagrangian around L-BFGS-B.

The bounds (x >= 0, auxiliary bounds) go to L-BFGS-B directly. The constraints r(z) <= 0 (a
hard limit, or an exact epigraph rewriting, each normalized by its dose) enter the
Powell-Hestenes-Rockafellar augmented Lagrangian; after each inner solve the multipliers are
updated, y <- pos(y + rho r), and the penalty rho grows tenfold whenever the violation did
not at least halve (the safeguarded rules of ALGENCAN: Andreani, Birgin, Martinez and
Schuverdt, SIAM J Optim 18:1286, 2008; also Nocedal and Wright, ch. 17.4).

The rounds run on the case's float32 products (doses anchored on an exact float64 dose,
`DoseOperator.forward`) and stop when a KKT test holds (`certify`: feasibility,
complementarity and stationarity of the Lagrangian; thresholds in `Tolerances`, documented
in docs/performance.md), checked every few inner iterations, so that no run goes on to
`ftol` once its point is certifiable; a round whose limits are still far from met stops
earlier, at its own tolerance (`_Rounds.run`). float32 rounding can still stop an inner run
(no decrease left) before the test holds, and it can fool the test: the verdict is
therefore given with float64 products, and a point that fails it is polished by further
rounds in float64 and checked again. Only a point that passes in float64 is reported `converged`; the
others are `uncertified`, and the caller (`solver.py`) does not call them optimal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import OptimizeResult, minimize
from threadpoolctl import threadpool_limits

from specc.solve.first_order.assemble import Evaluation, KktParts, SmoothProgram
from specc.terms.base import LIMIT_TOLERANCE

Stop = Literal["certified", "round"]  # why an inner run stopped early: the KKT test, or the round's tolerance
Outcome = Literal["converged", "uncertified", "iteration_limit", "time_limit", "stalled", "float32_noise", "paused"]

_GROWTH = 10.0  # penalty growth when the violation did not at least halve (ALGENCAN's gamma, tau)
_REQUIRED_DECREASE = 0.5
_LARGEST_PENALTY = 1e12  # beyond this the limits are taken to be in conflict: the reference solver decides
_MAX_OUTER = 60
# L-BFGS memory (pairs kept): more pairs take fewer iterations (5 mm C-shape first solve: 539,
# 459, 360 iterations with 20, 50, 100) but L-BFGS-B's own work per iteration grows with pairs
# x variables (5 mm prostate, 6,706 variables: 1.5 ms per iteration with 20 pairs, 2.7 ms with
# 100). A quarter of the nonzeros per variable, between 20 and 100 pairs, keeps that work to
# about a quarter of the products': 20 on the tests' 10 mm programs (100 made them 15% slower);
# docs/performance-history.md, eleventh pass. The cap of 400 (it was 100) keeps a whole round's
# pairs where rounds are long: the large case with hard limits, rounds of 150-400 iterations,
# 1,400 -> 1,050 iterations and 13.0 -> 9.1 s, the soft-only large case 361 -> 313 iterations;
# a cap of 200 gave 1,180, no cap (731 pairs) 1,050; docs/performance-history.md, twenty-second pass.
_HISTORY_MIN, _HISTORY_MAX = 20, 400
_NONZEROS_PER_PAIR_AND_VARIABLE = 4


_CHECK_EVERY = 10  # inner iterations between KKT checks that cost products (about 1.5 evaluations)


@dataclass(frozen=True)
class Tolerances:
    """Stopping and certification tolerances of the fast path (see the module docstring).

    The certificate is a relative KKT test in the manner of OSQP and SCS: every normalized
    residual at most `feasibility` (a fraction of the limit's dose); the multipliers'
    complementarity sum |y_i r_i| at most `complementarity` of the objective; the projected
    gradient of the Lagrangian at most `stationarity` of the larger of its two parts (the
    objective's gradient and the multipliers' pull), in the max norm, block by block: the fluence
    and each term's auxiliary variables apart, since they are in different units. (One max
    over all of them let a CVaR's large auxiliary pull hide a fluence residual of 3e-3 of its
    own scale, at a point 0.14% above the optimum; docs/performance-history.md, ninth pass.)
    """

    # Half of LIMIT_TOLERANCE (the 0.1% of a limit's dose), which judges the final dose on the full grid with
    # the same float64 products on the same (never sampled) rows, as the complementarity below is half the issue's
    # accuracy. It was 1e-4 until the twenty-sixth pass: the large case with hard limits then took 1,040 iterations
    # instead of 710, its last four rounds only pushing one PTV voxel from 2e-4 of its dose to below 1e-4
    # (docs/performance.md, twenty-sixth pass).
    feasibility: float = LIMIT_TOLERANCE / 2
    complementarity: float = 5e-4  # |f - L| bounds this part of the gap: half the 0.1% accuracy
    # Measured, not proven: points that pass were within 4.1e-4 of CLARABEL's optimum on every
    # test case and benchmark (the two-sided CVaR case; 2e-4 elsewhere); a CVaR point 0.14%
    # above it measured 7.5e-3 per block (9e-4 against the largest pull: ninth pass).
    stationarity: float = 1e-3
    ftol: float = 1e-12
    gtol: float = 1e-9
    max_iterations: int = 20_000  # inner L-BFGS-B iterations over all outer rounds
    polish_iterations: int = 5_000  # of those, at most this many for the float64 polish
    time_limit_s: float | None = None
    # Return "paused" at the end of the first round after this many inner iterations (a program
    # without constraints has one round, cut there), so that a caller can look at the point
    # (`working_set.py`); a round is never cut, or its multipliers would be updated half-way.
    pause_after: int | None = None


@dataclass(frozen=True)
class Certificate:
    """The KKT residuals of a point, measured with float64 products (see `Tolerances`)."""

    feasibility: float
    complementarity: float
    stationarity: float

    def holds(self, tolerances: Tolerances) -> bool:
        return (
            self.feasibility <= tolerances.feasibility
            and self.complementarity <= tolerances.complementarity
            and self.stationarity <= tolerances.stationarity
        )

    def describe(self) -> str:
        return (
            f"largest violation {self.feasibility:.1e} of a limit's dose, complementarity "
            f"{self.complementarity:.1e} of the objective, stationarity {self.stationarity:.1e}"
        )


@dataclass
class AugmentedLagrangianResult:
    z: np.ndarray
    multipliers: np.ndarray
    penalty: float
    outcome: Outcome
    objective: float
    violation: float  # largest normalized residual (a fraction of the limit's dose), 0 when met
    iterations: int  # inner L-BFGS-B iterations
    outer_iterations: int
    evaluations: int
    rounds: list[dict[str, float]]  # per outer round: inner iterations, violation, penalty, how it ended
    certificate: Certificate | None = None  # measured on every candidate stop
    polished: bool = False  # whether float64 rounds were needed
    # Inner iterations times the nonzeros of the matrix they ran on: the work, where iterations differ in cost.
    nonzero_iterations: int = 0
    # (beamlets, dose rows) of each working set the solve ran on (`working_set.py`); empty: the whole program only
    working_sets: tuple[tuple[int, int], ...] = ()

    @property
    def initial_penalty(self) -> float:
        """The first round's penalty (a warm re-solve restarts there)."""
        return self.rounds[0]["penalty"] if self.rounds else self.penalty


def _progress(residuals: np.ndarray, multipliers: np.ndarray, penalty: float) -> float:
    """ALGENCAN's measure: the violation, and the slack of every constraint whose multiplier is positive."""
    return float(np.abs(np.minimum(-residuals, multipliers / penalty)).max(initial=0.0))


def _violation(residuals: np.ndarray) -> float:
    return float(max(residuals.max(), 0.0)) if residuals.size else 0.0


def _history(program: SmoothProgram) -> int:
    """The L-BFGS memory for `program` (see `_NONZEROS_PER_PAIR_AND_VARIABLE`)."""
    pairs = program.operator.nonzeros // (_NONZEROS_PER_PAIR_AND_VARIABLE * max(program.size, 1))
    return int(np.clip(pairs, _HISTORY_MIN, _HISTORY_MAX))


def _movable(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The variables L-BFGS-B runs on: those its bounds leave free. A working set's held beamlets, fixed at 0, stay
    out of its curvature pairs and of its work per iteration, which follows the variables it is given (large limits
    case: solve 8.0-8.3 -> 7.1-7.4 s, 1,050 -> 1,040 iterations; docs/performance-history.md, twenty-fourth pass)."""
    return np.flatnonzero(lower < upper)


def _round_tolerance(tolerances: Tolerances, left: float) -> float:
    """How stationary an inner run must get before its round ends: as stationary as the limits are met (`left`:
    the violation, or the progress measure, the previous round left), never tighter than the certificate.

    Solving a round's subproblem further only polishes a point whose multipliers are still wrong: without
    this rule each round ran to `ftol`, and programs with hard limits took 3-7x the iterations (inexact rounds
    in the manner of Conn, Gould and Toint's LANCELOT; docs/performance-history.md, ninth pass).
    """
    return max(tolerances.stationarity, left)


def _initial_penalty(objective: float, residuals: np.ndarray) -> float:
    """ALGENCAN's rule: balance the objective against the squared violation at the start."""
    squared = 0.5 * float(np.sum(np.maximum(residuals, 0.0) ** 2))
    return float(np.clip(10.0 * max(1.0, abs(objective)) / max(1.0, squared), 1e-8, 1e8))


def _blocked(gradient: np.ndarray, z: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return ((z <= lower) & (gradient > 0)) | ((z >= upper) & (gradient < 0))


def projected_gradient(gradient: np.ndarray, z: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The part of a gradient that a move inside the bounds can still use."""
    return np.where(_blocked(gradient, z, lower, upper), 0.0, gradient)


def pulls(program: SmoothProgram, z: np.ndarray, parts: KktParts, among: np.ndarray | None = None) -> list[float]:
    """Per variable block, the scale its stationarity is measured against (`Tolerances`).

    The larger of the objective's gradient and the multipliers' pull, in the max norm, over
    the block's variables (`among` of them, when given). On the fluence, the pull counts only
    on beamlets that can still move: a hard limit pushes the beamlets it blocks at 0 with a
    pull far above anything the objective asks of the others (10 mm test cases, hard maximum
    on the core: 19 against 1.4), and measured against that, points 0.2-0.37% above the
    optimum passed (docs/performance-history.md, twelfth pass).
    """
    lower, upper = program.bounds()
    movable = ~_blocked(parts.objective_gradient + parts.constraint_gradient, z, lower, upper)
    scales = []
    for index, block in enumerate(program.variable_blocks()):
        chosen = np.ones(block.stop - block.start, dtype=bool) if among is None else among[block]
        pulled = chosen & movable[block] if index == 0 else chosen
        scales.append(max(np.abs(parts.objective_gradient[block][chosen]).max(initial=0.0),
                          np.abs(parts.constraint_gradient[block][pulled]).max(initial=0.0)))
    return scales


def certify(program: SmoothProgram, z: np.ndarray, multipliers: np.ndarray, dose: np.ndarray | None = None
            ) -> Certificate:
    """KKT residuals of (z, y) with `program`'s products (give it the float64 operator); `dose`: A x at z, if known."""
    return judge(program, z, multipliers, program.kkt_parts(z, multipliers, dose))


def judge(program: SmoothProgram, z: np.ndarray, multipliers: np.ndarray, parts: KktParts) -> Certificate:
    """The certificate from KKT parts already at hand (`SmoothProgram.kkt_parts`).

    Stationarity is measured against the block's pull, and at least against the objective over
    the block's summed values, capped by the block's pull with no fluence. By convexity the
    objective lies above its optimum by at most the projected gradient's largest entry times
    the distance to the optimum (1-norm), so where that distance is of the block's own size a
    stationarity of 1e-3 against the objective's scale bounds the gap near 0.1% of the
    objective; without it an optimum where every variable is free (no beamlet or segment at 0,
    no limit active: a segment program with few segments) could never pass, its gradient and
    pull vanishing together. Near zero fluence the block's size says nothing of that distance
    and the objective's scale grows without bound; the cap keeps it there at what the terms
    ask with no fluence, the gradient such a point still has, so it cannot pass. A block the
    terms ask nothing of with no fluence (a soft maximum's auxiliary, a fluence only pushed
    down) has a cap of 0: there the objective's scale is off, as before it was added, and an
    interior optimum of that block is left to the reference solver.
    """
    lower, upper = program.bounds()
    stationary = np.abs(projected_gradient(parts.objective_gradient + parts.constraint_gradient, z, lower, upper))
    stationarity = 0.0
    blocks = program.variable_blocks()
    floors = program.pull_floors or (0.0,) * len(blocks)
    for block, scale, floor, at_zero in zip(blocks, pulls(program, z, parts), floors, program.pulls_at_zero()):
        size = float(np.abs(z[block]).sum())
        objective_scale = min(abs(parts.objective) / size, at_zero) if size > 0 else 0.0
        pull = max(scale, floor, objective_scale)
        if pull > 0:
            stationarity = max(stationarity, float(stationary[block].max(initial=0.0)) / pull)
    complementarity = _complementarity(multipliers, parts.residuals, parts.objective)
    return Certificate(_violation(parts.residuals), complementarity, stationarity)


def _objective_certificate(program: SmoothProgram, z: np.ndarray, evaluation: Evaluation) -> Certificate:
    """The KKT test at z with no multipliers, from an evaluation at z without them: no products."""
    parts = KktParts(evaluation.objective, evaluation.residuals, evaluation.gradient, np.zeros(program.size))
    return judge(program, z, np.zeros(program.n_constraints), parts)


class _LastEvaluation:
    """An inner run's latest evaluation, which a check at the same iterate reuses instead of new products."""

    def __init__(self) -> None:
        self._point: np.ndarray | None = None
        self._evaluation: Evaluation | None = None

    def keep(self, point: np.ndarray, evaluation: Evaluation) -> Evaluation:
        self._point, self._evaluation = point.copy(), evaluation
        return evaluation

    def at(self, point: np.ndarray) -> Evaluation | None:
        return self._evaluation if self._point is not None and np.array_equal(self._point, point) else None


def _complementarity(multipliers: np.ndarray, residuals: np.ndarray, objective: float) -> float:
    """sum |y_i r_i| relative to the objective: how far f and the Lagrangian differ at z."""
    complementary = float(np.abs(multipliers * residuals).sum())
    if complementary == 0.0:
        return 0.0
    return complementary / abs(objective) if objective != 0.0 else np.inf


class _Rounds:
    """The outer loop, with the iteration and time budget shared by the float32 and float64 rounds."""

    def __init__(self, program: SmoothProgram, tolerances: Tolerances) -> None:
        self.tolerances = tolerances
        self.started = time.perf_counter()
        lower, upper = program.bounds()
        self.lower, self.upper = lower, upper
        self.free = _movable(lower, upper)
        self.bounds = list(zip(lower[self.free], upper[self.free]))
        self.iterations = self.evaluations = self.outer = self.nonzero_iterations = 0
        self.nonzeros = program.operator.nonzeros
        self.history = _history(program)
        self.gtol = tolerances.gtol
        self.rounds: list[dict[str, float]] = []

    def out_of_time(self) -> bool:
        limit = self.tolerances.time_limit_s
        return limit is not None and time.perf_counter() - self.started > limit

    def inner(self, function: Callable[[np.ndarray], tuple[float, np.ndarray]], point: np.ndarray,
              budget: int, done: Callable[[np.ndarray], Stop | None] | None = None, every: int = _CHECK_EVERY
              ) -> tuple[OptimizeResult, Stop | None]:
        """One L-BFGS-B run on the free variables (`free`), from `point` and ending at a whole z; also stops (and says
        why) when `done` gives a reason at a checked iterate (every `every`)."""
        checked = 0
        reason: Stop | None = None
        start = np.clip(point, self.lower, self.upper)  # the fixed variables at their bound, as L-BFGS-B would put them

        def whole(values: np.ndarray) -> np.ndarray:
            z = start.copy()
            z[self.free] = values
            return z

        def on_free(values: np.ndarray) -> tuple[float, np.ndarray]:
            value, gradient = function(whole(values))
            return value, gradient[self.free]

        def check(current: np.ndarray) -> None:
            nonlocal checked, reason
            checked += 1
            if self.out_of_time():
                raise StopIteration
            if done is not None and checked % every == 0:
                reason = done(whole(current))
                if reason is not None:
                    raise StopIteration

        if len(self.free) == 0:  # every variable fixed by its bounds (a working set of no free beamlet): the best
            return OptimizeResult(x=start, nit=0, nfev=0, status=0), None  # fluence is none; converged there
        remaining = max(min(self.tolerances.max_iterations - self.iterations, budget), 1)
        result = minimize(
            on_free, start[self.free], jac=True, method="L-BFGS-B", bounds=self.bounds, callback=check,
            options={"maxiter": remaining, "maxfun": 4 * remaining, "ftol": self.tolerances.ftol,
                     "gtol": self.gtol, "maxcor": self.history},
        )
        result.x = whole(result.x)
        self.iterations += result.nit
        self.nonzero_iterations += result.nit * self.nonzeros
        self.evaluations += int(result.nfev)
        return result, reason

    def run(self, program: SmoothProgram, z: np.ndarray, y: np.ndarray, rho: float, budget: int,
            checker: SmoothProgram) -> tuple[np.ndarray, np.ndarray, float, Outcome]:
        """Outer rounds from (z, y, rho) until the KKT test holds, a limit, or `budget` inner iterations.

        The KKT test (`certify` with `checker`'s products) runs on the multipliers the round
        would produce, y+ = pos(y + rho r(z)): the gradient of the augmented Lagrangian is
        exactly that of the Lagrangian at y+ (so at the iterate just evaluated the test takes
        the objective's part from it, `SmoothProgram.kkt_parts_of`), and an inner run stops as
        soon as its iterate is certifiable instead of running on to `ftol`. It also stops once that stationarity
        is down to the round's own tolerance, `_round_tolerance` of the progress the previous
        round left (inexact rounds).
        """
        spent_before = self.iterations
        previous = np.inf
        round_tolerance = _round_tolerance(self.tolerances, _progress(program.evaluate(z).residuals, y, rho))
        for _ in range(_MAX_OUTER):
            self.outer += 1

            last = _LastEvaluation()

            def lagrangian(point: np.ndarray, y: np.ndarray = y, rho: float = rho,
                           last: _LastEvaluation = last) -> tuple[float, np.ndarray]:
                current = last.keep(point, program.evaluate(point, y, rho))
                return current.lagrangian, current.gradient

            def stop(point: np.ndarray, y: np.ndarray = y, rho: float = rho,
                     within: float = round_tolerance, last: _LastEvaluation = last) -> Stop | None:
                current = last.at(point) if checker is program else None
                if current is not None and not program.n_constraints:
                    # No multipliers: the iterate's own gradient is the objective's; the check costs no product.
                    certificate = _objective_certificate(program, point, current)
                else:  # the Lagrangian's gradient at the shifted multipliers: the iterate's own, where just evaluated
                    evaluation = current if current is not None else checker.evaluate(point, y, rho)
                    certificate = judge(checker, point, evaluation.shifted, checker.kkt_parts_of(point, evaluation))
                if certificate.holds(self.tolerances):
                    return "certified"
                return "round" if certificate.stationarity <= within else None

            # Without constraints the check reuses the iterate's gradient and costs no product: at every iterate.
            every = 1 if checker is program and not program.n_constraints else _CHECK_EVERY
            inner_budget = budget - (self.iterations - spent_before)
            if self.tolerances.pause_after is not None and not program.n_constraints:
                inner_budget = min(inner_budget, self.tolerances.pause_after - self.iterations)
            inner, reason = self.inner(lagrangian, z, inner_budget, stop, every)
            finished = reason == "certified"
            z = inner.x
            deadline_hit = self.out_of_time()
            residuals = program.evaluate(z).residuals
            y = np.maximum(y + rho * residuals, 0.0)
            progress = _progress(residuals, y, rho)
            self.rounds.append({"iterations": int(inner.nit), "violation": _violation(residuals),
                                "progress": progress, "penalty": rho,
                                "float64": float(program.operator.float64),
                                "at_round_tolerance": float(reason == "round")})
            # Status 0 or 2 (no decrease left at the products' precision) ends a round too: the test decides.
            if finished or (inner.status in (0, 2) and not deadline_hit and certify(checker, z, y).holds(self.tolerances)):
                return z, y, rho, "converged"
            if deadline_hit:
                return z, y, rho, "time_limit"
            if (inner.status == 2 and progress <= self.tolerances.feasibility
                    and not program.operator.float64):
                # Limits met, but no decrease left at float32 precision and not yet certified.
                return z, y, rho, "float32_noise"
            if self.iterations >= self.tolerances.max_iterations or self.iterations - spent_before >= budget:
                return z, y, rho, "iteration_limit"
            if self.tolerances.pause_after is not None and self.iterations >= self.tolerances.pause_after:
                return z, y, rho, "paused"
            # Growing the penalty once the limits hold within their tolerance buys nothing: the
            # violation left is the products' rounding (float32: about 1e-7 of a dose), which a
            # large penalty turns into multiplier noise, until the multipliers of active limits
            # are wiped out and the rounds stall (measured: a sampled body with a hard max and
            # mean limit ran the penalty to 4e7 and stalled; docs/performance-history.md, eighth pass).
            if progress > _REQUIRED_DECREASE * previous and progress > self.tolerances.feasibility:
                rho *= _GROWTH
            if rho > _LARGEST_PENALTY:
                return z, y, rho, "stalled"
            previous = progress
            round_tolerance = _round_tolerance(self.tolerances, progress)
        return z, y, rho, "stalled"


def minimize_augmented_lagrangian(
    program: SmoothProgram,
    z: np.ndarray,
    tolerances: Tolerances,
    multipliers: np.ndarray | None = None,
    penalty: float | None = None,
) -> AugmentedLagrangianResult:
    """Run from z (and from previous multipliers and penalty, when warm-starting), then certify."""
    # One BLAS thread: the products are sparse (scipy's own loops); threaded BLAS only spins
    # in the small dense dots on shared cores (measured in docs/performance.md).
    with threadpool_limits(limits=1, user_api="blas"):
        return _minimize(program, z, tolerances, multipliers, penalty)


def _objective_only_start(program: SmoothProgram, z: np.ndarray, loop: _Rounds, tolerances: Tolerances) -> np.ndarray:
    """A cold start's first phase: the objective alone, from z.

    It puts z, the objective's scale and so the initial penalty where the constraints will be
    enforced (the first penalty set at x = 0 on a hard C-shape protocol, objective 416, gave one
    round of 2,828 iterations, 34 s; set after this phase, objective 1.7, five rounds and 565
    iterations, 1 s: docs/performance-history.md, "Tried"). Like a round, only until it is as stationary
    as the limits are met (`_round_tolerance`).
    """
    last = _LastEvaluation()

    def objective_only(point: np.ndarray) -> tuple[float, np.ndarray]:
        current = last.keep(point, program.evaluate(point))
        return current.objective, current.gradient

    def stop(point: np.ndarray) -> Stop | None:
        current = last.at(point)
        current = program.evaluate(point) if current is None else current
        within = _round_tolerance(tolerances, _violation(current.residuals))
        return "round" if _objective_certificate(program, point, current).stationarity <= within else None

    return loop.inner(objective_only, z, tolerances.max_iterations, stop)[0].x


def _minimize(
    program: SmoothProgram,
    z: np.ndarray,
    tolerances: Tolerances,
    multipliers: np.ndarray | None,
    penalty: float | None,
) -> AugmentedLagrangianResult:
    program.operator.forget_anchor()
    loop = _Rounds(program, tolerances)
    z = np.clip(z, loop.lower, loop.upper)
    first = program.evaluate(z)
    start_gradient = np.abs(projected_gradient(first.gradient, z, loop.lower, loop.upper)).max(initial=0.0)
    loop.gtol = tolerances.gtol * max(1.0, start_gradient)
    y = np.zeros(program.n_constraints) if multipliers is None else multipliers.copy()
    if penalty is None and program.n_constraints:
        z = _objective_only_start(program, z, loop, tolerances)
        first = program.evaluate(z)
    rho = penalty if penalty is not None else _initial_penalty(first.objective, first.residuals)

    # The rounds run and check the KKT test with the float32 products until the test holds or
    # float32 precision is exhausted; the verdict is given in float64, and a point that fails
    # it is polished by rounds in float64 (at most `polish_iterations`).
    z, y, rho, outcome = loop.run(program, z, y, rho, tolerances.max_iterations, program)
    certificate = None
    polished = False
    precise = program.with_operator(program.operator.in_float64())
    if outcome in ("converged", "float32_noise"):
        certificate = certify(precise, z, y)
        if not certificate.holds(tolerances):
            polished = True
            z, y, rho, outcome = loop.run(precise, z, y, rho, tolerances.polish_iterations, precise)
            certificate = certify(precise, z, y)
        # The certificate is the verdict, whatever ended the polish (short of the time limit or a pause).
        if certificate.holds(tolerances) or outcome not in ("time_limit", "paused"):
            outcome = "converged" if certificate.holds(tolerances) else "uncertified"
    evaluation = precise.evaluate(z)  # the reported objective and violation: float64 products
    return AugmentedLagrangianResult(
        z=z,
        multipliers=y,
        penalty=rho,
        outcome=outcome,
        objective=evaluation.objective,
        violation=_violation(evaluation.residuals),
        iterations=loop.iterations,
        outer_iterations=loop.outer,
        evaluations=loop.evaluations,
        rounds=loop.rounds,
        certificate=certificate,
        polished=polished,
        nonzero_iterations=loop.nonzero_iterations,
    )
