"""geud: lower bounds on targets (a <= 1), upper bounds on organs (a >= 1), nothing non-convex."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from specc.protocol import ProtocolError, parse_protocol_text
from specc.protocol.units import Dose
from specc.terms import GEUD, LIMIT_TOLERANCE
from specc.terms.geud import generalized_eud
from specc.terms.smooth import NoSmoothForm
from terms_fakes import FakeBuildContext, FakeEvaluationContext, fluence_cost, random_case, solve_with
from tests.optimizer_fixtures import protocol_text



def total_dose(case, structure: str, fluence: np.ndarray) -> np.ndarray:
    return case.fractions * case.influence[structure] @ fluence


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"a": 0.5, "max": "20 Gy"}, "gEUD <= max with a = 0.5 is not convex: an upper bound needs a >= 1"),
        ({"a": 4, "min": "20 Gy"}, "gEUD >= min with a = 4 is not convex: a lower bound needs a <= 1"),
        ({"a": -10, "min": "40 Gy", "max": "60 Gy"}, "gEUD <= max with a = -10 is not convex"),
        ({"a": 0, "min": "20 Gy"}, "gEUD with a = 0 is the geometric mean"),
        ({"a": 1, "min": "30 Gy", "max": "20 Gy"}, "`min` (30 Gy) is above `max` (20 Gy)"),
        ({"a": -5}, "geud needs `max`"),
        ({"a": float("nan"), "max": "20 Gy"}, "must be a finite number"),
    ],
)
def test_non_convex_or_empty_bounds_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GEUD(structure="PTV", **fields)


def test_the_convex_combinations_are_accepted_and_labelled() -> None:
    assert GEUD(structure="PTV", a=-10, min="48 Gy").label() == "geud PTV (a=-10) >= 48 Gy"
    assert GEUD(structure="Cord", a=12, max="40 Gy").label() == "geud Cord (a=12) <= 40 Gy"
    both = GEUD(structure="Parotid", a=1, min="5 Gy", max="26 Gy", hard=False, weight=3)
    assert both.label() == "geud Parotid (a=1) >= 5 Gy and <= 26 Gy (soft, weight 3)"


def test_a_protocol_with_a_non_convex_geud_is_refused_at_its_line() -> None:
    body = (
        "optimization:\n  terms:\n"
        "    - {kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 1}\n"
        "    - {kind: geud, structure: PTV, a: 8, min: 48 Gy}\n"
    )
    text = protocol_text(body)
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(text, "geud.yaml")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.line == text.splitlines().index("    - {kind: geud, structure: PTV, a: 8, min: 48 Gy}") + 1
    assert diagnostic.path.startswith("optimization.terms[1]") and "not convex" in diagnostic.message


@pytest.mark.parametrize("a", [0.5, -3.0, -12.0])
def test_soft_lower_bound_penalizes_the_volume_weighted_shortfall(a: float) -> None:
    case = random_case(11, weighted=True)
    term = GEUD(structure="Target", a=a, min="40 Gy", hard=False, weight=2)
    ctx = FakeBuildContext(case)
    built = term.build(ctx)
    assert built.objective.is_convex() and not built.constraints
    fluence = np.linspace(0.2, 1.5, case.n_beamlets)
    ctx.fluence.value = fluence
    dose = case.influence["Target"] @ fluence
    eud = (case.weights["Target"] @ dose**a) ** (1 / a)
    expected = 2 * max(40.0 / case.fractions - eud, 0.0) ** 2
    assert expected > 0 and built.objective.value == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("a", [0.5, -10.0])
def test_hard_lower_bound_holds_where_the_cheapest_plan_falls_short(a: float) -> None:
    case = random_case(12)
    floor = GEUD(structure="Target", a=1, min="5 Gy")  # keeps the cheapest plan from being all zero
    cheapest = solve_with(case, [floor], fluence_cost)
    short = generalized_eud(total_dose(case, "Target", cheapest), a)
    term = GEUD(structure="Target", a=a, min=Dose(gy=1.5 * short))
    fluence = solve_with(case, [floor, term], fluence_cost)
    result = term.evaluate(FakeEvaluationContext(case, fluence))
    dose = total_dose(case, "Target", fluence)
    assert result.value == pytest.approx(np.mean(dose**a) ** (1 / a))
    assert result.satisfied is True
    assert result.value == pytest.approx(term.min.gy, rel=LIMIT_TOLERANCE)  # active: the bound did the work
    # the shortfall is measured as such: a plan short of the bound is not satisfied
    assert term.evaluate(FakeEvaluationContext(case, cheapest)).satisfied is False



def test_generalized_eud_with_negative_exponents_tends_to_the_minimum_without_overflow() -> None:
    dose = np.random.default_rng(13).uniform(10.0, 80.0, size=500)
    assert generalized_eud(dose, -2.0) == pytest.approx(np.mean(dose**-2.0) ** (-1 / 2))
    assert generalized_eud(dose, 0.5) == pytest.approx(np.mean(dose**0.5) ** 2)
    steep = generalized_eud(dose, -400.0)  # 10**-400 underflows a float
    assert np.isfinite(steep) and dose.min() <= steep < dose.min() * 1.02
    assert generalized_eud(np.array([0.0, 30.0]), -5.0) == 0.0  # a voxel without dose: no tumour control


def test_a_lower_bound_away_from_the_mean_has_no_smooth_form_so_the_reference_solver_takes_it() -> None:
    with pytest.raises(NoSmoothForm, match="not differentiable"):
        GEUD(structure="PTV", a=-10, min="48 Gy").smooth_form(None)  # type: ignore[arg-type]
