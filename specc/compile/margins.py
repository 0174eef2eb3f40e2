"""Margins on voxel masks, in mm, on grids whose spacing differs per axis.

A margin is a distance between voxel centres measured in patient space, so it needs the
grid spacing: a 5 mm expansion is one voxel in x on a 5 mm grid but two slices in z on a
2.5 mm one. Distances come from `scipy.ndimage.distance_transform_edt` with
`sampling=spacing`. An anisotropic margin (mx, my, mz) uses the ellipsoidal metric: a voxel
is inside the expansion when (dx/mx)^2 + (dy/my)^2 + (dz/mz)^2 <= 1 for some structure voxel,
which is the Euclidean transform with sampling spacing/margin and a threshold of 1.

Conventions (documented in docs/compiler.md): `expand` keeps voxels whose centre lies within
the margin of a structure voxel centre (boundary included); `shrink` is its dual
(shrink(X, m) = not expand(not X, m)); nothing exists outside the grid, so a structure that
touches the grid edge is not shrunk from that edge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt

from specc.protocol.units import format_number

# A zero margin along an axis becomes this many mm in the metric: any step along that axis
# then lies far outside the unit ellipsoid, so the expansion stays within the plane.
_ZERO_MARGIN_MM = 1e-9

# Distances are compared with this relative slack so that a margin equal to a whole number
# of voxel spacings includes that voxel despite floating-point rounding.
_RELATIVE_SLACK = 1e-9

MarginMm = float | Sequence[float]


def _per_axis(margin_mm: MarginMm) -> np.ndarray:
    margins = np.broadcast_to(np.asarray(margin_mm, dtype=float), (3,)).copy()
    if np.any(margins < 0) or not np.all(np.isfinite(margins)):
        raise ValueError(f"margins must be finite and non-negative mm, got {margins.tolist()}")
    return margins


def _within(mask: np.ndarray, margin_mm: MarginMm, spacing_mm: Sequence[float]) -> np.ndarray:
    """Voxels whose centre lies within the (ellipsoidal) margin of a voxel of `mask`."""
    margins = _per_axis(margin_mm)
    if not mask.any():
        return np.zeros_like(mask, dtype=bool)
    if not np.any(margins > 0):
        return mask.astype(bool, copy=True)
    sampling = np.asarray(spacing_mm, dtype=float) / np.maximum(margins, _ZERO_MARGIN_MM)
    distance = distance_transform_edt(~mask.astype(bool), sampling=sampling)
    return distance <= 1.0 + _RELATIVE_SLACK


def along_axis_mm(margin_mm: float, spacing_mm: float) -> float:
    """What a margin gives along one grid axis: the farthest whole number of voxel spacings within it.

    Voxel centres along an axis lie a whole number of spacings apart, so a 3 mm margin on a
    5 mm grid reaches no neighbour (0 mm) and 7 mm reaches the first one (5 mm).
    """
    return float(np.floor(margin_mm / spacing_mm * (1.0 + _RELATIVE_SLACK))) * spacing_mm


def expand(mask: np.ndarray, margin_mm: MarginMm, spacing_mm: Sequence[float]) -> np.ndarray:
    """The mask grown by `margin_mm` (one value, or one per axis x, y, z)."""
    return _within(mask, margin_mm, spacing_mm)


def shrink(mask: np.ndarray, margin_mm: MarginMm, spacing_mm: Sequence[float]) -> np.ndarray:
    """The mask eroded by `margin_mm`: voxels farther than the margin from its outside."""
    mask = mask.astype(bool)
    outside = ~mask
    if not outside.any():  # nothing to erode from inside the grid
        return mask.copy()
    return mask & ~_within(outside, margin_mm, spacing_mm)


def ring(mask: np.ndarray, inner_mm: float, outer_mm: float, spacing_mm: Sequence[float]) -> np.ndarray:
    """Voxels farther than `inner_mm` but within `outer_mm` of the structure, outside it."""
    if outer_mm <= inner_mm:
        raise ValueError(f"a ring needs outer > inner distance, got inner {format_number(inner_mm)} mm, outer "
                         f"{format_number(outer_mm)} mm")
    return _within(mask, outer_mm, spacing_mm) & ~_within(mask, inner_mm, spacing_mm) & ~mask.astype(bool)
