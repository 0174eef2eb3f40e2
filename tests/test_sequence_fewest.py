"""The fewest-segments decomposition: exact, in the least quanta, and in fewer segments than the sweep."""

from __future__ import annotations

import numpy as np
import pytest
from sequence_maps import delivered, least_quanta, random_levels

from specc.sequence.fewest import _shortest_travel, fewest_apertures, travel_between
from specc.sequence.sweep import Apertures, sweep_apertures


def test_a_row_with_one_plateau_is_one_segment_of_its_height() -> None:
    apertures = fewest_apertures(np.array([[0, 3, 3, 3, 0], [0, 0, 3, 0, 0]]))
    assert apertures.left.tolist() == [[1, 2]] and apertures.right.tolist() == [[4, 3]]
    assert apertures.quanta.tolist() == [3]


def test_the_largest_segment_comes_first_where_the_sweep_cuts_unit_steps() -> None:
    """[1, 3, 2]: the sweep needs [0, 2) once and [1, 3) twice; here [1, 3) for 2 quanta, then [0, 1) once."""
    levels = np.array([[1, 3, 2]])
    apertures = fewest_apertures(levels)
    assert apertures.quanta.tolist() == [2, 1] and apertures.quanta.sum() == least_quanta(levels)
    assert (apertures.left.ravel().tolist(), apertures.right.ravel().tolist()) == ([1, 0], [3, 2])


@pytest.mark.parametrize("seed", range(25))
def test_random_maps_are_delivered_exactly_in_the_least_quanta(seed: int) -> None:
    levels = random_levels(seed, 10, 9, 13)
    apertures = fewest_apertures(levels)
    np.testing.assert_array_equal(delivered(apertures, levels.shape[1]), levels)
    assert apertures.quanta.sum() == least_quanta(levels) and (apertures.quanta > 0).all()
    assert (apertures.right >= apertures.left).all()  # one interval per leaf pair
    shapes = np.concatenate((apertures.left, apertures.right), axis=1)
    assert len(np.unique(shapes, axis=0)) == len(shapes)  # identical apertures merged
    assert len(apertures) <= len(sweep_apertures(levels))


def test_where_the_greedy_choice_loses_to_the_sweep_the_sweeps_segments_are_taken() -> None:
    """Rows [2, 5, 3] and [8, 8, 0]: largest-first cuts 4 segments, the sweep 3 (a review found it)."""
    levels = np.array([[2, 5, 3], [8, 8, 0]])
    apertures, sweep = fewest_apertures(levels), sweep_apertures(levels)
    assert len(apertures) == len(sweep) == 3
    assert (apertures.left.tolist(), apertures.right.tolist()) == (sweep.left.tolist(), sweep.right.tolist())


def test_clinical_size_maps_take_fewer_segments_than_the_sweep() -> None:
    """15 x 15 maps of 0-10 quanta: the sweep's segments grow with the quanta, these with the map's structure."""
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 11, size=(15, 15)) for _ in range(10)]
    fewest = [len(fewest_apertures(levels)) for levels in maps]
    sweep = [len(sweep_apertures(levels)) for levels in maps]
    assert all(f < s for f, s in zip(fewest, sweep))
    assert np.mean(fewest) < 0.5 * np.mean(sweep)


def test_an_empty_map_has_no_segment_and_a_bad_map_is_refused() -> None:
    empty = fewest_apertures(np.zeros((3, 4), dtype=np.int64))
    assert len(empty) == 0 and empty.left.shape == (0, 3)
    with pytest.raises(ValueError, match="nonnegative integers"):
        fewest_apertures(np.array([[1, -1]]))


def test_segments_are_ordered_to_shorten_the_leaves_travel() -> None:
    """Openings starting at cells 0, 10 and 5 of one pair: 0 -> 5 -> 10 moves the leaves 10 cells, the cut
    order 0 -> 10 -> 5 fifteen. A closed pair (row 2) closes wherever its leaves are: it costs nothing."""
    cut = Apertures(left=np.array([[0, 0], [10, 0], [5, 0]]), right=np.array([[2, 0], [12, 0], [7, 0]]),
                    quanta=np.array([1, 1, 1]))
    assert travel_between(cut).tolist() == [[0, 10, 5], [10, 0, 5], [5, 5, 0]]
    order = _shortest_travel(cut).tolist()
    assert order in ([0, 2, 1], [1, 2, 0])

