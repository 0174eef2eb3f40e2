"""What every optimization kind provides, and what the stages hand it.

A kind is written in YAML, compiled to cvxpy and measured on the final dose. Keeping those
three in one module (one per kind) means the module cannot belong to a single stage, so the
stages meet it through two small interfaces defined here: `BuildContext` (implemented by
the compile stage) and `EvaluationContext` (implemented by the evaluate stage). Neither
interface mentions how voxels are stored, sampled or merged: a kind only sees per-structure
dose vectors with their relative volume weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from specc.terms.smooth import NoSmoothForm

if TYPE_CHECKING:  # cvxpy is only needed once a term is built
    import cvxpy as cp
    import scipy.sparse as sp

    from specc.protocol.units import Dose
    from specc.terms.smooth import SmoothContext, SmoothForm


@dataclass(frozen=True)
class SourceLocation:
    """Where a protocol statement was written, so reports and errors can point at it.

    The loader also records the statement's `path` in the file that writes it (`goals.Rectum[0]`, though the goal
    may stand at another index once merged with a template's) and where each of its `fields` is written (as
    locations of their own), so that an error found only against a case names the field to change as a protocol
    file's own errors do, without reading the files again. Both are left out of equality and hashing: a place is
    its file, line and column (a term derived from a goal carries the goal's place, and is found by it).
    """

    file: str
    line: int
    column: int
    path: tuple[str | int, ...] = field(default=(), compare=False)
    fields: Mapping[str, SourceLocation] = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class BuildContext(Protocol):
    """The compiled problem as a term sees it (implemented by `specc.compile`)."""

    @property
    def fluence(self) -> cp.Expression:
        """Beamlet weights x >= 0 (one entry per beamlet of the case): the reference fluence times the
        solver's unit-free variable (`specc.compile.program.ScaledFluence`), an expression, not a variable."""

    def dose(self, structure: str) -> cp.Expression:
        """Per-fraction dose in Gy on the voxels (or voxel groups) that represent `structure`."""

    def voxel_weights(self, structure: str) -> np.ndarray:
        """Relative volume of each entry of `dose(structure)`; sums to 1."""

    def volume_cc(self, structure: str) -> float:
        """Volume of the whole structure in cc (for DVH limits written in cc)."""

    def per_fraction(self, dose: Dose) -> float:
        """A protocol (total) dose converted to Gy per fraction: the one place this happens."""

    def smoothness_operator(self) -> sp.csr_matrix:
        """Sparse differences between neighbouring beamlets of the same beam (rows = pairs)."""

    def reference_fluence(self) -> float:
        """x_ref, the uniform beamlet weight per fraction that gives the (highest) prescription target its dose per
        fraction on average: the scale of the terms on the fluence itself, whose beamlet-weight unit is the case's."""


class EvaluationContext(Protocol):
    """The final plan as a term sees it (implemented by `specc.evaluate`)."""

    fractions: int
    fluence: np.ndarray

    def dose(self, structure: str) -> np.ndarray:
        """Total dose in Gy on every voxel of `structure` on the full grid."""

    def voxel_volume_cc(self) -> float:
        """Volume of one dose-grid voxel in cc."""

    def volume_cc(self, structure: str) -> float:
        """Volume of the whole structure in cc."""

    def smoothness_operator(self) -> sp.csr_matrix:
        """Same operator as `BuildContext.smoothness_operator`."""


# A hard limit counts as met on the final dose when violated by at most this fraction of
# its dose (solver tolerances make exact equality unattainable); larger violations are
# reported, never hidden.
LIMIT_TOLERANCE = 1e-3


@dataclass
class BuiltTerm:
    """A term's contribution to the program: an objective part and/or hard constraints.

    `met`: for a penalty, constraints that hold exactly where it is zero (a soft limit's limit;
    every voxel at or below the level of an overdose penalty), empty where there are none (a
    smoothness penalty is zero only without fluence). A priority step whose penalties all reached
    zero is kept so in the steps after it, by these limits (linear for dose and CVaR limits) instead of
    a bound on a sum of squares (`specc.solve.priorities`)."""

    objective: cp.Expression | None = None
    constraints: list[cp.Constraint] = field(default_factory=list)
    met: list[cp.Constraint] = field(default_factory=list)


@dataclass(frozen=True)
class TermResult:
    """A term measured on the final dose, for the optimization log of the report.

    `satisfied` is None for pure objectives (nothing to satisfy), a bool for limits. A limit also says what it was
    judged against and by how much it misses it, so that no reader has to know each kind to tell (a DVH upper limit
    judges a volume, an EQD2 mean an isoeffective dose): `limit`, the bound `value` is compared with, in `unit` (of
    a two-sided limit the one broken, else the upper one), and `violation`, how far `value` lies beyond it in
    `unit` (0 within, the plain distance: `satisfied` allows `LIMIT_TOLERANCE`, this does not; inf where the value
    is undefined, as a DVH's dose for more volume than its structure has). Both None for an objective.
    """

    value: float
    unit: str
    satisfied: bool | None
    detail: str = ""
    limit: float | None = None
    violation: float | None = None


class TermBase(BaseModel):
    """Fields and behaviour shared by all optimization kinds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    # The lexicographic step of this term (docs/optimizer.md): what `specc compile --explain`
    # writes for a goal's penalty, so that pasted terms are solved in the same steps.
    priority: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        description="Lexicographic priority of this objective: priority-1 terms are optimized first, then the "
        "terms without a priority (coverage, fall-off), then priority 2, 3, ...; each step keeps the earlier "
        "ones within `optimization.solver.slip_percent`. Left out: optimized with the other unranked terms.",
    )
    # Filled in by the loader from the YAML position; never written by users.
    source: SkipJsonSchema[SourceLocation | None] = Field(default=None, exclude=True)

    @property
    def is_constraint(self) -> bool:
        """Whether this term gives hard constraints (True) or an objective (False).

        False for pure objectives; limit kinds answer from their `hard` field.
        """
        return False

    def structures(self) -> tuple[str, ...]:
        """Structure names this term refers to (checked against the protocol's structures)."""
        name = getattr(self, "structure", None)
        return (name,) if name else ()

    def every_voxel(self) -> tuple[str, ...]:
        """The structures this term must see on every voxel, never on a sample: those of a hard limit,
        which must hold on each voxel (a sample would hide its violations)."""
        return self.structures() if self.is_constraint else ()

    def dose_bounds(self) -> tuple[Dose | None, Dose | None]:
        """The (lower, upper) total dose this term forces on every voxel of its structures.

        Only a hard limit on each voxel bounds it; objectives, soft limits and limits on an
        aggregate (mean, DVH, gEUD) leave single voxels free, hence (None, None). The
        protocol stage uses it to refuse terms that no dose can meet together.
        """
        return None, None

    @classmethod
    def with_structure_defaults(cls, written: dict, alpha_beta: Dose | None) -> dict:
        """The term as written in a protocol (its YAML mapping), with what it takes from its structure's
        definition when it leaves it out (a kind that takes nothing returns it unchanged)."""
        return written

    def upper_limit_on(self, dose_gy: np.ndarray, weights: np.ndarray) -> tuple[float, float, str] | None:
        """(measured, limit, what it measures) of this term's upper dose limit on `dose_gy` (total Gy on its
        structure's entries, `weights` their relative volumes), or None for a term that limits no such thing.

        A diagnosis asks it of a composite's prior dose: this plan only adds dose, so an upper limit the prior
        dose alone breaks is one no plan of this course can meet (`specc.solve.diagnose`)."""
        return None

    def label(self) -> str:
        """Short human description for logs and reports, e.g. 'max_dose Rectum <= 75 Gy'."""
        raise NotImplementedError(f"{type(self).__name__} must describe itself")

    def build(self, ctx: BuildContext) -> BuiltTerm:
        raise NotImplementedError(f"{type(self).__name__} has no cvxpy form")

    def evaluate(self, ctx: EvaluationContext) -> TermResult:
        raise NotImplementedError(f"{type(self).__name__} has no evaluation")

    def smooth_form(self, ctx: SmoothContext) -> SmoothForm:
        """The same term for the first-order fast path (`specc.terms.smooth`); exact, never smoothed."""
        raise NoSmoothForm(f"{self.kind} has no smooth form for the first-order solver")
