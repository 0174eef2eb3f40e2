"""The compiled problem as a term sees it: the compile stage's `BuildContext`.

All terms share one fluence variable x >= 0 and one dose variable d with d == A_sel @ x
(Gy per fraction on the selected dose entries, see `voxels.py`), so the influence matrix
enters the program once however many terms look at a structure. A term asks for
`dose(structure)`, a slice of d, with the matching volume weights.
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


class ProgramContext(SmoothFormContext):
    """Implements `specc.terms.BuildContext` over a voxel selection: the dose entries'
    weights and volumes as the smooth forms see them, plus the program's cvxpy variables."""

    def __init__(
        self,
        fluence: cp.Variable,
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
    def fluence(self) -> cp.Variable:
        return self._fluence

    def dose(self, structure: str) -> cp.Expression:
        entries = self._entries(structure).entries
        if len(entries) == self._dose.size and np.array_equal(entries, np.arange(len(entries))):
            return self._dose
        return self._dose[entries]
