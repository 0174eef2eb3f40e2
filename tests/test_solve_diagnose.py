"""Infeasibility diagnosis: the conflicting hard goals, with their lines and relaxations."""

from __future__ import annotations

import dataclasses
import re

import pytest

from specc.compile import compile_protocol
from specc.compile.derive import with_optimization
from specc.pipeline import plan
from specc.protocol import parse_protocol_text
from specc.solve import choose_solver, solve_program
from specc.solve.diagnose import explain_infeasibility, find_conflicts
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


def _isoeffective(core_max: str, core_mean: str = "Mean <= 40 Gy"):
    """The C-shape in 5 fractions of 10 Gy, the core (alpha/beta 2 Gy) limited by `core_max` (line 16) and
    `core_mean` (line 17)."""
    goals = INFEASIBLE.replace('"Max <= 5 Gy"', f'"{core_max}"').replace('"Mean <= 40 Gy"', f'"{core_mean}"')
    text = protocol_text(goals)
    text = text.replace("fractions: 25", "fractions: 5")
    text = text.replace("aliases: [Core]}", "aliases: [Core], alpha_beta: 2 Gy}")
    protocol = parse_protocol_text(text, "cord.yaml")
    return protocol, compile_protocol(with_optimization(protocol)[0], c_shape())


def test_a_limit_held_for_an_eqd2_goal_is_named_by_the_goal_and_relaxed_in_eqd2() -> None:
    """The limit held for "Max <= 10 Gy (EQD2)" is its physical equivalent in 5 fractions: the diagnosis named
    that dose and gave the relaxation in physical Gy, and the EQD2 goal raised by that many Gy stayed infeasible."""
    settings = choose_solver("CLARABEL")
    _, program = _isoeffective("Max <= 10 Gy (EQD2)")
    result = solve_program(program, settings)
    assert result.status == "infeasible"
    message = result.message  # what `specc plan` prints: the diagnosis knows the compiled protocol
    held = "Core Max <= 10 Gy (EQD2) (cord.yaml:16; held as max_dose Core <= 9.99 Gy physical in 5 fractions)"
    assert held in message
    advice = re.search(
        r"Core Max <= 10 Gy \(EQD2\) alone by about ([\d.]+) Gy EQD2 \(to about ([\d.]+) Gy EQD2: ([\d.]+) Gy physical "
        r"in 5 fractions\)", message,
    )
    assert advice is not None, message
    eqd2, limit, physical = (float(value) for value in advice.groups())
    assert limit == pytest.approx(10 + eqd2) and eqd2 > physical + 1  # EQD2 grows faster than dose at 2 Gy+
    _, program = _isoeffective(f"Max <= {limit} Gy (EQD2)")
    assert solve_program(program, settings).usable  # the advice, followed, plans
    _, program = _isoeffective(f"Max <= {10 + physical:.2f} Gy (EQD2)")
    assert solve_program(program, settings).status == "infeasible"  # the physical Gy read as EQD2 does not
    # A program compiled without its protocol: the numbers say what they are.
    assert "(total Gy over the plan's 5 fractions, physical dose unless EQD2 or BED is named" in (
        explain_infeasibility(dataclasses.replace(program, protocol=None), settings)
    )


def test_a_mean_held_in_eqd2_is_relaxed_in_eqd2() -> None:
    """A mean's goal in EQD2 is held as a mean_dose in EQD2: its relaxation needs no conversion."""
    settings = choose_solver("CLARABEL")
    _, program = _isoeffective("Max <= 60 Gy", core_mean="Mean <= 3 Gy (EQD2)")
    assert solve_program(program, settings).status == "infeasible"
    message = explain_infeasibility(program, settings)
    assert "Core Mean <= 3 Gy (EQD2) (cord.yaml:17; held as mean_dose Core (EQD2, alpha/beta 2 Gy) <= 2.997 Gy)" in (
        message
    )
    assert re.search(r"Core Mean <= 3 Gy \(EQD2\) alone by about [\d.]+ Gy EQD2 \(to about [\d.]+ Gy EQD2\);", message)


def _after_a_38_gy_course():
    """A 5-fraction boost compiled on the synthetic case after a course that gave its organ 38 Gy (10 Gy
    elsewhere), with a cumulative organ maximum of 30 Gy (broken by the prior dose alone) and mean of 45 Gy
    (not broken)."""
    import numpy as np

    from evaluate_fakes import synthetic_case
    from specc.case.prior import PriorDose, PriorSource

    case = synthetic_case()
    prior = PriorDose(np.where(case.structures["Organ"].mask, 38.0, 10.0),
                      (PriorSource("course1.h5", "0" * 64, "specc result.h5", 38.0),))
    text = (
        "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures: {Target: {role: target}, Organ: {role: oar}}\n"
        "prescription: {fractions: 5, levels: [{target: Target, dose: 70 Gy}],"
        " prior: {description: first course, dose: 50 Gy}}\n"
        "goals: {Target: ['D95% >= 65 Gy']}\n"
        "optimization:\n  terms:\n    - {kind: quadratic_underdose, structure: Target, dose: 70 Gy, weight: 1}\n"
        "    - {kind: max_dose, structure: Organ, dose: 30 Gy}\n"
        "    - {kind: mean_dose, structure: Organ, max: 45 Gy}\n"
    )
    protocol, _ = with_optimization(parse_protocol_text(text, "boost.yaml"))
    return compile_protocol(protocol, case.with_prior(prior))


def test_a_limit_the_prior_dose_alone_breaks_is_named_as_such() -> None:
    """A cumulative cord maximum of 30 Gy after a course that gave 38 Gy read 'relax by 8 Gy over this plan's
    fractions', as if this plan's dose were the lever; no plan of this course can meet it."""
    message = explain_infeasibility(_after_a_38_gy_course(), choose_solver("CLARABEL"))
    assert message.startswith("the prior course's dose alone already breaks max_dose Organ <= 30 Gy (boost.yaml:11), "
                              "Organ receiving a maximum of 38.00 Gy from it.")
    assert "mean_dose Organ" not in message.split("All hard terms")[0]  # 38 Gy mean: within 45 Gy
    assert "no plan of this course can meet such a limit" in message


def test_a_limit_the_prior_dose_alone_breaks_is_found_before_any_solve(monkeypatch) -> None:
    """The prior-course check ran only after a failed solve: the fast path's rounds, then CLARABEL's solve and
    the elastic diagnosis (minutes on a head-and-neck case) to say what the dose at zero fluence already says."""
    import specc.solve.priorities as priorities
    from specc.solve.clinical import solve_clinical

    def no_solve(*args, **kwargs):
        raise AssertionError("a solver ran for a program the prior dose alone makes infeasible")

    monkeypatch.setattr(priorities, "solve_program", no_solve)
    program = _after_a_38_gy_course()
    for solver in ("SPECC-LBFGS", "CLARABEL"):
        result = solve_clinical(program, choose_solver(solver))
        assert (result.status, result.fluence, result.solver) == ("infeasible", None, solver)
        assert result.message.startswith("the hard limits cannot all be met at once (found before solving): the prior "
                                         "course's dose alone already breaks max_dose Organ <= 30 Gy (boost.yaml:11)")
