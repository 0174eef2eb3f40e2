"""The sampled structures' soft terms, valued on the sample and on every voxel of a plan."""

from __future__ import annotations

import numpy as np
import pytest

from specc.compile import compile_protocol
from specc.compile.sampling import sampled_terms, sampling_excess
from specc.protocol import parse_protocol_text
from specc.solve import choose_solver, solve_program
from tests.optimizer_fixtures import c_shape, protocol_text

TERMS = """optimization:
  terms:
    - {kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 100}
    - {kind: quadratic_overdose, structure: Core, dose: 10 Gy, weight: 10}
    - {kind: quadratic_overdose, structure: Body, dose: 20 Gy, weight: 3}
    - {kind: max_dose, structure: Body, dose: 40 Gy, hard: false, weight: 2}
"""


def _plan(sample_limit: int | None):
    case = c_shape()
    protocol = parse_protocol_text(protocol_text(TERMS, with_body=True), "p.yaml")
    program = compile_protocol(protocol, case, sample_limit=sample_limit)
    result = solve_program(program, choose_solver("SPECC-LBFGS"))
    assert result.status == "optimal", result.message
    return case, program, result


def test_a_sampled_terms_values_are_the_optimizers_and_the_whole_structures() -> None:
    case, program, result = _plan(sample_limit=60)
    assert program.selection.structures["Body"].sampled
    found = {term.label: term for term in sampled_terms(program, case, result.fluence)}
    assert set(found) == {t.label for t in program.terms if "Body" in t.label}
    solver_values = {t.label: t.objective_contribution for t in result.terms}
    dose = case.dose_on_grid(result.fluence, 25)[program.masks["Body"]]  # total Gy, every Body voxel
    overdose = found["quadratic_overdose Body above 20 Gy (weight 3)"]
    assert overdose.on_sample == pytest.approx(solver_values[overdose.label], rel=1e-5)
    assert overdose.on_every_voxel == pytest.approx(3.0 * np.mean(np.maximum(dose - 20.0, 0.0) ** 2) / 25**2, rel=1e-6)
    hottest = next(term for label, term in found.items() if label.startswith("max_dose"))
    assert hottest.on_every_voxel == pytest.approx(2.0 * max(dose.max() - 40.0, 0.0) ** 2 / 25**2, rel=1e-6)
    assert hottest.structure_voxels == int(program.masks["Body"].sum()) > hottest.sample_entries
    assert "on every voxel" in overdose.note() and "Body" in overdose.note()
    # The total excess is what sampling can have cost on average (the solve stage words it against the objective).
    assert sampling_excess(list(found.values())) == pytest.approx(
        overdose.on_every_voxel - overdose.on_sample + hottest.on_every_voxel - hottest.on_sample)


def test_nothing_is_reported_when_no_structure_is_sampled() -> None:
    case, program, result = _plan(sample_limit=None)
    assert sampled_terms(program, case, result.fluence) == []
