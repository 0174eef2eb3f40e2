"""The memory a solve will add, on the route the solver rule takes (specc.solve.clinical.estimated_solve_memory)."""

from __future__ import annotations

from specc.compile import compile_protocol
from specc.compile.program import estimated_memory
from specc.protocol import parse_protocol_text
from specc.solve import choose_solver
from specc.solve.clinical import estimated_solve_memory
from tests.optimizer_fixtures import c_shape, protocol_text

COVERAGE = """optimization:
  terms:
    - {kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 100}
    - {kind: quadratic_overdose, structure: PTV, dose: 50 Gy, weight: 20}
"""
CORE_LIMIT = "    - {kind: dvh, structure: Core, dose: 30 Gy, volume: 30%, bound: upper}\n"


def _program(terms: str):
    return compile_protocol(parse_protocol_text(protocol_text(terms), "p.yaml"), c_shape())


def test_a_program_the_default_rule_hands_to_clarabel_is_estimated_as_a_clarabel_solve() -> None:
    """A hard DVH limit sends the default solve to CLARABEL, whose peak was 8-12x the one figure `specc compile`
    gave (audit a5 F2): the estimate follows the route, with the beamlet block of its factorization."""
    program = _program(COVERAGE + CORE_LIMIT)
    stats = program.stats
    estimate, route = estimated_solve_memory(program, choose_solver())
    assert route == "solved by CLARABEL"
    assert estimate == stats.estimated_cvxpy_memory_bytes == estimated_memory(stats.nonzeros, stats.beamlets, True)
    assert estimate >= 300 * stats.nonzeros + 6 * stats.beamlets**2
    assert estimate > 10 * stats.estimated_memory_bytes


def test_a_program_the_fast_path_solves_alone_is_estimated_as_such() -> None:
    program = _program(COVERAGE)
    estimate, route = estimated_solve_memory(program, choose_solver())
    assert route == "SPECC-LBFGS alone" and estimate == program.stats.estimated_memory_bytes
    clarabel, asked = estimated_solve_memory(program, choose_solver("CLARABEL"))
    assert asked == "solved by CLARABEL" and clarabel == program.stats.estimated_cvxpy_memory_bytes
