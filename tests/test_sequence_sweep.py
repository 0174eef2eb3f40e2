"""The sweep decomposition: exact, unidirectional, and with the fewest intensity quanta."""

from __future__ import annotations

import numpy as np
import pytest
from sequence_maps import delivered, least_quanta, random_levels

from specc.sequence import sweep_apertures


def test_a_row_is_cut_into_unit_intervals_pairing_rises_with_falls() -> None:
    apertures = sweep_apertures(np.array([[1, 3, 2]]))
    # rises at edges 0, 1, 1 and falls at 2, 3, 3: [0, 2) once, then [1, 3) twice, merged
    assert apertures.left.tolist() == [[0], [1]]
    assert apertures.right.tolist() == [[2], [3]]
    assert apertures.quanta.tolist() == [1, 2]


@pytest.mark.parametrize("seed", range(25))
def test_random_maps_are_delivered_exactly_with_the_least_quanta_and_leaves_moving_one_way(seed: int) -> None:
    levels = random_levels(seed, 6, 7, 11)
    apertures = sweep_apertures(levels)
    np.testing.assert_array_equal(delivered(apertures, levels.shape[1]), levels)
    assert apertures.quanta.sum() == least_quanta(levels)  # Bortfeld's lower bound
    for row in range(levels.shape[0]):
        open_rows = apertures.right[:, row] > apertures.left[:, row]
        assert np.all(np.diff(apertures.left[open_rows, row]) >= 0)
        assert np.all(np.diff(apertures.right[open_rows, row]) >= 0)
    # merged: no two consecutive segments are the same aperture
    same = (apertures.left[1:] == apertures.left[:-1]).all(axis=1) & (apertures.right[1:] == apertures.right[:-1]).all(axis=1)
    assert not same.any()


def test_an_empty_map_has_no_segment() -> None:
    assert len(sweep_apertures(np.zeros((3, 4), dtype=np.int64))) == 0


@pytest.mark.parametrize("levels", [np.array([[1.5, 2.0]]), np.array([[1, -1]]), np.array([1, 2])])
def test_a_map_that_is_not_nonnegative_integers_in_two_dimensions_is_refused(levels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="nonnegative integers"):
        sweep_apertures(levels)
