"""The terms' `SmoothContext` over a compiled program's dose entries, and the reference fluence.

The first-order solver (`specc.solve.first_order`) evaluates the terms' smooth forms on the
program's entries; `specc.compile.sampling` evaluates the same forms on every voxel of a
sampled structure to say what the sample cost. Both read the forms through this context,
and the cvxpy `BuildContext` (`context.py`) extends it with the program's variables.

The terms on the fluence itself (smoothness, fluence regularization) are stated relative to
a reference fluence x_ref taken from the case and the prescription (`ReferenceFluence`): a
case's beamlet weight has whatever unit its source picked (matRad's, PortPy's, a DICOM
matrix's, specc's engine), and a protocol written once for every case must mean the same plan
on each. Both routes, cvxpy and the fast path, read the same x_ref from the context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from specc.case.products import select_rows
from specc.errors import CompileError

if TYPE_CHECKING:
    import scipy.sparse as sp

    from specc.case import Case
    from specc.compile.program import CompiledProgram
    from specc.compile.structures import ResolvedStructures
    from specc.compile.voxels import StructureEntries
    from specc.protocol import Protocol
    from specc.protocol.units import Dose


@dataclass(frozen=True)
class ReferenceFluence:
    """x_ref: the uniform beamlet weight (per fraction) at which the prescription's target receives its
    prescribed dose per fraction on average, D_fx / mean over the target's voxels of (A @ 1).

    matRad starts its optimization from the same weight (`wInit = doseTarget / mean(dij.physicalDose(V,:) *
    wOnes)`). With several dose levels the highest level's target and dose; with a prior course this plan's
    share of that level. Measured on every voxel of the target (never a sample), in float64."""

    beamlet_weight: float
    target: str
    dose_per_fraction_gy: float

    def note(self) -> str:
        """What the compile notes say of it, so that the plan names the scale its fluence terms were read on."""
        return (
            f"reference fluence {self.beamlet_weight:.4g} beamlet weights per fraction (the uniform beamlet weight that "
            f"gives {self.target} its {self.dose_per_fraction_gy:.4g} Gy per fraction on average): smoothness and "
            "fluence_regularization weigh the fluence in units of it"
        )


def reference_fluence(
    protocol: Protocol, case: Case, structures: ResolvedStructures, earlier: CompiledProgram | None = None
) -> ReferenceFluence:
    """The case's `ReferenceFluence` for `protocol`.

    `earlier`: a program of the same case whose rows a recompile keeps (`compile_protocol`'s `reuse`): its
    reference, where it was taken for the same target voxels and dose per fraction, is this one (a weight changed
    while tuning costs no sum over the target's rows); a changed prescription gets its own.
    Never a division by zero: a target is whole on every case (`resolve_structures`), and one that no beamlet
    reaches is refused before any term is built (`specc.compile.reach`), so the mean dose of a unit fluence over
    its voxels is positive."""
    level = max(protocol.prescription.levels, key=lambda level: level.dose.gy)
    mask = structures.masks[level.target]
    if earlier is not None:
        kept, kept_mask = earlier.reference_fluence, earlier.masks.get(level.target)
        same_level = (kept.target, kept.dose_per_fraction_gy) == (level.target, level.dose_per_fraction_gy)
        if same_level and kept_mask is not None and np.array_equal(kept_mask, mask):
            return kept
    rows = case.rows(mask)
    mean_dose_of_unit_fluence = float(np.sum(select_rows(case.influence, rows).data, dtype=np.float64)) / len(rows)
    assert mean_dose_of_unit_fluence > 0.0, f"{level.target}: a target no beamlet reaches is refused by reach_notes"
    return ReferenceFluence(
        level.dose_per_fraction_gy / mean_dose_of_unit_fluence, level.target, level.dose_per_fraction_gy
    )


class SmoothFormContext:
    """Implements `specc.terms.smooth.SmoothContext` over the compiled voxel selection."""

    def __init__(
        self,
        structures: Mapping[str, StructureEntries],
        voxel_volume_cc: float,
        fractions: int,
        n_beamlets: int,
        smoothness: Callable[[], sp.csr_matrix],
        reference: Callable[[], ReferenceFluence],
    ) -> None:
        """`smoothness` and `reference` are computed when a term first asks (most programs need neither)."""
        self._structures = structures
        self._voxel_volume_cc = voxel_volume_cc
        self._fractions = fractions
        self.n_beamlets = n_beamlets
        self._smoothness = smoothness
        self._reference = reference

    @classmethod
    def of(cls, program: CompiledProgram, structures: Mapping[str, StructureEntries] | None = None) -> SmoothFormContext:
        """`program`'s context, over its own dose entries or over the given `structures`."""

        return cls(
            program.selection.structures if structures is None else structures,
            program.voxel_volume_cc,
            program.fractions,
            program.influence.shape[1],
            lambda: program.beamlets.neighbour_differences,
            lambda: program.reference_fluence,
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

    def reference_fluence(self) -> float:
        return self._reference().beamlet_weight
