"""Products with an influence matrix by blocks of rows, on threads.

Every dose calculation is a product with the influence matrix (A x) or its transpose
(A.T g): the full-grid dose of a plan, and two per iteration of the fast path. scipy's sparse
products release the GIL, so blocks of rows run on threads: on two cores and the 32M-nonzero
benchmark matrix, A x 12.6 -> 6.9 ms and A.T g 13.3 -> 7.4 ms (docs/performance.md). The
blocks depend on the matrix only, never on the number of cores, so every machine sums the
same partial products in the same order, and they are views of the matrix's arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

# At most this many nonzeros per block, the blocks of a matrix equal in nonzeros: large
# enough that a block's product dwarfs the thread hand-off (a 600k-nonzero matrix in two
# blocks: 0.50 -> 0.60 ms), small enough that the working sets of a solve (1-6M nonzeros)
# share two cores. A x and A.T g on two cores, 2M-nonzero blocks -> these (the first as
# uneven as the old cuts left them): 1.8M nonzeros 1.42 -> 0.95 ms, 5.5M 3.10 -> 2.66 ms,
# 13.6M and the 32M benchmark matrix unchanged (docs/performance-history.md, eleventh pass). It
# also bounds the float64 copy scipy makes of a float32 block times a float64 vector (8 MB).
BLOCK_NONZEROS = 1_000_000


def _view(kind: type, shape: tuple[int, int], data: np.ndarray, indices: np.ndarray, indptr: np.ndarray) -> sp.spmatrix:
    """A compressed sparse matrix on the given arrays, without copying them.

    The arrays are set on an empty matrix: scipy's (data, indices, indptr) constructor copies
    sliced arrays (measured, scipy 1.17), which would double the matrix in memory.
    """
    matrix = kind(shape, dtype=data.dtype)
    matrix.data, matrix.indices, matrix.indptr = data, indices, indptr
    return matrix


def select_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """`matrix[rows]` for strictly increasing `rows`, sharing the matrix's arrays when it can.

    When every row `rows` skips between its first and last holds no nonzero (typically the
    empty rows of voxels no beamlet reaches, merged into one entry), the selected rows' values
    and indices are one contiguous run of the matrix's arrays: the result is a view of them
    with its own row pointers, and an unsampled program costs no copy of the matrix. Otherwise
    (a sample, rows of structures no term needs) scipy copies the rows.
    """
    rows = np.asarray(rows, dtype=np.int64)
    indptr = matrix.indptr
    if len(rows) == 0 or np.any(np.diff(rows) <= 0) or np.any(indptr[rows[:-1] + 1] != indptr[rows[1:]]):
        return matrix[rows]
    first, last = indptr[rows[0]], indptr[rows[-1] + 1]
    pointers = np.append(indptr[rows], last) - first
    return _view(sp.csr_matrix, (len(rows), matrix.shape[1]), matrix.data[first:last], matrix.indices[first:last],
                 pointers.astype(indptr.dtype))


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        _POOL = ThreadPoolExecutor(max_workers=cores)
    return _POOL


def _forget_pool() -> None:
    """A forked child has none of its parent's threads: it starts its own pool (or its work would wait forever)."""
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


class RowBlocks:
    """A CSR matrix as consecutive row blocks, each a CSR view and the CSC view of its transpose."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.shape = matrix.shape
        indptr = matrix.indptr
        count = max(1, -(-matrix.nnz // BLOCK_NONZEROS))
        cuts = np.searchsorted(indptr, np.arange(1, count) * (matrix.nnz / count))
        bounds = np.unique(np.concatenate([[0], cuts, [matrix.shape[0]]]))
        self.blocks: list[tuple[int, int, sp.csr_matrix, sp.csc_matrix]] = []
        for start, stop in zip(bounds[:-1], bounds[1:]):
            first, last = indptr[start], indptr[stop]
            arrays = (matrix.data[first:last], matrix.indices[first:last], indptr[start : stop + 1] - first)
            rows = int(stop - start)
            self.blocks.append((
                int(start), int(stop),
                _view(sp.csr_matrix, (rows, matrix.shape[1]), *arrays),
                _view(sp.csc_matrix, (matrix.shape[1], rows), *arrays),
            ))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """A x in float64 (each block's product in the dtype scipy picks for the block and x)."""
        result = np.empty(self.shape[0])

        def block(index: int) -> None:
            start, stop, rows, _ = self.blocks[index]
            result[start:stop] = rows @ x

        self._run(block)
        return result

    def adjoint(self, g: np.ndarray) -> np.ndarray:
        """A.T g in float64: the blocks' partial products summed in block order."""
        parts: list[np.ndarray] = [np.empty(0)] * len(self.blocks)

        def block(index: int) -> None:
            start, stop, _, transposed = self.blocks[index]
            parts[index] = transposed @ g[start:stop]

        self._run(block)
        total = np.zeros(self.shape[1])
        for part in parts:
            total += part
        return total

    def _run(self, work: Callable[[int], None]) -> None:
        if len(self.blocks) == 1:
            work(0)
        else:
            list(_pool().map(work, range(len(self.blocks))))
