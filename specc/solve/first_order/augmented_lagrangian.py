"""Minimize a `SmoothProgram` under its constraints: an augmented Lagrangian around L-BFGS-B.

The bounds (x >= 0, auxiliary bounds) go to L-BFGS-B directly. The constraints r(z) <= 0 (a
hard limit, or an exact epigraph rewriting, each normalized by its dose) enter the
Powell-Hestenes-Rockafellar augmented Lagrangian; after each inner solve the multipliers are
updated, y <- pos(y + rho r), and the penalty rho grows tenfold whenever the violation did
not at least halve (the safeguarded rules of ALGENCAN: Andreani, Birgin, Martinez and
Schuverdt, SIAM J Optim 18:1286, 2008; also Nocedal and Wright, ch. 17.4).

Stopping (documented in docs/performance.md), all three must hold:
- feasibility and complementarity: |min(-r, y / rho)| <= `feasibility` for every constraint
  (so every residual is at most `feasibility`, a fraction of the limit's dose, and every
  constraint with a positive multiplier is that close to active);
- stationarity: the inner L-BFGS-B run stopped on its own tolerances (relative objective
  decrease below `ftol`, projected gradient below `gtol` relative to the start, or no
  decrease left along a descent direction at the precision of the float32 products).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import OptimizeResult, minimize

from specc.solve.first_order.assemble import SmoothProgram

Outcome = Literal["converged", "iteration_limit", "time_limit", "stalled"]

_GROWTH = 10.0  # penalty growth when the violation did not at least halve (ALGENCAN's gamma, tau)
_REQUIRED_DECREASE = 0.5
_LARGEST_PENALTY = 1e12  # beyond this the limits are taken to be in conflict: the reference solver decides
_MAX_OUTER = 60
_HISTORY = 20  # L-BFGS memory (pairs kept)


@dataclass(frozen=True)
class Tolerances:
    """Stopping tolerances of the fast path (see the module docstring)."""

    feasibility: float = 1e-4  # ten times tighter than LIMIT_TOLERANCE, which judges the final dose
    ftol: float = 1e-12
    gtol: float = 1e-9
    max_iterations: int = 20_000  # inner L-BFGS-B iterations over all outer rounds
    time_limit_s: float | None = None


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
    rounds: list[dict[str, float]]  # per outer round: inner iterations, objective, violation, penalty


def _violation(residuals: np.ndarray) -> float:
    return float(max(residuals.max(), 0.0)) if residuals.size else 0.0


def _initial_penalty(objective: float, residuals: np.ndarray) -> float:
    """ALGENCAN's rule: balance the objective against the squared violation at the start."""
    squared = 0.5 * float(np.sum(np.maximum(residuals, 0.0) ** 2))
    return float(np.clip(10.0 * max(1.0, abs(objective)) / max(1.0, squared), 1e-8, 1e8))


class _Deadline(Exception):
    pass


def minimize_augmented_lagrangian(
    program: SmoothProgram,
    z: np.ndarray,
    tolerances: Tolerances,
    multipliers: np.ndarray | None = None,
    penalty: float | None = None,
) -> AugmentedLagrangianResult:
    """Run from z (and from previous multipliers and penalty, when warm-starting)."""
    started = time.perf_counter()
    lower, upper = program.bounds()
    bounds = list(zip(lower, upper))
    z = np.clip(z, lower, upper)
    first = program.evaluate(z)
    start_gradient = np.abs(np.where((z <= lower) & (first.gradient > 0), 0.0, first.gradient)).max(initial=0.0)
    gtol = tolerances.gtol * max(1.0, start_gradient)
    iterations = evaluations = 0

    def run_inner(function: Callable[[np.ndarray], tuple[float, np.ndarray]], point: np.ndarray, inner_gtol: float) -> OptimizeResult:
        nonlocal iterations, evaluations
        remaining = max(tolerances.max_iterations - iterations, 1)
        result = minimize(
            function, point, jac=True, method="L-BFGS-B", bounds=bounds, callback=check_time,
            options={"maxiter": remaining, "maxfun": 4 * remaining, "ftol": tolerances.ftol, "gtol": inner_gtol,
                     "maxcor": _HISTORY},
        )
        iterations += int(result.nit)
        evaluations += int(result.nfev)
        return result

    def check_time(_: object) -> None:
        if tolerances.time_limit_s is not None and time.perf_counter() - started > tolerances.time_limit_s:
            raise StopIteration

    y = np.zeros(program.n_constraints) if multipliers is None else multipliers.copy()
    if penalty is None and program.n_constraints:
        # Cold start: the objective alone first, which puts z, the objective's scale and the
        # initial penalty where the constraints will be enforced.
        def objective_only(point: np.ndarray) -> tuple[float, np.ndarray]:
            current = program.evaluate(point)
            return current.objective, current.gradient

        z = run_inner(objective_only, z, gtol).x
        first = program.evaluate(z)
    rho = penalty if penalty is not None else _initial_penalty(first.objective, first.residuals)
    previous = np.inf
    outcome: Outcome = "stalled"
    evaluation = first
    rounds: list[dict[str, float]] = []

    for outer in range(1, _MAX_OUTER + 1):
        def lagrangian(point: np.ndarray) -> tuple[float, np.ndarray]:
            current = program.evaluate(point, y, rho)
            return current.lagrangian, current.gradient

        inner = run_inner(lagrangian, z, gtol)
        z = inner.x
        deadline_hit = tolerances.time_limit_s is not None and time.perf_counter() - started > tolerances.time_limit_s
        evaluation = program.evaluate(z)
        residuals = evaluation.residuals
        y = np.maximum(y + rho * residuals, 0.0)
        # ALGENCAN's measure: the violation, and the slack of every constraint whose multiplier is positive.
        progress = float(np.abs(np.minimum(-residuals, y / rho)).max(initial=0.0))
        # Status 2 is a line search that found no decrease along a descent direction: the
        # Lagrangian is flat to the precision of the float32 products, which is stationarity here.
        inner_converged = inner.status in (0, 2) and not deadline_hit
        rounds.append({"iterations": int(inner.nit), "objective": evaluation.objective,
                       "violation": _violation(residuals), "progress": progress, "penalty": rho})
        if inner_converged and progress <= tolerances.feasibility:
            outcome = "converged"
            break
        if deadline_hit:
            outcome = "time_limit"
            break
        if iterations >= tolerances.max_iterations:
            outcome = "iteration_limit"
            break
        if progress > _REQUIRED_DECREASE * previous:
            rho *= _GROWTH
        if rho > _LARGEST_PENALTY:
            outcome = "stalled"
            break
        previous = progress
    return AugmentedLagrangianResult(
        z=z,
        multipliers=y,
        penalty=rho,
        outcome=outcome,
        objective=evaluation.objective,
        violation=_violation(evaluation.residuals),
        iterations=iterations,
        outer_iterations=outer,
        evaluations=evaluations,
        rounds=rounds,
    )
