"""`delivery: {max_segments_per_beam: N}`: no beam delivers more than N segments, the lightest removed.

Audit s19/a2 F3: no planning option capped the segments per beam."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest

from evaluate_fakes import protocol, synthetic_case
from specc.delivery import deliver
from specc.pipeline import plan
from specc.planning import compile_for_plan
from specc.protocol import ProtocolError
from specc.sequence import sequence_fluence

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Target, dose: 61 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
]
GOALS = {"Target": ["D95% >= 57 Gy"], "Organ": ["Mean <= 30 Gy"]}


@pytest.mark.parametrize(("value", "message"), [
    ("0", "delivery.max_segments_per_beam: must be greater than or equal to 1, got 0"),
    ("2.5", "delivery.max_segments_per_beam: expected a whole number, got 2.5"),
    ("ten", 'delivery.max_segments_per_beam: expected a whole number, got "ten"'),
    ("true", "delivery.max_segments_per_beam: expected a whole number, got true"),
])
def test_a_maximum_that_is_not_a_positive_whole_number_is_refused_at_its_line(value: str, message: str) -> None:
    with pytest.raises(ProtocolError) as error:
        protocol(GOALS, terms=TERMS, delivery=f"{{technique: step_and_shoot, max_segments_per_beam: {value}}}")
    assert message in str(error.value) and re.search(r"protocols/test.yaml:\d+", str(error.value)), str(error.value)


def test_a_maximum_on_a_fluence_plan_is_refused() -> None:
    with pytest.raises(ProtocolError) as error:
        protocol(GOALS, terms=TERMS, delivery="{technique: fluence, max_segments_per_beam: 5}")
    assert ("max_segments_per_beam applies to `technique: step_and_shoot` or `technique: forward`, not to fluence"
            in str(error.value)) and "protocols/test.yaml:" in str(error.value)


def _counts(notes: list[str], pattern: str) -> int:
    return sum(int(found) for note in notes for found in re.findall(pattern, note))


def test_no_beam_delivers_more_segments_than_the_maximum_and_the_removals_add_up(tmp_path: Path) -> None:
    case = synthetic_case()
    free = plan(protocol(GOALS, terms=TERMS, delivery="{technique: step_and_shoot, intensity_levels: 8}"), case,
                tmp_path / "free")
    most = max(beam.segments for beam in free.record.delivery.beams)
    cap = most - 2
    assert cap >= 1
    limited = plan(protocol(GOALS, terms=TERMS, delivery=f"{{technique: step_and_shoot, intensity_levels: 8, "
                                                         f"max_segments_per_beam: {cap}}}"), case, tmp_path / "cap")
    assert limited.succeeded and limited.record.converged
    assert max(beam.segments for beam in limited.record.delivery.beams) <= cap
    notes = limited.record.notes
    sequenced = _counts(notes, r"sequenced into (\d+) segments")
    weightless = _counts(notes, r"(\d+) of the \d+ segments got no weight")
    capped = _counts(notes, rf"(\d+) segments removed to keep each beam to max_segments_per_beam {cap} ")
    assert capped >= 2 and sequenced - weightless - capped == limited.record.delivery.total_segments, notes
    # plan.json and the report's Delivery section say what was asked
    assert limited.record.delivery.max_segments_per_beam == cap and free.record.delivery.max_segments_per_beam is None
    html = " ".join(unescape((tmp_path / "cap" / "report.html").read_text()).split())
    assert f"Limits asked: at most {cap} segments per beam (max_segments_per_beam)." in html


def test_as_sequenced_keeps_each_beams_heaviest_segments_as_cut() -> None:
    case = synthetic_case()
    written = protocol(GOALS, terms=TERMS, delivery="{technique: step_and_shoot, intensity_levels: 8, "
                                                    "segment_weights: as_sequenced, max_segments_per_beam: 3}")
    compiled = compile_for_plan(written, case)
    fluence = compiled.solve().result
    cut = sequence_fluence(case.beamlets, fluence.fluence, 8)
    assert max(len(beam.weights) for beam in cut.beams) > 3  # the maximum has work to do
    delivered = deliver(compiled, fluence, written.delivery)
    for before, after in zip(cut.beams, delivered.sequence.beams):
        assert after.beam == before.beam
        heaviest = np.sort(before.weights)[::-1][:3]
        np.testing.assert_allclose(np.sort(after.weights)[::-1], heaviest)
    np.testing.assert_allclose(delivered.result.fluence, delivered.sequence.fluence())
    removed = sum(max(len(beam.weights) - 3, 0) for beam in cut.beams)
    assert f"{removed} of {len(cut.weights)} segments removed to keep each beam to max_segments_per_beam 3 (the " \
           "lightest as cut; the others keep their weights)" in delivered.notes


def test_the_count_and_the_minimum_weight_together_remove_no_more_light_segments_in_a_round_than_either() -> None:
    """Review s19/r2 F2: weights [1, 2, 50, 50, 50, 50] with at most 5 segments and a 5% minimum removed the 1
    (beyond the count) and then the 2 (the lighter half of the light ones left), two where each rule alone
    removes one: the halving that keeps the weights solved again from over-shooting was undone."""
    from types import SimpleNamespace

    from specc.delivery import _to_remove

    weights = np.array([1.0, 2.0, 50.0, 50.0, 50.0, 50.0])
    sequence = SimpleNamespace(beams=[SimpleNamespace(weights=weights)])
    below, beyond = _to_remove(sequence, weights, 5.0, 5)
    assert beyond.tolist() == [True] + [False] * 5 and not below.any()
    below, beyond = _to_remove(sequence, weights, 5.0, None)
    assert below.tolist() == [True] + [False] * 5 and not beyond.any()
    four_light = np.array([1.0, 2.0, 3.0, 4.0, 100.0, 100.0])  # the minimum's half is two: one beyond, one more
    below, beyond = _to_remove(SimpleNamespace(beams=[SimpleNamespace(weights=four_light)]), four_light, 5.0, 5)
    assert beyond.tolist() == [True] + [False] * 5 and below.tolist() == [False, True] + [False] * 4


def test_the_delivery_section_lists_each_limit_with_every_digit_it_was_given(tmp_path: Path) -> None:
    """Review s19/r2 F6: the Delivery section rounded the limits it lists to a table's decimals, so
    'min_segment_weight_percent: 0.25' read '0.2%' (and an area of 1.125 cm2 '1.12 cm²')."""
    written = protocol(GOALS, terms=TERMS, delivery="{technique: step_and_shoot, intensity_levels: 8, "
                                                    "min_segment_weight_percent: 0.25, min_segment_area: 0.125 cm2}")
    assert plan(written, synthetic_case(), tmp_path / "plan").succeeded
    html = " ".join(unescape((tmp_path / "plan" / "report.html").read_text()).split())
    assert "each segment's weight at least 0.25% of its beam's summed weight" in html
    assert "each segment's area at least 0.125 cm² (min_segment_area" in html
