"""min_dose, max_dose, mean_dose and geud: hard limits hold after solving, soft ones pull, values are exact."""

from __future__ import annotations

import numpy as np
import pytest

from specc.protocol.units import Dose
from specc.terms import GEUD, LIMIT_TOLERANCE, MaxDose, MeanDose, MinDose
from specc.terms.geud import generalized_eud
from terms_fakes import (
    FakeBuildContext,
    FakeEvaluationContext,
    fluence_cost,
    random_case,
    solve_with,
    target_reward,
    total_dose,
)






@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hard_max_dose_holds_where_the_free_plan_exceeds_it(seed: int) -> None:
    case = random_case(seed)
    free_max = total_dose(case, "Organ", solve_with(case, [], target_reward)).max()
    term = MaxDose(structure="Organ", dose=Dose(gy=0.5 * free_max))
    fluence = solve_with(case, [term], target_reward)
    result = term.evaluate(FakeEvaluationContext(case, fluence))
    assert result.value == pytest.approx(total_dose(case, "Organ", fluence).max())
    assert result.unit == "Gy" and result.satisfied is True
    assert result.value == pytest.approx(term.dose.gy, rel=LIMIT_TOLERANCE)  # active: the limit did the work


@pytest.mark.parametrize("seed", [0, 1])
def test_hard_min_dose_holds_and_is_reached_with_least_fluence(seed: int) -> None:
    case = random_case(seed)
    term = MinDose(structure="Target", dose="10 Gy")
    fluence = solve_with(case, [term], fluence_cost)
    result = term.evaluate(FakeEvaluationContext(case, fluence))
    assert result.value == pytest.approx(total_dose(case, "Target", fluence).min())
    assert result.satisfied is True
    assert result.value == pytest.approx(10.0, rel=LIMIT_TOLERANCE)


def test_per_fraction_conversion_uses_the_number_of_fractions() -> None:
    # The same total limit over more fractions allows less dose per fraction.
    for fractions in (5, 20):
        case = random_case(3, fractions=fractions)
        term = MinDose(structure="Target", dose="40 Gy")
        fluence = solve_with(case, [term], fluence_cost)
        per_fraction = case.influence["Target"] @ fluence
        assert per_fraction.min() == pytest.approx(40.0 / fractions, rel=1e-4)


def test_mean_dose_bounds_both_ways() -> None:
    case = random_case(4)
    free = total_dose(case, "Organ", solve_with(case, [], target_reward)).mean()
    term = MeanDose(structure="Organ", min=Dose(gy=0.2 * free), max=Dose(gy=0.6 * free))
    pushed_up = solve_with(case, [term], target_reward)
    pulled_down = solve_with(case, [term], fluence_cost)
    for fluence, bound in ((pushed_up, term.max), (pulled_down, term.min)):
        result = term.evaluate(FakeEvaluationContext(case, fluence))
        assert result.satisfied is True
        assert result.value == pytest.approx(total_dose(case, "Organ", fluence).mean())
        assert result.value == pytest.approx(bound.gy, rel=LIMIT_TOLERANCE)


def test_mean_dose_uses_voxel_weights() -> None:
    case = random_case(5, weighted=True)
    term = MeanDose(structure="Organ", max="1 Gy", hard=False, weight=3)
    ctx = FakeBuildContext(case)
    built = term.build(ctx)
    fluence = np.linspace(0.5, 2.0, case.n_beamlets)
    ctx.fluence.value = fluence
    weighted_mean = case.weights["Organ"] @ (case.influence["Organ"] @ fluence)
    assert built.constraints == []
    assert built.objective.value == pytest.approx(3 * max(weighted_mean - 1.0 / case.fractions, 0.0) ** 2)
    assert weighted_mean != pytest.approx(np.mean(case.influence["Organ"] @ fluence), rel=1e-3)


@pytest.mark.parametrize("kind", [MaxDose, MinDose])
def test_soft_limits_trade_violation_for_weight(kind) -> None:
    case = random_case(6)
    if kind is MaxDose:
        structure, extra = "Organ", target_reward
        free = total_dose(case, structure, solve_with(case, [], extra)).max()
        dose = Dose(gy=0.5 * free)
    else:
        structure, extra, dose = "Target", fluence_cost, Dose(gy=10.0)
    violations = []
    for weight in (0.01, 1.0, 100.0):
        term = kind(structure=structure, dose=dose, hard=False, weight=weight)
        result = term.evaluate(FakeEvaluationContext(case, solve_with(case, [term], extra)))
        violations.append(abs(result.value - dose.gy))
        assert result.satisfied is (violations[-1] <= LIMIT_TOLERANCE * dose.gy)
    assert violations[0] > violations[1] > violations[2]
    assert violations[0] > 0.1 * dose.gy  # a small weight lets the competing objective win


def test_limits_are_judged_with_the_tolerance() -> None:
    case = random_case(7)
    fluence = np.ones(case.n_beamlets)
    evaluation = FakeEvaluationContext(case, fluence)

    def judged(kind, limit_gy: float) -> bool | None:
        return kind(structure="Organ", dose=Dose(gy=limit_gy)).evaluate(evaluation).satisfied

    highest = total_dose(case, "Organ", fluence).max()
    assert judged(MaxDose, highest / (1 + 0.5 * LIMIT_TOLERANCE))
    assert not judged(MaxDose, highest / (1 + 2 * LIMIT_TOLERANCE))
    lowest = total_dose(case, "Organ", fluence).min()
    assert judged(MinDose, lowest / (1 - 0.5 * LIMIT_TOLERANCE))
    assert not judged(MinDose, lowest / (1 - 2 * LIMIT_TOLERANCE))


@pytest.mark.parametrize("a", [1.0, 2.5, 12.0])
def test_geud_objective_is_the_volume_weighted_generalized_mean(a: float) -> None:
    case = random_case(8, weighted=True)
    term = GEUD(structure="Organ", a=a, max="1 Gy", hard=False, weight=2)
    ctx = FakeBuildContext(case)
    built = term.build(ctx)
    fluence = np.linspace(0.2, 1.5, case.n_beamlets)
    ctx.fluence.value = fluence
    dose = case.influence["Organ"] @ fluence
    eud = (case.weights["Organ"] @ dose**a) ** (1 / a)
    assert built.objective.value == pytest.approx(2 * max(eud - 1.0 / case.fractions, 0.0) ** 2, rel=1e-6)


@pytest.mark.parametrize("a", [1.0, 4.0])
def test_hard_geud_holds_where_the_free_plan_exceeds_it(a: float) -> None:
    case = random_case(9)
    free = generalized_eud(total_dose(case, "Organ", solve_with(case, [], target_reward)), a)
    term = GEUD(structure="Organ", a=a, max=Dose(gy=0.6 * free))
    fluence = solve_with(case, [term], target_reward)
    result = term.evaluate(FakeEvaluationContext(case, fluence))
    dose = total_dose(case, "Organ", fluence)
    assert result.value == pytest.approx(np.mean(dose**a) ** (1 / a))
    assert result.satisfied is True
    assert result.value == pytest.approx(term.max.gy, rel=LIMIT_TOLERANCE)


def test_generalized_eud_spans_mean_to_max_without_overflow() -> None:
    dose = np.random.default_rng(10).uniform(10.0, 80.0, size=500)
    assert generalized_eud(dose, 1.0) == pytest.approx(dose.mean())
    assert generalized_eud(dose, 3.0) == pytest.approx(np.mean(dose**3) ** (1 / 3))
    steep = generalized_eud(dose, 400.0)  # 80**400 overflows a float
    assert np.isfinite(steep) and dose.max() * 0.98 < steep <= dose.max()
    assert generalized_eud(np.zeros(4), 5.0) == 0.0


def test_a_mean_in_eqd2_is_the_mean_of_the_voxels_eqd2_in_every_form() -> None:
    """cvxpy, the fast path's smooth form and the final-dose measurement give one value: the mean over
    voxels of D (D / n + alpha/beta) / (2 + alpha/beta), above the EQD2 of the mean dose."""
    from specc.protocol.isoeffect import isoeffective_gy
    from specc.terms.smooth import SmoothPoint

    case = random_case(7, fractions=5)
    fluence = np.linspace(0.5, 2.0, case.n_beamlets)
    per_fraction = case.influence["Organ"] @ fluence
    total = per_fraction * case.fractions
    expected = float(np.mean(isoeffective_gy(total, case.fractions, 3.0, "EQD2")))
    hard = MeanDose(structure="Organ", max=Dose(gy=0.5 * expected), quantity="EQD2", alpha_beta="3 Gy")
    ctx = FakeBuildContext(case)
    built = hard.build(ctx)
    ctx.fluence.value = fluence
    (constraint,) = built.constraints
    assert constraint.args[0].value * case.fractions == pytest.approx(expected)  # value <= max / n, per fraction
    form = hard.smooth_form(ctx)
    point = SmoothPoint(per_fraction, np.zeros(0), fluence)
    residual = form.constraints[0].residual(point)
    assert (residual[0] + 0.5 * expected / case.fractions) * case.fractions == pytest.approx(expected)
    measured = hard.evaluate(FakeEvaluationContext(case, fluence))
    assert measured.value == pytest.approx(expected) and measured.satisfied is False
    assert expected > float(isoeffective_gy(total.mean(), case.fractions, 3.0, "EQD2"))


def test_a_hard_mean_eqd2_limit_holds_after_solving() -> None:
    case = random_case(8, fractions=5)
    free = solve_with(case, [], target_reward)
    from specc.protocol.isoeffect import isoeffective_gy

    free_mean = float(np.mean(isoeffective_gy(total_dose(case, "Organ", free), case.fractions, 3.0, "EQD2")))
    term = MeanDose(structure="Organ", max=Dose(gy=0.5 * free_mean), quantity="EQD2", alpha_beta="3 Gy")
    result = term.evaluate(FakeEvaluationContext(case, solve_with(case, [term], target_reward)))
    assert result.satisfied is True and result.value == pytest.approx(term.max.gy, rel=LIMIT_TOLERANCE)


@pytest.mark.parametrize("fields, message", [
    ({"max": "20 Gy", "quantity": "EQD2"}, "needs the tissue's alpha/beta: give `alpha_beta`"),
    ({"min": "20 Gy", "quantity": "EQD2", "alpha_beta": "3 Gy"}, "a lower bound on a mean EQD2 is not convex"),
    ({"max": "20 Gy", "alpha_beta": "3 Gy"}, "give `quantity` too"),
])
def test_a_mean_in_eqd2_needs_its_ratio_and_an_upper_bound(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MeanDose(structure="Organ", **fields)


def test_an_upper_limit_says_what_it_measures_on_a_dose_and_other_kinds_nothing() -> None:
    dose, weights = np.array([10.0, 30.0, 20.0]), np.array([0.5, 0.25, 0.25])
    assert MaxDose(structure="Organ", dose="25 Gy").upper_limit_on(dose, weights) == (30.0, 25.0, "a maximum of")
    assert MeanDose(structure="Organ", max="20 Gy").upper_limit_on(dose, weights) == (17.5, 20.0, "a mean of")
    assert MeanDose(structure="Organ", min="10 Gy").upper_limit_on(dose, weights) is None  # a lower bound only
    assert MeanDose(structure="Organ", max="20 Gy", quantity="EQD2", alpha_beta="3 Gy").upper_limit_on(dose, weights) is None
    assert MinDose(structure="Organ", dose="5 Gy").upper_limit_on(dose, weights) is None
