"""A segment's separate openings: what `min_opening_area` closes and the small-heavy note measures (audit s19/a2 F1),
and `min_segment_area`, which takes a segment's openings summed, as clinical planning systems define it."""

from __future__ import annotations

import numpy as np
import pytest

from evaluate_fakes import synthetic_case
from specc.delivery import _small_heavy_notes, _without_small
from specc.protocol.models import Delivery
from specc.sequence import Apertures, BeamSegments, SequenceError
from specc.sequence.segments import assemble, beam_grids_of


def test_adjacent_gaps_are_one_opening_only_where_they_overlap_along_the_leaves() -> None:
    # rows (leaf pairs): [0, 2) and [1, 3) overlap; [0, 1) and [1, 2) meet at a corner; a closed pair splits
    apertures = Apertures(
        left=np.array([[0, 1, 0, 0, 0], [0, 1, 0, 3, 0], [0, 0, 0, 0, 0]]),
        right=np.array([[2, 3, 0, 0, 0], [1, 2, 0, 4, 0], [2, 0, 2, 0, 0]]),
        quanta=np.array([1, 1, 1]),
    )
    assert apertures.opening_labels().tolist() == [[1, 1, 0, 0, 0], [1, 2, 0, 3, 0], [1, 0, 2, 0, 0]]


def _sequence(openings: dict[int, list[np.ndarray]], weights: dict[int, list[float]]):
    """Segments on the synthetic case's 5 x 5 grids of 5 mm beamlets (0.25 cm² a cell), from open-cell maps
    (leaf pairs x cells, one interval per pair)."""
    case = synthetic_case()
    grids = {grid.beam: grid for grid in beam_grids_of(case.beamlets)}
    beams = []
    for beam, maps in openings.items():
        left = np.array([[row.argmax() if row.any() else 0 for row in cells] for cells in maps])
        right = np.array([[row.argmax() + row.sum() if row.any() else 0 for row in cells] for cells in maps])
        apertures = Apertures(left, right, np.ones(len(maps), dtype=np.int64))
        beams.append(BeamSegments(beam, grids[beam], apertures, np.array(weights[beam], dtype=float)))
    return case, assemble(beams, case.n_beamlets, None, None)


def _cells(*open_cells: tuple[int, int]) -> np.ndarray:
    cells = np.zeros((5, 5), dtype=bool)
    for pair, cell in open_cells:
        cells[pair, cell] = True
    return cells


BLOCK = [(pair, cell) for pair in (0, 1, 2) for cell in (0, 1, 2)]  # 3 x 3 beamlets: 2.25 cm²
# five separate strips of two beamlets (0.5 cm² each, 2.5 cm² in all): adjacent pairs open where the other is shut
STRIPS = [(pair, cell) for pair in range(5) for cell in ((0, 1) if pair % 2 == 0 else (3, 4))]


def test_openings_smaller_than_the_minimum_are_closed_and_a_segment_of_pinholes_is_removed() -> None:
    """Beam 1: a 3 x 3 block and a pinhole (2.5 cm² in all); beam 2: five strips (2.5 cm² in all) and the block.
    No segment opens less than 1 cm² in all, yet the pinhole and the strips are fields of 0.25 and 0.5 cm²: with
    min_opening_area 1 cm² they are closed, beam 2's strip segment is left with nothing and removed, the blocks keep
    their fluence."""
    case, sequence = _sequence(
        {1: [_cells(*BLOCK, (4, 4))], 2: [_cells(*STRIPS), _cells(*BLOCK)]}, {1: [2.0], 2: [3.0, 1.0]}
    )
    assert sequence.areas_cm2().tolist() == [2.5, 2.5, 2.25]  # every segment passes 1 cm² by its summed area
    assert [areas.tolist() for beam in sequence.beams for areas in beam.opening_areas_cm2()] == [
        [2.25, 0.25], [0.5] * 5, [2.25]]
    notes: list[str] = []
    kept = _without_small(sequence, Delivery(technique="step_and_shoot", min_opening_area="1 cm2"), notes)
    assert [len(beam.weights) for beam in kept.beams] == [1, 1]
    assert kept.areas_cm2().tolist() == [2.25, 2.25]
    assert kept.weights.tolist() == [2.0, 1.0]
    block = np.isin(np.arange(case.n_beamlets), sequence.apertures[:, 2].nonzero()[0])  # beam 2's block beamlets
    np.testing.assert_allclose(kept.fluence()[case.beamlets.beam_id == 2], 1.0 * block[case.beamlets.beam_id == 2])
    [note] = notes
    assert note == ("6 segment openings smaller than min_opening_area 1 cm² (the smallest 0.25 cm²; an opening is leaf "
                    "pairs whose gaps overlap along the leaves) closed in 2 of 3 segments before the weights were "
                    "optimized; segments removed: 1 left with no opening")


def test_a_segment_left_the_same_as_another_of_its_beam_is_merged_into_it() -> None:
    """Block + pinhole and block + another pinhole are the same block once the pinholes are closed: one segment
    of both weights and quanta, the beam's fluence unchanged where nothing was closed."""
    _, sequence = _sequence({1: [_cells(*BLOCK, (4, 4)), _cells(*BLOCK, (4, 0)), _cells(*BLOCK)]}, {1: [2.0, 1.5, 0.5]})
    notes: list[str] = []
    kept = _without_small(sequence, Delivery(technique="step_and_shoot", min_opening_area="1 cm2"), notes)
    [beam] = kept.beams
    assert beam.weights.tolist() == [4.0] and beam.apertures.quanta.tolist() == [3]
    assert notes[0].endswith("segments removed: 2 left the same as another segment of their beam (merged into it)")


def test_no_opening_reaching_the_minimum_is_an_error() -> None:
    _, sequence = _sequence({1: [_cells(*STRIPS)]}, {1: [1.0]})
    with pytest.raises(SequenceError, match=r"every opening of the 1 segments is smaller than min_opening_area 1 cm² "
                                            r"\(the largest 0.50 cm²\): nothing is left to deliver"):
        _without_small(sequence, Delivery(technique="step_and_shoot", min_opening_area="1 cm2"), [])


def test_a_heavy_segment_of_pinholes_is_noted_by_its_smallest_opening() -> None:
    """Five separate 0.5 cm² strips with 30% of the beam: 2.5 cm² in all (not under the 2 cm² threshold), but each
    opening is a 0.5 cm² field; the 2.25 cm² block with 70% is not small."""
    _, sequence = _sequence({2: [_cells(*STRIPS), _cells(*BLOCK)]}, {2: [3.0, 7.0]})
    [note] = _small_heavy_notes(sequence)
    assert note.startswith("small segments carry much of their beam's weight (beam 2: 0.50 cm² (the smallest of 5 "
                           "openings, 2.50 cm² in all) with 30%; noted for an opening under 2 cm²")
    assert "closes smaller openings" in note


def test_the_minimum_segment_area_keeps_a_segment_whose_small_openings_sum_to_more() -> None:
    """min_segment_area is the whole segment's open area, as RayStation, Monaco and Pinnacle define it: the block
    with its pinhole (2.5 cm² in all) and the five 0.5 cm² strips (2.5 cm² in all) pass 1 cm² and are delivered as
    cut, openings and all; a segment of two beamlets (0.5 cm² in all) is removed. The heavy strip segment is still
    named by its smallest opening: the note, not this minimum, tells of small openings."""
    _, sequence = _sequence(
        {1: [_cells(*BLOCK, (4, 4))], 2: [_cells(*STRIPS), _cells(*BLOCK), _cells((4, 3), (4, 4))]},
        {1: [2.0], 2: [3.0, 6.0, 1.0]},
    )
    notes: list[str] = []
    kept = _without_small(sequence, Delivery(technique="step_and_shoot", min_segment_area="1 cm2"), notes)
    assert kept.areas_cm2().tolist() == [2.5, 2.5, 2.25]
    assert [areas.tolist() for beam in kept.beams for areas in beam.opening_areas_cm2()] == [
        [2.25, 0.25], [0.5] * 5, [2.25]]
    np.testing.assert_array_equal(kept.apertures.toarray(), sequence.apertures[:, :3].toarray())
    assert kept.weights.tolist() == [2.0, 3.0, 6.0]
    assert notes == ["1 of 4 segments open less than 1 cm² in all (their openings summed; the smallest 0.50 cm²) and "
                     "were removed before the weights were optimized"]
    [note] = _small_heavy_notes(kept)
    assert "beam 2: 0.50 cm² (the smallest of 5 openings, 2.50 cm² in all) with 33%" in note


def test_openings_are_closed_before_the_segments_are_measured_against_the_minimum_segment_area() -> None:
    """Both minimums: the block with its pinhole opens 2.5 cm² in all as cut, 2.25 cm² once min_opening_area closes
    the pinhole; min_segment_area 2.5 cm² takes the segment as it is delivered and removes it. A 4 x 4 block
    (4 cm²) passes both."""
    large = [(pair, cell) for pair in range(4) for cell in range(4)]
    _, sequence = _sequence({1: [_cells(*BLOCK, (4, 4)), _cells(*large)]}, {1: [2.0, 1.0]})
    notes: list[str] = []
    delivery = Delivery(technique="step_and_shoot", segment_weights="as_sequenced", min_opening_area="0.5 cm2",
                        min_segment_area="2.5 cm2")
    kept = _without_small(sequence, delivery, notes)
    assert kept.areas_cm2().tolist() == [4.0] and kept.weights.tolist() == [1.0]
    assert notes == [
        "1 segment opening smaller than min_opening_area 0.5 cm² (the smallest 0.25 cm²; an opening is leaf pairs "
        "whose gaps overlap along the leaves) closed in 1 of 2 segments (the weights stay as sequenced)",
        "1 of 2 segments open less than 2.5 cm² in all (their openings summed; the smallest 2.25 cm²) and were "
        "removed (the weights stay as sequenced)",
    ]


def test_a_minimum_segment_area_no_segment_reaches_is_an_error() -> None:
    _, sequence = _sequence({1: [_cells(*STRIPS)]}, {1: [1.0]})
    with pytest.raises(SequenceError, match=r"every one of the 1 segments opens less than min_segment_area 4 cm² in "
                                            r"all \(the largest 2.50 cm²\): nothing is left to deliver"):
        _without_small(sequence, Delivery(technique="step_and_shoot", min_segment_area="4 cm2"), [])
