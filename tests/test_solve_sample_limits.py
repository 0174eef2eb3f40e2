"""A sampled plan with active hard limits, as `specc plan` makes it, against the plain cvxpy solve on every voxel.

Audit s21/b1 F11: the sampled programs with hard limits were compared only with CLARABEL on the same
sample, never with the every-voxel optimum the sample stands for. Here the default path (`compile_for_plan`,
the fast path on the sample, `check_sample` on every voxel: the plan kept or finished there) must give, on
every voxel, an objective within the issue's 0.1% of CLARABEL at 1e-9 on the every-voxel program, and meet
every hard limit on the full grid within 0.1% of its dose; the limits are shown to be active (the same path
without them breaks them), so the test is of enforcement, not luck.

The 10 mm C-shape's body has 9,000 voxels, which the default sample (30,000) covers whole; the sample the
fast path wants is made smaller so that the default path samples it: 200 voxels (too coarse: the check
finishes the plan on every voxel) and 5,000 (within the accuracy: the check keeps the sampled plan).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import specc.solve.clinical
from specc.compile import compile_protocol
from specc.evaluate.context import PlanDoseContext
from specc.planning import compile_for_plan
from specc.protocol import parse_protocol_text
from specc.solve import choose_solver, solve_program
from specc.solve.first_order import FirstOrderSolver
from tests.optimizer_fixtures import c_shape, protocol_text

ACCURACY = 1e-3  # the issue's: objective within 0.1% of the reference, hard limits within 0.1% of their dose

SOFT = """optimization:
  terms:
    - {kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 100}
    - {kind: quadratic_overdose, structure: PTV, dose: 52 Gy, weight: 30}
    - {kind: quadratic_overdose, structure: Core, dose: 10 Gy, weight: 10}
    - {kind: quadratic_overdose, structure: Body, dose: 20 Gy, weight: 3}
    - {kind: smoothness, weight: 0.1}
"""
LIMITS = """    - {kind: max_dose, structure: Core, dose: 15 Gy}
    - {kind: mean_dose, structure: Core, max: 7 Gy}
"""


def _plan(terms: str, sample_limit: int, monkeypatch: pytest.MonkeyPatch):
    """The protocol planned as `specc plan` plans it, with the fast path's sample of `sample_limit` voxels."""
    monkeypatch.setattr(specc.solve.clinical, "DEFAULT_SAMPLE_LIMIT", sample_limit)
    protocol = parse_protocol_text(protocol_text(terms, with_body=True), "p.yaml")
    compiled = compile_for_plan(protocol, c_shape())
    assert compiled.program.selection.structures["Body"].sampled  # the default path really samples
    checked = compiled.solve()
    assert checked.result.status == "optimal" and checked.result.solver == "SPECC-LBFGS", checked.result.message
    return compiled, checked


def _hard_limits(protocol, program, fluence: np.ndarray) -> dict[str, tuple[float, float]]:
    """Each hard limit of `protocol` on the full-grid dose of `fluence`: (measured, limit), in Gy."""
    case = c_shape()
    fractions = protocol.prescription.fractions
    context = PlanDoseContext(case.dose_on_grid(fluence, fractions), program.masks, case.voxel_volume_cc, fractions,
                              fluence, case.beamlets)
    measured = {}
    for term in protocol.optimization.terms:
        if term.is_constraint:
            limit = term.dose.gy if term.kind == "max_dose" else term.max.gy
            measured[term.label()] = (term.evaluate(context).value, limit)
    return measured


@pytest.mark.parametrize("sample_limit, finished", [(200, True), (5000, False)],
                         ids=["a sample too coarse, finished on every voxel", "a sample kept"])
def test_the_default_path_with_active_hard_limits_gives_the_every_voxel_optimum(
    sample_limit: int, finished: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled, checked = _plan(SOFT + LIMITS, sample_limit, monkeypatch)
    protocol, case = compiled.protocol, c_shape()
    assert (checked.program is not compiled.program) is finished  # both outcomes of the check are covered

    # The reference: the plain cvxpy solve of the every-voxel program, tight.
    every_voxel = compile_protocol(protocol, case, sample_limit=None)
    reference = solve_program(every_voxel, dataclasses.replace(choose_solver("CLARABEL"), tolerance=1e-9))
    assert reference.status == "optimal", reference.message
    # The plan's objective on every voxel (its auxiliaries at their exact values), whichever program it solved.
    smooth = FirstOrderSolver(every_voxel).smooth_program()
    objective = float(smooth.evaluate(smooth.start(checked.result.fluence)).objective)
    assert abs(objective - reference.objective) <= ACCURACY * reference.objective, (objective, reference.objective)

    limits = _hard_limits(protocol, every_voxel, checked.result.fluence)
    assert len(limits) == 2
    for label, (value, limit) in limits.items():
        assert value <= limit * (1 + ACCURACY), (label, value, limit)

    # Active: the same path without the limits breaks both by more than their tolerance.
    _, free = _plan(SOFT, sample_limit, monkeypatch)
    broken = _hard_limits(protocol, every_voxel, free.result.fluence)
    for label, (value, limit) in broken.items():
        assert value > limit * (1 + ACCURACY), (label, value, limit)
