"""Products with the influence matrix by row blocks on threads: the plain products, block by block."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest
import scipy.sparse as sp

from specc.case import products
from specc.solve.first_order import assemble
from specc.solve.first_order.assemble import DoseOperator


@pytest.fixture
def matrix() -> sp.csr_matrix:
    rng = np.random.default_rng(7)
    dense = rng.random((300, 40)) * (rng.random((300, 40)) < 0.2)
    dense[50:60] = 0.0  # empty rows inside a block
    return sp.csr_matrix(dense.astype(np.float32))


def test_blocked_products_equal_the_plain_ones(monkeypatch: pytest.MonkeyPatch, matrix: sp.csr_matrix) -> None:
    monkeypatch.setattr(products, "BLOCK_NONZEROS", 97)  # many uneven blocks
    operator = DoseOperator(matrix)
    assert len(operator._blocks.blocks) > 10
    starts = [block[0] for block in operator._blocks.blocks]
    stops = [block[1] for block in operator._blocks.blocks]
    assert starts[0] == 0 and stops[-1] == matrix.shape[0] and starts[1:] == stops[:-1]  # every row once
    views = [matrix_ for block in operator._blocks.blocks for matrix_ in block[2:]]
    assert all(np.shares_memory(view.data, matrix.data) for view in views)  # no copy of the values
    rng = np.random.default_rng(8)
    fluence, gradient = rng.random(40), rng.random(300)
    np.testing.assert_allclose(operator.forward(fluence), matrix @ fluence.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(operator.adjoint(gradient), matrix.T @ gradient.astype(np.float32), rtol=1e-5)
    precise = operator.in_float64()
    assert precise.float64
    monkeypatch.setattr(assemble, "_FLOAT64_COPY_NONZEROS", 10)  # a large matrix: float64 products, no copy
    uncopied = operator.in_float64()
    assert uncopied.float64 and np.shares_memory(uncopied.influence.data, matrix.data)
    np.testing.assert_array_equal(uncopied.forward(fluence), precise.forward(fluence))  # the same float64 sums
    np.testing.assert_array_equal(uncopied.adjoint(gradient), precise.adjoint(gradient))
    np.testing.assert_allclose(precise.forward(fluence), matrix.astype(np.float64) @ fluence, rtol=1e-12)
    np.testing.assert_allclose(precise.adjoint(gradient), matrix.T.astype(np.float64) @ gradient, rtol=1e-12)


def test_selected_rows_share_the_matrix_when_they_skip_only_empty_rows(matrix: sp.csr_matrix) -> None:
    skipping_empty = np.concatenate([np.arange(3, 52), np.arange(58, 250)])  # skips rows 52-57: empty
    skipping_full = np.concatenate([np.arange(3, 30), np.arange(32, 250)])  # skips two rows with nonzeros
    for rows, shared in ((skipping_empty, True), (skipping_full, False), (np.array([5, 2]), False)):
        selected = products.select_rows(matrix, rows)
        assert np.shares_memory(selected.data, matrix.data) == shared
        selected.check_format(full_check=True)
        np.testing.assert_array_equal(selected.toarray(), matrix[rows].toarray())
        assert selected.nnz == matrix[rows].nnz


def test_the_blocks_do_not_depend_on_the_machine(monkeypatch: pytest.MonkeyPatch, matrix: sp.csr_matrix) -> None:
    """Same blocks, same sums, bit for bit, however many threads run them."""
    monkeypatch.setattr(products, "BLOCK_NONZEROS", 97)
    gradient = np.random.default_rng(9).random(300)
    threaded = DoseOperator(matrix).adjoint(gradient)
    monkeypatch.setattr(products, "_pool", lambda: _Serial())
    np.testing.assert_array_equal(DoseOperator(matrix).adjoint(gradient), threaded)


class _Serial:
    """A pool of one: runs the work in order on this thread."""

    def map(self, work, items):
        return [work(item) for item in items]


def _forward_in_child(matrix: sp.csr_matrix, fluence: np.ndarray, queue) -> None:
    queue.put(DoseOperator(matrix).forward(fluence))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_process_runs_its_own_products(monkeypatch: pytest.MonkeyPatch, matrix: sp.csr_matrix) -> None:
    """A cohort run by a fork-based pool must not wait on threads that stayed in the parent."""
    monkeypatch.setattr(products, "BLOCK_NONZEROS", 97)
    fluence = np.random.default_rng(10).random(40)
    expected = DoseOperator(matrix).forward(fluence)  # the parent's pool now exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_forward_in_child, args=(matrix, fluence, queue))
    child.start()
    try:
        np.testing.assert_array_equal(queue.get(timeout=60), expected)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()


def test_float32_doses_near_an_anchor_carry_the_error_of_the_step_only(matrix: sp.csr_matrix) -> None:
    """A float32 forward product is an exact float64 anchor dose plus the product of the step from it:
    near an optimum, where L-BFGS-B compares objectives that differ by less than float32 rounding of the
    whole dose, the difference of two doses is then exact to 1e-7 of the step."""
    operator = DoseOperator(matrix)
    exact = matrix.astype(np.float64)
    rng = np.random.default_rng(11)
    anchor = rng.random(40)
    np.testing.assert_array_equal(operator.forward(anchor), DoseOperator(matrix, float64=True).forward(anchor))
    near = anchor + 1e-6 * rng.random(40)
    error = np.abs(operator.forward(near) - exact @ near).max()
    plain = np.abs(matrix @ near.astype(np.float32) - exact @ near).max()  # a float32 product of the whole fluence
    assert error < 1e-3 * plain and error < 1e-12 * np.abs(exact @ near).max()
    operator.forget_anchor()  # the next product is the anchor: a run does not depend on earlier runs
    np.testing.assert_array_equal(operator.forward(near), DoseOperator(matrix).forward(near))
