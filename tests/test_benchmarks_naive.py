"""The benchmark's naive baseline labels cvxpy's outcome in specc's statuses, as `solve_program` does."""

from __future__ import annotations

import types

import cvxpy as cp
import pytest

from evaluate_fakes import protocol, synthetic_case
from specc.compile import compile_protocol
from specc.solve import choose_solver, solve_program
from test_solve_run import GOALS, TERMS  # the program the solve-status tests run


@pytest.mark.parametrize("said", [cp.INFEASIBLE_INACCURATE, cp.UNBOUNDED_INACCURATE, cp.USER_LIMIT, cp.OPTIMAL])
def test_the_naive_rows_status_is_the_one_specc_gives_the_same_cvxpy_status(
    monkeypatch: pytest.MonkeyPatch, said: str
) -> None:
    """The naive baseline mapped cvxpy's statuses by itself, and its inaccurate infeasible and unbounded read as
    solver_error where specc reads infeasible and unbounded. Both now map through `specc.solve.run.cvxpy_status`.
    (`optimal` with no fluence: a solver error for both.)"""
    import specc.solve.run
    from benchmarks.run import _solve_naive

    monkeypatch.setattr(specc.solve.run, "solve_interruptibly", lambda problem, **arguments: None)
    monkeypatch.setattr(specc.solve.run, "explain_infeasibility", lambda program, settings: "a conflict")
    monkeypatch.setattr(cp.Problem, "solve", lambda problem, *args, **kwargs: None)
    monkeypatch.setattr(cp.Problem, "status", property(lambda problem: said))
    monkeypatch.setattr(cp.Problem, "solver_stats",
                        property(lambda problem: types.SimpleNamespace(solver_name="CLARABEL", num_iters=7)))
    program = compile_protocol(protocol(GOALS, terms=TERMS), synthetic_case())
    naive = _solve_naive(program)
    specc_result = solve_program(program, choose_solver("CLARABEL"))  # no limit set, as the naive baseline
    expected = {cp.INFEASIBLE_INACCURATE: "infeasible", cp.UNBOUNDED_INACCURATE: "unbounded",
                cp.USER_LIMIT: "iteration_limit", cp.OPTIMAL: "solver_error"}[said]
    assert naive.status == specc_result.status == expected
    assert naive.fluence is None and not naive.converged and naive.message == f"cvxpy status {said!r}"
