"""Step-and-shoot leaf sequencing of an integer fluence map by the sweep technique.

An IMRT fluence map has to be delivered as a few MLC apertures (segments), each open for a
number of monitor units. Written in intensity quanta, a map is an integer matrix with one row
per leaf pair; the sweep technique (Bortfeld, Kahler, Waldron and Boyer, IJROBP 28, 1994;
"close-in" in Galvin's terms) writes each row as unit-height intervals, pairing the k-th unit
rise of the row's profile with its k-th unit fall, and lets segment k open interval k of every
row. Both leaves of a pair then only ever move one way from segment to segment, every leaf
pair opens one interval (an aperture an MLC can form) and the number of quanta delivered is
the least any decomposition can have: the largest over the rows of the row's summed rises.
It does not minimize the number of segments (Xia and Verhey's and Engel's algorithms trade
some quanta for fewer); identical consecutive segments are merged into one of more quanta.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Apertures:
    """Segments of one map: for segment s and leaf pair r the open cells are [left, right).

    `left == right` is a closed leaf pair. `quanta[s]` is how many intensity quanta segment s
    is open for; the map is exactly the sum of the segments' openings times their quanta.
    """

    left: np.ndarray  # (segments, rows) cell edge index of the left leaf
    right: np.ndarray  # (segments, rows) cell edge index of the right leaf
    quanta: np.ndarray  # (segments,) positive integers

    def __len__(self) -> int:
        return len(self.quanta)

    def openings(self, n_columns: int) -> np.ndarray:
        """(segments, rows, columns) boolean: which cells each segment leaves open."""
        cells = np.arange(n_columns)
        return (cells >= self.left[:, :, None]) & (cells < self.right[:, :, None])

    def opening_labels(self) -> np.ndarray:
        """(segments, rows): which separate opening of its segment each leaf pair's gap is part of
        (1, 2, ... from the first row), 0 where the pair is closed.

        An opening is what the beam sees as one field: the gaps of adjacent leaf pairs are one
        opening where they overlap along the leaves (share an edge of some length). Gaps that meet
        only at a corner, or have a closed pair between them, are separate fields, each with its
        own small-field output and leaf-position error. Each pair opens one interval and only
        adjacent pairs touch, so an opening is a run of consecutive overlapping gaps."""
        opened = self.right > self.left
        overlap = np.maximum(self.left[:, 1:], self.left[:, :-1]) < np.minimum(self.right[:, 1:], self.right[:, :-1])
        joined = opened[:, 1:] & opened[:, :-1] & overlap  # row r + 1 continues row r's opening
        starts = opened & ~np.pad(joined, ((0, 0), (1, 0)))
        return np.where(opened, np.cumsum(starts, axis=1), 0)


def _row_edges(profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leaf edges of each unit interval of one row, both ascending: (rises, falls).

    Edge j is the left side of cell j. Where the profile is nonnegative the k-th rise comes
    strictly before the k-th fall, so every interval is nonempty.
    """
    steps = np.diff(np.concatenate(([0], profile, [0])))
    edges = np.arange(len(steps))
    return np.repeat(edges, np.clip(steps, 0, None)), np.repeat(edges, np.clip(-steps, 0, None))


def checked_levels(levels: np.ndarray) -> np.ndarray:
    """`levels` as an array, refused unless a 2-D map of nonnegative integer quanta."""
    levels = np.asarray(levels)
    if levels.ndim != 2 or not np.issubdtype(levels.dtype, np.integer) or (levels < 0).any():
        raise ValueError("a fluence map to sequence is a 2-D array of nonnegative integers")
    return levels


def sweep_apertures(levels: np.ndarray) -> Apertures:
    """Decompose a (rows, columns) map of nonnegative integer quanta into sweep segments."""
    rows = [_row_edges(profile) for profile in checked_levels(levels)]
    n_segments = max((len(rises) for rises, _ in rows), default=0)
    left = np.zeros((n_segments, len(rows)), dtype=np.int64)
    right = np.zeros((n_segments, len(rows)), dtype=np.int64)
    for row, (rises, falls) in enumerate(rows):
        left[: len(rises), row] = rises
        right[: len(falls), row] = falls
    return _merged(left, right)


def _merged(left: np.ndarray, right: np.ndarray) -> Apertures:
    """Consecutive identical segments as one (closed rows compared as closed, wherever parked)."""
    open_rows = right > left
    parked_left = np.where(open_rows, left, 0)
    parked_right = np.where(open_rows, right, 0)
    if len(left) == 0:
        return Apertures(parked_left, parked_right, np.zeros(0, dtype=np.int64))
    changes = np.any((parked_left[1:] != parked_left[:-1]) | (parked_right[1:] != parked_right[:-1]), axis=1)
    starts = np.flatnonzero(np.concatenate(([True], changes)))
    quanta = np.diff(np.concatenate((starts, [len(left)])))
    return Apertures(parked_left[starts], parked_right[starts], quanta.astype(np.int64))
