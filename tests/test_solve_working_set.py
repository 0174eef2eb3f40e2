"""Warm re-solves on working sets (specc.solve.first_order.working_set).

A working set leaves out beamlets and dose rows that the last plan says do not matter; the
plan it finds must still be the whole program's optimum, certified on every beamlet and
every row. The changes below are chosen so that the first working set is wrong: beamlets
outside it must gain fluence, or rows outside it must come under a term's pull.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from specc.compile import compile_protocol
from specc.protocol import parse_protocol_text
from specc.protocol.units import Dose
from specc.solve import choose_solver
from specc.solve.first_order import FIRST_ORDER_SOLVER, FirstOrderSolver, Tolerances
from specc.solve.first_order.assemble import DoseOperator
from specc.solve.first_order.working_set import WorkingSetOperator
from tests.optimizer_fixtures import c_shape, protocol_text

OBJECTIVE_ACCURACY = 1e-3

TERMS = """
    - {kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 100}
    - {kind: quadratic_overdose, structure: PTV, dose: 52 Gy, weight: 30}
    - {kind: quadratic_overdose, structure: Core, dose: 10 Gy, weight: 200}
    - {kind: quadratic_overdose, structure: Body, dose: 30 Gy, weight: 1}
    - {kind: max_dose, structure: PTV, dose: 54 Gy}
"""


def test_the_operator_is_exact_on_its_rows_and_columns() -> None:
    rng = np.random.default_rng(3)
    matrix = sp.random(60, 40, density=0.2, format="csr", random_state=rng)
    rows, columns = np.array([2, 5, 6, 30, 59]), np.array([0, 7, 8, 39])
    base = rng.random(60)
    operator = WorkingSetOperator(DoseOperator(matrix[rows][:, columns]), rows, columns, 40, base)
    fluence = np.zeros(40)
    fluence[columns] = rng.random(len(columns))
    dose = operator.forward(fluence)
    np.testing.assert_allclose(dose[rows], (matrix @ fluence)[rows])
    others = np.setdiff1d(np.arange(60), rows)
    np.testing.assert_array_equal(dose[others], base[others])  # rows outside keep the dose they were chosen at
    gradient = np.zeros(60)
    gradient[rows] = rng.random(len(rows))
    adjoint = operator.adjoint(gradient)
    np.testing.assert_allclose(adjoint[columns], (matrix.T @ gradient)[columns])
    assert not adjoint[np.setdiff1d(np.arange(40), columns)].any()


def test_a_set_evaluates_sums_over_entries_on_its_rows_alone_and_the_same_program() -> None:
    """Objectives that are sums over entries see the set's rows only; value and gradient stay the whole program's."""
    program = _program()
    solver = FirstOrderSolver(program)
    solver.solve(choose_solver(FIRST_ORDER_SOLVER))
    whole = solver.smooth_program().with_operator(solver.operator.in_float64())
    z = solver.last_run.z
    n = whole.n_beamlets
    # Every third pulled row left out too, so that the rows outside hold some of the objective's value.
    rows = np.flatnonzero(whole.active_entries(z, np.zeros(whole.n_constraints), 1.0, 0.1))
    rows = np.delete(rows, np.s_[::3])
    columns = np.flatnonzero(z[:n] > 0)
    held = np.zeros(n)
    held[columns] = z[columns]  # the set's beamlets with the plan's fluence, the others at 0
    base = whole.operator.forward(held)
    influence = program.influence.astype(np.float64).tocsr()
    operator = WorkingSetOperator(DoseOperator(influence[rows][:, columns], scale=whole.scale), rows, columns, n, base)
    frozen = np.ones(whole.size, dtype=bool)
    frozen[columns] = False
    on_set = whole.on_working_set(operator, frozen, (0.0,) * len(whole.variable_blocks()))
    # Every sum of squares is cut down to the set's rows; the hard max keeps its entries (one multiplier each).
    restricted = [" ".join(p.label.split()[:2]) for p, q in zip(whole.forms, on_set.forms) if q.entries is not p.entries]
    assert restricted == ["quadratic_underdose PTV", "quadratic_overdose PTV", "quadratic_overdose Core",
                          "quadratic_overdose Body"]
    assert all(np.isin(q.entries, rows).all() for p, q in zip(whole.forms, on_set.forms) if q.entries is not p.entries)
    point = z.copy()
    point[:n] = held * 1.05  # a move inside the set: the rows outside keep the base dose
    expected = whole.with_operator(operator).evaluate(point)  # the same set, every entry evaluated
    got = on_set.evaluate(point)
    assert got.objective == pytest.approx(expected.objective, rel=1e-12)
    np.testing.assert_allclose(got.gradient, expected.gradient, rtol=1e-10, atol=1e-14)


def _program():
    protocol = parse_protocol_text(protocol_text("optimization:\n  terms:" + TERMS, with_body=True), "p.yaml")
    return compile_protocol(protocol, c_shape())


def _changed(program, kind: str, structure: str, **update):
    return [c.term.model_copy(update=update) if c.term.kind == kind and c.term.structure == structure else c.term
            for c in program.terms]


@pytest.mark.parametrize(("what", "kind", "structure", "update"), [
    # The core's weight drops 1000-fold: beamlets through the core, at 0 in the last plan, now carry fluence.
    ("beamlets join", "quadratic_overdose", "Core", {"weight": 0.2}),
    # The body's level drops from 30 to 8 Gy: voxels far below the old level come under its pull.
    ("rows join", "quadratic_overdose", "Body", {"dose": Dose(gy=8.0)}),
])
def test_a_wrong_working_set_grows_until_the_whole_program_is_optimal(what, kind, structure, update) -> None:
    program = _program()
    settings = choose_solver(FIRST_ORDER_SOLVER)
    solver = FirstOrderSolver(program)
    first = solver.solve(settings)
    changed = _changed(program, kind, structure, **update)
    warm = solver.solve(settings, terms=changed)
    cold = FirstOrderSolver(program).solve(settings, terms=changed)
    assert first.status == warm.status == cold.status == "optimal", warm.message
    run = solver.last_run
    (beamlets, rows), (more_beamlets, more_rows) = run.working_sets[:2]  # a second set: the first was wrong
    assert more_beamlets > beamlets if what == "beamlets join" else more_rows > rows
    assert "working set" in warm.message
    assert warm.objective == pytest.approx(cold.objective, rel=OBJECTIVE_ACCURACY)
    assert run.certificate is not None and run.certificate.holds(Tolerances())


def test_a_limit_reached_on_a_working_set_stops_there_and_says_so() -> None:
    """The iteration budget is the protocol's, across the whole-program start and every set."""
    program = _program()
    # The whole program runs about 200 of the first solve's 560 iterations before its first set.
    settings = dataclasses.replace(choose_solver(FIRST_ORDER_SOLVER), max_iterations=400)
    solver = FirstOrderSolver(program)
    result = solver.solve(settings)
    run = solver.last_run
    assert run.working_sets, "the limit fell before the working sets: the case tests nothing"
    assert result.iterations <= 400 and run.outcome == "iteration_limit"
    assert result.status in ("optimal_inaccurate", "iteration_limit") and not result.converged
    assert "limit" in result.message



def test_a_set_that_passed_against_stale_floors_goes_on_on_the_same_set(monkeypatch) -> None:
    """The held beamlets' pull is measured when a set is chosen; where it has shrunk, a run can pass
    its own test while the whole program's certificate fails, the set not growing. The run then goes
    on once on the same set (against the pull measured anew), not on the whole program. Here the
    whole program's verdict after the first run is made a failure (stationarity 1), so that the
    case arises whatever path the solver takes."""
    import specc.solve.first_order.working_set as working_set

    program = _program()
    settings = choose_solver(FIRST_ORDER_SOLVER)
    solver = FirstOrderSolver(program)
    solver.solve(settings)
    runs: list[tuple[object, bool]] = []  # (the operator each run used, whether it was on a set)
    failed: list[int] = []
    minimize, judge = working_set.minimize_augmented_lagrangian, working_set.judge

    def spy(smooth, z, tolerances, multipliers=None, penalty=None):
        runs.append((smooth.operator, smooth.frozen is not None))
        return minimize(smooth, z, tolerances, multipliers, penalty)

    def failing_once(program, z, multipliers, parts):
        certificate = judge(program, z, multipliers, parts)
        if len(runs) == 1 and not failed:
            failed.append(1)
            return dataclasses.replace(certificate, stationarity=1.0)
        return certificate

    monkeypatch.setattr(working_set, "minimize_augmented_lagrangian", spy)
    monkeypatch.setattr(working_set, "judge", failing_once)
    warm = solver.solve(settings, terms=_changed(program, "quadratic_overdose", "Core", weight=210.0))
    assert warm.status == "optimal", warm.message
    assert failed, "the first run's verdict was never asked for"
    assert len(runs) == 2 and runs[0][0] is runs[1][0]  # the same set twice ...
    assert all(on_set for _, on_set in runs)  # ... and never the whole program

def test_l_bfgs_b_is_handed_only_the_variables_a_set_leaves_free(monkeypatch) -> None:
    """A working set's held beamlets are fixed at 0 by their bounds: L-BFGS-B runs without them, so that its curvature
    pairs and its work per iteration follow the beamlets that can move (large limits case: solve 8.0-8.3 -> 7.1-7.4 s;
    docs/performance-history.md, twenty-fourth pass). The plan is the whole program's: held beamlets stay at 0."""
    import specc.solve.first_order.augmented_lagrangian as augmented_lagrangian

    program = _program()
    settings = choose_solver(FIRST_ORDER_SOLVER)
    solver = FirstOrderSolver(program)
    solver.solve(settings)
    handed: list[tuple[int, bool]] = []  # per L-BFGS-B run: how many variables, whether each can move
    minimize = augmented_lagrangian.minimize

    def spy(function, x0, **options):
        handed.append((len(x0), all(low < high for low, high in options["bounds"])))
        return minimize(function, x0, **options)

    monkeypatch.setattr(augmented_lagrangian, "minimize", spy)
    warm = solver.solve(settings, terms=_changed(program, "quadratic_overdose", "Core", weight=210.0))
    assert warm.status == "optimal", warm.message
    assert handed and all(movable for _, movable in handed)
    assert min(size for size, _ in handed) < program.fluence.size  # a set held beamlets, and L-BFGS-B never saw them
    cold = FirstOrderSolver(program).solve(settings, terms=_changed(program, "quadratic_overdose", "Core", weight=210.0))
    assert abs(warm.objective - cold.objective) <= OBJECTIVE_ACCURACY * cold.objective


def test_a_first_solve_shapes_its_plan_without_meeting_the_limits_to_the_certificate(monkeypatch) -> None:
    """The shaping run finds the beamlets and rows that matter; meeting the hard limits to the certificate is the
    working sets' part. Held to the certificate's feasibility, its rounds (cut at the loose stationarity) failed to
    halve the violation and grew the penalty: on this program 66.7 -> 66,703 in the shaping run alone, the first
    solve 1,570 iterations (660 now); on the 5 mm limits benchmark one round at a hundredfold penalty took 710 of
    the solve's 1,710 iterations."""
    import specc.solve.first_order.working_set as working_set

    program = _program()  # a hard PTV maximum that the plan without it breaks
    runs = []
    minimize = working_set.minimize_augmented_lagrangian

    def spy(smooth, z, tolerances, multipliers=None, penalty=None):
        runs.append((tolerances, minimize(smooth, z, tolerances, multipliers, penalty)))
        return runs[-1][1]

    monkeypatch.setattr(working_set, "minimize_augmented_lagrangian", spy)
    result = FirstOrderSolver(program).solve(choose_solver(FIRST_ORDER_SOLVER))
    assert result.status == "optimal", result.message
    (loose, shaped), *rest = runs
    certificate = Tolerances()
    assert loose == working_set.shaping(certificate) and loose.stationarity == working_set.SHAPED
    # Each residual loosened by the same factor as the stationarity.
    factor = working_set.SHAPED / certificate.stationarity
    assert loose.feasibility == pytest.approx(factor * certificate.feasibility)
    assert loose.complementarity == pytest.approx(factor * certificate.complementarity)
    assert rest and all(tolerances.feasibility == certificate.feasibility for tolerances, _ in rest)
    # The shaping run ends at its first penalty, its limits met only to its own test: the sets do the rest.
    assert {round_["penalty"] for round_ in shaped.rounds} == {shaped.rounds[0]["penalty"]}
    assert certificate.feasibility < shaped.violation <= loose.feasibility
