"""The influence matrix of a case that brings geometry but no dose: computed by specc's own engine.

A DICOM CT + RTSTRUCT, or a matRad workspace without a dij (the phantom files matRad and
pyRadPlan ship hold only ct and cst), has structures and densities but no influence matrix.
Both get one the same way: the beams aimed at the targets' centre of mass (as matRad's
matRad_getIsoCenter does) unless the source says where, beamlets over the targets'
projection, rows on every structure voxel (docs/dose-engine.md for the model and its limits).
"""

from __future__ import annotations

import math

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from specc.case.engine import DensityVolume, Influence, PencilBeamModel, compute_influence, equispaced_beams
from specc.case.model import Beam, Grid, Structure
from specc.errors import CaseError

# A box side this close to a lattice point (in spacings; decimal strings of DICOM positions) is on it.
_LATTICE_TOLERANCE = 1e-6


def grid_spacing(grid_mm: float | Sequence[float], image_z_mm: float) -> tuple[float, ...]:
    """`--grid` as (x, y, z) spacings: one value keeps z on the image slices (their spacing)."""
    return (float(grid_mm),) * 2 + (float(image_z_mm),) if np.isscalar(grid_mm) else tuple(float(s) for s in grid_mm)  # type: ignore[union-attr, arg-type]


def box_grid(
    low: Sequence[float],
    high: Sequence[float],
    spacing_mm: Sequence[float],
    anchor_xy_mm: Sequence[float] | None = None,
) -> Grid:
    """A dose grid over the box from `low` to `high` (mm), from its lowest plane in z (so z planes
    stay on the image slices when the z spacing is theirs).

    In x and y, with `anchor_xy_mm` (an image voxel centre): voxel centres on that point's
    lattice, the nearest lattice points at or beyond the box's sides. Contours drawn between the
    image's voxel centres (as a planning system, or specc's own export, draws them) then never
    have a dose-grid centre on an edge, and rasterizing them gives back the voxels they were
    drawn around. Without an anchor (images with no pixel lattice to keep): centred on the box.
    """
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise CaseError(f"--grid must be one spacing or three (x, y, z) in mm, all positive; got {spacing_mm}")
    shape, origin = [], []
    for axis in range(2):
        if anchor_xy_mm is None:
            n = int(np.ceil((high[axis] - low[axis]) / spacing[axis])) + 1
            first = 0.5 * (low[axis] + high[axis]) - 0.5 * (n - 1) * spacing[axis]
        else:
            anchor = float(anchor_xy_mm[axis])
            below = int(np.floor((low[axis] - anchor) / spacing[axis] + _LATTICE_TOLERANCE))
            above = int(np.ceil((high[axis] - anchor) / spacing[axis] - _LATTICE_TOLERANCE))
            n, first = above - below + 1, anchor + below * spacing[axis]
        shape.append(n)
        origin.append(first)
    shape.append(int(np.floor((high[2] - low[2]) / spacing[2] + 1e-6)) + 1)
    origin.append(float(low[2]))
    return Grid(shape=tuple(shape), spacing_mm=spacing, origin_mm=tuple(origin))  # type: ignore[arg-type]


@dataclass(frozen=True)
class EngineInfluence:
    influence: Influence
    beams: list[Beam]
    note: str  # what was computed, for the import report


def engine_influence(
    grid: Grid,
    structures: Mapping[str, Structure],
    density: DensityVolume,
    targets: Sequence[str],
    beams: int | Sequence[float],
    beamlet_mm: float,
    model: PencilBeamModel,
    *,
    couch_deg: Sequence[float] = (),
) -> EngineInfluence:
    """Beams (a count of equispaced coplanar ones, or gantry angles) aimed at the centre of `targets`, and their influence.

    `density` is the CT's own (its resolution and whole extent), so that everything scanned in
    front of the contoured box counts in the depths.
    """
    target_mask = np.zeros(grid.shape, dtype=bool)
    for name in targets:
        target_mask |= structures[name].mask
    isocenter_mm = tuple(round(v, 1) for v in grid.centre_mm(target_mask))
    beam_list = _beams(beams, isocenter_mm, couch_deg)  # type: ignore[arg-type]
    rows_mask = np.zeros(grid.shape, dtype=bool)
    for structure in structures.values():
        rows_mask |= structure.mask
    influence = compute_influence(density, grid, beam_list, target_mask, rows_mask, beamlet_mm=beamlet_mm, model=model)
    iso = ", ".join(f"{c:g}" for c in isocenter_mm)
    angles = f"gantry {', '.join(f'{beam.gantry_deg:g}' for beam in beam_list)} deg"
    if any(beam.couch_deg for beam in beam_list):
        angles += f"; couch {', '.join(f'{beam.couch_deg:g}' for beam in beam_list)} deg"
    note = (
        f"influence matrix computed by the built-in engine: {len(beam_list)} beams ({angles}), {beamlet_mm:g} mm "
        f"beamlets, aimed at {', '.join(targets)}, isocentre ({iso}) mm"
    )
    return EngineInfluence(influence, beam_list, note)


def scanned_density(density: np.ndarray, ct: Grid, dose_grid: Grid) -> DensityVolume:
    """A CT's density as the rays cross it: its first and last slices continued past their centres.

    By one slice, or one dose-grid plane where that is thicker: a dose voxel on an end slice
    takes its depth from rays up to half a dose voxel (times the divergence) beyond it, and
    those must still cross the patient (DensityVolume). A phantom's density is not continued.
    """
    return DensityVolume(density, ct, ends_mm=max(ct.spacing_mm[2], dose_grid.spacing_mm[2]))


def traced_note(volume: DensityVolume, what: str) -> str:
    """What the rays cross, for the import report: the CT's resolution and the extent modelled, vacuum beyond."""
    grid = volume.grid
    reach = volume.reach_mm()
    extent = ", ".join(
        f"{axis} {low - far:g} to {low + (n - 1) * step + far:g}"
        for axis, low, step, n, far in zip("xyz", grid.origin_mm, grid.spacing_mm, grid.shape, reach)
    )
    return (
        f"radiological depths traced through {what} at its own resolution ({' x '.join(f'{s:g}' for s in grid.spacing_mm)} "
        f"mm) over its whole extent ({extent} mm: x and y to the outermost voxel centres, the first and last "
        f"slices continued {volume.ends_mm:g} mm past theirs, as the patient goes on beyond the scan): everything "
        "in the images counts, contoured or not (body, couch, immobilisation); beyond that nothing (vacuum)"
    )


def _beams(beams: int | Sequence[float], isocenter: tuple[float, float, float], couch_deg: Sequence[float]) -> list[Beam]:
    if isinstance(beams, int):
        return equispaced_beams(beams, isocenter)
    angles = [float(a) + 0.0 for a in beams]  # + 0.0: -0 is 0
    if not angles:
        raise CaseError("--beams needs a number of beams or a list of gantry angles")
    couches = [float(c) + 0.0 for c in couch_deg] or [0.0] * len(angles)
    if len(couches) != len(angles):
        raise CaseError(f"{len(angles)} gantry angles but {len(couches)} couch angles")
    for kind, values in (("gantry", angles), ("couch", couches)):
        unreadable = [a for a in values if not math.isfinite(a)]
        if unreadable:
            raise CaseError(f"{kind} angles are finite numbers of degrees, 0 to less than 360; got "
                            + ", ".join(f"{a:g}" for a in unreadable))
        outside = [a for a in values if not 0.0 <= a < 360.0]
        if outside:
            raise CaseError(
                f"{kind} angles are 0 to less than 360 deg (IEC 61217); got "
                + ", ".join(f"{a:g} (the same direction is {a % 360.0:g})" for a in outside)
            )
    return [
        Beam(id=n + 1, gantry_deg=angle, couch_deg=float(couch), isocenter_mm=isocenter)
        for n, (angle, couch) in enumerate(zip(angles, couches))
    ]
