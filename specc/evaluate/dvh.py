"""The exact cumulative dose-volume histogram of one structure.

Clinical DVH tools (dicompyler-core, treatment planning systems) bin the dose and read
metrics off the binned curve, so a reported D95% depends on the bin width. specc keeps the
voxel doses themselves, sorted, with their volumes: every metric is an order statistic of
the volume-weighted dose distribution, exact to the voxel.

Conventions (the TG-263 vocabulary; dicompyler-core's `DVH` in the limit of zero bin width):

- V(d), "volume receiving at least d" = total volume of the voxels with dose >= d.
- D_v, "dose to the hottest v" = max{d : V(d) >= v}: the minimum dose received by the
  hottest volume v. No interpolation between voxels: D_v is always some voxel's dose, the
  coldest voxel needed to accumulate v counting from the hottest. D0 is the maximum dose,
  D100% the minimum.
- DC_v, "dose complement" = min{d : volume with dose <= d >= v}: the maximum dose received by
  the coldest volume v.
- CV(d), "complement volume" = total volume with dose < d.

V(d) counts a voxel within `DOSE_ROUNDING` (1e-6 of d) below d as receiving d (`receives`): the voxel a
plan was normalized on must count whether its dose is read in float64 or float32. The target indices'
isodose volumes (PIV, PIV50) and coverage count voxels by the same rule.

Volumes accumulate with a relative tolerance of 1e-9 of the structure volume so that, e.g.,
95% of 20 equal voxels is exactly 19 voxels despite floating-point rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from specc.errors import SpeccError
from specc.protocol.judgement import DOSE_ROUNDING
from specc.protocol.units import Volume, VolumeUnit

_RELATIVE_VOLUME_TOLERANCE = 1e-9


# The dose step of the plan record's DVH curves (plan.json, dvh.csv, the report's figure): clinical DVH exports
# bin at 0.01-0.1 Gy; at 0.1 Gy a dose read off the curve is within 0.1 Gy of the goal table's exact value, and a
# plan.json of four structures up to 57 Gy is 90 kB (201 points up to the maximum: 49 kB, off by up to 1 Gy).
DVH_CURVE_STEP_GY = 0.1


def _isodose_floor_gy(dose_gy: float | np.ndarray) -> float | np.ndarray:
    """The lowest voxel dose that counts as receiving `dose_gy`: V(d), coverage and isodose volumes share it."""
    return dose_gy * (1.0 - DOSE_ROUNDING)


def receives(dose_gy: np.ndarray, level_gy: float) -> np.ndarray:
    """Which voxels receive at least `level_gy` (the isodose of V(d), `_isodose_floor_gy`)."""
    return dose_gy >= _isodose_floor_gy(level_gy)


def beyond_structure(volume: Volume, cc: float, whole_cc: float) -> str | None:
    """Why a D_v or DC_v of `cc` (`volume` as stated) has no value on a structure of `whole_cc`: more than the whole
    structure (beyond the accumulation tolerance). None when it has one. The goals and the target indices share it."""
    if cc > whole_cc * (1 + _RELATIVE_VOLUME_TOLERANCE):
        return f"{volume} is more than the whole structure ({whole_cc:.4g} cc)"
    return None


class UndefinedMetric(SpeccError):
    """A metric that has no value on this structure (e.g. D2cc of a 1 cc structure)."""


@dataclass(frozen=True)
class DVH:
    """Voxel doses of one structure sorted hottest first, with the volume they accumulate."""

    doses_gy: np.ndarray  # voxel doses in Gy, descending
    cumulative_cc: np.ndarray  # volume of the voxels up to and including each position, cc

    @classmethod
    def from_dose(cls, dose_gy: np.ndarray, voxel_volume_cc: float, weights: np.ndarray | None = None) -> DVH:
        """Build from the dose of every voxel of a structure.

        `weights` are the fractions of each voxel inside the structure (1 when omitted);
        voxels with zero weight do not count.
        """
        dose = np.asarray(dose_gy, dtype=np.float64).ravel()
        volume = np.full(dose.shape, float(voxel_volume_cc))
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64).ravel()
            if weights.shape != dose.shape:
                raise ValueError(f"{weights.size} weights for {dose.size} voxel doses")
            if np.any(weights < 0) or not np.all(np.isfinite(weights)):
                raise ValueError("voxel weights must be finite and non-negative")
            volume = volume * weights
        if not np.all(np.isfinite(dose)):
            raise SpeccError("the dose contains NaN or infinite values; the plan cannot be evaluated")
        keep = volume > 0
        if not np.any(keep):
            raise UndefinedMetric("a DVH needs at least one voxel with a positive volume")
        dose, volume = dose[keep], volume[keep]
        order = np.argsort(-dose, kind="stable")
        return cls(doses_gy=dose[order], cumulative_cc=np.cumsum(volume[order]))

    @property
    def volume_cc(self) -> float:
        return float(self.cumulative_cc[-1])

    @property
    def max(self) -> float:
        return float(self.doses_gy[0])

    @property
    def min(self) -> float:
        return float(self.doses_gy[-1])

    @property
    def mean(self) -> float:
        voxel_volumes = np.diff(self.cumulative_cc, prepend=0.0)
        return float(np.dot(self.doses_gy, voxel_volumes) / self.volume_cc)

    def _to_cc(self, volume: Volume) -> float:
        cc = volume.value / 100.0 * self.volume_cc if volume.unit == "%" else volume.value
        if (reason := beyond_structure(volume, cc, self.volume_cc)) is not None:
            raise UndefinedMetric(reason)
        return cc

    def _tolerance_cc(self) -> float:
        return _RELATIVE_VOLUME_TOLERANCE * self.volume_cc

    def dose_at_volume(self, volume: Volume) -> float:
        """D_v in Gy: the minimum dose received by the hottest `volume` (D95%, D2cc, D0.03cc)."""
        needed = self._to_cc(volume) - self._tolerance_cc()
        position = int(np.searchsorted(self.cumulative_cc, needed, side="left"))
        return float(self.doses_gy[min(position, self.doses_gy.size - 1)])

    def dose_at_cold_volume(self, volume: Volume) -> float:
        """DC_v in Gy: the maximum dose received by the coldest `volume`."""
        needed = self._to_cc(volume) - self._tolerance_cc()
        # Volume of the coldest voxels, accumulated from the cold end.
        cold_cumulative = self.volume_cc - np.concatenate(([0.0], self.cumulative_cc[:-1]))[::-1]
        position = int(np.searchsorted(cold_cumulative, needed, side="left"))
        return float(self.doses_gy[::-1][min(position, self.doses_gy.size - 1)])

    def volume_at_dose_cc(self, dose_gy: float) -> float:
        """V(d) in cc: volume receiving at least `dose_gy` (`_isodose_floor_gy`)."""
        hot_count = int(np.searchsorted(-self.doses_gy, -_isodose_floor_gy(dose_gy), side="right"))
        return float(self.cumulative_cc[hot_count - 1]) if hot_count else 0.0

    def volume_at_dose(self, dose_gy: float, unit: VolumeUnit = "%") -> float:
        """V(d): volume receiving at least `dose_gy`, in % of the structure or in cc (V20Gy)."""
        cc = self.volume_at_dose_cc(dose_gy)
        return 100.0 * (cc / self.volume_cc) if unit == "%" else cc

    def volume_below_dose(self, dose_gy: float, unit: VolumeUnit = "cc") -> float:
        """CV(d): volume receiving less than `dose_gy` (spared volume), in cc or %."""
        cc = self.volume_cc - self.volume_at_dose_cc(dose_gy)
        return 100.0 * (cc / self.volume_cc) if unit == "%" else cc

    def curve_by_step(
        self, step_gy: float = DVH_CURVE_STEP_GY, max_dose_gy: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The cumulative DVH sampled every `step_gy` from 0 Gy up to `max_dose_gy` (default: the maximum), and at
        `max_dose_gy` itself last: a plan's curves, sampled up to its maximum, share their doses.

        Returns (dose in Gy, volume in % receiving at least that dose); exact at each sample.
        """
        top = self.max if max_dose_gy is None else max_dose_gy
        # rounded to the nanogray so that plan.json reads 0.3, not 0.30000000000000004
        doses = np.round(np.arange(math.floor(top / step_gy * (1 + 1e-12)) + 1) * step_gy, 9)
        return self._sampled(doses if doses[-1] >= top else np.append(doses, top))

    def _sampled(self, doses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V(d) in % at each of `doses`, by the isodose rule of `volume_at_dose_cc`."""
        hot_counts = np.searchsorted(-self.doses_gy, -_isodose_floor_gy(doses), side="right")
        cumulative = np.concatenate(([0.0], self.cumulative_cc))
        return doses, 100.0 * (cumulative[hot_counts] / self.volume_cc)
