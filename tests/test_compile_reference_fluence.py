"""The terms on the fluence itself are relative to the case's reference fluence, so a protocol means the same
plan whatever unit the case's beamlet weights are in (matRad's, PortPy's, a DICOM matrix's, specc's engine)."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from optimizer_fixtures import c_shape, protocol_text
from specc.case import Case
from specc.case.phantoms import build_phantom
from specc.compile import compile_protocol
from specc.errors import CompileError
from specc.evaluate.plan import evaluate_plan
from specc.planning import compile_for_plan
from specc.protocol import Protocol, load_protocol, parse_protocol_text

C_SHAPE = Path(__file__).parent.parent / "protocols" / "tg119" / "c-shape.yaml"
GOALS = 'goals:\n  PTV: ["D95% >= 50 Gy", "D10% <= 55 Gy"]\n  Core: ["D10% <= 10 Gy (variation 25 Gy)"]\n'


def _with_terms(*terms: str, prescribed_gy: float = 50) -> Protocol:
    body = GOALS + "optimization:\n  terms:\n" + "".join(f"    - {term}\n" for term in terms)
    text = protocol_text(body, with_body=True).replace("dose: 50 Gy}]", f"dose: {prescribed_gy:g} Gy}}]")
    return parse_protocol_text(text, "fluence-terms.yaml")


DOSE_TERMS = (
    "{kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 100}",
    "{kind: quadratic_overdose, structure: PTV, dose: 52 Gy, weight: 30}",
    "{kind: quadratic_overdose, structure: Core, dose: 10 Gy, weight: 5}",
    "{kind: quadratic_overdose, structure: Body, dose: 25 Gy, weight: 1}",
)
FLUENCE_TERMS = {  # each protocol with one kind of term on the fluence
    "shipped c-shape (smoothness)": lambda: load_protocol(C_SHAPE),
    "fluence_regularization l1": lambda: _with_terms(*DOSE_TERMS, "{kind: fluence_regularization, norm: l1, weight: 0.5}"),
    "fluence_regularization l2": lambda: _with_terms(*DOSE_TERMS, "{kind: fluence_regularization, norm: l2, weight: 0.5}"),
}


def _rescaled(case: Case, factor: float) -> Case:
    """The same case with its influence matrix in another beamlet-weight unit (a weight of 1 now gives `factor`
    times the dose it gave)."""
    influence = case.influence.copy()
    influence.data = (influence.data * factor).astype(case.influence.dtype)
    return dataclasses.replace(case, influence=influence)


@dataclasses.dataclass(frozen=True)
class _Plan:
    objective: float
    fluence: np.ndarray
    dose_gy: np.ndarray
    goals: dict[str, float]


@lru_cache(maxsize=None)
def _planned(name: str, factor: float, solver: str) -> _Plan:
    """The protocol `name` planned on the C-shape rescaled by `factor`."""
    case = _rescaled(c_shape(), factor)
    compiled = compile_for_plan(FLUENCE_TERMS[name](), case, solver)
    solved = compiled.solve()
    assert solved.result.solver == solver and solved.result.converged, solved.result.message
    evaluation = evaluate_plan(compiled.protocol, case, compiled.program.masks, solved.result, {})
    goals = {f"{goal.structure} {goal.text}": goal.value for goal in evaluation.record.goals}
    return _Plan(solved.result.objective, evaluation.fluence, evaluation.dose, goals)


# How far the doses of two plans of one program may lie apart by solver tolerance alone, in a fraction of the largest
# dose: both solvers reach the optimum's objective (here within 1e-5), but where the objective is flat (little
# smoothing, an l1 penalty) its point only within their tolerance: CLARABEL's plans 0.08% apart, the fast path's,
# whose certificate is on the objective, 1.6% at one voxel.
_DOSE_TOLERANCE = {"CLARABEL": 2e-3, "SPECC-LBFGS": 3e-2}


@pytest.mark.parametrize("solver", ["SPECC-LBFGS", "CLARABEL"])
@pytest.mark.parametrize("name", list(FLUENCE_TERMS))
def test_a_plan_does_not_depend_on_the_cases_beamlet_weight_unit(name: str, solver: str) -> None:
    """An audit scaled a C-shape's influence matrix by 0.1 and 0.01 and the plan changed: the optimal fluence
    scales by 100, so a term on the fluence in the case's unit weighed 10^4 times more against the dose terms."""
    plan, scaled = _planned(name, 1.0, solver), _planned(name, 0.01, solver)
    assert scaled.objective == pytest.approx(plan.objective, rel=1e-4)  # unit-free: the same program
    tolerance = _DOSE_TOLERANCE[solver] * plan.dose_gy.max()
    np.testing.assert_allclose(scaled.dose_gy, plan.dose_gy, rtol=0, atol=tolerance)
    assert scaled.goals == pytest.approx(plan.goals, abs=0.05)  # Gy
    assert np.sum(scaled.fluence) * 0.01 == pytest.approx(np.sum(plan.fluence), rel=_DOSE_TOLERANCE[solver])


# Optima that are not unique, where the solver's path picks the plan (audit c3 F3: a matRad case and the same case with
# its influence matrix x100 planned 2 Gy apart on the brainstem). Terms on the PTV alone whose levels conflict: the
# objective is flat along every fluence change the PTV does not see. Goals whose last priority step reaches 0: every
# fluence within the earlier steps' bounds is optimal.
FLAT_TERMS = parse_protocol_text(protocol_text(
    "optimization:\n  terms:\n    - {kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 100}\n"
    "    - {kind: quadratic_overdose, structure: PTV, dose: 49 Gy, weight: 30}\n", with_body=True), "flat.yaml")
LAST_STEP_REACHES_ZERO = parse_protocol_text(protocol_text(
    'goals:\n  PTV: ["D95% >= 50 Gy", "D10% <= 56 Gy"]\n  Core: ["D10% <= 30 Gy (priority 2)"]\n', with_body=True),
    "steps.yaml")


def _plan_of(protocol: Protocol, factor: float, solver: str) -> tuple[str, np.ndarray, np.ndarray]:
    """The solver that made the plan, its fluence in the unscaled case's unit and its dose on the grid."""
    case = _rescaled(c_shape(), factor)
    compiled = compile_for_plan(protocol, case, solver)
    result = compiled.solve().result
    assert result.converged, result.message
    evaluation = evaluate_plan(compiled.protocol, case, compiled.program.masks, result, {})
    return result.solver, evaluation.fluence * factor, evaluation.dose


@pytest.mark.parametrize(("protocol", "solver", "solved_by"), [
    (FLAT_TERMS, "SPECC-LBFGS", "SPECC-LBFGS"),
    (FLAT_TERMS, "CLARABEL", "CLARABEL"),
    (LAST_STEP_REACHES_ZERO, "SPECC-LBFGS", "CLARABEL"),  # the steps are cvxpy problems: handed to CLARABEL
], ids=["flat objective, fast path", "flat objective, CLARABEL", "last priority step reaches 0"])
def test_where_the_optimum_is_not_unique_the_plan_still_does_not_depend_on_the_unit(
        protocol: Protocol, solver: str, solved_by: str) -> None:
    """Each solver runs in the fluence over the reference fluence, the same numbers whatever the unit. Before, the
    plans of one program at factor 1 and 0.01 lay 83-99 Gy apart outside the PTV (and the fast path, its first step
    of length 1 in the case's unit, stalled at 0.01 and handed over to CLARABEL)."""
    by, fluence, dose = _plan_of(protocol, 1.0, solver)
    scaled_by, scaled_fluence, scaled_dose = _plan_of(protocol, 0.01, solver)
    assert by == scaled_by == solved_by
    np.testing.assert_allclose(scaled_dose, dose, rtol=0, atol=1e-3 * dose.max())
    np.testing.assert_allclose(scaled_fluence, fluence, rtol=0, atol=5e-3 * fluence.max())


def test_the_reference_fluence_gives_the_highest_levels_target_its_dose_per_fraction() -> None:
    """x_ref = D_fx / mean over the target of (A @ 1), on every voxel of the target, named in the compile notes."""
    case = c_shape()
    program = compile_protocol(load_protocol(C_SHAPE), case)
    reference = program.reference_fluence
    ptv = case.rows(program.masks["PTV"])
    mean_dose = (case.influence[ptv].astype(np.float64) @ np.full(case.n_beamlets, reference.beamlet_weight)).mean()
    assert (reference.target, reference.dose_per_fraction_gy) == ("PTV", 2.0)
    assert mean_dose == pytest.approx(2.0, rel=1e-9)
    assert f"reference fluence {reference.beamlet_weight:.4g} beamlet weights per fraction" in " ".join(program.notes)
    assert _rescaled_reference(case, 0.01) == pytest.approx(100 * reference.beamlet_weight, rel=1e-5)


def _rescaled_reference(case: Case, factor: float) -> float:
    return compile_protocol(load_protocol(C_SHAPE), _rescaled(case, factor)).reference_fluence.beamlet_weight


MULTI_TARGET = """specc: 1
name: SIB
site: phantom
version: 1.0.0
structures:
  PTV_Inferior: {role: target}
  PTV_Central: {role: target}
  PTV_Superior: {role: target}
prescription:
  fractions: 25
  levels:  # lowest first: the reference is the highest level's, wherever it is listed
    - {target: PTV_Inferior, dose: 12.5 Gy}
    - {target: PTV_Central, dose: 50 Gy}
    - {target: PTV_Superior, dose: 25 Gy}
optimization:
  terms:
    - {kind: quadratic_underdose, structure: PTV_Central, dose: 50 Gy, weight: 1}
    - {kind: smoothness, weight: 0.005}
"""


def test_with_several_dose_levels_the_reference_is_the_highest_levels() -> None:
    case = build_phantom("multi-target", beams=5, grid_mm=10.0, beamlet_mm=10.0)
    reference = compile_protocol(parse_protocol_text(MULTI_TARGET, "sib.yaml"), case).reference_fluence
    central = case.rows(case.structures["PTV_Central"].mask)
    assert (reference.target, reference.dose_per_fraction_gy) == ("PTV_Central", 2.0)
    assert reference.beamlet_weight == pytest.approx(2.0 / case.influence[central].sum(axis=1).mean(), rel=1e-6)


def test_a_program_without_terms_on_the_fluence_keeps_its_reference_as_its_scale_unnamed() -> None:
    """Every program solves in z = x / x_ref, so it carries x_ref; the notes name it only where a term reads it."""
    protocol = _with_terms("{kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 1}")
    program = compile_protocol(protocol, c_shape())
    assert program.fluence_scale == program.reference_fluence.beamlet_weight
    assert not any("reference fluence" in note for note in program.notes)


def test_a_program_on_reused_rows_has_the_scale_and_reference_of_a_fresh_compile() -> None:
    """Audit r2 F3: the rows kept after a prescription change (50 -> 60 Gy) kept the earlier fluence and its scale
    (0.587 for the fresh compile's 0.704), and with it the plan a solver's path picks where the optimum is not
    unique; a program without terms on the fluence stored no reference for a re-plan to read (F1)."""
    case = c_shape()
    earlier = compile_protocol(_with_terms(*DOSE_TERMS), case)
    changed = _with_terms(*DOSE_TERMS, prescribed_gy=60)
    reused = compile_protocol(changed, case, reuse=earlier)
    fresh = compile_protocol(changed, case)
    assert reused.influence is earlier.influence  # the rows are kept
    assert reused.fluence_scale == fresh.fluence_scale == pytest.approx(earlier.fluence_scale * 60 / 50)
    assert reused.reference_fluence == fresh.reference_fluence
    assert reused.fluence.variable is not earlier.fluence.variable
    # A change that leaves the prescription as it was keeps the fluence and its reference (no sum over the target).
    reweighted = compile_protocol(_with_terms(*DOSE_TERMS, "{kind: smoothness, weight: 1}"), case, reuse=earlier)
    assert reweighted.influence is earlier.influence and reweighted.fluence is earlier.fluence
    assert reweighted.reference_fluence is earlier.reference_fluence


def test_a_target_no_beamlet_reaches_is_a_clear_error_not_a_division_by_zero() -> None:
    """x_ref divides by the mean dose a unit fluence gives the target: such a target is refused first, by name."""
    case = c_shape()
    influence = case.influence.tolil()
    influence[case.rows(case.structures["PTV"].mask)] = 0.0
    dark = dataclasses.replace(case, influence=influence.tocsr())
    with pytest.raises(CompileError, match="target 'PTV': none of its 171 voxels receives dose from any beamlet"):
        compile_protocol(FLUENCE_TERMS["fluence_regularization l2"](), dark)
