"""Forward planning: a few segments per beam shaped from the targets and the organs at risk.

A forward (field-in-field) plan shapes each field to the target in the beam's-eye view, adds
segments that block the organs at risk, and optimizes only the segments' weights. The
structure's voxels (as cubes), filled with points a fifth of a beamlet apart, are projected
through the beam's source onto the isocentre plane (`BeamFrame`, IEC 61217, the case contract's
frame), rasterised at a fifth of a beamlet, closed and hole-filled, and read at the beamlet
centres: a beamlet belongs to the projection when the raster pixel holding its centre (a fifth
of a beamlet wide) does. That is not "its central ray crosses the structure": a ray that misses
by up to a tenth of a beamlet along X or Y (0.5 mm at 5 mm beamlets) still opens its beamlet,
more where the closing bridges a notch one pixel wide, so without any aperture margin a field
can hold beamlets whose central rays pass just outside the structure. A case whose
beam geometry does not agree with its influence matrix (target-projection beamlets that put no
dose in the target) is refused.

Per beam the shapes are the targets' projection (grown by the aperture margin, which covers
the penumbra at the field edge, as a block margin does), that projection without the projections of
every blocked organ, and, for each blocked organ that shades it, the projection without that
organ alone; with several targets (dose levels), also each target's own projection, with and
without the blocked organs. Each shape is cut into apertures with one open interval per leaf pair (the sweep
of its 0/1 map: a row an organ splits in two gives two apertures); a beam keeps each aperture
once. The weights are then optimized as for a step-and-shoot plan (`weights.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as Names

import numpy as np
from scipy.ndimage import binary_closing, binary_dilation, binary_fill_holes

from specc.case import Case
from specc.case.engine import BeamFrame, filling_points
from specc.case.neighbours import BeamGrid
from specc.sequence.segments import BeamSegments, Sequence, SequenceError, assemble, beam_grids_of
from specc.sequence.sweep import Apertures, sweep_apertures

# Raster pixels per beamlet pitch (odd: beamlet centres are pixel centres).
RASTER_PER_BEAMLET = 5


def projection(frame: BeamFrame, grid: BeamGrid, points_mm: np.ndarray, margin_mm: float = 0.0) -> np.ndarray:
    """Which cells of `grid` (shape `grid.cells`) have their centre inside the points' projection,
    grown by `margin_mm` at the isocentre plane (the aperture margin that covers the penumbra)."""
    x, y, _ = frame.project(points_mm)
    radius = (margin_mm / grid.pitch_x_mm * RASTER_PER_BEAMLET, margin_mm / grid.pitch_y_mm * RASTER_PER_BEAMLET)
    # One beamlet and the margin beyond the grid, so closing and growing do not eat its border.
    pad = RASTER_PER_BEAMLET + int(np.ceil(max(radius)))
    px = np.floor((x - grid.x0_mm) / grid.pitch_x_mm * RASTER_PER_BEAMLET + RASTER_PER_BEAMLET / 2).astype(np.int64)
    py = np.floor((y - grid.y0_mm) / grid.pitch_y_mm * RASTER_PER_BEAMLET + RASTER_PER_BEAMLET / 2).astype(np.int64)
    shape = np.array(grid.cells.shape) * RASTER_PER_BEAMLET
    raster = np.zeros(shape + 2 * pad, dtype=bool)
    inside = (px >= -pad) & (px < shape[0] + pad) & (py >= -pad) & (py < shape[1] + pad)
    raster[px[inside] + pad, py[inside] + pad] = True
    raster = binary_fill_holes(binary_closing(raster, structure=np.ones((3, 3), dtype=bool)))
    if margin_mm > 0:
        raster = binary_dilation(raster, structure=_ellipse(*radius))
    centre = pad + RASTER_PER_BEAMLET // 2
    return raster[centre : centre + shape[0] : RASTER_PER_BEAMLET, centre : centre + shape[1] : RASTER_PER_BEAMLET]


def _ellipse(radius_x: float, radius_y: float) -> np.ndarray:
    """The raster pixels within an ellipse of these radii (pixels) around the centre one."""
    half_x, half_y = int(np.floor(radius_x)), int(np.floor(radius_y))
    i, j = np.mgrid[-half_x : half_x + 1, -half_y : half_y + 1]
    return (i / max(radius_x, 1e-9)) ** 2 + (j / max(radius_y, 1e-9)) ** 2 <= 1.0


def forward_sequence(
    case: Case, masks: Mapping[str, np.ndarray], targets: Names[str], blocked: Names[str], margin_mm: float = 0.0
) -> Sequence:
    """Apertures shaped from the union of `targets` (grown by `margin_mm`) and the `blocked` organs, each of weight 1."""
    spacing = float(min(case.beamlets.width_mm.min(), case.beamlets.height_mm.min())) / RASTER_PER_BEAMLET
    target_mask = np.logical_or.reduce([masks[name] for name in targets])
    each_target = [filling_points(masks[name], case.grid, spacing) for name in targets] if len(targets) > 1 else []
    target_points = filling_points(target_mask, case.grid, spacing)
    organ_points = [filling_points(masks[name], case.grid, spacing) for name in blocked]
    target_dose = case.influence[case.rows(target_mask)].max(axis=0).toarray().ravel()
    frames = {beam.id: BeamFrame.of(beam) for beam in case.beams}
    beams: list[BeamSegments] = []
    for grid in beam_grids_of(case.beamlets):
        present = grid.cells >= 0
        target = projection(frames[grid.beam], grid, target_points, margin_mm) & present
        if not target.any():
            continue  # no beamlet of this beam lies in the targets' projection
        _check_geometry(case, grid, target_dose[grid.cells[target]])
        organs = [projection(frames[grid.beam], grid, points) & present for points in organ_points]
        spared = target & ~np.logical_or.reduce(organs) if organs else target
        shapes = [target, spared]
        shapes.extend(target & ~organ for organ in organs if (target & organ).any())
        for points in each_target:  # targets of other dose levels get fields of their own
            own = projection(frames[grid.beam], grid, points, margin_mm) & present
            shapes.extend([own, own & spared])
        cut = [sweep_apertures(shape.T.astype(np.int64)) for shape in shapes if shape.any()]  # rows: leaf pairs (y)
        edges = np.unique(np.concatenate([np.concatenate([a.left, a.right], axis=1) for a in cut]), axis=0)
        pairs = grid.cells.shape[1]
        apertures = Apertures(edges[:, :pairs], edges[:, pairs:], np.ones(len(edges), dtype=np.int64))
        beams.append(BeamSegments(grid.beam, grid, apertures, np.ones(len(edges))))
    if not beams:
        raise SequenceError(
            f"no beamlet of any beam lies in the beam's-eye-view projection of the targets ({', '.join(targets)}): "
            "no field to shape"
        )
    return assemble(beams, case.n_beamlets, None, None)


def _check_geometry(case: Case, grid: BeamGrid, dose_to_target: np.ndarray) -> None:
    """Refuse shapes from a beam geometry that disagrees with the influence matrix."""
    if np.count_nonzero(dose_to_target > 0) < 0.5 * len(dose_to_target):
        raise SequenceError(
            f"case {case.case_id!r}, beam {grid.beam}: most beamlets in the target's projection by the "
            "case's beam geometry put no dose in it, so the geometry (angles, isocentre, beamlet positions) does "
            "not match the influence matrix and segments cannot be shaped from it"
        )
