"""The compiled problem as a term sees it: the compile stage's `BuildContext`.

All terms share one fluence x >= 0 and one dose variable d with d == A_sel @ x (Gy per
fraction on the selected dose entries, see `voxels.py`), so the influence matrix enters the
program once however many terms look at a structure. A term asks for `dose(structure)`, a
slice of d, with the matching volume weights.

The fluence is `ScaledFluence`: x = x_ref * z over a unit-free variable z >= 0, the one the
solver sees. A case's beamlet weight has whatever unit its source picked, and a solver's path
depends on its variable's unit (CLARABEL's equilibration and absolute tolerances); where the
optimum is not unique (a last priority step that reaches 0), that path is what picks the plan.
In z the problem handed to the solver is the same whatever the unit, so is the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import cvxpy as cp
import numpy as np

from specc.compile.smooth_context import ReferenceFluence, SmoothFormContext
from specc.compile.voxels import StructureEntries

if TYPE_CHECKING:
    from specc.case import Beamlets


class ScaledFluence(cp.multiply):
    """x = scale * z: the fluence in the case's beamlet weights per fraction, over the unit-free variable z.

    `scale` is the case's reference fluence x_ref (`ReferenceFluence`), which moves with the beamlet-weight
    unit, so z (1: the uniform fluence that gives the target its dose per fraction) does not. It reads and
    is assigned as the fluence variable: assigning x sets z = x / scale (`CompiledProgram.fluence`). It is
    cvxpy's elementwise product with that setter added; cvxpy canonicalizes it as the affine product it is.
    """

    @classmethod
    def over(cls, n_beamlets: int, scale: float) -> ScaledFluence:
        return cls(scale, cp.Variable(n_beamlets, nonneg=True, name="fluence_per_reference"))

    @property
    def scale(self) -> float:
        return float(np.ravel(self.args[0].value)[0])  # multiply may broadcast the scalar to the shape of z

    @property
    def variable(self) -> cp.Variable:
        return self.args[1]

    @property
    def value(self) -> np.ndarray | None:
        return super().value

    @value.setter
    def value(self, fluence: np.ndarray | None) -> None:
        self.variable.value = None if fluence is None else np.asarray(fluence, dtype=np.float64) / self.scale


class ProgramContext(SmoothFormContext):
    """Implements `specc.terms.BuildContext` over a voxel selection: the dose entries'
    weights and volumes as the smooth forms see them, plus the program's cvxpy variables."""

    def __init__(
        self,
        fluence: ScaledFluence,
        dose: cp.Variable,
        structures: Mapping[str, StructureEntries],
        voxel_volume_cc: float,
        fractions: int,
        beamlets: Beamlets,
        reference: Callable[[], ReferenceFluence],
    ) -> None:
        super().__init__(
            structures, voxel_volume_cc, fractions, fluence.size, lambda: beamlets.neighbour_differences, reference
        )
        self._fluence = fluence
        self._dose = dose

    @property
    def fluence(self) -> ScaledFluence:
        return self._fluence

    def dose(self, structure: str) -> cp.Expression:
        entries = self._entries(structure).entries
        if len(entries) == self._dose.size and np.array_equal(entries, np.arange(len(entries))):
            return self._dose
        return self._dose[entries]
