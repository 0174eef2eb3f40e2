"""quadratic_underdose, quadratic_overdose, uniform_dose, linear_overdose: scaling, values, direction."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from specc.protocol.units import Dose
from specc.terms import LinearOverdose, QuadraticOverdose, QuadraticUnderdose, UniformDose
from terms_fakes import FakeBuildContext, FakeEvaluationContext, random_case, solve

# kind -> (objective per voxel on dose d and level D, reported value on total dose and level D)
PENALTIES = {
    QuadraticUnderdose: (
        lambda d, level: np.maximum(level - d, 0) ** 2,
        lambda d, level: np.sqrt(np.mean(np.maximum(level - d, 0) ** 2)),
    ),
    QuadraticOverdose: (
        lambda d, level: np.maximum(d - level, 0) ** 2,
        lambda d, level: np.sqrt(np.mean(np.maximum(d - level, 0) ** 2)),
    ),
    UniformDose: (lambda d, level: (d - level) ** 2, lambda d, level: np.sqrt(np.mean((d - level) ** 2))),
    LinearOverdose: (lambda d, level: np.maximum(d - level, 0), lambda d, level: np.mean(np.maximum(d - level, 0))),
}


@pytest.mark.parametrize("kind", PENALTIES, ids=lambda kind: kind.__name__)
def test_objective_is_the_weighted_mean_over_voxels_per_fraction(kind) -> None:
    case = random_case(20, weighted=True)
    term = kind(structure="Organ", dose="12 Gy", weight=7)
    ctx = FakeBuildContext(case)
    built = term.build(ctx)
    fluence = np.linspace(0.2, 2.0, case.n_beamlets)
    ctx.fluence.value = fluence
    per_voxel, _ = PENALTIES[kind]
    dose = case.influence["Organ"] @ fluence
    level = 12.0 / case.fractions
    assert built.constraints == []
    assert built.objective.value == pytest.approx(7 * case.weights["Organ"] @ per_voxel(dose, level))
    assert built.objective.value > 0  # the fluence was chosen so that every penalty is active


@pytest.mark.parametrize("kind", PENALTIES, ids=lambda kind: kind.__name__)
def test_objective_does_not_grow_with_the_number_of_voxels(kind) -> None:
    small = random_case(21, sizes={"Organ": 30})
    doubled = random_case(21, sizes={"Organ": 30})
    doubled.influence["Organ"] = np.vstack([small.influence["Organ"]] * 2)
    values = []
    for case in (small, doubled):
        ctx = FakeBuildContext(case)
        built = kind(structure="Organ", dose="12 Gy", weight=1).build(ctx)
        ctx.fluence.value = np.ones(case.n_beamlets)
        values.append(built.objective.value)
    assert values[0] == pytest.approx(values[1])


@pytest.mark.parametrize("kind", PENALTIES, ids=lambda kind: kind.__name__)
def test_evaluate_reports_the_penalty_on_total_dose(kind) -> None:
    case = random_case(22)
    fluence = np.linspace(0.2, 2.0, case.n_beamlets)
    result = kind(structure="Organ", dose="12 Gy", weight=1).evaluate(FakeEvaluationContext(case, fluence))
    _, reported = PENALTIES[kind]
    assert result.value == pytest.approx(reported(case.fractions * case.influence["Organ"] @ fluence, 12.0))
    assert result.value > 0
    assert result.unit == "Gy" and result.satisfied is None


def _competitor(kind):
    """An objective pulling against the penalty, so that its weight visibly matters."""
    if kind is QuadraticUnderdose:  # less fluence, less target dose
        return "Target", lambda ctx: cp.sum(ctx.fluence) / ctx.fluence.size
    # more target dose, which the organ shares
    return "Organ", lambda ctx: -cp.sum(ctx.dose("Target")) / ctx.dose("Target").size


@pytest.mark.parametrize("kind", PENALTIES, ids=lambda kind: kind.__name__)
def test_more_weight_means_less_penalty(kind) -> None:
    case = random_case(23)
    structure, competitor = _competitor(kind)
    level = Dose(gy=20.0)
    reported = []
    for weight in (None, 1.0, 10.0):
        ctx = FakeBuildContext(case)
        terms = [] if weight is None else [kind(structure=structure, dose=level, weight=weight).build(ctx)]
        fluence = solve(ctx, terms, extra_objective=competitor(ctx))
        measured = kind(structure=structure, dose=level, weight=1).evaluate(FakeEvaluationContext(case, fluence))
        reported.append(measured.value)
    assert reported[0] > reported[1] > reported[2]


# kind -> the derivative of PENALTIES' objective per voxel on the dose, for the kinds whose smooth form is squares
SQUARES_DERIVATIVES = {
    QuadraticUnderdose: lambda d, level: 2 * np.minimum(d - level, 0),
    QuadraticOverdose: lambda d, level: 2 * np.maximum(d - level, 0),
    UniformDose: lambda d, level: 2 * (d - level),
}


@pytest.mark.parametrize("kind", SQUARES_DERIVATIVES, ids=lambda kind: kind.__name__)
def test_the_fast_path_form_is_the_objective_with_its_gradient_on_all_entries_or_some(kind) -> None:
    """The fast path evaluates these forms at every iterate (`specc.terms.smooth.weighted_squares`): value and dose
    gradient are the cvxpy objective's, on doses either side of the level; a working set's form on some entries sums
    over those alone, and evaluating never changes the point it is given."""
    from specc.terms.smooth import SmoothPoint

    case = random_case(20, weighted=True)
    term = kind(structure="Organ", dose="12 Gy", weight=7)
    ctx = FakeBuildContext(case)
    form = term.smooth_form(ctx)
    per_voxel, _ = PENALTIES[kind]
    level, volumes = 12.0 / case.fractions, case.weights["Organ"]
    dose = np.linspace(0.5, 1.5, len(volumes)) * level  # under the level, at it and over it
    given = dose.copy()
    value, gradient = form.objective(SmoothPoint(dose, np.zeros(0), np.zeros(case.n_beamlets)))
    assert value == pytest.approx(7 * volumes @ per_voxel(dose, level))
    np.testing.assert_allclose(gradient.dose, 7 * volumes * SQUARES_DERIVATIVES[kind](dose, level))
    np.testing.assert_array_equal(dose, given)
    kept = np.arange(0, len(volumes), 3)
    part, part_gradient = form.on_entries(kept)(SmoothPoint(dose[kept], np.zeros(0), np.zeros(case.n_beamlets)))
    assert part == pytest.approx(7 * volumes[kept] @ per_voxel(dose[kept], level))
    np.testing.assert_allclose(part_gradient.dose, gradient.dose[kept])
