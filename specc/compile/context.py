"""The compiled problem as a term sees it: the compile stage's `BuildContext`.

All terms share one fluence variable x >= 0 and one dose variable d with d == A_sel @ x
(Gy per fraction on the selected dose entries, see `voxels.py`), so the influence matrix
enters the program once however many terms look at a structure. A term asks for
`dose(structure)`, a slice of d, with the matching volume weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from specc.compile.voxels import StructureEntries
from specc.errors import CompileError
from specc.protocol.units import Dose

if TYPE_CHECKING:
    from specc.case import Beamlets


class ProgramContext:
    """Implements `specc.terms.BuildContext` over a voxel selection."""

    def __init__(
        self,
        fluence: cp.Variable,
        dose: cp.Variable,
        structures: Mapping[str, StructureEntries],
        voxel_volume_cc: float,
        fractions: int,
        beamlets: Beamlets,
    ) -> None:
        self._fluence = fluence
        self._dose = dose
        self._structures = structures
        self._voxel_volume_cc = voxel_volume_cc
        self._fractions = fractions
        self._beamlets = beamlets

    @property
    def fluence(self) -> cp.Variable:
        return self._fluence

    def _entries(self, structure: str) -> StructureEntries:
        try:
            return self._structures[structure]
        except KeyError:
            raise CompileError(
                f"a term asked for the dose of {structure!r}, which is not among the structures "
                f"its structures() declared ({', '.join(sorted(self._structures))})"
            ) from None

    def dose(self, structure: str) -> cp.Expression:
        entries = self._entries(structure).entries
        if len(entries) == self._dose.size and np.array_equal(entries, np.arange(len(entries))):
            return self._dose
        return self._dose[entries]

    def voxel_weights(self, structure: str) -> np.ndarray:
        return self._entries(structure).weights

    def volume_cc(self, structure: str) -> float:
        return self._entries(structure).n_voxels * self._voxel_volume_cc

    def per_fraction(self, dose: Dose) -> float:
        return dose.gy / self._fractions

    def smoothness_operator(self) -> sp.csr_matrix:
        return self._beamlets.neighbour_differences
