"""Target quality indices at the prescription, and hot spots.

- Homogeneity (ICRU Report 83): HI = (D2% - D98%) / D50% of the target.
- Conformity (Paddick 2000): CI = TV_PIV^2 / (TV x PIV), with TV the target volume, PIV the
  volume of the prescription isodose over the dose grid and TV_PIV the part of the
  target inside it; 1 is perfect.
- Gradient: R50 = volume of the 50% prescription isodose / TV.
- Hot spot: D0.03cc (the near-maximum of ICRU 83 practice) and the position of the hottest
  voxel in patient coordinates (mm, LPS), taken from the grid geometry.
- Hot spot outside the targets: inside the patient's outline where the case has one (`patient_outline`), so that
  the dose another system reports in air or on the couch is not read as a hot spot in the patient.

A voxel is inside an isodose by the rule of V(d) (`dvh.receives`: within 1e-6 below the level counts), for
the target's covered volume TV_PIV and for PIV and PIV50 alike, so that TV_PIV <= PIV and PCI <= 1.
Isodose volumes count every voxel of the grid but those of the targets of higher dose levels
(`higher_level_targets`): in a simultaneous boost the 70.2 Gy isodose of a 3 cc PTV_Low also holds the
35 cc PTV_High at 78 Gy, which is no spill, and counting it read CI 12.67 and PCI 0.079 for a conformal
plan (audit b4 F3). A higher target's voxels inside this target stay (they are this target's own).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from specc.evaluate.dvh import DVH, UndefinedMetric, beyond_structure, receives
from specc.evaluate.record import HotSpot, TargetIndices
from specc.protocol.units import Volume

if TYPE_CHECKING:
    from specc.case import Grid
    from specc.protocol import Metric

NEAR_MAX_VOLUME_CC = 0.03
_NEAR_MAX = Volume(value=NEAR_MAX_VOLUME_CC, unit="cc")


def near_max_undefined(region_cc: float) -> str | None:
    """Why a region of `region_cc` has no D0.03cc (a region smaller than 0.03 cc, an SRS target of 3 mm on a 1 mm
    grid), in the words of a goal 'D0.03cc' on it, which reads NOT EVALUATED; None when it has one."""
    return beyond_structure(_NEAR_MAX, NEAR_MAX_VOLUME_CC, region_cc)


def hot_spot(region: str, dose_gy: np.ndarray, mask: np.ndarray, grid: Grid, voxel_volume_cc: float) -> HotSpot:
    """D0.03cc of `mask` and where its hottest voxel is. A region under 0.03 cc has no D0.03cc
    (`near_max_undefined`): None, never the value of the whole region, its minimum.

    Both read only the hottest 0.03 cc: a DVH of those voxels and one more gives them, where one of the whole
    region (the whole grid, for the plan's hot spot) took 11 s on a 512 x 512 x 120 grid."""
    values = dose_gy[mask]  # a copy of its own: partitioned in place (a second copy was 0.3 s on a CT-size grid)
    hottest = min(values.size, math.ceil(NEAR_MAX_VOLUME_CC / voxel_volume_cc) + 1)
    if values.size:
        values.partition(values.size - hottest)
    floor = values[values.size - hottest] if values.size else 0.0
    dvh = DVH.from_dose(values[values >= floor], voxel_volume_cc)
    near_max = None if near_max_undefined(values.size * voxel_volume_cc) else dvh.dose_at_volume(_NEAR_MAX)
    masked = np.where(mask, dose_gy, -np.inf)
    x, y, z = grid.positions_mm(np.array([np.argmax(masked)]))[0]
    return HotSpot(region=region, d0_03cc_gy=near_max, max_gy=dvh.max, location_mm=(float(x), float(y), float(z)))


# Hot spots belong inside the targets: a near-maximum above 110% of the highest dose level outside every
# prescription target is a major deviation in RTOG-style protocols (e.g. RTOG 0126, 0615), and what a plan
# derived from goals with few beams can leave in normal tissue that no goal names.
OUTSIDE_HOT_SPOT_FRACTION = 1.10


@dataclass(frozen=True)
class OutsideHotSpot:
    """The dose outside every prescription target peaking above `OUTSIDE_HOT_SPOT_FRACTION` of the highest level:
    the notes' full sentence (`note`) and the few words the summary line and the report's header give it
    (`headline`), since a signer reads those first and a goals-only plan can pass every goal with 168% in normal
    tissue (audit b4 F2). It is no goal: no status counts it."""

    peak: str  # "D0.03cc", or "maximum (no D0.03cc: why)" when less than 0.03 cc lies outside the targets
    peak_gy: float
    highest_gy: float  # the highest dose level
    location_mm: tuple[float, float, float]  # the hottest voxel outside the targets (LPS)
    # the outline it was searched inside (`patient_outline`: "BODY", "Body or External"); None: the whole dose grid
    within: str | None = None

    @property
    def percent(self) -> float:
        """The peak in % of the highest dose level."""
        return 100 * self.peak_gy / self.highest_gy

    @property
    def headline(self) -> str:
        """'hot spot outside the targets 168% (D0.03cc 84.02 Gy)'."""
        peak = "D0.03cc" if self.peak == "D0.03cc" else "maximum"
        return f"hot spot outside the targets {self.percent:.0f}% ({peak} {self.peak_gy:.2f} Gy)"

    @property
    def note(self) -> str:
        x, y, z = self.location_mm
        where = f" inside {self.within}" if self.within is not None else ""
        return (
            f"hot spot outside the prescription targets{where}: {self.peak} {self.peak_gy:.2f} Gy "
            f"({self.percent:.0f}% of the highest dose level, {self.highest_gy:g} Gy), hottest voxel at "
            f"({x:.1f}, {y:.1f}, {z:.1f}) mm; hot spots belong inside the targets (RTOG-style protocols call more "
            f"than {100 * OUTSIDE_HOT_SPOT_FRACTION:.0f}% outside them a major deviation); a goal on the body limits it "
            "(e.g. Body: [\"Max <= 110%\"], docs/optimizer.md)"
        )


def patient_outline(
    targets: Sequence[np.ndarray], organs: Sequence[np.ndarray], candidates: Mapping[str, np.ndarray]
) -> tuple[str, np.ndarray] | None:
    """The patient's outline as the case draws it: the union of the `candidates` (name: mask) that enclose every
    prescription target and every organ at risk (`organs`) and reach beyond the targets, named "A or B"; None
    when none does, or there is no organ at risk, and the hot spot is searched over the whole grid.

    The body (External, BODY) is such a structure; a margin around the targets (a PTV_eval, a ring) encloses them
    too but not the organs at risk, and searching inside it would miss a hot spot in undrawn tissue, so an outline
    must hold the organs as well, and a case with none falls back to the whole grid. Names are not read: a
    planning system's outline goes by many (specc/export/roi_types.py), and a geometric test needs none of them.
    A candidate whose mask equals one taken already is left out (the protocol's Body and the case's BODY)."""
    if not targets or not organs:
        return None
    inside = [np.flatnonzero(mask.ravel()) for mask in (*targets, *organs)]  # few voxels: cheap to test per candidate
    target_count = int(np.count_nonzero(np.logical_or.reduce(list(targets))))
    names: list[str] = []
    union: np.ndarray | None = None
    taken: list[np.ndarray] = []
    for name, mask in candidates.items():
        flat = mask.ravel()
        if not all(flat[voxels].all() for voxels in inside) or np.count_nonzero(flat) <= target_count:
            continue  # misses a target or an organ, or is the targets themselves
        if any(np.array_equal(mask, other) for other in taken):
            continue
        taken.append(mask)
        names.append(name)
        union = mask.copy() if union is None else union | mask
    return (" or ".join(names), union) if union is not None else None


def outside_hot_spot(
    dose_gy: np.ndarray, target_masks: list[np.ndarray], highest_gy: float, grid: Grid, voxel_volume_cc: float,
    outline: tuple[str, np.ndarray] | None = None,
) -> OutsideHotSpot | None:
    """The hot spot outside every prescription target when it peaks above `OUTSIDE_HOT_SPOT_FRACTION` of the
    highest level (None when it does not, or nothing lies outside). `outline`: the patient's (`patient_outline`),
    its name and mask, which the search stays inside (audit s20/t3 F3: another system's RT Dose read 123% in air
    53 mm from the body's axis, 116% at most inside it); None: the whole grid."""
    outside = ~np.logical_or.reduce(target_masks) if target_masks else np.ones(dose_gy.shape, dtype=bool)
    if outline is not None:
        outside &= outline[1]
    values = dose_gy[outside]
    if values.size == 0 or highest_gy <= 0 or values.max() <= OUTSIDE_HOT_SPOT_FRACTION * highest_gy:
        return None  # D0.03cc is at most the maximum: no DVH of (nearly) the whole grid for a plan without the note
    spot = hot_spot("outside the targets", dose_gy, outside, grid, voxel_volume_cc)
    # under 0.03 cc outside the targets there is no D0.03cc: the maximum
    if spot.d0_03cc_gy is None:
        peak_gy, peak = spot.max_gy, f"maximum (no D0.03cc: {near_max_undefined(values.size * voxel_volume_cc)})"
    else:
        peak_gy, peak = spot.d0_03cc_gy, "D0.03cc"
    if peak_gy <= OUTSIDE_HOT_SPOT_FRACTION * highest_gy:
        return None
    return OutsideHotSpot(peak=peak, peak_gy=peak_gy, highest_gy=highest_gy, location_mm=spot.location_mm,
                          within=outline[0] if outline is not None else None)


def higher_level_targets(target: str, levels: Sequence[tuple[str, float]]) -> list[str]:
    """The targets whose dose level (`levels`: target and total Gy) is above `target`'s: left out of its
    isodose volumes. One rule for the plan record's indices and the report's footnote that names them."""
    own = max((gy for name, gy in levels if name == target), default=math.inf)
    return [name for name, gy in levels if gy > own and name != target]


def target_indices(
    structure: str, prescription_gy: float, dose_gy: np.ndarray, mask: np.ndarray, grid: Grid, voxel_volume_cc: float,
    higher_targets: np.ndarray | None = None,
) -> TargetIndices:
    """All indices of one target; `dose_gy` is the total dose on the whole grid; `higher_targets`: the voxels of
    the targets of higher levels (`higher_level_targets`), which the isodose volumes leave out (None: none)."""
    dvh = DVH.from_dose(dose_gy[mask], voxel_volume_cc)
    d98 = dvh.dose_at_volume(Volume(value=98, unit="%"))
    d50 = dvh.dose_at_volume(Volume(value=50, unit="%"))
    d2 = dvh.dose_at_volume(Volume(value=2, unit="%"))
    target_cc = dvh.volume_cc
    covered_cc = dvh.volume_at_dose_cc(prescription_gy)
    # one isodose rule for TV_PIV (coverage), PIV and PIV50: TV_PIV <= PIV, so the PCI stays within [0, 1]
    # (the target's own voxels are never left out, even where a higher target overlaps it)
    counted = np.ones(dose_gy.shape, dtype=bool) if higher_targets is None else ~higher_targets | mask
    isodose_cc = float(np.count_nonzero(receives(dose_gy, prescription_gy) & counted)) * voxel_volume_cc
    half_isodose_cc = float(np.count_nonzero(receives(dose_gy, 0.5 * prescription_gy) & counted)) * voxel_volume_cc
    return TargetIndices(
        structure=structure,
        prescription_gy=prescription_gy,
        volume_cc=target_cc,
        d98_gy=d98,
        d50_gy=d50,
        d2_gy=d2,
        homogeneity_index=(d2 - d98) / d50 if d50 > 0 else None,
        coverage_percent=100.0 * covered_cc / target_cc,
        prescription_isodose_cc=isodose_cc,
        paddick_conformity_index=covered_cc**2 / (target_cc * isodose_cc) if isodose_cc > 0 else 0.0,
        half_isodose_cc=half_isodose_cc,
        r50=half_isodose_cc / target_cc,
        hot_spot=hot_spot(structure, dose_gy, mask, grid, voxel_volume_cc),
    )


def index_value(metric: Metric, indices: TargetIndices) -> float:
    """A plan-quality index goal's value, read from its target's indices (`metric.is_index`)."""
    quantity = metric.quantity
    if quantity == "CI":
        return indices.prescription_isodose_cc / indices.volume_cc
    if quantity == "PCI":
        return indices.paddick_conformity_index
    if quantity == "R50":
        return indices.r50
    if quantity == "GI":
        if indices.prescription_isodose_cc == 0:
            raise UndefinedMetric("GI: no voxel receives the prescription dose (the ratio has no denominator)")
        return indices.half_isodose_cc / indices.prescription_isodose_cc
    if quantity == "HI":
        if indices.homogeneity_index is None:
            raise UndefinedMetric("HI: D50% of the target is 0 Gy (the ratio has no denominator)")
        return indices.homogeneity_index
    raise UndefinedMetric(f"{metric} is not a plan-quality index")
