"""Infeasibility diagnosis: the conflicting hard goals, with their lines and relaxations."""

from __future__ import annotations

import re

import pytest

from specc.compile import compile_protocol
from specc.compile.derive import with_optimization
from specc.pipeline import plan
from specc.protocol import parse_protocol_text
from specc.solve import choose_solver, solve_program
from specc.solve.diagnose import find_conflicts
from tests.optimizer_fixtures import c_shape, protocol_text

# The core touches the 5 mm gap inside the C: a PTV covered at 50 Gy forces far more than
# 5 Gy into it unless the PTV may run very hot (without its 70 Gy maximum the three
# could hold together), so those three conflict; the core mean limit plays no part.
INFEASIBLE = """goals:
  PTV:
    - "D95% >= 50 Gy"
    - "Max <= 70 Gy"
  Core:
    - "Max <= 5 Gy"
    - "Mean <= 40 Gy"
"""


@pytest.fixture(scope="module")
def infeasible():
    protocol, _ = with_optimization(parse_protocol_text(protocol_text(INFEASIBLE), "cord.yaml"))
    program = compile_protocol(protocol, c_shape())
    return program, solve_program(program, choose_solver("CLARABEL"))


def test_the_diagnosis_names_exactly_the_conflicting_goals_with_their_lines(infeasible) -> None:
    program, result = infeasible
    assert result.status == "infeasible" and result.fluence is None
    named = result.message.split("All hard terms")[0]
    assert set(re.findall(r"cord\.yaml:(\d+)", named)) == {"13", "14", "16"}  # PTV D95%, PTV Max, Core Max
    conflicts, _ = find_conflicts(program, choose_solver("CLARABEL"))
    assert {c.term.source for c in conflicts} == {"cord.yaml:13", "cord.yaml:14", "cord.yaml:16"}
    for conflict in conflicts:  # each alone could be relaxed enough, by a positive dose
        assert conflict.alone_gy is not None and conflict.alone_gy > 1.0
        assert f"{conflict.term.label} alone by about {conflict.alone_gy:.3g} Gy" in result.message


def test_relaxing_a_goal_by_the_amount_named_makes_the_program_feasible(infeasible) -> None:
    program, _ = infeasible
    conflicts, _ = find_conflicts(program, choose_solver("CLARABEL"))
    core = next(c for c in conflicts if c.term.source == "cord.yaml:16")
    relaxed_max = 5.0 + core.alone_gy * 1.01 + 0.05
    text = protocol_text(INFEASIBLE.replace('"Max <= 5 Gy"', f'"Max <= {relaxed_max:.2f} Gy"'))
    protocol, _ = with_optimization(parse_protocol_text(text, "cord.yaml"))
    assert solve_program(compile_protocol(protocol, c_shape()), choose_solver("CLARABEL")).usable


def test_an_infeasible_protocol_writes_no_report_and_exits_non_zero(tmp_path) -> None:
    protocol = parse_protocol_text(protocol_text(INFEASIBLE), "cord.yaml")
    outcome = plan(protocol, c_shape(), tmp_path, solver="CLARABEL")
    assert outcome.exit_code() == 1 and outcome.record is None
    assert list(tmp_path.iterdir()) == []


def test_a_limit_held_in_setup_error_scenarios_is_diagnosed_once_with_its_scenarios() -> None:
    """Robust optimization copies each PTV limit into 7 scenarios: one slack per protocol limit, not per copy."""
    text = protocol_text(INFEASIBLE) + "robustness: {setup_error: 5 mm, structures: [PTV], optimize: true}\n"
    protocol, _ = with_optimization(parse_protocol_text(text, "cord.yaml"))
    program = compile_protocol(protocol, c_shape())
    assert len(program.hard_terms()) == 7 + 7 + 2  # the PTV's two limits in 7 scenarios, the core's two once
    conflicts, _ = find_conflicts(program, choose_solver("CLARABEL"))
    assert len({c.term.source for c in conflicts}) == len(conflicts)  # each protocol limit named once
    ptv = [c for c in conflicts if c.term.source in ("cord.yaml:13", "cord.yaml:14")]
    assert ptv and all(c.scenarios == 7 and c.label.endswith("in 7 setup-error scenarios") for c in ptv)
    assert all(c.scenarios == 1 for c in conflicts if c.term.source == "cord.yaml:16")
    result = solve_program(program, choose_solver("CLARABEL"))
    assert result.status == "infeasible" and "in 7 setup-error scenarios (cord.yaml:13)" in result.message
