"""Which beamlets are neighbours, as a sparse difference operator.

Smoothness penalties act on the fluence map of each beam: the difference between adjacent
beamlets (left-right and up-down in the beam's-eye view). Beamlets of different beams are
never neighbours. The operator has one row per adjacent pair with +1 and -1 in the two
columns, so ||S x||^2 is the sum of squared neighbour differences; it is built from the
beamlet positions alone and is never dense. It belongs to the case (its beamlet geometry),
so the compile and evaluate stages both read it from `Beamlets.neighbour_differences`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from specc.errors import CaseError

# Two beamlet centres on the same BEV grid line differ by less than this fraction of a pitch.
_GRID_TOLERANCE = 0.25


def _grid_indices(position_mm: np.ndarray, pitch_mm: float, what: str, beam: object, purpose: str) -> np.ndarray:
    steps = (position_mm - position_mm.min()) / pitch_mm
    indices = np.rint(steps)
    if np.any(np.abs(steps - indices) > _GRID_TOLERANCE):
        raise CaseError(f"beam {beam}: beamlet {what} positions are not on a regular {pitch_mm:g} mm grid, so {purpose}")
    return indices.astype(np.int64)


@dataclass(frozen=True)
class BeamGrid:
    """One beam's beamlets on its beam's-eye-view grid: `cells[ix, iy]` is a column of the
    influence matrix, or -1 where the beam has no beamlet; cell (0, 0) is centred on
    (`x0_mm`, `y0_mm`) and the pitch is (`pitch_x_mm`, `pitch_y_mm`)."""

    beam: int
    cells: np.ndarray
    x0_mm: float
    y0_mm: float
    pitch_x_mm: float
    pitch_y_mm: float


def beam_grids(
    beam_id: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray, width_mm: np.ndarray, height_mm: np.ndarray, purpose: str
) -> list[BeamGrid]:
    """Each beam's beamlets snapped to its grid, whose pitch is its smallest beamlet width (x)
    and height (y); `purpose` ends the error for positions off such a grid, saying what needs it.
    Two beamlets falling on the same grid cell are an error."""
    grids = []
    for beam in np.unique(beam_id):
        members = np.flatnonzero(beam_id == beam)
        pitch_x, pitch_y = float(width_mm[members].min()), float(height_mm[members].min())
        ix = _grid_indices(x_mm[members], pitch_x, "x", beam, purpose)
        iy = _grid_indices(y_mm[members], pitch_y, "y", beam, purpose)
        cells = np.full((ix.max() + 1, iy.max() + 1), -1, dtype=np.int64)
        if np.any(np.bincount(ix * cells.shape[1] + iy) > 1):
            raise CaseError(f"beam {beam}: two beamlets share one beam's-eye-view position")
        cells[ix, iy] = members
        grids.append(BeamGrid(int(beam), cells, float(x_mm[members].min()), float(y_mm[members].min()), pitch_x, pitch_y))
    return grids


def neighbour_differences(
    beam_id: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray, width_mm: np.ndarray, height_mm: np.ndarray
) -> sp.csr_matrix:
    """Sparse (pairs x beamlets) matrix of differences between adjacent beamlets of one beam (`beam_grids`)."""
    n_beamlets = len(beam_id)
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    purpose = "neighbouring beamlets (for smoothness) cannot be identified"
    for grid in beam_grids(beam_id, x_mm, y_mm, width_mm, height_mm, purpose):
        cells = grid.cells
        for a, b in ((cells[:-1, :], cells[1:, :]), (cells[:, :-1], cells[:, 1:])):
            adjacent = (a >= 0) & (b >= 0)
            first.append(a[adjacent])
            second.append(b[adjacent])
    left = np.concatenate(first) if first else np.empty(0, dtype=np.int64)
    right = np.concatenate(second) if second else np.empty(0, dtype=np.int64)
    n_pairs = len(left)
    rows = np.repeat(np.arange(n_pairs), 2)
    columns = np.column_stack([left, right]).ravel()
    values = np.tile([1.0, -1.0], n_pairs)
    return sp.csr_matrix((values, (rows, columns)), shape=(n_pairs, n_beamlets))

