"""smoothness and fluence_regularization: scaling, reported values, and their effect on the solution.

Both are relative to the case's reference fluence x_ref (the fakes' `reference_fluence`), so their objective is
unit-free: the cvxpy form and the fast path's smooth form must say the same number."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from specc.terms import FluenceRegularization, QuadraticUnderdose, Smoothness
from specc.terms.smooth import SmoothPoint
from terms_fakes import FakeBuildContext, FakeEvaluationContext, random_case, solve


def _smooth_value(term, ctx: FakeBuildContext, fluence: np.ndarray) -> tuple[float, np.ndarray]:
    """The fast path's value and fluence gradient of a term on the fluence alone."""
    form = term.smooth_form(ctx)
    value, gradient = form.objective(SmoothPoint(dose=np.zeros(0), auxiliary=np.zeros(0), fluence=fluence))
    return value, gradient.fluence


def test_smoothness_objective_is_the_mean_squared_neighbour_difference_relative_to_the_reference() -> None:
    case = random_case(50)
    case.reference_fluence = 0.25
    ctx = FakeBuildContext(case)
    built = Smoothness(weight=4).build(ctx)
    fluence = np.random.default_rng(50).uniform(0, 2, case.n_beamlets)
    ctx.fluence.value = fluence
    pairs = [(j, j + 1) for j in range(case.n_beamlets - 1) if (j + 1) % case.beamlets_per_beam]
    expected = 4 * np.mean([((fluence[b] - fluence[a]) / 0.25) ** 2 for a, b in pairs])
    assert built.constraints == [] and built.objective.value == pytest.approx(expected)
    value, gradient = _smooth_value(Smoothness(weight=4), ctx, fluence)
    assert value == pytest.approx(expected)
    step = 1e-6 * np.eye(case.n_beamlets)[3]
    numeric = (_smooth_value(Smoothness(weight=4), ctx, fluence + step)[0] - value) / 1e-6
    assert gradient[3] == pytest.approx(numeric, rel=1e-4)

    result = Smoothness(weight=4).evaluate(FakeEvaluationContext(case, fluence))
    rms = np.sqrt(np.mean([(fluence[b] - fluence[a]) ** 2 for a, b in pairs]))
    assert result.value == pytest.approx(100 * rms / fluence.mean())
    assert result.unit == "%" and result.satisfied is None


def test_smoothness_weight_smooths_the_solution() -> None:
    case = random_case(51)
    roughness = []
    for weight in (None, 0.01, 1.0):
        ctx = FakeBuildContext(case)
        coverage = QuadraticUnderdose(structure="Target", dose="15 Gy", weight=1).build(ctx)
        terms = [coverage] if weight is None else [coverage, Smoothness(weight=weight).build(ctx)]
        fluence = solve(ctx, terms, extra_objective=0.01 * cp.sum_squares(ctx.fluence) / ctx.fluence.size)
        roughness.append(Smoothness(weight=1).evaluate(FakeEvaluationContext(case, fluence)).value)
    assert roughness[0] > roughness[1] > roughness[2]


def test_smoothness_without_neighbouring_beamlets_adds_nothing() -> None:
    case = random_case(52)
    case.beamlets_per_beam = 1
    assert Smoothness(weight=1).build(FakeBuildContext(case)).objective is None
    result = Smoothness(weight=1).evaluate(FakeEvaluationContext(case, np.ones(case.n_beamlets)))
    assert result.value == 0.0 and "no neighbouring beamlets" in result.detail


@pytest.mark.parametrize(("norm", "per_beamlet", "reported"), [
    ("l1", lambda x: x, lambda x: np.mean(x)),
    ("l2", lambda x: x**2, lambda x: np.sqrt(np.mean(x**2))),
])
def test_fluence_regularization_is_a_mean_over_beamlets_relative_to_the_reference(norm, per_beamlet, reported) -> None:
    for n_beamlets in (8, 24):
        case = random_case(53, n_beamlets=n_beamlets)
        case.reference_fluence = 4.0
        ctx = FakeBuildContext(case)
        term = FluenceRegularization(weight=3, norm=norm)
        built = term.build(ctx)
        fluence = np.linspace(0.0, 2.0, n_beamlets)
        ctx.fluence.value = fluence
        expected = 3 * np.mean(per_beamlet(fluence / 4.0))
        assert built.objective.value == pytest.approx(expected)
        value, gradient = _smooth_value(term, ctx, fluence)
        step = 1e-6 * np.eye(n_beamlets)[5]
        assert value == pytest.approx(expected)
        assert gradient[5] == pytest.approx((_smooth_value(term, ctx, fluence + step)[0] - value) / 1e-6, rel=1e-4)
        result = term.evaluate(FakeEvaluationContext(case, fluence))  # in the case's unit, as the plan stores it
        assert result.value == pytest.approx(reported(fluence)) and result.satisfied is None


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_fluence_regularization_weight_lowers_the_fluence(norm: str) -> None:
    case = random_case(54)
    totals = []
    for weight in (0.001, 0.1, 1.0):
        ctx = FakeBuildContext(case)
        terms = [
            QuadraticUnderdose(structure="Target", dose="15 Gy", weight=1).build(ctx),
            FluenceRegularization(weight=weight, norm=norm).build(ctx),
        ]
        totals.append(solve(ctx, terms).sum())
    assert totals[0] > totals[1] > totals[2]
