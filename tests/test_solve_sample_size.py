"""Which sample of soft-only structures a plan compiles with: by who will solve the program."""

from __future__ import annotations

from evaluate_fakes import protocol
from specc.compile.voxels import DEFAULT_SAMPLE_LIMIT
from specc.solve import choose_solver
from specc.solve.clinical import CVXPY_SAMPLE_LIMIT, sample_limit_for

GOALS = {"Target": ["D95% >= 57 Gy"]}
SOFT = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Body, dose: 20 Gy, weight: 1}",
]
FAST = choose_solver("SPECC-LBFGS")


def test_the_fast_path_gets_the_large_sample_and_a_cvxpy_solver_the_small_one() -> None:
    assert CVXPY_SAMPLE_LIMIT < DEFAULT_SAMPLE_LIMIT
    assert sample_limit_for(protocol(GOALS, terms=SOFT), FAST, {}) == DEFAULT_SAMPLE_LIMIT
    assert sample_limit_for(protocol(GOALS, terms=SOFT), choose_solver("CLARABEL"), {}) == CVXPY_SAMPLE_LIMIT


def test_programs_that_end_on_a_cvxpy_solver_get_the_small_sample() -> None:
    hard_dvh = [*SOFT, "{kind: dvh, structure: Organ, dose: 20 Gy, volume: 30%, bound: upper}"]
    assert sample_limit_for(protocol(GOALS, terms=hard_dvh), FAST, {}) == CVXPY_SAMPLE_LIMIT  # exact refinement
    soft_dvh = [*SOFT, "{kind: dvh, structure: Organ, dose: 20 Gy, volume: 30%, bound: upper, hard: false, weight: 1}"]
    assert sample_limit_for(protocol(GOALS, terms=soft_dvh), FAST, {}) == DEFAULT_SAMPLE_LIMIT
    # a priority-1 goal penalty and the other terms: two lexicographic steps
    assert sample_limit_for(protocol(GOALS, terms=SOFT), FAST, {1: 1}) == CVXPY_SAMPLE_LIMIT
    assert sample_limit_for(protocol(GOALS, terms=SOFT), FAST, {0: 2, 1: 2}) == DEFAULT_SAMPLE_LIMIT  # one step


def test_the_protocols_own_sample_wins() -> None:
    assert sample_limit_for(protocol(GOALS, terms=SOFT, solver="{name: CLARABEL, sample_voxels: 500}"),
                            choose_solver("CLARABEL"), {}) == 500
    assert sample_limit_for(protocol(GOALS, terms=SOFT, solver="{sample_voxels: all}"), FAST, {}) is None
