"""Intensity maps for the sequencers' tests, and what any exact decomposition of one must give."""

from __future__ import annotations

import numpy as np

from specc.sequence.sweep import Apertures


def random_levels(seed: int, highest: int, rows: int, columns: int) -> np.ndarray:
    """A map of up to `rows` x `columns` levels from 0 to `highest`, about 30% of it closed."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(0, highest + 1, size=(rng.integers(1, rows + 1), rng.integers(1, columns + 1)))
    levels[rng.random(levels.shape) < 0.3] = 0
    return levels


def delivered(apertures: Apertures, columns: int) -> np.ndarray:
    """The levels the segments deliver: each opening times its quanta, summed."""
    return (apertures.openings(columns) * apertures.quanta[:, None, None]).sum(axis=0)


def least_quanta(levels: np.ndarray) -> int:
    """Bortfeld's lower bound: the largest over the rows of the row's summed rises."""
    return int(np.clip(np.diff(np.pad(levels, ((0, 0), (1, 0))), axis=1), 0, None).sum(axis=1).max(initial=0))
