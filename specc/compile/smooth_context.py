"""The terms' `SmoothContext` over a compiled program's dose entries.

The first-order solver (`specc.solve.first_order`) evaluates the terms' smooth forms on the
program's entries; `specc.compile.sampling` evaluates the same forms on every voxel of a
sampled structure to say what the sample cost. Both read the forms through this context,
and the cvxpy `BuildContext` (`context.py`) extends it with the program's variables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from specc.errors import CompileError

if TYPE_CHECKING:
    import scipy.sparse as sp

    from specc.compile.program import CompiledProgram
    from specc.compile.voxels import StructureEntries
    from specc.protocol.units import Dose


class SmoothFormContext:
    """Implements `specc.terms.smooth.SmoothContext` over the compiled voxel selection."""

    def __init__(
        self,
        structures: Mapping[str, StructureEntries],
        voxel_volume_cc: float,
        fractions: int,
        n_beamlets: int,
        smoothness: Callable[[], sp.csr_matrix],
    ) -> None:
        self._structures = structures
        self._voxel_volume_cc = voxel_volume_cc
        self._fractions = fractions
        self.n_beamlets = n_beamlets
        self._smoothness = smoothness

    @classmethod
    def of(cls, program: CompiledProgram, structures: Mapping[str, StructureEntries] | None = None) -> SmoothFormContext:
        """`program`'s context, over its own dose entries or over the given `structures`."""
        return cls(
            program.selection.structures if structures is None else structures,
            program.voxel_volume_cc,
            program.fractions,
            program.influence.shape[1],
            lambda: program.beamlets.neighbour_differences,
        )

    def _entries(self, structure: str) -> StructureEntries:
        try:
            return self._structures[structure]
        except KeyError:
            raise CompileError(
                f"a term asked for the dose of {structure!r}, which is not among the structures "
                f"its structures() declared ({', '.join(sorted(self._structures))})"
            ) from None

    def entries(self, structure: str) -> np.ndarray:
        return self._entries(structure).entries

    def voxel_weights(self, structure: str) -> np.ndarray:
        return self._entries(structure).weights

    def volume_cc(self, structure: str) -> float:
        return self._entries(structure).n_voxels * self._voxel_volume_cc

    def per_fraction(self, dose: Dose) -> float:
        return dose.gy / self._fractions

    def smoothness_operator(self) -> sp.csr_matrix:
        return self._smoothness()
