"""The first-order fast path (specc.solve.first_order) against the reference cvxpy solve.

Every case compiles a protocol on the coarse C-shape and solves it twice: with CLARABEL at
tight tolerances (the reference) and with SPECC-LBFGS. The plans must agree: objective
within 0.1% of the reference optimum, every hard limit met on the full grid within
LIMIT_TOLERANCE of its dose. Cases with hard limits check that the limits are active (the
plan without them breaks them), so the augmented Lagrangian is really exercised.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from specc.compile import compile_protocol
from specc.evaluate.context import PlanDoseContext
from specc.protocol import parse_protocol_text
from specc.solve import SolverSettings, choose_solver, solve_program
from specc.solve.first_order import (
    FIRST_ORDER_SOLVER,
    FastPathRefused,
    FirstOrderSolver,
    Tolerances,
    solve_first_order,
)
from specc.solve.first_order.augmented_lagrangian import certify, minimize_augmented_lagrangian
from specc.terms import KINDS, TermBase
from tests.optimizer_fixtures import c_shape, protocol_text

OBJECTIVE_ACCURACY = 1e-3  # the bound: within 0.1% of the reference optimum

SOFT = """
    - {kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 100}
    - {kind: quadratic_overdose, structure: PTV, dose: 52 Gy, weight: 30}
    - {kind: quadratic_overdose, structure: Core, dose: 10 Gy, weight: 10}
    - {kind: smoothness, weight: 0.1}
"""

CASES = {
    "quadratic penalties, uniform dose and l2 fluence": SOFT
    + """    - {kind: uniform_dose, structure: PTV, dose: 50 Gy, weight: 5}
    - {kind: fluence_regularization, norm: l2, weight: 0.01}
""",
    "hard max and mean limits": SOFT
    + """    - {kind: max_dose, structure: PTV, dose: 53 Gy}
    - {kind: mean_dose, structure: Core, max: 12 Gy}
""",
    "hard DVH limits (CVaR, both bounds) and a hard min dose": SOFT
    + """    - {kind: dvh, structure: Core, dose: 20 Gy, volume: 10%, bound: upper}
    - {kind: dvh, structure: PTV, dose: 49 Gy, volume: 95%, bound: lower}
    - {kind: min_dose, structure: PTV, dose: 40 Gy}
""",
    "hard gEUD limit": SOFT + "    - {kind: geud, structure: Core, a: 4, max: 9.5 Gy}\n",
    "hard mean EQD2 limit": SOFT + "    - {kind: mean_dose, structure: Core, max: 7 Gy, quantity: EQD2, alpha_beta: 3 Gy}\n",
    # The core's maximum holds beamlets at 0 with a pull 13x the objective's gradient: measured against
    # it, a point 0.37% above the optimum passed the certificate (docs/performance-history.md, twelfth pass).
    "hard maximum blocking beamlets and a hard min dose": """
    - {kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 100}
    - {kind: quadratic_overdose, structure: PTV, dose: 50 Gy, weight: 20}
    - {kind: max_dose, structure: Core, dose: 15 Gy}
    - {kind: min_dose, structure: PTV, dose: 45 Gy}
""",
    "soft limits, linear overdose and l1 fluence": SOFT
    + """    - {kind: max_dose, structure: PTV, dose: 53 Gy, hard: false, weight: 50}
    - {kind: min_dose, structure: PTV, dose: 45 Gy, hard: false, weight: 50}
    - {kind: mean_dose, structure: Core, max: 12 Gy, hard: false, weight: 20}
    - {kind: dvh, structure: Core, dose: 20 Gy, volume: 10%, bound: upper, hard: false, weight: 20}
    - {kind: geud, structure: Core, a: 4, max: 14 Gy, hard: false, weight: 20}
    - {kind: linear_overdose, structure: Core, dose: 15 Gy, weight: 5}
    - {kind: fluence_regularization, norm: l1, weight: 0.01}
""",
}


def _forms(kind: type[TermBase]) -> tuple[str, ...]:
    """The forms a kind takes: hard and soft for a limit (`hard: true/false`), its one form otherwise."""
    return ("hard", "soft") if "hard" in kind.model_fields else ("its one form",)


def test_the_cases_cover_every_kind_hard_and_soft() -> None:
    """docs/performance.md: the accuracy cases above cover every kind, hard and soft. A kind registered without a case
    (or a limit with only one of its forms) is named here, not left out of that claim in silence."""
    covered: set[tuple[str, str]] = set()
    for terms in CASES.values():
        protocol = parse_protocol_text(protocol_text("optimization:\n  terms:" + terms), "p.yaml")
        for term in protocol.optimization.terms:
            forms = _forms(type(term))
            covered.add((term.kind, ("hard" if term.is_constraint else "soft") if len(forms) > 1 else forms[0]))
    missing = [f"{kind} ({form})" for kind, cls in KINDS.items() for form in _forms(cls) if (kind, form) not in covered]
    assert missing == [], f"no case in CASES for: {', '.join(missing)}"


def _compile(terms: str):
    protocol = parse_protocol_text(protocol_text("optimization:\n  terms:" + terms), "p.yaml")
    return protocol, compile_protocol(protocol, c_shape())


def _reference(program):
    settings = dataclasses.replace(choose_solver("CLARABEL"), tolerance=1e-9)
    result = solve_program(program, settings)
    assert result.status == "optimal", result.message
    return result


def _hard_terms_met(protocol, program, fluence: np.ndarray) -> list[str]:
    case = c_shape()
    fractions = protocol.prescription.fractions
    context = PlanDoseContext(
        case.dose_on_grid(fluence, fractions), program.masks, case.voxel_volume_cc, fractions, fluence,
        lambda: program.beamlets.neighbour_differences,
    )
    return [term.label() for term in protocol.optimization.terms if term.is_constraint and not term.evaluate(context).satisfied]


# Known limitation (docs/performance.md, "Not done yet"): `solve_program` sends programs with hard
# DVH (CVaR) limits to CLARABEL without a fast-path attempt. Since the twelfth pass the fast path
# certifies this case on its own, the 5 mm prostate and the 5 mm head-neck (faster than CLARABEL),
# but not the goals-only multi-target (its 20,000 iterations, 55 s, then CLARABEL's 13 s), and a failed
# attempt costs its time before CLARABEL runs (test_hard_dvh_limits_go_to_the_reference_solver,
# test_an_uncertified_point_is_not_called_optimal). Strict: the mark fails once it passes.
_STALLS = pytest.mark.xfail(
    strict=True, reason="hard DVH limits go to CLARABEL (the fast path does not converge on every case)"
)


@pytest.mark.parametrize(
    "terms",
    [pytest.param(terms, marks=_STALLS) if name.startswith("hard DVH") else terms for name, terms in CASES.items()],
    ids=list(CASES),
)
def test_the_fast_path_gives_the_reference_plan(terms: str) -> None:
    protocol, program = _compile(terms)
    reference = _reference(program)
    fast = solve_program(program, choose_solver(FIRST_ORDER_SOLVER))
    assert fast.solver == FIRST_ORDER_SOLVER and fast.status == "optimal", fast.message
    assert abs(fast.objective - reference.objective) <= OBJECTIVE_ACCURACY * reference.objective
    assert _hard_terms_met(protocol, program, fast.fluence) == []
    contributions = [term.objective_contribution for term in fast.terms if term.objective_contribution is not None]
    assert sum(contributions) == pytest.approx(fast.objective)  # the optimization log adds up


def test_the_fast_path_never_builds_the_cvxpy_problem() -> None:
    """cvxpy copies the influence rows to float64 when its problem is built: the fast path reads them as they are."""
    _, program = _compile(CASES["hard max and mean limits"])
    assert solve_program(program, choose_solver(FIRST_ORDER_SOLVER)).status == "optimal"
    assert program._problem is None


def test_limits_met_within_tolerance_do_not_run_the_penalty_away() -> None:
    """A sampled body beside hard max and mean limits: the violation reaches float32 rounding (~1e-7),
    where it can no longer halve; growing the penalty there wiped the active limits' multipliers and the
    rounds stalled at a penalty of 3e8 (then CLARABEL had to solve it)."""
    text = protocol_text("""optimization:
  terms:
    - {kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 100}
    - {kind: quadratic_overdose, structure: Core, dose: 10 Gy, weight: 10}
    - {kind: quadratic_overdose, structure: Body, dose: 20 Gy, weight: 3}
    - {kind: max_dose, structure: PTV, dose: 53 Gy}
    - {kind: mean_dose, structure: Core, max: 12 Gy}
""", with_body=True)
    program = compile_protocol(parse_protocol_text(text, "p.yaml"), c_shape(), sample_limit=200)
    fast = solve_program(program, choose_solver(FIRST_ORDER_SOLVER))
    assert fast.solver == FIRST_ORDER_SOLVER and fast.status == "optimal", fast.message
    reference = _reference(program)
    assert abs(fast.objective - reference.objective) <= OBJECTIVE_ACCURACY * reference.objective


@pytest.mark.parametrize("name", ["hard max and mean limits", "hard DVH limits (CVaR, both bounds) and a hard min dose",
                                  "hard gEUD limit"])
def test_those_hard_limits_are_active(name: str) -> None:
    """Without its hard limits the optimum breaks them: the cases above test enforcement, not luck."""
    protocol, program = _compile(CASES[name])
    free = solve_program(_compile(SOFT)[1], choose_solver(FIRST_ORDER_SOLVER))
    assert free.status == "optimal"
    assert _hard_terms_met(protocol, program, free.fluence) != []


def test_a_given_start_replaces_the_last_solution() -> None:
    _, program = _compile(CASES["hard max and mean limits"])
    settings = choose_solver(FIRST_ORDER_SOLVER)
    solver = FirstOrderSolver(program)
    solver.solve(settings)
    restarted = solver.solve(settings, start=np.zeros(program.fluence.size))
    cold = FirstOrderSolver(program).solve(settings)
    assert restarted.iterations == cold.iterations and restarted.objective == cold.objective


def test_a_weight_change_resolves_warm_without_recompiling() -> None:
    """Warm re-solves run on working sets (`working_set.py`), so the work is iterations times nonzeros.

    Measured: 330 warm iterations on working sets of about half the nonzeros against a cold
    solve of 700: 0.41 of the cold work; 0.52 (370 against 600) once the sets evaluate their
    objectives on their own rows, the same program summed in another order (eleventh pass): the
    iteration counts of this constrained case move by 10-15% with rounding alone. On the whole
    matrix (ninth pass) 250 against 670; before it, 448 against 731 (a strict xfail then).
    """
    protocol, program = _compile(CASES["hard max and mean limits"])
    solver = FirstOrderSolver(program)
    settings = choose_solver(FIRST_ORDER_SOLVER)
    first = solver.solve(settings)
    terms = [compiled.term for compiled in program.terms]
    heavier = [t.model_copy(update={"weight": 15.0}) if t.kind == "quadratic_overdose" and t.structure == "Core" else t
               for t in terms]
    warm = solver.solve(settings, terms=heavier)
    solver_cold = FirstOrderSolver(program)
    cold = solver_cold.solve(settings, terms=heavier)
    assert first.status == warm.status == cold.status == "optimal"
    assert warm.objective == pytest.approx(cold.objective, rel=OBJECTIVE_ACCURACY)
    assert warm.objective > first.objective  # the heavier weight really changed the program
    cold_run, warm_run = solver_cold.last_run, solver.last_run
    assert warm_run.working_sets
    assert warm_run.nonzero_iterations < 0.6 * cold_run.nonzero_iterations


def test_hard_dvh_limits_go_to_the_reference_solver() -> None:
    _, program = _compile(CASES["hard DVH limits (CVaR, both bounds) and a hard min dose"])
    result = solve_program(program, choose_solver(FIRST_ORDER_SOLVER))
    assert result.solver == "CLARABEL" and result.status == "optimal"
    assert "hard DVH (CVaR) limits are left to the reference solver: dvh Core" in result.message  # why, naming them
    assert "L-BFGS-B iterations" not in result.message  # no fast-path attempt before it


@pytest.mark.parametrize("tolerance", [None, 1e-7], ids=["default", "the protocol's"])
def test_the_reference_solver_takes_over_at_the_documented_tolerance(
    tolerance: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLARABEL in the fast path's place runs at 1e-6 (docs/compiler.md), or at the protocol's tolerance."""
    import specc.solve.run

    _, program = _compile(CASES["hard DVH limits (CVaR, both bounds) and a hard min dose"])
    handed = []
    solve = specc.solve.run.solve_program

    def spy(program, settings, warm=None):
        handed.append(settings)
        return solve(program, settings, warm)

    monkeypatch.setattr(specc.solve.run, "solve_program", spy)
    settings = dataclasses.replace(choose_solver(FIRST_ORDER_SOLVER), tolerance=tolerance, time_limit_s=60.0)
    assert solve_first_order(program, settings).solver == "CLARABEL"
    assert handed == [SolverSettings("CLARABEL", time_limit_s=60.0, tolerance=tolerance or 1e-6)]


def test_an_uncertified_point_is_not_called_optimal() -> None:
    """The fast path's own verdict on the CVaR case is honest, and the default plan is the reference's."""
    protocol, program = _compile(CASES["hard DVH limits (CVaR, both bounds) and a hard min dose"])
    reference = _reference(program)
    own = FirstOrderSolver(program).solve(choose_solver(FIRST_ORDER_SOLVER))
    if own.status == "optimal":  # allowed only where it really is
        assert abs(own.objective - reference.objective) <= OBJECTIVE_ACCURACY * reference.objective
    else:
        # Refused by the certificate, or stopped at the iteration limit: either way labelled as such.
        assert own.status in ("optimal_inaccurate", "iteration_limit") and not own.converged
        assert "could not certify" in own.message or "stopped at its limit of" in own.message
        assert "NOT CONVERGED" in own.message or own.fluence is None
    planned = solve_program(program, choose_solver(FIRST_ORDER_SOLVER))
    assert planned.status == "optimal"
    assert abs(planned.objective - reference.objective) <= OBJECTIVE_ACCURACY * reference.objective
    if own.status != "optimal":
        assert planned.solver == "CLARABEL" and planned.message.startswith("SPECC-LBFGS did not solve this program")
    assert _hard_terms_met(protocol, program, planned.fluence) == []


def test_the_certificate_accepts_the_reference_optimum_and_refuses_a_nearby_point() -> None:
    _, program = _compile(CASES["hard max and mean limits"])
    reference = _reference(program)
    solver = FirstOrderSolver(program)
    smooth = solver.smooth_program()
    precise = smooth.with_operator(solver.operator.in_float64())
    # The reference's multipliers are unknown here; the fast path's own run gives them for its point.
    fast = minimize_augmented_lagrangian(smooth, smooth.start(np.zeros(smooth.n_beamlets)), Tolerances())
    assert fast.outcome == "converged" and fast.certificate.holds(Tolerances())
    assert abs(fast.objective - reference.objective) <= OBJECTIVE_ACCURACY * reference.objective
    nudged = fast.z.copy()
    nudged[: smooth.n_beamlets] *= 1.01  # 1% more fluence: off the optimum, breaking the active limits
    assert not certify(precise, nudged, fast.multipliers).holds(Tolerances())
    assert certify(precise, fast.z, fast.multipliers) == fast.certificate


@pytest.mark.parametrize("name", ["hard max and mean limits", "hard DVH limits (CVaR, both bounds) and a hard min dose"])
def test_a_check_at_an_evaluated_point_takes_the_objective_gradient_from_the_lagrangian(name: str) -> None:
    """An inner run's KKT check reuses the evaluation at its iterate: the objective's gradient is the Lagrangian's
    less the pull of the multipliers it was taken at, the same parts as computed apart (auxiliaries included)."""
    _, program = _compile(CASES[name])
    solver = FirstOrderSolver(program)
    smooth = solver.smooth_program()
    precise = smooth.with_operator(solver.operator.in_float64())
    rng = np.random.default_rng(3)
    z = precise.start(rng.uniform(0.5, 1.5, precise.n_beamlets) * precise.scale)
    y = rng.uniform(0.0, 2.0, precise.n_constraints) * (rng.random(precise.n_constraints) < 0.5)
    evaluation = precise.evaluate(z, y, 10.0)
    assert evaluation.shifted is not None and evaluation.shifted.any()
    reused = precise.kkt_parts_of(z, evaluation)
    apart = precise.kkt_parts(z, evaluation.shifted, evaluation.dose)
    np.testing.assert_array_equal(reused.constraint_gradient, apart.constraint_gradient)
    scale = np.abs(apart.objective_gradient).max()
    np.testing.assert_allclose(reused.objective_gradient, apart.objective_gradient, rtol=0, atol=1e-10 * scale)
    assert reused.objective == pytest.approx(apart.objective, rel=1e-12)
    np.testing.assert_array_equal(reused.residuals, apart.residuals)
    with pytest.raises(ValueError, match="without multipliers"):
        precise.kkt_parts_of(z, precise.evaluate(z))


class _NoFastForm(TermBase):
    kind: str = "no_fast_form"

    def label(self) -> str:
        return "no_fast_form"


def test_a_kind_without_a_smooth_form_is_refused_not_skipped() -> None:
    _, program = _compile(SOFT)
    with pytest.raises(FastPathRefused, match="no_fast_form has no smooth form"):
        FirstOrderSolver(program).smooth_program([*(c.term for c in program.terms), _NoFastForm()])


def test_a_problem_beyond_the_compiled_terms_goes_to_the_reference_solver() -> None:
    _, program = _compile(SOFT)
    extra = program.problem.constraints + [program.fluence <= 1.0]
    import cvxpy as cp

    changed = program.with_problem(cp.Problem(program.problem.objective, extra))
    result = solve_program(changed, choose_solver(FIRST_ORDER_SOLVER))
    assert result.solver == "CLARABEL" and result.usable
    assert "SPECC-LBFGS did not solve this program" in result.message


def test_conflicting_hard_limits_are_diagnosed_by_the_reference() -> None:
    _, program = _compile(SOFT + "    - {kind: mean_dose, structure: Core, min: 30 Gy}\n"
                                 "    - {kind: max_dose, structure: Core, dose: 20 Gy}\n")
    result = solve_program(program, choose_solver(FIRST_ORDER_SOLVER))
    assert result.status == "infeasible" and result.fluence is None
    assert "max_dose Core" in result.message and "mean_dose Core" in result.message
    # the conflict leads, the hand-over after it: a cohort page read "SPECC-LBFGS did not solve this program"
    # first, a solver failure, for a clinical conflict (audit c3 F5)
    assert result.message.startswith("the hard limits cannot all be met at once: ")
    assert "(SPECC-LBFGS did not solve this program (" in result.message


def test_a_limit_gives_no_plan_or_a_labelled_one() -> None:
    _, program = _compile(CASES["hard max and mean limits"])
    settings = dataclasses.replace(choose_solver(FIRST_ORDER_SOLVER), max_iterations=3)
    result = FirstOrderSolver(program).solve(settings)
    assert result.status == "iteration_limit" and not result.converged
    assert result.usable == (result.fluence is not None)


def test_a_limit_stop_is_iteration_limit_as_for_any_solver_even_with_a_plan() -> None:
    """One event, one status (audit a2 F8): CLARABEL's iteration limit gives `iteration_limit`, and so does the fast
    path's, also where it stopped at a point meeting the hard limits (no hard limit here), which it returns labelled;
    a time limit is `time_limit` (audit s18/b1 F5: both read `time_limit` until 2026-11-27)."""
    _, program = _compile(CASES["quadratic penalties, uniform dose and l2 fluence"])
    settings = dataclasses.replace(choose_solver(FIRST_ORDER_SOLVER), max_iterations=3)
    result = FirstOrderSolver(program).solve(settings)
    assert result.status == "iteration_limit" and not result.converged
    assert result.usable and result.fluence is not None
    assert "limit of 3 iterations" in result.message and "raise `max_iterations`" in result.message
    assert "time_limit_s" not in result.message


def test_a_fast_path_stopped_by_its_time_limit_reads_time_limit() -> None:
    """Audit s18/r3 F4: the fast path's time limit, with an iteration limit it did not reach beside it, is
    `time_limit` (1 ns: it stops after its first L-BFGS-B iteration), its plan shown and labelled."""
    _, program = _compile(CASES["quadratic penalties, uniform dose and l2 fluence"])
    settings = dataclasses.replace(choose_solver(FIRST_ORDER_SOLVER), time_limit_s=1e-9, max_iterations=1000)
    result = FirstOrderSolver(program).solve(settings)
    assert result.status == "time_limit" and not result.converged and result.usable
    assert "stopped at its time limit of 1e-09 s" in result.message and "raise `time_limit_s`" in result.message
    assert "max_iterations" not in result.message


def test_a_limit_the_protocol_set_is_respected_not_replaced_by_the_reference() -> None:
    _, program = _compile(CASES["hard max and mean limits"])
    settings = dataclasses.replace(choose_solver(FIRST_ORDER_SOLVER), max_iterations=3)
    result = solve_program(program, settings)
    assert result.solver == FIRST_ORDER_SOLVER and not result.converged
    assert result.status == "iteration_limit" and "limit" in result.message


def test_rounds_stop_at_their_own_tolerance_and_the_last_is_certified() -> None:
    """A round's subproblem is solved only as far as the violation the previous round left: solving it
    further polishes a point whose multipliers are still wrong (measured: 3-7x the inner iterations)."""
    _, program = _compile(CASES["hard max and mean limits"])
    smooth = FirstOrderSolver(program).smooth_program()
    result = minimize_augmented_lagrangian(smooth, smooth.start(np.zeros(smooth.n_beamlets)), Tolerances())
    assert result.outcome == "converged" and len(result.rounds) > 2
    assert any(r["at_round_tolerance"] for r in result.rounds[:-1])  # the early rounds stopped short
    assert not result.rounds[-1]["at_round_tolerance"]  # the last one stopped at the certificate


class _TwoBlocks:
    """A program of one fluence beamlet and one auxiliary variable, with the KKT parts given."""

    pull_floors = None  # not a working set

    def __init__(self, objective_gradient: list[float], constraint_gradient: list[float], objective: float = 0.1) -> None:
        from specc.solve.first_order.assemble import KktParts

        self.parts = KktParts(objective, np.zeros(1), np.array(objective_gradient), np.array(constraint_gradient))

    def pulls_at_zero(self) -> tuple[float, ...]:
        return (10.0, 10.0)  # what the terms ask with no fluence: above every pull here

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(2), np.full(2, np.inf)

    def kkt_parts(self, z: np.ndarray, multipliers: np.ndarray, dose: np.ndarray | None = None):
        return self.parts

    def variable_blocks(self) -> list[slice]:
        return [slice(0, 1), slice(1, 2)]


def test_the_certificate_judges_the_fluence_on_its_own_scale() -> None:
    """An auxiliary variable (a CVaR's threshold, in Gy) can carry a pull 100x the fluence's: measured
    against that, a fluence residual of 3e-3 of its own scale passed, at a point 0.14% above the optimum."""
    z = np.array([1.0, 0.0])  # the auxiliary variable at its bound, pushed against it: stationary
    fluence_off = _TwoBlocks([0.4, 0.0], [-0.397, 40.0])  # a fluence residual of 0.003, 7.5e-3 of its own pull
    assert certify(fluence_off, z, np.zeros(1)).stationarity == pytest.approx(0.003 / 0.4)
    assert not certify(fluence_off, z, np.zeros(1)).holds(Tolerances())
    balanced = _TwoBlocks([0.4, 0.0], [-0.39999, 40.0])
    assert certify(balanced, z, np.zeros(1)).holds(Tolerances())


def test_an_optimum_where_every_variable_is_free_is_judged_against_the_objective() -> None:
    """At an interior optimum the gradient and the pull vanish together, so a residual measured against the pull
    alone never passes (a segment program whose every segment carries weight stopped uncertified at 1e-12 of its
    objective). Against the objective over the variables' sum, the residual bounds the gap to the optimum."""
    z = np.array([2.0, 3.0])  # both free
    tiny = _TwoBlocks([1e-9, 0.0], [0.0, 0.0], objective=5.0)  # against the pull alone: 1e-9 / 1e-9
    assert certify(tiny, z, np.zeros(1)).stationarity == pytest.approx(1e-9 / (5.0 / 2.0))
    assert certify(tiny, z, np.zeros(1)).holds(Tolerances())
    off = _TwoBlocks([0.01, 0.0], [0.0, 0.0], objective=5.0)  # a move of its own size could gain 0.4% of it
    assert not certify(off, z, np.zeros(1)).holds(Tolerances())


@pytest.mark.parametrize("case", ["quadratic penalties, uniform dose and l2 fluence", "soft limits, linear overdose and l1 fluence"])
def test_a_point_near_zero_fluence_is_not_certified_however_large_its_objective(case: str) -> None:
    """Near zero fluence the objective over the fluence's sum grows without bound (a review found points at
    1e-4 of the optimum passing against it, objective 420 against 1.05): the scale is capped by what the
    terms ask with no fluence, the gradient such a point still has."""
    _, program = _compile(CASES[case])
    optimum = _reference(program).fluence
    smooth = FirstOrderSolver(program).smooth_program()
    for fraction in (1e-4, 1e-2, 0.3):
        z = smooth.start(fraction * optimum)
        assert not certify(smooth, z, np.zeros(smooth.n_constraints)).holds(Tolerances())


def test_a_warm_re_solve_keeps_the_multipliers_and_restarts_the_penalty() -> None:
    """The last solve's final penalty is its largest: starting there makes the first round ill-conditioned
    (measured on the 10 mm test cases: 5,980 -> 5,150 warm iterations over six weight changes). A program whose
    first solve grows the penalty: its soft limits' exact rewritings, met to the certificate on the working sets."""
    _, program = _compile(CASES["soft limits, linear overdose and l1 fluence"])
    solver = FirstOrderSolver(program)
    settings = choose_solver(FIRST_ORDER_SOLVER)
    solver.solve(settings)
    _, first = solver._last
    assert first.penalty > first.initial_penalty  # the penalty grew during the first solve
    terms = [compiled.term for compiled in program.terms]
    heavier = [t.model_copy(update={"weight": 15.0}) if t.kind == "quadratic_overdose" and t.structure == "Core" else t
               for t in terms]
    warm = solver.solve(settings, terms=heavier)
    _, again = solver._last
    assert warm.status == "optimal" and again.initial_penalty == first.initial_penalty
    assert again.outer_iterations > 0 and again.rounds[0]["penalty"] == first.initial_penalty


def test_a_program_whose_best_fluence_is_none_is_solved_not_crashed() -> None:
    """Only an overdose penalty: nothing pulls any beamlet up, so the working set frees none, and scipy's
    L-BFGS-B answers without an iteration count (every variable fixed by its bounds). A composite whose
    prior dose already does the work ends so (a re-irradiation's audit gave an AttributeError)."""
    _, program = _compile("\n    - {kind: quadratic_overdose, structure: Core, dose: 10 Gy, weight: 10}\n")
    result = solve_program(program, choose_solver(FIRST_ORDER_SOLVER))
    assert result.status == "optimal" and result.solver == FIRST_ORDER_SOLVER, result.message
    assert float(np.max(result.fluence)) == 0.0


def test_a_program_without_hard_limits_has_no_hard_limit_clause() -> None:
    """Audit b4 F5: a plan of quadratic terms read 'hard limits met within 0% of their dose'."""
    soft = solve_program(_compile(SOFT)[1], choose_solver(FIRST_ORDER_SOLVER))
    assert soft.status == "optimal" and soft.message.startswith(f"{FIRST_ORDER_SOLVER} found the optimal fluence")
    assert "hard limit" not in soft.message and "0%" not in soft.message
    hard = solve_program(_compile(CASES["hard max and mean limits"])[1], choose_solver(FIRST_ORDER_SOLVER))
    assert hard.status == "optimal" and "; hard limits met " in hard.message, hard.message


def test_a_stall_where_the_hard_limits_hold_does_not_read_as_failing_them() -> None:
    """Audit b4 F5: 'could not meet the hard limits ... (violation 0% of their dose)' for rounds that
    stalled at a point meeting every hard limit; a real violation is never rounded to 0%."""
    from specc.solve.first_order.augmented_lagrangian import AugmentedLagrangianResult
    from specc.solve.first_order.solver import _message

    def run(outcome: str) -> AugmentedLagrangianResult:
        return AugmentedLagrangianResult(
            z=np.zeros(2), multipliers=np.ones(3), penalty=1e9, outcome=outcome, objective=1.0, violation=0.0,
            iterations=3812, outer_iterations=236, evaluations=4000, rounds=[],
        )

    settings = choose_solver(FIRST_ORDER_SOLVER)
    stalled = _message("solver_error", run("stalled"), 0.0, settings, hard=True)
    assert "could not meet" not in stalled and "0%" not in stalled
    assert stalled.startswith(f"{FIRST_ORDER_SOLVER} stalled after 3812 L-BFGS-B iterations in 236")
    assert stalled.endswith("hard limits hold exactly.")
    violated = _message("solver_error", run("stalled"), 0.02, settings, hard=True)
    assert violated.endswith("could not meet the hard limits after 3812 L-BFGS-B iterations in 236 "
                             "augmented-Lagrangian rounds (violation 2% of their dose).")
    held = _message("optimal_inaccurate", run("uncertified"), 4e-7, settings, hard=True)
    assert "hard limits hold within 4e-05% of their dose" in held
