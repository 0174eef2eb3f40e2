"""`delivery: step_and_shoot`: the plan evaluated, reported and exported is the segments' plan."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from evaluate_fakes import protocol, solve_result, synthetic_case
from specc.delivery import deliver
from specc.export import read_result
from specc.pipeline import plan
from specc.planning import compile_for_plan
from specc.protocol import ProtocolError, parse_protocol_text
from specc.sequence import sequence_fluence

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Target, dose: 61 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
    "{kind: smoothness, weight: 0.01}",
]
GOALS = {"Target": ["D95% >= 57 Gy", "D5% <= 64 Gy"], "Organ": ["Mean <= 30 Gy"]}


def _fluence_from_segments(document: dict, case) -> np.ndarray:
    """The beamlet fluence segments.json describes, from its leaf tips and the beamlet squares."""
    b = case.beamlets
    fluence = np.zeros(case.n_beamlets)
    for beam in document["beams"]:
        centres = np.asarray(beam["leaf_pair_centres_mm"])
        for segment in beam["segments"]:
            for y, left, right in zip(centres, segment["left_mm"], segment["right_mm"]):
                if left is None:
                    continue
                inside = (b.beam_id == beam["beam"]) & np.isclose(b.y_mm, y) & (b.x_mm > left) & (b.x_mm < right)
                fluence[inside] += segment["weight"]
    return fluence


def test_the_report_plan_json_and_result_are_the_delivered_segments_plan(tmp_path: Path) -> None:
    case = synthetic_case()
    delivered = plan(protocol(GOALS, terms=TERMS, delivery="{technique: step_and_shoot, intensity_levels: 4}"),
                     case, tmp_path / "segments")
    ideal = plan(protocol(GOALS, terms=TERMS), case, tmp_path / "fluence")
    assert delivered.succeeded and ideal.succeeded
    assert "segments.json" in {path.name for path in delivered.paths}
    assert "sequence" in delivered.timings_s and "sequence" not in ideal.timings_s

    result = read_result(tmp_path / "segments" / "result.h5")
    document = json.loads((tmp_path / "segments" / "segments.json").read_text())
    # segments.json describes exactly the fluence that was evaluated, and the dose is that fluence's
    np.testing.assert_allclose(_fluence_from_segments(document, case), result.fluence, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.dose_gy, case.dose_on_grid(result.fluence, 30), rtol=1e-5, atol=1e-4)
    assert not np.allclose(result.fluence, read_result(tmp_path / "fluence" / "result.h5").fluence, rtol=1e-3)
    assert document["converged"] is True and document["intensity_levels"] == 4

    record = delivered.record
    assert record.delivery is not None and record.delivery.segment_weights == "optimized"
    assert record.delivery.total_segments == sum(len(beam["segments"]) for beam in document["beams"])
    # the optimized fluence's column holds the values of the same protocol planned without delivery
    np.testing.assert_allclose(record.delivery.fluence_goal_values, [goal.value for goal in ideal.record.goals],
                               rtol=1e-9)
    assert [goal.value for goal in record.goals] != [goal.value for goal in ideal.record.goals]
    assert any("smoothness" in note and "without" in note for note in record.notes)
    html = (tmp_path / "segments" / "report.html").read_text()
    assert 'id="delivery"' in html and "Optimized fluence (not delivered)" in html
    assert 'id="delivery"' not in (tmp_path / "fluence" / "report.html").read_text()


def test_optimized_segment_weights_recover_what_rounding_cost() -> None:
    case = synthetic_case()
    written = protocol(GOALS, terms=TERMS[:3], delivery="{technique: step_and_shoot, intensity_levels: 2}")
    compiled = compile_for_plan(written, case)
    fluence = compiled.solve().result
    delivered = deliver(compiled, fluence, written.delivery)
    assert delivered.weights == "optimized"

    def objective(beamlet_fluence: np.ndarray) -> float:
        """The protocol's objective (dose terms only) at a beamlet fluence."""
        compiled.program.dose.value = compiled.program.dose_per_fraction(beamlet_fluence)
        return float(compiled.program.objective.value)

    rounded = sequence_fluence(case.beamlets, fluence.fluence, 2).fluence()
    assert objective(fluence.fluence) <= objective(delivered.result.fluence) < 0.9 * objective(rounded)
    np.testing.assert_allclose(delivered.result.objective, objective(delivered.result.fluence), rtol=1e-3)


def test_a_fluence_that_did_not_converge_labels_the_delivered_plan() -> None:
    case = synthetic_case()
    written = protocol(GOALS, terms=TERMS, delivery="{technique: step_and_shoot}")
    compiled = compile_for_plan(written, case)
    fluence = compiled.solve().result
    unconverged = dataclasses.replace(fluence, status="optimal_inaccurate", converged=False, message="stopped early")
    delivered = deliver(compiled, unconverged, written.delivery)
    assert delivered.result.status == "optimal_inaccurate" and not delivered.result.converged
    assert "did not converge: stopped early" in delivered.result.message


def test_as_sequenced_keeps_the_fluence_solves_status_and_no_objective() -> None:
    case = synthetic_case()
    written = protocol(GOALS, terms=TERMS, delivery="{technique: step_and_shoot, segment_weights: as_sequenced}")
    compiled = compile_for_plan(written, case)
    delivered = deliver(compiled, solve_result(case, scale=0.5, protocol=compiled.protocol), written.delivery)
    assert delivered.result.status == "optimal" and delivered.result.objective is None
    assert all(term.objective_contribution is None for term in delivered.result.terms)
    np.testing.assert_allclose(delivered.result.fluence, 0.5)  # a flat fluence is one level: delivered as is


@pytest.mark.parametrize(
    ("delivery", "message"),
    [
        ("{technique: fluence, intensity_levels: 5}", "intensity_levels applies to `technique: step_and_shoot`"),
        ("{technique: step_and_shoot, intensity_levels: 0}", "delivery.intensity_levels"),
        ("{technique: step_and_shoot, levels: 5}", "delivery.levels"),
        ("{technique: step-and-shoot}", "delivery.technique"),
    ],
)
def test_a_delivery_section_with_an_error_names_its_line(delivery: str, message: str) -> None:
    text = "\n".join([
        "specc: 1", "name: t", "site: test", "version: 1.0.0", "structures:", "  PTV: {role: target}",
        "prescription:", "  fractions: 5", "  levels: [{target: PTV, dose: 40 Gy}]", f"delivery: {delivery}",
    ]) + "\n"
    with pytest.raises(ProtocolError) as error:
        parse_protocol_text(text, "protocols/site.yaml")
    assert "protocols/site.yaml:10:" in str(error.value) and message in str(error.value)
