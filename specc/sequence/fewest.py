"""Step-and-shoot leaf sequencing with few segments and the least monitor units.

The sweep (`specc.sequence.sweep`) opens one unit of intensity per segment, so a beam of 10
levels with many rises per row takes up to as many segments as quanta. Each segment costs
delivery time (the leaves move, the beam is switched off and on, a minimum of monitor units
each), and clinical sequencers take few. Engel's framework (Engel, "A new algorithm for
optimal multileaf collimator field segmentation", Discrete Appl Math 152:35-51, 2005) keeps
the sweep's least number of quanta and takes fewer segments: with c_i(A) the summed rises of
row i and c(A) their largest (the least quanta any decomposition of A can have), it
repeatedly subtracts a segment S opened for u quanta such that c(A - u S) = c(A) - u, so the
quanta still add up to c(A), and takes each u as large as such a segment allows.

For a given u, a leaf pair may open [l, r) where every cell holds at least u, and subtracting
changes its summed rises by the rise at l and the fall at r only; its new rises must not
exceed c(A) - u (the matrix's new least quanta). A closed pair changes nothing and needs
c_i(A) <= c(A) - u. u = 1 always has such a segment (the sweep's first), so the loop ends,
exactly. Among the openings each pair may take, it takes the one leaving its rises lowest,
then the widest (the most intensity removed); Engel's own rule for this choice differs, the
least-quanta guarantee does not depend on it. Identical apertures are merged wherever they
come. The choice is greedy and can lose to the sweep on a small map (two rows [2, 5, 3] and
[8, 8, 0]: 4 segments against 3), so where the sweep's decomposition has fewer segments it is
returned instead: never more segments than the sweep, always the least quanta. Leaves do not move one way only from segment to segment, as the sweep's do, so the
segments are then put in the order that shortens the leaves' travel (`_shortest_travel`): the
dose does not depend on it, the delivery time does.
"""

from __future__ import annotations

import numpy as np

from specc.sequence.sweep import Apertures, checked_levels, sweep_apertures


def fewest_apertures(levels: np.ndarray) -> Apertures:
    """Decompose a (rows, columns) map of nonnegative integer quanta into few segments of the least quanta."""
    remaining = checked_levels(levels).astype(np.int64, copy=True)
    rows, columns = remaining.shape
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    quanta: list[int] = []
    while remaining.any():
        u, left, right = _largest_step(remaining)
        cells = np.arange(columns)
        remaining -= u * ((cells >= left[:, None]) & (cells < right[:, None]))
        lefts.append(left)
        rights.append(right)
        quanta.append(u)
    if not quanta:
        return Apertures(np.zeros((0, rows), np.int64), np.zeros((0, rows), np.int64), np.zeros(0, np.int64))
    merged = _merged_anywhere(np.array(lefts), np.array(rights), np.array(quanta, dtype=np.int64))
    sweep = sweep_apertures(levels)
    if len(sweep) < len(merged):  # the greedy choice can lose to the sweep on small maps: both are exact
        return sweep
    order = _shortest_travel(merged)
    return Apertures(merged.left[order], merged.right[order], merged.quanta[order])


def _largest_step(levels: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """The largest u with a segment that lowers the least quanta by u, and that segment's leaf edges."""
    rows, columns = levels.shape
    padded = np.pad(levels, ((0, 0), (1, 1)))
    steps = np.diff(padded, axis=1)  # (rows, columns + 1): step j is cell j less cell j - 1
    rises = np.clip(steps, 0, None).sum(axis=1)
    least = int(rises.max())
    edges = np.arange(columns + 1)
    ordered = edges[:, None] < edges[None, :]  # [l, r]: l < r
    width = edges[None, :] - edges[:, None]
    for u in range(min(least, int(levels.max())), 0, -1):
        # Opening [l, r) lowers the rise at l and raises the step at r by u.
        at_left = np.clip(steps - u, 0, None) - np.clip(steps, 0, None)
        at_right = np.clip(steps + u, 0, None) - np.clip(steps, 0, None)
        short = np.concatenate((np.zeros((rows, 1), np.int64), np.cumsum(levels < u, axis=1)), axis=1)
        fits = (short[:, :, None] == short[:, None, :]) & ordered  # every cell of [l, r) holds u or more
        after = rises[:, None, None] + at_left[:, :, None] + at_right[:, None, :]
        allowed = fits & (after <= least - u)
        closed_allowed = rises <= least - u
        if not np.all(closed_allowed | allowed.any(axis=(1, 2))):
            continue
        # Lowest rises after, then widest: one key per opening; closed is (rises, width 0).
        scale = columns + 2
        key = np.where(allowed, after * scale - width, np.iinfo(np.int64).max)
        best = key.reshape(rows, -1).argmin(axis=1)
        best_key = key.reshape(rows, -1)[np.arange(rows), best]
        closed_key = np.where(closed_allowed, rises * scale, np.iinfo(np.int64).max)
        open_rows = best_key < closed_key
        left, right = np.divmod(best, columns + 1)
        return u, np.where(open_rows, left, 0), np.where(open_rows, right, 0)
    raise AssertionError("u = 1 always has a segment: the sweep's first")


def _merged_anywhere(left: np.ndarray, right: np.ndarray, quanta: np.ndarray) -> Apertures:
    """Identical apertures as one, their quanta summed (closed pairs compared as closed)."""
    open_rows = right > left
    left, right = np.where(open_rows, left, 0), np.where(open_rows, right, 0)
    shapes, first, inverse = np.unique(np.concatenate((left, right), axis=1), axis=0, return_index=True,
                                       return_inverse=True)
    order = np.argsort(first)  # keep the order they were cut in
    summed = np.bincount(inverse.ravel(), weights=quanta, minlength=len(shapes)).astype(np.int64)
    rows = left.shape[1]
    return Apertures(shapes[order, :rows], shapes[order, rows:], summed[order])


def travel_between(apertures: Apertures) -> np.ndarray:
    """(segments, segments) cells the leaves travel from one segment to the other: the largest move of a
    leaf whose pair is open in both (a closed pair can close wherever its leaves are)."""
    open_rows = apertures.right > apertures.left
    both = open_rows[:, None, :] & open_rows[None, :, :]
    moves = np.maximum(np.abs(apertures.left[:, None, :] - apertures.left[None, :, :]),
                       np.abs(apertures.right[:, None, :] - apertures.right[None, :, :]))
    return np.where(both, moves, 0).max(axis=2, initial=0)


def _shortest_travel(apertures: Apertures) -> np.ndarray:
    """An order of the segments with little summed leaf travel: from each of up to `_STARTS` segments in
    turn, the nearest segment next, then 2-opt (a run reversed wherever that shortens the path), the
    shortest path kept. Tens of segments cost milliseconds; a random 60 x 80 map of 20 levels (79 segments)
    0.85 s with its decomposition."""
    cost = travel_between(apertures)
    count = len(cost)
    best, best_length = np.arange(count), np.inf
    for first in np.unique(np.linspace(0, count - 1, min(count, _STARTS)).round().astype(int)):
        order = [int(first)]
        unvisited = np.ones(count, dtype=bool)
        unvisited[first] = False
        while unvisited.any():
            candidates = np.flatnonzero(unvisited)
            nearest = int(candidates[np.argmin(cost[order[-1], candidates])])
            order.append(nearest)
            unvisited[nearest] = False
        path = _two_opt(np.array(order), cost)
        length = float(cost[path[:-1], path[1:]].sum())
        if length < best_length:
            best, best_length = path, length
    return best


# First segments tried, spread over the cut order: on the 5 mm C-shape plan's maps (9 beams, 10 levels) twelve
# starts gave 726 beamlet widths of travel where every segment as the first gave 725 (93 segments, README plan of
# 2026-11-27 before the reference fluence; after it, 94 segments and 718 with twelve: docs/delivery.md).
_STARTS = 12


def _two_opt(order: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """`order` with runs reversed while a reversal shortens the open path (travel is symmetric)."""
    improved = True
    while improved:
        improved = False
        for i in range(1, len(order) - 1):
            for k in range(i + 1, len(order)):
                before = cost[order[i - 1], order[i]] + (cost[order[k], order[k + 1]] if k + 1 < len(order) else 0)
                after = cost[order[i - 1], order[k]] + (cost[order[i], order[k + 1]] if k + 1 < len(order) else 0)
                if after < before:
                    order[i:k + 1] = order[i:k + 1][::-1].copy()
                    improved = True
    return order
