"""The sampled structures' soft terms, valued on the sample and on every voxel of a plan."""

from __future__ import annotations

import numpy as np
import pytest

from specc.compile import compile_protocol
from specc.compile.sampling import sampled_terms, sampling_note
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
    # The total excess, against the plan's objective, is what sampling can have cost on average.
    excess = sum(term.on_every_voxel - term.on_sample for term in found.values())
    note = sampling_note(list(found.values()), result.objective)
    assert f"{100 * excess / result.objective:+.3f}% of the objective" in note and "sample_voxels: all" in note


def test_nothing_is_reported_when_no_structure_is_sampled() -> None:
    case, program, result = _plan(sample_limit=None)
    assert sampled_terms(program, case, result.fluence) == []
    assert sampling_note([], result.objective) is None


def test_a_priority_steps_note_is_the_plans_wording_against_that_steps_objective() -> None:
    """A plan of priority steps judges each step's sampled terms against that step's objective (review s19/r4 F2);
    its notes were worded by a second copy of this note in the solve stage. One wording, the step named."""
    from specc.compile.sampling import SampledTerm

    terms = [SampledTerm("quadratic_overdose Body above 20 Gy (weight 3)", "Body", 1, 40, 1000, on_sample=1.0,
                         on_every_voxel=1.1)]
    step = "step 2 (priority 2 penalties)"
    assert sampling_note(terms, 1.0).startswith(
        "Sampling: on every voxel the sampled terms add 0.1 (+10.000% of the objective 1) to their value on the "
        "sample; on average this bounds how far the plan lies above the every-voxel optimum")
    assert sampling_note(terms, 1.0, step) == (
        "Sampling: on every voxel the sampled terms of step 2 (priority 2 penalties) add 0.1 (+10.000% of that "
        "step's objective 1) to their value on the sample (`optimization.solver.sample_voxels: all` removes it)")
    # an objective of 0: no share of it; a plan's says nothing, a step's what the step reached
    assert sampling_note(terms, 0.0) is None
    assert "add 0.1 (that step's objective reached 0) to their value" in sampling_note(terms, 0.0, step)
    assert sampling_note([], 1.0, step) is None
