"""A kind as a first-order solver sees it: smooth functions of plain arrays, with gradients.

The cvxpy form (`build`) stays the reference that any stock solver can take. The fast path
(`specc.solve.first_order`) instead evaluates each term, with its gradient, on numpy arrays:
the term's structure's dose entries d (Gy per fraction), its own auxiliary variables and the
fluence x. A term's `smooth_form(ctx)` returns a `SmoothForm`: an objective part and
constraints `c <= 0`, both smooth (continuously differentiable).

Nothing is approximated. A non-smooth part (a maximum, `pos` inside a limit, a CVaR) is
written exactly in epigraph form with auxiliary variables and extra constraints, e.g.
`pos(max(d) - D)**2` becomes `pos(t - D)**2` with `d_i <= t`: at the optimum of the smooth
program t = max(d), so its optimum is the reference optimum. Constraints are either a
protocol's hard limit (`hard=True`, judged by `LIMIT_TOLERANCE` on the final dose) or part
of such an exact rewriting (`hard=False`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

    from specc.protocol.units import Dose


class SmoothContext(Protocol):
    """What a term needs to write its smooth form (implemented by the first-order solver)."""

    n_beamlets: int

    def voxel_weights(self, structure: str) -> np.ndarray:
        """Relative volume of each dose entry of `structure` (same entries as `BuildContext.dose`)."""

    def volume_cc(self, structure: str) -> float:
        """Volume of the whole structure in cc."""

    def per_fraction(self, dose: Dose) -> float:
        """A protocol (total) dose in Gy per fraction."""

    def smoothness_operator(self) -> sp.csr_matrix:
        """Same operator as `BuildContext.smoothness_operator`."""

    def reference_fluence(self) -> float:
        """Same x_ref as `BuildContext.reference_fluence`."""


@dataclass(frozen=True)
class SmoothPoint:
    """Where a term is evaluated: its structure's dose entries, its auxiliary variables, the fluence."""

    dose: np.ndarray  # Gy per fraction on the term's structure's entries (empty if it names none)
    auxiliary: np.ndarray
    fluence: np.ndarray


@dataclass
class SmoothGradient:
    """A gradient (or a Jacobian-transpose product) split like a `SmoothPoint`; None is zero."""

    dose: np.ndarray | None = None
    auxiliary: np.ndarray | None = None
    fluence: np.ndarray | None = None


ObjectiveFunction = Callable[[SmoothPoint], tuple[float, SmoothGradient]]


@dataclass(frozen=True)
class SmoothConstraint:
    """Constraints `residual(point) <= 0` (Gy per fraction) with their Jacobian-transpose product.

    `scale` is the dose (Gy per fraction) the residual is judged against: a residual of
    `LIMIT_TOLERANCE * scale` is the largest violation the final plan may show. 0 means the
    limit names no dose of its own (a level of 0 Gy); the solver then uses the largest dose
    level of the program.
    """

    residual: Callable[[SmoothPoint], np.ndarray]
    pullback: Callable[[SmoothPoint, np.ndarray], SmoothGradient]
    scale: float
    hard: bool


@dataclass(frozen=True)
class Auxiliary:
    """Auxiliary variables of a term, with their bounds and a start consistent with a dose."""

    lower: np.ndarray
    upper: np.ndarray
    start: Callable[[np.ndarray], np.ndarray]  # dose entries -> the tight value (the log values the term there)


@dataclass(frozen=True)
class SmoothForm:
    """A term's contribution to the smooth program."""

    structure: str | None
    objective: ObjectiveFunction | None = None
    constraints: tuple[SmoothConstraint, ...] = ()
    auxiliary: Auxiliary | None = None
    # The objective on some of the structure's entries alone (their positions among them), for
    # an objective that is a sum over entries: a working set evaluates it on its own rows only.
    on_entries: Callable[[np.ndarray], ObjectiveFunction] | None = None
    # The positions, among the structure's entries, that the form sees (None: all of them); its
    # points and dose gradients are on these entries only (an exact DVH limit bounds some entries).
    among: np.ndarray | None = None

    @property
    def n_auxiliary(self) -> int:
        return 0 if self.auxiliary is None else len(self.auxiliary.lower)


class SmoothTerm(Protocol):
    """What the fast path solves: a protocol term (`TermBase`) or a solver-made stand-in for one."""

    kind: str

    @property
    def source(self) -> object: ...

    @property
    def is_constraint(self) -> bool: ...

    def label(self) -> str: ...

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm: ...


class NoSmoothForm(Exception):
    """A kind that has no smooth form: the fast path refuses the program (never skips the term)."""


# ---- pieces shared by several kinds -------------------------------------------------------


def weighted_squares(weight: float, volumes: np.ndarray, level: float, side: str) -> ObjectiveFunction:
    """`weight * sum_i volumes_i * e_i**2` with e the excess (`over`), shortfall (`under`) or deviation (`both`).

    Evaluated at every iterate of the fast path: the gradient's factor is taken once, and each evaluation makes two
    arrays instead of five (the same values: the factors of 2 are exact). 40,000 entries: 443 -> 190 us; the 5 mm
    C-shape's warm re-solve spent a tenth of its time here (docs/performance.md, twenty-sixth pass).
    """
    doubled = 2.0 * weight * volumes

    def objective(point: SmoothPoint) -> tuple[float, SmoothGradient]:
        deviation = point.dose - level
        if side == "over":
            np.maximum(deviation, 0.0, out=deviation)
        elif side == "under":
            np.minimum(deviation, 0.0, out=deviation)
        gradient = doubled * deviation
        return 0.5 * float(gradient @ deviation), SmoothGradient(dose=gradient)

    return objective


def squares_form(structure: str, weight: float, volumes: np.ndarray, level: float, side: str) -> SmoothForm:
    """`weighted_squares` as a term's whole form, which a working set may evaluate on some entries only."""
    return SmoothForm(
        structure,
        objective=weighted_squares(weight, volumes, level, side),
        on_entries=lambda kept: weighted_squares(weight, volumes[kept], level, side),
    )


def squared_excess(
    weight: float, value: float, gradient: SmoothGradient, limit: float, upper: bool
) -> tuple[float, SmoothGradient]:
    """`weight * pos(value - limit)**2` (upper) or `weight * pos(limit - value)**2`, given value's gradient."""
    excess = max(value - limit, 0.0) if upper else min(value - limit, 0.0)
    factor = 2.0 * weight * excess
    return weight * excess * excess, scaled(gradient, factor)


def scaled(gradient: SmoothGradient, factor: float) -> SmoothGradient:
    return SmoothGradient(
        dose=None if gradient.dose is None else factor * gradient.dose,
        auxiliary=None if gradient.auxiliary is None else factor * gradient.auxiliary,
        fluence=None if gradient.fluence is None else factor * gradient.fluence,
    )


ScalarFunction = Callable[[SmoothPoint], tuple[float, SmoothGradient]]


def scalar_limit(
    value: ScalarFunction, limit: float, upper: bool, hard: bool, weight: float | None
) -> tuple[ObjectiveFunction | None, tuple[SmoothConstraint, ...]]:
    """A limit on one smooth scalar (a mean, a gEUD, a CVaR): a constraint when hard, else a penalty.

    Mirrors `HardOrSoftLimit.upper_limit` / `lower_limit`: hard `value <= limit` (or `>=`),
    soft `weight * pos(violation)**2`.
    """
    sign = 1.0 if upper else -1.0
    if hard:

        def residual(point: SmoothPoint) -> np.ndarray:
            return np.array([sign * (value(point)[0] - limit)])

        def pullback(point: SmoothPoint, multipliers: np.ndarray) -> SmoothGradient:
            return scaled(value(point)[1], sign * float(multipliers[0]))

        return None, (SmoothConstraint(residual, pullback, scale=abs(limit), hard=True),)

    assert weight is not None

    def objective(point: SmoothPoint) -> tuple[float, SmoothGradient]:
        current, gradient = value(point)
        return squared_excess(weight, current, gradient, limit, upper)

    return objective, ()


def min_max_form(
    structure: str,
    value: ScalarFunction,
    low: float | None,
    high: float | None,
    hard: bool,
    weight: float | None,
) -> SmoothForm:
    """`low <= value <= high` (per fraction, either side optional) on one smooth scalar, as
    `scalar_limit` makes each side; the smooth twin of `ScalarLimit.limit_value`."""
    bounds = [(high, True), (low, False)]
    parts = [scalar_limit(value, limit, upper, hard, weight) for limit, upper in bounds if limit is not None]
    objectives = [objective for objective, _ in parts if objective is not None]

    def objective(point: SmoothPoint) -> tuple[float, SmoothGradient]:
        values = [part(point) for part in objectives]
        return sum(v for v, _ in values), SmoothGradient(dose=sum(g.dose for _, g in values))

    constraints = tuple(constraint for _, part in parts for constraint in part)
    return SmoothForm(structure, objective=objective if objectives else None, constraints=constraints)


def voxelwise_limit(structure: str, limit: float, upper: bool, hard: bool, weight: float | None) -> SmoothForm:
    """`max(d) <= limit` (upper) or `min(d) >= limit` on every entry; soft through an epigraph variable.

    Hard: one constraint per entry. Soft: `weight * pos(t - limit)**2` with `d_i <= t` (upper;
    mirrored for lower), whose optimum has t = max(d), the reference's `pos(max(d) - limit)**2`.
    """
    sign = 1.0 if upper else -1.0
    if hard:
        constraint = SmoothConstraint(
            residual=lambda point: sign * (point.dose - limit),
            pullback=lambda point, multipliers: SmoothGradient(dose=sign * multipliers),
            scale=abs(limit),
            hard=True,
        )
        return SmoothForm(structure=structure, constraints=(constraint,))
    assert weight is not None
    extreme = SmoothConstraint(  # d_i <= t (upper) or t <= d_i (lower)
        residual=lambda point: sign * (point.dose - point.auxiliary[0]),
        pullback=lambda point, multipliers: SmoothGradient(
            dose=sign * multipliers, auxiliary=np.array([-sign * float(multipliers.sum())])
        ),
        scale=abs(limit),
        hard=False,
    )

    def objective(point: SmoothPoint) -> tuple[float, SmoothGradient]:
        return squared_excess(weight, float(point.auxiliary[0]), SmoothGradient(auxiliary=np.ones(1)), limit, upper)

    auxiliary = Auxiliary(
        lower=np.array([-np.inf]),
        upper=np.array([np.inf]),
        start=lambda dose: np.array([float(np.max(dose) if upper else np.min(dose))]),
    )
    return SmoothForm(structure=structure, objective=objective, constraints=(extreme,), auxiliary=auxiliary)


@dataclass(frozen=True)
class ConditionalValueAtRisk:
    """The mean dose of the hottest (`upper`) or coldest share `fraction` of a structure, exactly.

    Rockafellar-Uryasev with auxiliary variables [t, u_1..u_n], u >= 0:
    upper: `t + volumes @ u / fraction` with `d_i - t <= u_i`; lower: `t - volumes @ u / fraction`
    with `t - d_i <= u_i`. Minimizing (maximizing) over t, u gives the CVaR of the cvxpy form.
    """

    volumes: np.ndarray
    fraction: float
    upper: bool
    limit: float

    def value(self, point: SmoothPoint) -> tuple[float, SmoothGradient]:
        sign = 1.0 if self.upper else -1.0
        t, u = point.auxiliary[0], point.auxiliary[1:]
        gradient = np.concatenate([[1.0], sign * self.volumes / self.fraction])
        return float(t + sign * (self.volumes @ u) / self.fraction), SmoothGradient(auxiliary=gradient)

    def rewriting(self) -> SmoothConstraint:
        sign = 1.0 if self.upper else -1.0

        def residual(point: SmoothPoint) -> np.ndarray:
            return sign * (point.dose - point.auxiliary[0]) - point.auxiliary[1:]

        def pullback(point: SmoothPoint, multipliers: np.ndarray) -> SmoothGradient:
            return SmoothGradient(
                dose=sign * multipliers,
                auxiliary=np.concatenate([[-sign * float(multipliers.sum())], -multipliers]),
            )

        return SmoothConstraint(residual, pullback, scale=abs(self.limit), hard=False)

    def auxiliary(self) -> Auxiliary:
        n = len(self.volumes)

        def start(dose: np.ndarray) -> np.ndarray:
            order = np.argsort(dose)[::-1] if self.upper else np.argsort(dose)
            covered = np.cumsum(self.volumes[order])
            threshold = float(dose[order][min(int(np.searchsorted(covered, self.fraction)), n - 1)])
            excess = np.maximum(dose - threshold, 0.0) if self.upper else np.maximum(threshold - dose, 0.0)
            return np.concatenate([[threshold], excess])

        return Auxiliary(
            lower=np.concatenate([[-np.inf], np.zeros(n)]),
            upper=np.full(n + 1, np.inf),
            start=start,
        )
