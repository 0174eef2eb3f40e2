"""smoothness and fluence_regularization: scaling, reported values, and their effect on the solution."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from specc.terms import FluenceRegularization, QuadraticUnderdose, Smoothness
from terms_fakes import FakeBuildContext, FakeEvaluationContext, random_case, solve


def test_smoothness_objective_is_the_mean_squared_neighbour_difference() -> None:
    case = random_case(50)
    ctx = FakeBuildContext(case)
    built = Smoothness(weight=4).build(ctx)
    fluence = np.random.default_rng(50).uniform(0, 2, case.n_beamlets)
    ctx.fluence.value = fluence
    pairs = [(j, j + 1) for j in range(case.n_beamlets - 1) if (j + 1) % case.beamlets_per_beam]
    expected = 4 * np.mean([(fluence[b] - fluence[a]) ** 2 for a, b in pairs])
    assert built.constraints == [] and built.objective.value == pytest.approx(expected)

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
def test_fluence_regularization_is_a_mean_over_beamlets(norm, per_beamlet, reported) -> None:
    for n_beamlets in (8, 24):
        case = random_case(53, n_beamlets=n_beamlets)
        ctx = FakeBuildContext(case)
        term = FluenceRegularization(weight=3, norm=norm)
        built = term.build(ctx)
        fluence = np.linspace(0.0, 2.0, n_beamlets)
        ctx.fluence.value = fluence
        assert built.objective.value == pytest.approx(3 * np.mean(per_beamlet(fluence)))
        result = term.evaluate(FakeEvaluationContext(case, fluence))
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
