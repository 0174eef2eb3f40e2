"""Lexicographic solving by goal priority (specc.solve.priorities)."""

from __future__ import annotations

import pytest
import yaml

from specc.compile import compile_protocol
from specc.compile.derive import derive_optimization, explain_yaml, with_optimization
from specc.protocol import parse_protocol_text
from specc.solve import choose_solver
from specc.solve.priorities import (
    ABSOLUTE_SLIP,
    COVERAGE_STEP,
    DEFAULT_SLIP_PERCENT,
    STEP_COLUMNS,
    plan_steps,
    solve_lexicographic,
    step_values,
)
from tests.optimizer_fixtures import c_shape, protocol_text

GOALS = """goals:
  PTV:
    - "D95% >= 50 Gy (priority 2)"
    - "D10% <= 55 Gy (priority 3)"
  Core:
    - "D10% <= 10 Gy (variation 25 Gy)"
    - "Mean <= 8 Gy (priority 3)"
"""


def _program(slip: str = ""):
    text = protocol_text(GOALS)
    protocol, priorities = with_optimization(parse_protocol_text(text, "p.yaml"))
    if slip:
        protocol = protocol.model_copy(
            update={"optimization": protocol.optimization.model_copy(
                update={"solver": protocol.optimization.solver.model_copy(update={"slip_percent": float(slip)})})}
        )
    return protocol, compile_protocol(protocol, c_shape()), priorities


def test_steps_go_must_goals_then_coverage_then_each_lower_priority() -> None:
    _, program, priorities = _program()
    steps = plan_steps(program, priorities)
    assert [step.name for step in steps] == [
        "priority 1 penalties (goals beyond their variation)", COVERAGE_STEP, "priority 2 penalties",
        "priority 3 penalties",
    ]
    assert [program.terms[i].label for i in steps[0].terms] == ["dvh Core V9.99Gy <= 9.99% (soft, weight 100)"]  # D10% <= 10 Gy: fewer than 10% above
    assert len(steps[3].terms) == 2


@pytest.fixture(scope="module")
def default_slip():
    protocol, program, priorities = _program()
    result, lexicographic = solve_lexicographic(program, choose_solver("CLARABEL"), priorities, None)
    return result, lexicographic


def test_later_steps_never_worsen_an_earlier_priority_beyond_the_slip(default_slip) -> None:
    result, lexicographic = default_slip
    assert result.usable and len(result.steps) == 4
    assert all(step["status"] == "optimal" for step in result.steps)
    assert all(list(step) == list(STEP_COLUMNS) for step in result.steps)
    slip = DEFAULT_SLIP_PERCENT / 100
    reached = [float(step["reached"]) for step in result.steps]
    final = step_values(lexicographic)
    for value, best in zip(final, reached):
        # solver tolerance (CLARABEL ~1e-8 relative) on top of the documented slip
        assert value <= best * (1 + slip) + ABSOLUTE_SLIP + 1e-6 * max(1.0, best)
    assert final[-1] == pytest.approx(reached[-1], rel=1e-5, abs=1e-9)  # the log prints 6 digits


def test_the_protocol_slip_gives_lower_priorities_more_room(default_slip) -> None:
    protocol, program, priorities = _program("20")
    assert protocol.optimization.solver.slip_percent == 20
    result, _ = solve_lexicographic(program, choose_solver("CLARABEL"), priorities, protocol.optimization.solver.slip_percent)
    wider, narrow = float(result.steps[2]["reached"]), float(default_slip[0].steps[2]["reached"])
    assert result.steps[2]["step"].endswith("priority 2 penalties")
    assert wider < narrow  # the first step after coverage gains from coverage's wider slip


def test_the_steps_reuse_one_parameterized_problem(default_slip) -> None:
    _, lexicographic = default_slip
    parameters = {p.name() for p in lexicographic.problem.parameters()}
    assert parameters == {"step_selected", "step_kept", "step_bound"}
    assert lexicographic.problem.is_dpp()


def test_pasted_explain_output_is_solved_in_the_same_steps() -> None:
    text = protocol_text(GOALS)
    protocol = parse_protocol_text(text, "p.yaml")
    derived = derive_optimization(protocol)
    explained = yaml.safe_load(explain_yaml(protocol, derived))
    document = yaml.safe_load(text)
    document["structures"].update(explained["structures"])
    document["optimization"] = explained["optimization"]
    pasted, pasted_priorities = with_optimization(parse_protocol_text(yaml.safe_dump(document), "pasted.yaml"))
    _, program, priorities = _program()
    pasted_program = compile_protocol(pasted, c_shape())

    def described(program, priorities):
        return [(step.name, [program.terms[i].label for i in step.terms]) for step in plan_steps(program, priorities)]

    assert len(plan_steps(program, priorities)) == 4
    assert described(pasted_program, pasted_priorities) == described(program, priorities)
