"""The final plan as an optimization term sees it: the evaluate stage's `EvaluationContext`.

Terms are measured on the total dose of every voxel of each structure on the full grid,
never on the voxel selection the optimizer used, so a limit the optimizer met only on its
sampled voxels shows up here as violated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from specc.case.shifts import Displacement, blurred_dose, displaced_dose
from specc.errors import SpeccError

if TYPE_CHECKING:
    from specc.case import Beamlets, Grid
    from specc.protocol.models import SetupScenario


class EvaluationError(SpeccError):
    """A plan that cannot be evaluated as asked (a structure without voxels, a missing input)."""


class PlanDoseContext:
    """Implements `specc.terms.EvaluationContext` over the full-grid total dose."""

    def __init__(
        self,
        dose_gy: np.ndarray,
        masks: Mapping[str, np.ndarray],
        voxel_volume_cc: float,
        fractions: int,
        fluence: np.ndarray,
        beamlets: Beamlets,
        grid: Grid | None = None,
        scenarios: Mapping[str, SetupScenario] | None = None,
        isocentre_mm: tuple[float, float, float] | None = None,
        fixed_gy: np.ndarray | None = None,
    ) -> None:
        """`scenarios`: the displaced structures robust term copies name, measured on `grid`
        with the interpolation (and the blur, for random errors) the optimization used
        (`specc.case.shifts`); rotations turn about `isocentre_mm`, the beams' (as at compile).
        `fixed_gy`: the part of `dose_gy` that stays with the anatomy (a composite's prior
        course): a scenario displaces the rest and adds it where it is."""
        self._dose_gy = dose_gy
        self._masks = masks
        self._grid = grid
        self._scenarios = dict(scenarios or {})
        self._isocentre_mm = isocentre_mm
        self._displaced: dict[str, np.ndarray] = {}  # each scenario's dose, read by every term copied into it
        self._blurred_doses: dict[tuple[float, float, float], np.ndarray] = {}
        self._moving_gy: np.ndarray | None = None
        self._fixed_gy = fixed_gy
        self._voxel_volume_cc = voxel_volume_cc
        self._beamlets = beamlets
        self.fractions = fractions
        self.fluence = fluence

    def _mask(self, structure: str) -> np.ndarray:
        """The structure's mask; a displaced structure's is its base's (the same voxels, displaced)."""
        if structure in self._scenarios:
            structure = self._scenarios[structure].structure
        try:
            return self._masks[structure]
        except KeyError:
            raise EvaluationError(
                f"a term asked for the dose of {structure!r}, which has no mask "
                f"(known: {', '.join(sorted(self._masks))})"
            ) from None

    def dose(self, structure: str) -> np.ndarray:
        scenario = self._scenarios.get(structure)
        if scenario is None:
            return self._dose_gy[self._mask(structure)]
        assert self._grid is not None, "a displaced structure is measured on the grid"
        if structure not in self._displaced:
            moved = Displacement.of(scenario, self._isocentre_mm)
            dose = self._moving() if scenario.random_error_mm is None else self._blurred(scenario.random_error_mm)
            mask = self._mask(scenario.structure)
            displaced = displaced_dose(dose, mask, self._grid, moved)
            self._displaced[structure] = displaced if self._fixed_gy is None else displaced + self._fixed_gy[mask]
        return self._displaced[structure]

    def _blurred(self, sigma_mm: tuple[float, float, float]) -> np.ndarray:
        """The dose a setup error moves, blurred by random errors, once for every scenario on it."""
        assert self._grid is not None, "a blurred dose is computed on the grid"
        if sigma_mm not in self._blurred_doses:
            self._blurred_doses[sigma_mm] = blurred_dose(self._moving(), self._grid, sigma_mm)
        return self._blurred_doses[sigma_mm]

    def _moving(self) -> np.ndarray:
        """The dose a setup error moves: all of it, or a composite's less its prior course (once, when asked)."""
        if self._fixed_gy is None:
            return self._dose_gy
        if self._moving_gy is None:
            self._moving_gy = self._dose_gy - self._fixed_gy
        return self._moving_gy

    def voxel_volume_cc(self) -> float:
        return self._voxel_volume_cc

    def volume_cc(self, structure: str) -> float:
        return float(np.count_nonzero(self._mask(structure))) * self._voxel_volume_cc

    def smoothness_operator(self) -> sp.csr_matrix:
        return self._beamlets.neighbour_differences
