"""The fast path's optimization log: each term's objective contribution is the term's own value at the plan.

A term written with auxiliary variables (an epigraph: `linear_overdose`'s u >= pos(d - D), a soft
maximum's or minimum's t, a soft DVH limit's CVaR threshold and excesses) meets its rewriting within
a tolerance only, so its smooth form at the solver's auxiliaries is not the term's value: the log
read 0 for a `linear_overdose` whose excess was 0.8% of the objective (audit s21/k1 F2). A cvxpy
solver's log gives the cvxpy expression's value at its fluence; the fast path's must give the same
at its own fluence, for every kind, and add up to the objective it reports.
"""

from __future__ import annotations

import numpy as np
import pytest

from specc.compile import CompiledProgram, CompiledTerm, compile_protocol
from specc.protocol import parse_protocol_text
from specc.solve import SolveResult, choose_solver, solve_program
from specc.solve.first_order import FIRST_ORDER_SOLVER, FirstOrderSolver
from specc.terms import KINDS
from tests.optimizer_fixtures import c_shape, protocol_text

AGREEMENT = 1e-9  # relative: the same function of the same fluence, in float64

# Every kind in the form that has an objective (a limit soft), and each auxiliary form active at the
# optimum (checked below): a soft maximum and minimum, a linear overdose, an upper and a lower CVaR,
# and a DVH limit on a share no larger than one entry, which is a soft maximum (minimum) again.
AUXILIARY_FORMS = {
    "linear_overdose": "{kind: linear_overdose, structure: Core, dose: 8 Gy, weight: 5}",
    "soft max_dose": "{kind: max_dose, structure: PTV, dose: 52.5 Gy, hard: false, weight: 50}",
    "soft min_dose": "{kind: min_dose, structure: PTV, dose: 49 Gy, hard: false, weight: 50}",
    "soft upper dvh (CVaR)": "{kind: dvh, structure: Core, dose: 15 Gy, volume: 10%, bound: upper, hard: false, weight: 20}",
    "soft lower dvh (CVaR)": "{kind: dvh, structure: PTV, dose: 50 Gy, volume: 95%, bound: lower, hard: false, weight: 20}",
    "soft upper dvh on one entry (maximum)":
        "{kind: dvh, structure: PTV, dose: 52.5 Gy, volume: 0.01 cc, bound: upper, hard: false, weight: 20}",
    "soft lower dvh on all (minimum)":
        "{kind: dvh, structure: PTV, dose: 49 Gy, volume: 100%, bound: lower, hard: false, weight: 20}",
}
OTHER_FORMS = [
    "{kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 100}",
    "{kind: quadratic_overdose, structure: PTV, dose: 52 Gy, weight: 30}",
    "{kind: quadratic_overdose, structure: Core, dose: 10 Gy, weight: 10}",
    "{kind: uniform_dose, structure: PTV, dose: 50 Gy, weight: 5}",
    "{kind: mean_dose, structure: Core, max: 12 Gy, hard: false, weight: 20}",
    "{kind: geud, structure: Core, a: 4, max: 14 Gy, hard: false, weight: 20}",
    "{kind: smoothness, weight: 0.1}",
    "{kind: fluence_regularization, norm: l2, weight: 0.01}",
]
TERMS = "".join(f"\n    - {line}" for line in [*OTHER_FORMS, *AUXILIARY_FORMS.values()]) + "\n"


@pytest.fixture(scope="module")
def fast() -> tuple[CompiledProgram, SolveResult]:
    protocol = parse_protocol_text(protocol_text("optimization:\n  terms:" + TERMS), "p.yaml")
    program = compile_protocol(protocol, c_shape())
    result = solve_program(program, choose_solver(FIRST_ORDER_SOLVER))
    assert result.solver == FIRST_ORDER_SOLVER and result.status == "optimal", result.message
    return program, result


def _expression_value(program: CompiledProgram, term: CompiledTerm, fluence: np.ndarray) -> float:
    """The term's cvxpy objective at `fluence` (its dose A x in float64), a variable of its own (a CVaR's
    threshold) at its best value: the expression is piecewise linear in it between the dose values, so
    the best of them is the optimum a cvxpy solver finds."""
    assert program.influence is not None and program.offset is None and term.objective is not None
    program.fluence.value = fluence
    program.dose.value = program.influence.astype(np.float64) @ fluence
    own = [v for v in term.objective.variables() if v is not program.dose and v is not program.fluence.variable]
    if not own:
        return float(term.objective.value)
    (threshold,) = own
    values = []
    for dose in np.unique(program.dose.value):
        threshold.value = dose
        values.append(float(term.objective.value))
    return min(values)


def test_the_terms_are_every_kind_and_the_auxiliary_forms_are_active(fast) -> None:
    """What the test below claims: every kind is logged, and each auxiliary form has auxiliaries and a
    penalty at the plan (a contribution of 0 would agree whatever the auxiliaries)."""
    program, result = fast
    assert {term.kind for term in program.terms} == set(KINDS)
    forms = FirstOrderSolver(program).smooth_program().forms
    auxiliary = {term.label: value for term, value, placed in zip(program.terms, result.terms, forms)
                 if placed.form.n_auxiliary}
    assert len(auxiliary) == len(AUXILIARY_FORMS)
    assert all(value.objective_contribution > 0 for value in auxiliary.values()), auxiliary


def test_each_contribution_is_the_cvxpy_expression_at_the_fast_path_fluence(fast) -> None:
    program, result = fast
    logged = {value.label: value.objective_contribution for value in result.terms}
    expected = {term.label: _expression_value(program, term, result.fluence) for term in program.terms}
    assert logged == pytest.approx(expected, rel=AGREEMENT, abs=0.0)


def test_the_contributions_add_up_to_the_reported_objective(fast) -> None:
    _, result = fast
    contributions = [value.objective_contribution for value in result.terms]
    assert None not in contributions
    assert sum(contributions) == pytest.approx(result.objective, rel=1e-12, abs=0.0)
