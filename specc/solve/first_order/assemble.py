"""The compiled program as one smooth function of a flat vector, for L-BFGS-B.

The vector z holds the fluence (per fraction, >= 0) over the program's fluence scale s, the
case's reference fluence (`CompiledProgram.fluence_scale`), followed by each term's auxiliary
variables. In z the program is the same whatever unit the case's beamlet weights are in, so
are L-BFGS-B's path (its first step is of length 1 in the variables, its gradient tolerances
absolute) and the plan it picks where the optimum is not unique; x = s z is what the terms on
the fluence read and what a solve returns. `SmoothProgram` keeps the dose operator (the
selected influence rows, as the case stores them in float32, and its transpose view: no
copy) and the terms' smooth forms
(`specc.terms.smooth`); one evaluation costs one product with A and one with A.T, however
many terms look at a structure. Forms can be rebuilt from changed terms (a new weight or
limit) without touching the operator, which is what makes a re-solve cheap.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from specc.case.products import RowBlocks
from specc.compile.smooth_context import SmoothFormContext
from specc.errors import CompileError
from specc.terms.smooth import NoSmoothForm, SmoothConstraint, SmoothForm, SmoothGradient, SmoothPoint

if TYPE_CHECKING:
    from specc.solve.first_order.working_set import WorkingSetOperator
    from specc.terms.smooth import SmoothTerm

_NO_DOSE = np.empty(0)


class FastPathRefused(Exception):
    """The program has a part the first-order solver cannot take; the message says which."""


@dataclass(frozen=True)
class PlacedForm:
    """A term's smooth form with where its dose entries and auxiliary variables sit."""

    label: str
    form: SmoothForm
    entries: np.ndarray | None  # positions in the dose vector; None: the term names no structure
    auxiliary: slice


@dataclass(frozen=True)
class PlacedConstraint:
    placed: PlacedForm
    constraint: SmoothConstraint
    multipliers: slice  # its block in the multiplier vector
    scale: float  # Gy per fraction the residual is measured against (> 0)


# Up to this many nonzeros (64 MB of float64 values) the float64 operator copies the values.
_FLOAT64_COPY_NONZEROS = 8_000_000
# float32 forward products between two exact (float64) anchor doses; one costs ~1.5 float32 products.
_ANCHOR_RENEWAL = 50


class DoseOperator:
    """d = s A z (+ offset) and s A.T g with the case's matrix as stored (by row blocks on threads); results in float64.

    `scale` s: beamlet weights per unit of z (the fluence x = s z). The products run in the
    matrix's precision (float32 for a case file), or in float64 for the operator `in_float64`
    returns. `offset`: a prior course's dose per fraction on the rows (a composite plan,
    `CompiledProgram.offset`), added to every dose, exactly.
    """

    def __init__(self, influence: sp.csr_matrix, blocks: RowBlocks | None = None, float64: bool = False,
                 offset: np.ndarray | None = None, scale: float = 1.0) -> None:
        self.influence = influence.tocsr()
        self.offset = offset
        self.scale = scale
        self._blocks = RowBlocks(self.influence) if blocks is None else blocks
        self.float64 = float64 or self.influence.dtype == np.float64
        self._vector = np.float64 if self.float64 else self.influence.dtype
        self._anchor: tuple[np.ndarray, np.ndarray] | None = None
        self._since_anchor = 0

    @property
    def nonzeros(self) -> int:
        return int(self.influence.nnz)

    def in_float64(self) -> DoseOperator:
        """The same operator with float64 products, for the final certification and polish.

        float32 products carry a relative error of about 1e-7 that an augmented Lagrangian at
        a large penalty turns into gradient noise; float64 products do not. A float32 block
        times a float64 vector is computed in float64 by scipy (bitwise the same as with a
        float64 copy of the values), about 1.5x slower than with the copy: the values are
        copied to float64 only while the copy stays small (`_FLOAT64_COPY_NONZEROS`; every
        voxel of the large benchmark case would take 258 MB more; docs/performance.md).
        """
        if self.float64:
            return self
        if self.influence.nnz > _FLOAT64_COPY_NONZEROS:
            return self.in_float64_without_copy()
        influence = sp.csr_matrix(
            (self.influence.data.astype(np.float64), self.influence.indices, self.influence.indptr),
            shape=self.influence.shape,
        )
        return DoseOperator(influence, offset=self.offset, scale=self.scale)

    def in_float64_without_copy(self) -> DoseOperator:
        """float64 products on the matrix's own values (for a matrix that lives beside a larger one)."""
        return self if self.float64 else DoseOperator(self.influence, self._blocks, float64=True, offset=self.offset,
                                                            scale=self.scale)

    def forget_anchor(self) -> None:
        """Start the next forward product from a new anchor, so that a run does not depend on earlier ones."""
        self._anchor = None

    def forward(self, fluence: np.ndarray) -> np.ndarray:
        """s A z (`fluence`: z); in float32, as an exact float64 anchor dose plus the float32 product of the step.

        A float32 dose carries an absolute error of about 1e-7 of the dose itself, which is
        what L-BFGS-B's line search sees near an optimum, where the objective changes by less
        than that between iterates: it stalled at a stationarity of ~4e-3 and needed a float64
        polish of 110-170 iterations (docs/performance-history.md, ninth pass). The error of
        `anchor + A (x - x_anchor)` is 1e-7 of the step's dose only; the anchor is renewed
        with a float64 product every `_ANCHOR_RENEWAL` products, so the step stays short.
        """
        if self.float64:
            return self._dose(self._blocks.forward(fluence.astype(np.float64)))
        if self._anchor is None or self._since_anchor >= _ANCHOR_RENEWAL:
            exact = self._blocks.forward(np.asarray(fluence, dtype=np.float64))  # float32 values, float64 sums
            self._anchor = (np.array(fluence, dtype=np.float64), exact)
            self._since_anchor = 0
            return self._dose(exact)
        self._since_anchor += 1
        anchor_fluence, anchor_dose = self._anchor
        return self._dose(anchor_dose + self._blocks.forward((fluence - anchor_fluence).astype(self._vector)))

    def _dose(self, product: np.ndarray) -> np.ndarray:
        """s times A z, plus the offset: a new array (an anchor's product is kept as it is)."""
        dose = self.scale * product
        if self.offset is not None:
            dose += self.offset
        return dose

    def adjoint(self, dose_gradient: np.ndarray) -> np.ndarray:
        """s A.T g: the gradient on z of a function of the dose whose gradient on the dose is g."""
        return self.scale * self._blocks.adjoint(dose_gradient.astype(self._vector))


@dataclass
class Evaluation:
    """One point z: the objective, the normalized residuals and the augmented Lagrangian."""

    objective: float
    residuals: np.ndarray  # residual / scale of every constraint entry (<= 0 is met)
    lagrangian: float
    gradient: np.ndarray  # of the Lagrangian on z (of the objective when no multipliers are given)
    dose: np.ndarray  # s A z, which a KKT check at the same point reuses
    # The multipliers whose pull `gradient` holds, pos(y + rho r) (the Lagrangian's gradient is that of the
    # Lagrangian at them); None when evaluated without multipliers. A KKT check at the point reuses them.
    shifted: np.ndarray | None = None


@dataclass
class KktParts:
    """The pieces of the KKT conditions at (z, y), for certifying a solution."""

    objective: float
    residuals: np.ndarray  # normalized, as in `Evaluation`
    objective_gradient: np.ndarray  # grad f(z)
    constraint_gradient: np.ndarray  # J(z).T y, the multipliers' pull


def _on_rows(placed: PlacedForm, in_set: np.ndarray, base_dose: np.ndarray) -> PlacedForm:
    """`placed` with its objective on the entries whose rows are `in_set`, the others' value a constant."""
    form = placed.form
    if form.on_entries is None or form.objective is None or placed.entries is None or form.among is not None:
        return placed
    kept = in_set[placed.entries]
    if kept.all():
        return placed
    held = ~kept
    constant = form.on_entries(np.flatnonzero(held))(SmoothPoint(base_dose[placed.entries[held]], _NO_DOSE, _NO_DOSE))[0]
    on_set = form.on_entries(np.flatnonzero(kept))

    def objective(point: SmoothPoint) -> tuple[float, SmoothGradient]:
        value, gradient = on_set(point)
        return value + constant, gradient

    return dataclasses.replace(placed, form=dataclasses.replace(form, objective=objective), entries=placed.entries[kept])


class SmoothProgram:
    """Objective pieces and constraints over z = (fluence / scale, auxiliary variables)."""

    def __init__(self, operator: DoseOperator, context: SmoothFormContext, terms: Sequence[SmoothTerm]) -> None:
        self.operator = operator
        self.context = context
        self.n_beamlets = context.n_beamlets
        placed: list[PlacedForm] = []
        offset = self.n_beamlets
        for term in terms:
            try:
                form = term.smooth_form(context)
            except NoSmoothForm as error:
                raise FastPathRefused(f"{term.label()}: {error}") from None
            except CompileError as error:
                raise CompileError(f"{term.label()}: {error}") from None
            entries = context.entries(form.structure) if form.structure is not None else None
            if entries is not None and form.among is not None:
                entries = entries[form.among]
            placed.append(PlacedForm(term.label(), form, entries, slice(offset, offset + form.n_auxiliary)))
            offset += form.n_auxiliary
        self.forms = placed
        self.size = offset
        levels = [abs(c.scale) for p in placed for c in p.form.constraints]
        fallback = max(levels, default=1.0) or 1.0  # the largest dose level (Gy per fraction) of the program
        constraints: list[PlacedConstraint] = []
        count = 0
        for p in placed:
            sizes = p.form.constraints
            for constraint in sizes:
                n = len(constraint.residual(self._point(p, np.zeros(self.size), self._zero_dose())))
                scale = constraint.scale if constraint.scale > 0 else fallback
                constraints.append(PlacedConstraint(p, constraint, slice(count, count + n), scale))
                count += n
        self.constraints = constraints
        self.n_constraints = count
        self.frozen: np.ndarray | None = None  # beamlets held at 0 (a working set's complement)
        self.pull_floors: tuple[float, ...] | None = None  # per variable block; see `on_working_set`
        self._pulls_at_zero: tuple[float, ...] | None = None  # see `pulls_at_zero`

    def with_operator(self, operator: DoseOperator) -> SmoothProgram:
        """The same program evaluated through another operator (e.g. its float64 twin)."""
        twin = copy.copy(self)
        twin.operator = operator
        return twin

    def on_working_set(self, operator: WorkingSetOperator, frozen: np.ndarray,
                       pull_floors: tuple[float, ...]) -> SmoothProgram:
        """The same program with the `frozen` beamlets held at 0, evaluated through a working-set operator.

        `pull_floors` (one per `variable_blocks` entry): the pull of the held beamlets when the
        set was chosen. The certificate measures stationarity against the larger of it and the
        set's own pull, as the whole program's would: the free beamlets' pull alone vanishes at
        their optimum (their gradient does) and would ask for a stationarity the whole program's
        certificate never needs.

        An objective that is a sum over entries (`SmoothForm.on_entries`) is evaluated on the
        set's rows only, plus its constant value on the other rows (held at the set's base
        dose): on every voxel of the large case the forms over all 576,000 entries cost 18% of
        a first solve whose sets had 77,000 rows (docs/performance-history.md, eleventh pass).
        """
        self.pulls_at_zero()  # of the whole program, which the set stands for
        twin = self.with_operator(operator)
        twin.frozen, twin.pull_floors = frozen, pull_floors
        in_set = np.zeros(len(operator.base_dose), dtype=bool)
        in_set[operator.rows] = True
        twin.forms = [_on_rows(p, in_set, operator.base_dose) for p in self.forms]
        return twin

    def pulls_at_zero(self) -> tuple[float, ...]:
        """Per variable block, the objective gradient's largest entry with no fluence (auxiliaries at their
        start): a fixed size of what the terms ask, computed once (one adjoint product)."""
        if self._pulls_at_zero is None:
            # The dose with no fluence is known without a product, which would move the operator's anchor.
            dose = self._zero_dose() if self.operator.offset is None else np.array(self.operator.offset, dtype=np.float64)
            z = self.start(np.zeros(self.n_beamlets), dose)
            gradient = self.kkt_parts(z, np.zeros(self.n_constraints), dose).objective_gradient
            self._pulls_at_zero = tuple(float(np.abs(gradient[block]).max(initial=0.0)) for block in self.variable_blocks())
        return self._pulls_at_zero

    def _zero_dose(self) -> np.ndarray:
        return np.zeros(self.operator.influence.shape[0])

    @property
    def scale(self) -> float:
        """Beamlet weights per unit of z's fluence block (`CompiledProgram.fluence_scale`)."""
        return self.operator.scale

    def fluence(self, z: np.ndarray) -> np.ndarray:
        """The fluence x = s z (beamlet weights per fraction) at z."""
        return self.scale * z[: self.n_beamlets]

    def _point(self, placed: PlacedForm, z: np.ndarray, dose: np.ndarray) -> SmoothPoint:
        return SmoothPoint(
            dose=dose[placed.entries] if placed.entries is not None else _NO_DOSE,
            auxiliary=z[placed.auxiliary],
            fluence=self.fluence(z),  # what the terms on the fluence read (n beamlets: no cost beside a product)
        )

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lower = np.zeros(self.size)
        upper = np.full(self.size, np.inf)
        for p in self.forms:
            if p.form.auxiliary is not None:
                lower[p.auxiliary] = p.form.auxiliary.lower
                upper[p.auxiliary] = p.form.auxiliary.upper
        if self.frozen is not None:
            upper[: self.n_beamlets][self.frozen] = 0.0
        return lower, upper

    def variable_blocks(self) -> list[slice]:
        """The fluence, then each term's auxiliary variables: the parts of z that share a unit."""
        return [slice(0, self.n_beamlets)] + [p.auxiliary for p in self.forms if p.form.n_auxiliary]

    def start(self, fluence: np.ndarray, dose: np.ndarray | None = None) -> np.ndarray:
        """z for a fluence x (beamlet weights: z's block is x / scale), with each term's auxiliary variables at
        their consistent start; `dose`: A x, if known."""
        z = np.zeros(self.size)
        z[: self.n_beamlets] = fluence / self.scale
        dose = self.operator.forward(z[: self.n_beamlets]) if dose is None else dose
        return self._with_tight_auxiliaries(z, dose)

    def _with_tight_auxiliaries(self, z: np.ndarray, dose: np.ndarray) -> np.ndarray:
        """z with each term's auxiliary variables at their value for `dose` (`Auxiliary.start`), where the
        term's exact rewriting is tight: u = pos(d - D), t = max(d), the CVaR's threshold at its share."""
        tight = np.array(z, dtype=np.float64)
        for p in self.forms:
            if p.form.auxiliary is not None:
                tight[p.auxiliary] = p.form.auxiliary.start(dose[p.entries] if p.entries is not None else _NO_DOSE)
        return tight

    def _add(self, gradient: np.ndarray, dose_gradient: np.ndarray, p: PlacedForm, piece: SmoothGradient) -> None:
        if piece.dose is not None and p.entries is not None:
            dose_gradient[p.entries] += piece.dose  # entries of one structure are unique
        if piece.auxiliary is not None:
            gradient[p.auxiliary] += piece.auxiliary
        if piece.fluence is not None:
            gradient[: self.n_beamlets] += self.scale * piece.fluence  # on z: x = s z

    def plan_dose(self, z: np.ndarray) -> np.ndarray:
        """s A z (+ offset) with float64 products, no float32 rounding: the dose a plan's values are reported on."""
        return self.operator.in_float64_without_copy().forward(z[: self.n_beamlets])

    def term_values(self, z: np.ndarray, dose: np.ndarray) -> list[float | None]:
        """Each term's own objective at z's fluence (`dose`: its `plan_dose`), None for a term without one; in
        the order of the terms. What the term's cvxpy expression gives at the same fluence.

        A form with auxiliary variables is not evaluated at z's auxiliaries: the solve meets its rewriting
        (`d_i - D <= u_i`, `d_i <= t`) within a tolerance only, so u may sit below pos(d - D) and t below
        max(d) where the dose is past the level (a linear_overdose logged 0 for an excess worth 0.12% of
        the objective, a soft max_dose 7% low: audit s21/k1 F2). Its auxiliaries are set at their tight
        value for the dose (`_with_tight_auxiliaries`), where the form's objective is the term's.
        """
        tight = self._with_tight_auxiliaries(z, dose)
        return [
            p.form.objective(self._point(p, tight, dose))[0] if p.form.objective is not None else None
            for p in self.forms
        ]

    def evaluate(self, z: np.ndarray, multipliers: np.ndarray | None = None, penalty: float = 1.0) -> Evaluation:
        """The objective and residuals at z, and the augmented Lagrangian with its gradient.

        For constraints r(z) <= 0 (normalized by their scale), multipliers y >= 0 and penalty
        rho: L = f + sum(pos(y + rho r)**2 - y**2) / (2 rho) (Powell-Hestenes-Rockafellar), with
        gradient grad f + J^T pos(y + rho r).
        """
        dose = self.operator.forward(z[: self.n_beamlets])
        gradient = np.zeros(self.size)
        dose_gradient = np.zeros(len(dose))
        objective = 0.0
        for p in self.forms:
            if p.form.objective is not None:
                value, piece = p.form.objective(self._point(p, z, dose))
                objective += value
                self._add(gradient, dose_gradient, p, piece)
        residuals = np.empty(self.n_constraints)
        all_shifted = None if multipliers is None else np.zeros(self.n_constraints)
        lagrangian = objective
        for c in self.constraints:
            point = self._point(c.placed, z, dose)
            residual = c.constraint.residual(point) / c.scale
            residuals[c.multipliers] = residual
            if all_shifted is None:
                continue
            current = multipliers[c.multipliers]
            shifted = np.maximum(current + penalty * residual, 0.0)
            all_shifted[c.multipliers] = shifted
            lagrangian += float(shifted @ shifted - current @ current) / (2.0 * penalty)
            if shifted.any():
                self._add(gradient, dose_gradient, c.placed, c.constraint.pullback(point, shifted / c.scale))
        gradient[: self.n_beamlets] += self.operator.adjoint(dose_gradient)
        return Evaluation(objective, residuals, lagrangian, gradient, dose, all_shifted)

    def active_entries(self, z: np.ndarray, multipliers: np.ndarray, penalty: float, margin: float,
                       dose: np.ndarray | None = None) -> np.ndarray:
        """The dose entries whose gradient is nonzero at z, or once every dose moves by `margin` of itself.

        The other entries are where no objective part and no constraint (at the shifted
        multipliers `pos(y + rho r)`) pulls: a working set leaves their rows out of the products.
        A term that pulls on all its voxels (a mean, a gEUD) keeps them all.
        """
        dose = self.operator.forward(z[: self.n_beamlets]) if dose is None else dose
        active = np.zeros(len(dose), dtype=bool)

        def mark(placed: PlacedForm, piece: SmoothGradient) -> None:
            if piece.dose is not None and placed.entries is not None:
                active[placed.entries[np.broadcast_to(piece.dose, placed.entries.shape) != 0]] = True

        for moved in (dose, dose * (1.0 - margin), dose * (1.0 + margin)) if margin else (dose,):
            for p in self.forms:
                if p.form.objective is not None and p.entries is not None:
                    mark(p, p.form.objective(self._point(p, z, moved))[1])
            for c in self.constraints:
                if c.placed.entries is None:
                    continue
                point = self._point(c.placed, z, moved)
                shifted = np.maximum(multipliers[c.multipliers] + penalty * c.constraint.residual(point) / c.scale, 0.0)
                if shifted.any():
                    mark(c.placed, c.constraint.pullback(point, shifted / c.scale))
        return active

    def kkt_parts(self, z: np.ndarray, multipliers: np.ndarray, dose: np.ndarray | None = None) -> KktParts:
        """grad f(z) and J(z).T y apart (two adjoint products, one where no multiplier pulls), with the objective and
        residuals.

        `dose`: A x at z when the caller has it (an evaluation at the same point), which saves the product.
        """
        dose = self.operator.forward(z[: self.n_beamlets]) if dose is None else dose
        objective_gradient = np.zeros(self.size)
        objective_dose = np.zeros(len(dose))
        objective = 0.0
        for p in self.forms:
            if p.form.objective is not None:
                value, piece = p.form.objective(self._point(p, z, dose))
                objective += value
                self._add(objective_gradient, objective_dose, p, piece)
        residuals = np.empty(self.n_constraints)
        points = [self._point(c.placed, z, dose) for c in self.constraints]
        for c, point in zip(self.constraints, points):
            residuals[c.multipliers] = c.constraint.residual(point) / c.scale
        objective_gradient[: self.n_beamlets] += self.operator.adjoint(objective_dose)
        return KktParts(objective, residuals, objective_gradient, self._pull(z, multipliers, dose, points))

    def kkt_parts_of(self, z: np.ndarray, evaluation: Evaluation) -> KktParts:
        """`kkt_parts` at z, with the multipliers `evaluation` (evaluated at z with multipliers) holds the pull of
        (`Evaluation.shifted`): the objective's gradient is its gradient less that pull, so the check an inner run
        makes every few iterations costs one adjoint product, not two."""
        if evaluation.shifted is None:
            raise ValueError("an evaluation without multipliers holds no pull to take off its gradient")
        constraint_gradient = self._pull(z, evaluation.shifted, evaluation.dose)
        return KktParts(evaluation.objective, evaluation.residuals, evaluation.gradient - constraint_gradient,
                        constraint_gradient)

    def _pull(self, z: np.ndarray, multipliers: np.ndarray, dose: np.ndarray,
              points: list[SmoothPoint] | None = None) -> np.ndarray:
        """J(z).T y: the multipliers' pull on z (`points`: each constraint's point at z, where the caller has them)."""
        gradient = np.zeros(self.size)
        dose_gradient = np.zeros(len(dose))
        pulled = False
        for index, c in enumerate(self.constraints):
            pull = multipliers[c.multipliers]
            if pull.any():
                point = self._point(c.placed, z, dose) if points is None else points[index]
                self._add(gradient, dose_gradient, c.placed, c.constraint.pullback(point, pull / c.scale))
                pulled = True
        if pulled:
            gradient[: self.n_beamlets] += self.operator.adjoint(dose_gradient)
        return gradient
