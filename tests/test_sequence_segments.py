"""A plan's fluence as MLC segments on the case's beamlet grid, and the segment-weight program and its solve's words."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from evaluate_fakes import protocol, synthetic_case
from specc.case import Beamlets
from specc.errors import CaseError
from specc.sequence import SequenceError, sequence_fluence
from specc.planning import compile_terms
from specc.sequence.weights import keep_segments, segment_case, segment_program
from specc.solve.choice import FLUENCE, SEGMENT_WEIGHTS, SolverSettings
from specc.solve.first_order.solver import _message as first_order_message


def _rounded(beamlets: Beamlets, fluence: np.ndarray, levels: int) -> np.ndarray:
    """Each beam's fluence rounded to `levels` steps of its own largest weight (written out here)."""
    rounded = np.zeros_like(fluence)
    for beam in np.unique(beamlets.beam_id):
        members = beamlets.beam_id == beam
        quantum = fluence[members].max() / levels
        if quantum > 0:
            rounded[members] = np.rint(fluence[members] / quantum) * quantum
    return rounded


@pytest.mark.parametrize("levels", [1, 3, 10])
def test_the_segments_deliver_each_beams_fluence_rounded_to_the_levels(levels: int) -> None:
    case = synthetic_case()
    fluence = np.random.default_rng(levels).uniform(0, 2, case.n_beamlets)
    fluence[case.beamlets.beam_id == 3] = 0.0  # a beam the plan does not use
    sequence = sequence_fluence(case.beamlets, fluence, levels)
    np.testing.assert_allclose(sequence.fluence(), _rounded(case.beamlets, fluence, levels), rtol=1e-12, atol=1e-15)
    assert sorted(beam.beam for beam in sequence.beams) == [1, 2]
    assert sequence.apertures.shape == (case.n_beamlets, len(sequence.weights))
    for beam in sequence.beams:
        left, right = beam.leaf_edges_mm()
        closed = np.isnan(left)
        assert np.array_equal(closed, np.isnan(right)) and (right[~closed] > left[~closed]).all()
        # leaf edges sit on the beamlet edges: beamlets of this case are 5 mm squares centred on -10..10 mm
        assert set(np.unique(left[~closed])) <= {-12.5, -7.5, -2.5, 2.5, 7.5}
        np.testing.assert_allclose(beam.leaf_y_mm, [-10, -5, 0, 5, 10])


def test_a_cell_without_a_beamlet_is_never_opened() -> None:
    case = synthetic_case()
    keep = ~((case.beamlets.beam_id == 1) & (case.beamlets.x_mm == 0) & (case.beamlets.y_mm == 0))
    b = case.beamlets
    beamlets = Beamlets(b.beam_id[keep], b.x_mm[keep], b.y_mm[keep], b.width_mm[keep], b.height_mm[keep])
    sequence = sequence_fluence(beamlets, np.ones(len(beamlets)), 4)  # a flat field around a hole
    np.testing.assert_allclose(sequence.fluence(), np.ones(len(beamlets)))
    beam = next(beam for beam in sequence.beams if beam.beam == 1)
    left, right = beam.leaf_edges_mm()
    middle = 2  # the leaf pair at y = 0 mm opens on either side of x = 0, never across it
    opened = [(lo, hi) for lo, hi in zip(left[:, middle], right[:, middle]) if not np.isnan(lo)]
    assert opened and all(hi <= -2.5 or lo >= 2.5 for lo, hi in opened)


def test_a_segment_s_area_is_its_leaf_gaps_times_the_leaf_width() -> None:
    """Every cell of the synthetic beams holds a 5 x 5 mm beamlet: a segment opens 0.25 cm² per open beamlet."""
    case = synthetic_case()
    fluence = np.random.default_rng(7).uniform(0.0, 1.0, case.n_beamlets)
    sequence = sequence_fluence(case.beamlets, fluence, 5)
    open_beamlets = np.asarray(sequence.apertures.sum(axis=0)).ravel()
    np.testing.assert_allclose(sequence.areas_cm2(), 0.25 * open_beamlets)
    beam = sequence.beams[0]
    left, right = beam.leaf_edges_mm()
    np.testing.assert_allclose(beam.areas_cm2(), np.nansum(right - left, axis=1) * 5.0 / 100.0)


def test_beamlets_off_a_regular_grid_cannot_be_sequenced() -> None:
    case = synthetic_case()
    b = case.beamlets
    x_mm = b.x_mm.copy()
    x_mm[0] += 2.0
    with pytest.raises(CaseError, match="cannot be placed for sequencing"):
        sequence_fluence(Beamlets(b.beam_id, x_mm, b.y_mm, b.width_mm, b.height_mm), np.ones(len(b)), 5)


def test_levels_and_the_fluence_size_are_checked() -> None:
    case = synthetic_case()
    with pytest.raises(SequenceError, match="at least 1"):
        sequence_fluence(case.beamlets, np.ones(case.n_beamlets), 0)
    with pytest.raises(SequenceError, match="74 beamlet weights"):
        sequence_fluence(case.beamlets, np.ones(74), 5)


def test_new_weights_keep_the_apertures_and_unused_segments_are_dropped() -> None:
    case = synthetic_case()
    sequence = sequence_fluence(case.beamlets, np.random.default_rng(1).uniform(0, 1, case.n_beamlets), 3)
    weights = np.random.default_rng(2).uniform(0, 1, len(sequence.weights))
    weights[::2] = 0.0
    reweighted = sequence.with_weights(weights)
    np.testing.assert_allclose(reweighted.fluence(), sequence.apertures @ weights)
    kept = reweighted.without_empty()
    assert len(kept.weights) == np.count_nonzero(weights)
    np.testing.assert_allclose(kept.fluence(), sequence.apertures @ weights)


def test_the_segment_case_has_one_influence_column_per_segment() -> None:
    case = synthetic_case()
    sequence = sequence_fluence(case.beamlets, np.random.default_rng(3).uniform(0, 1, case.n_beamlets), 4)
    segments = segment_case(case, sequence)
    assert segments.n_beamlets == len(sequence.weights)
    np.testing.assert_allclose(
        segments.influence.toarray(), case.influence.toarray() @ sequence.apertures.toarray(), rtol=1e-5
    )
    weights = sequence.weights
    np.testing.assert_allclose(
        segments.dose_on_grid(weights, 30), case.dose_on_grid(sequence.fluence(), 30), rtol=1e-4, atol=1e-6
    )


def test_the_segment_program_leaves_out_the_fluence_terms_and_renumbers_priorities() -> None:
    terms = [
        "{kind: smoothness, weight: 0.1}",
        "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
        "{kind: fluence_regularization, weight: 0.01}",
        "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1, priority: 2}",
    ]
    written = protocol({"Target": ["D95% >= 57 Gy"]}, terms=terms)
    program = segment_program(written, {3: 2})
    assert [term.kind for term in program.protocol.optimization.terms] == ["quadratic_underdose", "quadratic_overdose"]
    assert program.goal_priorities == {1: 2}
    assert [term.label() for term in program.left_out] == ["smoothness (weight 0.1)", "fluence_regularization l1 (weight 0.01)"]
    only_fluence = protocol({"Target": ["D95% >= 57 Gy"]}, terms=[terms[0]])
    with pytest.raises(SequenceError, match="none is left"):
        segment_program(only_fluence, {})


def test_keeping_some_segments_takes_their_columns_of_the_segment_case() -> None:
    case = synthetic_case()
    sequence = sequence_fluence(case.beamlets, np.random.default_rng(4).uniform(0, 1, case.n_beamlets), 4)
    weights = sequence.weights.copy()
    weights[1::3] = 0.0
    kept = keep_segments(segment_case(case, sequence), np.flatnonzero(weights > 0))
    rebuilt = segment_case(case, sequence.with_weights(weights).without_empty())
    np.testing.assert_array_equal(kept.influence.toarray(), rebuilt.influence.toarray())
    np.testing.assert_array_equal(kept.beamlets.beam_id, rebuilt.beamlets.beam_id)
    np.testing.assert_allclose(kept.beamlets.x_mm, rebuilt.beamlets.x_mm)


@pytest.mark.parametrize("solver", ["SPECC-LBFGS", "CLARABEL"])
def test_the_segment_weight_solve_speaks_of_segment_weights_and_segments(solver: str) -> None:
    """Audit s18/a3 F6: it read 'found the optimal fluence ... working sets of 77 beamlets' of 77 segments."""
    case = synthetic_case()
    sequence = sequence_fluence(case.beamlets, np.random.default_rng(5).uniform(0, 1, case.n_beamlets), 4)
    terms = ["{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
             "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}"]
    program = segment_program(protocol({"Target": ["D95% >= 57 Gy"]}, terms=terms), {})
    settings = SolverSettings(name=solver, variables=SEGMENT_WEIGHTS)
    result = compile_terms(program.protocol, segment_case(case, sequence), settings, program.goal_priorities).solve().result
    assert result.status == "optimal"
    assert f"{solver} found the optimal segment weights" in result.message
    assert "fluence" not in result.message and "beamlets" not in result.message



def test_the_fast_paths_working_sets_count_segments_in_a_segment_weight_solve() -> None:
    ended = SimpleNamespace(iterations=40, multipliers=np.zeros(0), outer_iterations=1, working_sets=((77, 2141),),
                            certificate=None, outcome="converged")
    said = {variables: first_order_message("optimal", ended, 0.0, SolverSettings(variables=variables), hard=False)
            for variables in (FLUENCE, SEGMENT_WEIGHTS)}
    assert said[FLUENCE].startswith("SPECC-LBFGS found the optimal fluence") and "of 77 beamlets x 2141 dose rows" in said[FLUENCE]
    assert said[SEGMENT_WEIGHTS].startswith("SPECC-LBFGS found the optimal segment weights")
    assert "of 77 segments x 2141 dose rows" in said[SEGMENT_WEIGHTS] and "beamlets" not in said[SEGMENT_WEIGHTS]
