"""Which influence-matrix rows enter the program, and how each structure is represented.

Evaluation always uses every voxel; the program only needs the rows some term looks at.
Two reductions keep it small, each keeping what is needed to read results back:

* Identical rows are merged into one dose entry whose weight is the number of voxels it
  stands for (with the same prior dose, in a composite plan). This is exact for every kind (means, quadratic penalties, maxima, CVaR are all
  sums or extremes over volume-weighted voxels). In practice it mostly merges the voxels no
  beamlet reaches (all-zero rows), which can be a large part of a body contour.
* A structure that no hard term refers to and that is not a target is sampled when its
  voxels outside the program's other rows have more distinct rows than `sample_limit`.
  Its voxels whose rows the program holds anyway (inside a target, an exactly represented
  organ) stay exact: they cost no product. The rest is represented by a spatially
  stratified sample of `sample_limit` voxels: ordered along a Morton (Z-order) curve of
  their grid indices, cut into `sample_limit` runs of (nearly) equal length, one voxel
  drawn at random (seeded) from each run and weighted by its run's length. Each run is a
  compact patch of the grid, so the sample covers the structure evenly; the estimate of
  every volume-weighted mean stays unbiased, and stratification never raises its variance
  above that of a uniform sample (proportional allocation). Measured on every voxel, the
  optimum it leads to is nearer the every-voxel optimum than a uniform sample's
  (docs/performance-history.md, eighth pass). Only soft objectives see the sample; a hard limit
  always sees every voxel of its structure, so it is never weakened. The sample is
  reported in the program notes and the plan is still evaluated on the full grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from specc.case.products import RowBlocks

if TYPE_CHECKING:
    from specc.protocol.models import SetupScenario

# Soft-only, non-target structures with more dose entries than this (outside the rows the
# program holds anyway) are sampled (see module docstring). Measured on every voxel
# (docs/performance.md, seventh and eighth passes; TG-119 C-shape): with a uniform sample,
# 3,000 voxels left plans 1.04% above the every-voxel optimum at 5 mm and 2.1% at 2.5 mm,
# 10,000 0.05% and 0.56%, 30,000 0.01% and 0.13% (6.8 s for the 2.5 mm case, 24 s on every
# voxel); stratified, with the voxels whose rows the program holds kept exactly, 30,000 left
# 0.00% (5 mm, 9 beams) and 0.04% (2.5 mm), and `specc.solve.sample_check` finishes on every
# voxel a plan whose sample's error exceeds 0.1%.
DEFAULT_SAMPLE_LIMIT = 30_000

_SAMPLE_SEED = 20_090_601  # fixed so that compiling twice gives the same program


@dataclass(frozen=True)
class StructureEntries:
    """How one structure appears in the program's dose vector."""

    name: str
    entries: np.ndarray  # positions in the dose vector, sorted, unique
    weights: np.ndarray  # relative volume of each entry, sums to 1
    n_voxels: int  # voxels of the structure on the full grid
    sampled: bool
    kept: int = 0  # of a sampled structure: its voxels kept exactly (their rows are in the program anyway)
    # Of a structure displaced by a setup error (robust optimization): its base and offset; its
    # entries' rows are interpolations, after the selected case rows (`VoxelSelection.rows`).
    scenario: SetupScenario | None = None


@dataclass(frozen=True)
class VoxelSelection:
    """The program's dose entries: one representative influence row per entry."""

    rows: np.ndarray  # influence-matrix row of each dose entry, increasing (displaced structures' entries follow)
    structures: dict[str, StructureEntries]

    @property
    def scenarios(self) -> dict[str, SetupScenario]:
        """The displaced structures' setup-error scenarios, by the name the robust terms use."""
        return {name: entries.scenario for name, entries in self.structures.items() if entries.scenario}


# Row budget of one chunk of the row grouping (nonzeros): its temporaries (a float64 copy of
# a chunk's values for the projection, positions and comparisons for the exact check, about
# 50 bytes per nonzero) stay near 50 MB whatever the size of the influence matrix. A body's
# projection runs by row blocks instead, as `Case.dose` does: an 8 MB float64 copy per block
# on each of the product threads (one per core).
_CHUNK_NONZEROS = 1_000_000


def _chunks(lengths: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive index ranges whose `lengths` sum to about `_CHUNK_NONZEROS` (a longer item alone)."""
    cumulative = np.cumsum(lengths)
    total = int(cumulative[-1]) if len(cumulative) else 0
    cuts = np.searchsorted(cumulative, np.arange(_CHUNK_NONZEROS, total, _CHUNK_NONZEROS), side="right")
    edges = np.unique(np.concatenate([[0], cuts, [len(lengths)]]))
    return [(int(start), int(stop)) for start, stop in zip(edges[:-1], edges[1:])]


def _projection(influence: sp.csr_matrix, rows: np.ndarray, vector: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """`influence[rows] @ vector` (`lengths`: the rows' stored lengths): of the whole matrix by row blocks on
    threads when `rows` hold most of its nonzeros (a body's rows), else of copies of the rows chunk by chunk.

    A float32 matrix times a float64 vector makes scipy convert all of the matrix's values to
    float64 first; per block or chunk that copy stays small. Each row's sum is the same either way.
    Copying the rows of a body cost more than the product (large benchmark case, all 576,000 rows:
    0.14 s chunked, docs/performance-history.md, twenty-fifth pass).
    """
    if 2 * int(lengths.sum()) >= influence.nnz:
        return RowBlocks(influence).forward(vector)[rows]
    result = np.empty(len(rows), dtype=np.float64)
    for start, stop in _chunks(lengths):
        result[start:stop] = influence[rows[start:stop]] @ vector
    return result


def _differ(influence: sp.csr_matrix, rows: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Whether row `rows[k]` differs from row `others[k]` (same stored length assumed) in pattern or values."""
    differs = np.zeros(len(rows), dtype=bool)
    lengths = np.diff(influence.indptr)[rows]
    for start, stop in _chunks(lengths):
        length = lengths[start:stop]
        owner = np.repeat(np.arange(stop - start), length)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(length) - length, length)
        mine = influence.indptr[rows[start:stop]][owner] + offset
        theirs = influence.indptr[others[start:stop]][owner] + offset
        mismatch = (influence.indices[mine] != influence.indices[theirs]) | (influence.data[mine] != influence.data[theirs])
        differs[start:stop] = np.bincount(owner[mismatch], minlength=stop - start) > 0
    return differs


def _distinct(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(values, return_inverse=True)` for integers in [0, size), by a mask instead of a sort or hash.

    Compiling the large benchmark case called np.unique on half-million-entry arrays a dozen
    times (0.6 s of its 1.3 s compile); the ids here are dense, so a mask does it in one pass.
    """
    present = np.zeros(size, dtype=bool)
    present[values] = True
    return np.flatnonzero(present), (np.cumsum(present) - 1)[values]


def _count_distinct(values: np.ndarray, size: int) -> int:
    present = np.zeros(size, dtype=bool)
    present[values] = True
    return int(np.count_nonzero(present))


def _unique_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(table, axis=0, return_index=True, return_inverse=True)[1:]` by a lexsort of the columns.

    np.unique sorts the rows as one structured key, 0.48 s for 576,000 rows of three floats;
    a stable lexsort of the columns gives the same groups, numbered the same, in 0.14 s.
    """
    order = np.lexsort(table.T[::-1])
    ordered = table[order]
    starts = np.ones(len(table), dtype=bool)
    starts[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    inverse = np.empty(len(table), dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return order[starts], inverse


def _group_identical_rows(influence: sp.csr_matrix, rows: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """Group id of each of `rows`; rows with identical sparsity pattern and values share an id.

    Candidate groups come from a random projection and the row's length (equal rows always project equally);
    each candidate is then checked exactly against its representative, and a row that
    differs keeps a group of its own, so the merge never relies on luck. The projection runs by row blocks of the
    whole matrix (a body's rows) or on copies of a few rows chunk by chunk (`_projection`); the exact check goes
    through the case's own arrays chunk by chunk.
    `offsets`: a constant dose per case row (a composite plan's prior dose), a column of the
    signature itself: rows whose offsets differ are never grouped, however equal their influence.
    """
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(0)
    lengths = np.diff(influence.indptr)[rows]
    projection = _projection(influence, rows, rng.standard_normal(influence.shape[1]), lengths)
    columns = [lengths, projection]
    if offsets is not None:
        columns.append(offsets[rows])
    signature = np.column_stack(columns)
    first, group = _unique_rows(signature)
    del signature, projection
    representative = first[group]
    candidates = np.flatnonzero(representative != np.arange(len(rows)))
    differs = np.zeros(len(rows), dtype=bool)
    differs[candidates] = _differ(influence, rows[candidates], rows[representative[candidates]])
    if differs.any():
        group[differs] = group.max() + 1 + np.arange(int(differs.sum()))
    return _distinct(group, int(group.max()) + 1)[1].astype(np.int64)


def _spread_bits(values: np.ndarray) -> np.ndarray:
    """Each value's lowest 21 bits moved to every third bit (bit b to bit 3b), for a Morton key."""
    v = values.astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                        (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def morton_order(grid_indices: np.ndarray) -> np.ndarray:
    """The permutation that orders (n, 3) integer grid indices (each below 2**21) along a Morton (Z-order) curve."""
    indices = np.asarray(grid_indices)
    key = _spread_bits(indices[:, 0]) | (_spread_bits(indices[:, 1]) << np.uint64(1)) | (
        _spread_bits(indices[:, 2]) << np.uint64(2))
    return np.argsort(key)  # distinct voxels have distinct keys: any sort gives this order


def stratified_sample(
    voxel_groups: np.ndarray, order: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One voxel from each of `size` equal runs of `order`: (its group, its run's length)."""
    edges = np.linspace(0, len(order), size + 1).round().astype(np.int64)
    lengths = np.diff(edges)
    drawn = edges[:-1] + np.floor(rng.random(size) * lengths).astype(np.int64)
    return voxel_groups[order[drawn]], lengths


def select_voxels(
    influence: sp.csr_matrix,
    structure_rows: Mapping[str, np.ndarray],
    exact: Iterable[str],
    sample_limit: int | None = DEFAULT_SAMPLE_LIMIT,
    locate: Callable[[np.ndarray], np.ndarray] | None = None,
    offsets: np.ndarray | None = None,
) -> VoxelSelection:
    """Build the dose entries for the structures that terms refer to.

    `structure_rows` gives each structure's influence rows (all its voxels); structures in
    `exact` (targets and those under a hard limit) are never sampled, nor any structure when
    `sample_limit` is None. `locate` gives the (n, 3) grid indices of influence rows, for
    the sample's strata; without it the rows' own order (the grid's raster order) is used.
    `offsets`: a constant dose per influence row (a prior course's), which merging respects.
    """
    exact = set(exact)
    union = _distinct(np.concatenate([np.asarray(r, dtype=np.int64) for r in structure_rows.values()]),
                      influence.shape[0])[0]
    group = _group_identical_rows(influence, union, offsets)
    _, first_of_group = np.unique(group, return_index=True)
    representative = union[first_of_group]  # any row of a group stands for all of them
    n_groups = len(representative)

    voxel_groups = {
        name: group[np.searchsorted(union, np.asarray(rows, dtype=np.int64))] for name, rows in structure_rows.items()
    }
    candidates = {name for name in structure_rows if sample_limit is not None and name not in exact}
    held = np.zeros(n_groups, dtype=bool)  # groups the program holds whatever is sampled
    for name, groups in voxel_groups.items():
        if name not in candidates or _count_distinct(groups, n_groups) <= (sample_limit or 0):
            held[groups] = True

    structures: dict[str, StructureEntries] = {}
    for name, rows in structure_rows.items():
        limit = sample_limit if name in candidates else None
        groups, counts, kept = _represented(np.asarray(rows, dtype=np.int64), voxel_groups[name], held, limit, locate)
        structures[name] = StructureEntries(name, groups, counts / counts.sum(), len(rows), kept is not None, kept or 0)

    used = _distinct(np.concatenate([s.entries for s in structures.values()]), n_groups)[0]
    used = used[np.argsort(representative[used])]  # entries in row order: A_sel can be a view (`select_rows`)
    renumber = np.full(n_groups, -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    return VoxelSelection(
        rows=representative[used], structures={name: _renumbered(s, renumber) for name, s in structures.items()}
    )


def _represented(
    rows: np.ndarray,
    voxel_groups: np.ndarray,
    held: np.ndarray,
    sample_limit: int | None,
    locate: Callable[[np.ndarray], np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """The groups standing for a structure's voxels, the voxels each stands for, and how many voxels were
    kept exactly when the structure is sampled (None: not sampled; see the module docstring)."""
    counts_of = np.ones(len(voxel_groups))
    kept = None
    if sample_limit is not None:
        inside = held[voxel_groups]
        rest = np.flatnonzero(~inside)
        if _count_distinct(voxel_groups[rest], len(held)) > sample_limit:
            kept = int(np.count_nonzero(inside))
            order = morton_order(locate(rows[rest])) if locate is not None else np.arange(len(rest))
            drawn, lengths = stratified_sample(voxel_groups[rest], order, sample_limit, np.random.default_rng(_SAMPLE_SEED))
            voxel_groups = np.concatenate([voxel_groups[inside], drawn])
            counts_of = np.concatenate([np.ones(kept), lengths.astype(np.float64)])
    groups, position = _distinct(voxel_groups, len(held))
    return groups, np.bincount(position, weights=counts_of, minlength=len(groups)), kept


def _renumbered(entries: StructureEntries, renumber: np.ndarray) -> StructureEntries:
    """`entries` at their positions in the dose vector, kept sorted with their weights."""
    positions = renumber[entries.entries]
    order = np.argsort(positions)
    return dataclasses.replace(entries, entries=positions[order], weights=entries.weights[order])
