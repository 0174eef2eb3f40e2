"""Robust optimization: terms copied into every setup-error scenario, held there, measured there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluate_fakes import protocol, synthetic_case
from specc.case.shifts import Displacement, blurred_dose, displaced_dose, displaced_influences
from specc.compile import compile_protocol
from specc.compile.derive import with_optimization
from specc.compile.scenarios import robust_structures
from specc.errors import CompileError
from specc.export import read_result
from specc.pipeline import plan
from specc.protocol import StructureSpec
from specc.planning import compile_for_plan

GOALS = {"Target": ["D95% >= 57 Gy"], "Organ": ["Max <= 30 Gy"]}
TERMS = [
    "{kind: min_dose, structure: Target, dose: 55 Gy}",
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 70, priority: 2}",
    "{kind: quadratic_overdose, structure: Target, dose: 62 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 20 Gy, weight: 5}",
    "{kind: quadratic_overdose, structure: Body, dose: 30 Gy, weight: 1}",
]
SECTION = "{setup_error: 5 mm, structures: [Target], optimize: true}"
OFFSETS = [(5.0, 0.0, 0.0), (-5.0, 0.0, 0.0), (0.0, 5.0, 0.0), (0.0, -5.0, 0.0), (0.0, 0.0, 5.0), (0.0, 0.0, -5.0)]


def _protocol(robustness: str = SECTION, terms: list[str] | None = TERMS, organ: str = "Organ"):
    return protocol(GOALS if organ == "Organ" else {"Target": GOALS["Target"]}, terms=terms, organ=organ,
                    robustness=robustness)


def test_each_term_on_a_robust_structure_is_copied_into_every_scenario() -> None:
    robust, priorities = with_optimization(_protocol())
    terms = robust.optimization.terms
    names = ["Target", *(f"Target ({axis} {sign}5 mm)" for axis in "xyz" for sign in "+-")]
    hard = [term for term in terms if term.kind == "min_dose"]
    assert [term.structure for term in hard] == names and all(term.hard and term.dose.gy == 55 for term in hard)
    underdose = [term for term in terms if term.kind == "quadratic_underdose"]
    # objectives are averaged over the 7 scenarios: the term's total weight is unchanged
    assert [term.structure for term in underdose] == names
    assert sum(term.weight for term in underdose) == pytest.approx(70.0)
    assert [term.weight for term in underdose] == pytest.approx([10.0] * 7)
    assert {term.source for term in underdose} == {underdose[0].source}  # the line the user wrote
    assert sorted(index for index, priority in priorities.items() if priority == 2) == [
        index for index, term in enumerate(terms) if term.kind == "quadratic_underdose"
    ]
    organ = [term for term in terms if term.structures() == ("Organ",)]
    assert len(organ) == 1 and organ[0].weight == 5  # not a robust structure: unchanged
    scenarios = robust.optimization.scenarios
    assert [(s.structure, s.offset_mm) for s in scenarios.values()] == [("Target", offset) for offset in OFFSETS]


def test_without_optimize_the_section_only_checks_and_the_terms_are_unchanged() -> None:
    protocol = _protocol("{setup_error: 5 mm, structures: [Target]}")
    assert with_optimization(protocol)[0] is protocol
    with pytest.raises(Exception, match="optimize"):
        _protocol("{setup_error: 5 mm, optimize: yes please}")


def test_a_structure_named_like_a_scenario_is_refused() -> None:
    with pytest.raises(CompileError, match=r"'Target \(x \+5 mm\)'.*rename it"):
        with_optimization(_protocol(terms=TERMS[:3], organ="Target (x +5 mm)"))


def test_derived_coverage_regions_of_a_robust_target_are_robust_too() -> None:
    """Goals-only: the coverage penalty sits on `Coverage_Target` when an organ goal caps its voxels."""
    robust, _ = with_optimization(_protocol(terms=None), synthetic_case())
    covered = [term for term in robust.optimization.terms if term.kind == "quadratic_underdose"]
    assert [term.structure for term in covered][:2] == ["Coverage_Target", "Coverage_Target (x +5 mm)"]
    assert len(covered) == 7


def test_a_displaced_structure_enters_the_program_as_its_interpolated_rows() -> None:
    case = synthetic_case()
    program = compile_protocol(with_optimization(_protocol())[0], case)
    target = case.structures["Target"].mask
    entries = program.selection.structures["Target (y -5 mm)"]
    assert entries.n_voxels == target.sum() and not entries.sampled
    assert entries.scenario is not None and entries.scenario.offset_mm == (0.0, -5.0, 0.0)
    expected = displaced_influences(case, target, [Displacement(offset_mm=(0.0, -5.0, 0.0))])[0]
    assert (program.influence[entries.entries] != expected).nnz == 0
    assert program.stats.dose_entries == program.influence.shape[0] == program.dose.size
    assert any("robust optimization: the terms on Target are held in 7" in note for note in program.notes)


def _worst_minimum(case, fluence: np.ndarray) -> float:
    dose = case.dose_on_grid(fluence, 30)
    mask = case.structures["Target"].mask
    return min(float(displaced_dose(dose, mask, case.grid, Displacement(offset_mm=offset)).min()) for offset in [(0.0, 0.0, 0.0), *OFFSETS])


def test_a_hard_limit_holds_in_every_scenario_and_only_with_robust_optimization() -> None:
    case = synthetic_case()
    nominal = compile_for_plan(_protocol("{setup_error: 5 mm, structures: [Target]}"), case).solve()
    assert nominal.result.converged and _worst_minimum(case, nominal.result.fluence) < 50.0  # the check's failure
    robust = compile_for_plan(_protocol(), case).solve()
    assert robust.result.converged
    assert _worst_minimum(case, robust.result.fluence) >= 55.0 * (1 - 1e-3)


def test_the_fast_path_and_the_reference_solver_give_the_same_robust_plan() -> None:
    case = synthetic_case()
    protocol = _protocol(terms=[term.replace(", priority: 2", "") for term in TERMS])
    fast = compile_for_plan(protocol, case).solve().result
    reference = compile_for_plan(protocol, case, solver="CLARABEL").solve().result
    assert fast.solver == "SPECC-LBFGS" and reference.solver == "CLARABEL"
    assert fast.objective == pytest.approx(reference.objective, rel=1e-3)
    assert _worst_minimum(case, fast.fluence) >= 55.0 * (1 - 1e-3)


def test_the_report_measures_each_copy_in_its_scenario_and_says_the_plan_was_optimized_robustly(
    tmp_path: Path,
) -> None:
    case = synthetic_case()
    outcome = plan(_protocol(), case, tmp_path)
    assert outcome.succeeded
    record = json.loads((tmp_path / "plan.json").read_text())
    assert record["robustness"]["optimized"] is True
    minimum = {term["label"]: term["value"] for term in record["solver"]["terms"] if term["kind"] == "min_dose"}
    dose = read_result(tmp_path / "result.h5").dose_gy  # the plan's total dose on the grid, as written
    mask = case.structures["Target"].mask
    assert minimum["min_dose Target (z +5 mm) >= 55 Gy"] == pytest.approx(
        float(displaced_dose(dose, mask, case.grid, Displacement(offset_mm=(0.0, 0.0, 5.0))).min())
    )
    assert all(value >= 55.0 * (1 - 1e-3) for value in minimum.values()) and len(minimum) == 7
    copies = {term["label"]: term["scenario_mm"] for term in record["solver"]["terms"]}
    assert copies["min_dose Target (z +5 mm) >= 55 Gy"] == [0.0, 0.0, 5.0] and copies["min_dose Target >= 55 Gy"] is None
    html = (tmp_path / "report.html").read_text()
    assert "were optimized in every scenario" in html
    assert html.count('class="scenario-copy"') == 3 * 6  # the target's three terms, each in six displaced scenarios


def test_a_recompile_with_the_same_scenarios_keeps_their_rows_and_another_setup_error_builds_new_ones() -> None:
    """`specc plan --watch`: a weight changed keeps the displaced rows; a new setup error cannot."""
    case = synthetic_case()
    earlier = compile_protocol(with_optimization(_protocol())[0], case)
    reweighted = with_optimization(_protocol(terms=[term.replace("weight: 70", "weight: 140") for term in TERMS]))[0]
    reused = compile_protocol(reweighted, case, reuse=earlier)
    assert reused.influence is earlier.influence
    fluence = np.random.default_rng(4).random(case.n_beamlets)
    fresh = compile_protocol(reweighted, case)
    for program in (reused, fresh):
        program.fluence.value = fluence
        program.dose.value = program.dose_per_fraction(fluence)
    assert reused.objective.value == pytest.approx(fresh.objective.value, rel=1e-12)

    wider = compile_protocol(with_optimization(_protocol(SECTION.replace("5 mm", "3 mm")))[0], case, reuse=earlier)
    assert wider.influence is not earlier.influence
    target = case.structures["Target"].mask
    entries = wider.selection.structures["Target (x -3 mm)"].entries
    assert (wider.influence[entries] != displaced_influences(case, target, [Displacement(offset_mm=(-3.0, 0.0, 0.0))])[0]).nnz == 0


def test_robust_optimization_notes_voxels_displaced_beyond_the_computed_dose() -> None:
    case = synthetic_case()
    section = "{setup_error: 10 mm, structures: [Organ], optimize: true}"
    program = compile_protocol(with_optimization(_protocol(section))[0], case)
    (note,) = [note for note in program.notes if "where the case computes no dose" in note]
    assert note.startswith("Organ: ") and "in Organ (x +10 mm)" in note and "Organ (x -10 mm)" not in note


def test_a_structure_defined_as_part_of_a_robust_one_is_robust_and_one_around_it_is_not() -> None:
    """So that pasting `specc compile --explain` (its coverage region written out) keeps the plan's robust terms."""
    written = _protocol()
    parts = {
        "Eval": StructureSpec(role="other", expression="crop(Target - Organ, Body)"),
        "Rim": StructureSpec(role="other", expression="ring(Target, 5mm, 20mm)"),
        "EvalInner": StructureSpec(role="other", expression="shrink(Eval, 2mm)"),
    }
    assert robust_structures(written.model_copy(update={"structures": {**written.structures, **parts}})) == {
        "Target", "Eval", "EvalInner"
    }


def test_rotation_scenarios_are_optimized_about_the_beams_isocentre_and_hold_the_hard_limit() -> None:
    """`rotation_error` with `optimize: true`: copies named "Target (about z +10 deg)", rows turned about the
    isocentre the check turns about, and the hard minimum met in every turned position."""
    from specc.case.shifts import beams_isocentre

    case = synthetic_case()
    section = "{rotation_error: [0 deg, 0 deg, 10 deg], structures: [Target, Organ], optimize: true}"
    protocol = _protocol(section)
    robust, _ = with_optimization(protocol)
    names = [term.structure for term in robust.optimization.terms if term.kind == "min_dose"]
    assert names == ["Target", "Target (about z +10 deg)", "Target (about z -10 deg)"]
    program = compile_protocol(robust, case)
    entries = program.selection.structures["Target (about z +10 deg)"]
    centre = beams_isocentre(case.beams)
    turned = Displacement(rotation_deg=(0.0, 0.0, 10.0), centre_mm=centre)
    expected = displaced_influences(case, case.structures["Target"].mask, [turned])[0]
    assert (program.influence[entries.entries] != expected).nnz == 0
    # The organ sits 25 mm off the isocentre: a turn moves it, and its overdose term is held there too.
    assert "Organ (about z -10 deg)" in program.selection.structures
    solved = compile_for_plan(protocol, case).solve().result
    dose = case.dose_on_grid(solved.fluence, 30)
    for angle in (10.0, -10.0):
        moved = Displacement(rotation_deg=(0.0, 0.0, angle), centre_mm=centre)
        assert displaced_dose(dose, case.structures["Target"].mask, case.grid, moved).min() >= 55.0 * (1 - 1e-3)


def test_rotation_scenarios_need_one_isocentre() -> None:
    import dataclasses

    case = synthetic_case()
    beams = [dataclasses.replace(beam, isocenter_mm=(float(beam.id), 0.0, 0.0)) for beam in case.beams]
    split = dataclasses.replace(case, beams=beams)
    robust, _ = with_optimization(_protocol("{rotation_error: 5 deg, structures: [Target], optimize: true}"))
    with pytest.raises(CompileError, match=r"Target \(about x \+5 deg\): a rotation scenario turns about the beams' isocentre"):
        compile_protocol(robust, split)


RANDOM = "{setup_error: 5 mm, random_error: 5 mm, structures: [Target], optimize: true}"


def test_with_random_errors_every_scenario_is_of_the_blurred_dose_and_the_blur_alone_is_one_more() -> None:
    robust, _ = with_optimization(_protocol(RANDOM))
    underdose = [term for term in robust.optimization.terms if term.kind == "quadratic_underdose"]
    assert [term.structure for term in underdose] == [
        "Target", "Target (random 5 mm SD)", *(f"Target ({axis} {sign}5 mm; random 5 mm SD)" for axis in "xyz" for sign in "+-")
    ]
    assert [term.weight for term in underdose] == pytest.approx([70.0 / 8] * 8)
    scenarios = robust.optimization.scenarios
    assert {scenario.random_error_mm for scenario in scenarios.values()} == {(5.0, 5.0, 5.0)}
    assert [scenario.offset_mm for scenario in scenarios.values()] == [(0.0, 0.0, 0.0), *OFFSETS]
    alone, _ = with_optimization(_protocol("{random_error: [3 mm, 3 mm, 0 mm], structures: [Target], optimize: true}"))
    assert [term.structure for term in alone.optimization.terms if term.kind == "min_dose"] == [
        "Target", "Target (random 3/3/0 mm SD)"
    ]


def test_a_scenario_of_random_errors_enters_the_program_as_its_blurred_rows() -> None:
    case = synthetic_case()
    program = compile_protocol(with_optimization(_protocol(RANDOM))[0], case)
    target = case.structures["Target"].mask
    entries = program.selection.structures["Target (z -5 mm; random 5 mm SD)"]
    expected = displaced_influences(case, target, [Displacement(offset_mm=(0.0, 0.0, -5.0))], (5.0, 5.0, 5.0))[0]
    assert (program.influence[entries.entries] != expected).nnz == 0
    assert any("held in 8 setup-error scenarios (nominal, then the dose blurred by random errors (random 5 mm SD) "
               "alone and each displaced one of it" in note for note in program.notes)


def _worst_blurred_minimum(case, fluence: np.ndarray, offsets) -> float:
    """The target's lowest dose over `offsets` of the dose blurred by 5 mm random errors, as the check measures it."""
    blurred = blurred_dose(case.dose_on_grid(fluence, 30), case.grid, (5.0, 5.0, 5.0))
    target = case.structures["Target"].mask
    return min(float(displaced_dose(blurred, target, case.grid, Displacement(offset_mm=offset)).min()) for offset in offsets)


def test_a_hard_limit_holds_under_random_errors_only_when_they_are_optimized() -> None:
    """The systematic scenarios alone leave the blurred dose's edge below the hard minimum; optimizing the
    random errors too holds it in every scenario the check measures."""
    case = synthetic_case()
    systematic = compile_for_plan(_protocol(), case).solve().result
    robust = compile_for_plan(_protocol(RANDOM), case).solve().result
    assert systematic.converged and robust.converged
    scenarios = [(0.0, 0.0, 0.0), *OFFSETS]
    assert _worst_blurred_minimum(case, systematic.fluence, scenarios) < 55.0 * (1 - 1e-2)
    assert _worst_blurred_minimum(case, robust.fluence, scenarios) >= 55.0 * (1 - 1e-3)
    planned = case.dose_on_grid(robust.fluence, 30)[case.structures["Target"].mask]
    assert planned.min() >= 55.0 * (1 - 1e-3)  # and in the nominal scenario, the planned dose itself


def test_the_fast_path_and_the_reference_solver_give_the_same_plan_under_random_errors() -> None:
    case = synthetic_case()
    protocol = _protocol(RANDOM, terms=[term.replace(", priority: 2", "") for term in TERMS])
    fast = compile_for_plan(protocol, case).solve().result
    reference = compile_for_plan(protocol, case, solver="CLARABEL").solve().result
    assert fast.solver == "SPECC-LBFGS" and reference.solver == "CLARABEL"
    assert fast.objective == pytest.approx(reference.objective, rel=1e-3)


def test_a_plan_optimized_under_random_errors_reports_each_copy_on_the_blurred_dose(tmp_path: Path) -> None:
    case = synthetic_case()
    outcome = plan(_protocol(RANDOM), case, tmp_path)
    assert outcome.succeeded
    record = json.loads((tmp_path / "plan.json").read_text())
    terms = {term["label"]: term for term in record["solver"]["terms"] if term["kind"] == "min_dose"}
    copy = terms["min_dose Target (y +5 mm; random 5 mm SD) >= 55 Gy"]
    assert copy["scenario_mm"] == [0.0, 5.0, 0.0] and copy["scenario_random_error_mm"] == [5.0, 5.0, 5.0]
    assert terms["min_dose Target >= 55 Gy"]["scenario_random_error_mm"] is None
    dose = read_result(tmp_path / "result.h5").dose_gy
    target = case.structures["Target"].mask
    blurred = blurred_dose(dose, case.grid, (5.0, 5.0, 5.0))
    assert copy["value"] == pytest.approx(  # result.h5 holds the dose in float32
        float(displaced_dose(blurred, target, case.grid, Displacement(offset_mm=(0.0, 5.0, 0.0))).min()), rel=1e-6
    )
    # The check measures the scenarios the optimization held (the nominal column is the planned dose).
    robustness = record["robustness"]
    assert robustness["optimized"] is True and robustness["scenario_labels"][0] == "random only"
    assert len(robustness["scenario_labels"]) == 7 and len(terms) == 8
    html = (tmp_path / "report.html").read_text()
    assert html.count('class="scenario-copy"') == 3 * 7


WORST = "{setup_error: 5 mm, structures: [Target], optimize: true, objective: worst_case}"


def test_worst_case_holds_each_quadratic_penalty_at_its_worst_scenario_and_averages_the_rest() -> None:
    terms = [*TERMS[:3], "{kind: linear_overdose, structure: Target, dose: 63 Gy, weight: 7}"]
    robust, priorities = with_optimization(_protocol(WORST, terms=terms))
    kinds = [term.kind for term in robust.optimization.terms]
    assert kinds == ["min_dose"] * 7 + ["worst_case", "worst_case"] + ["linear_overdose"] * 7
    underdose = robust.optimization.terms[7]
    assert [term.structure for term in underdose.scenarios] == [
        "Target", *(f"Target ({axis} {sign}5 mm)" for axis in "xyz" for sign in "+-")
    ]
    assert {term.weight for term in underdose.scenarios} == {70.0} and underdose.weight == 70.0  # whole weight
    assert underdose.priority == 2 and priorities[7] == 2 and underdose.source == underdose.scenarios[0].source
    assert [term.weight for term in robust.optimization.terms[9:]] == pytest.approx([1.0] * 7)  # averaged
    with pytest.raises(Exception, match="needs optimize: true"):
        _protocol("{setup_error: 5 mm, structures: [Target], objective: worst_case}")


def test_a_worst_case_plan_lowers_the_worst_scenarios_penalty_and_reports_that_scenario(tmp_path: Path) -> None:
    """The minimax plan minimizes the worst scenarios' penalties plus the other terms, so that objective is no
    higher at it than at the averaged plan (every voxel is in the program here: nothing sampled); the fast path
    hands the program to CLARABEL, and the report's value is the worst scenario's, named."""
    from specc.evaluate.context import PlanDoseContext
    from specc.terms.worst_case import _penalty

    case = synthetic_case()
    terms = [term.replace(", priority: 2", "") for term in TERMS]
    worst_case = with_optimization(_protocol(WORST, terms=terms))[0]
    worst_terms = [term for term in worst_case.optimization.terms if term.kind == "worst_case"]
    assert {term.structures()[0] for term in worst_case.optimization.terms if term.kind == "quadratic_overdose"} == {
        "Organ", "Body"}  # the terms beside the minimax ones: all penalties, so the objective is their sum
    plans = {name: compile_for_plan(_protocol(section, terms=terms), case).solve().result
             for name, section in (("average", SECTION), ("worst_case", WORST))}
    assert plans["worst_case"].solver == "CLARABEL" and "no smooth form" in plans["worst_case"].message
    masks = {name: structure.mask for name, structure in case.structures.items()}

    def worst_objective(fluence: np.ndarray) -> float:
        context = PlanDoseContext(case.dose_on_grid(fluence, 30), masks, case.voxel_volume_cc, 30, fluence,
                                  case.beamlets, case.grid, worst_case.optimization.scenarios)
        others = [term for term in worst_case.optimization.terms if term.kind == "quadratic_overdose"]
        return sum(max(term.penalties(context)) for term in worst_terms) + sum(_penalty(term, context) for term in others)

    assert worst_objective(plans["worst_case"].fluence) < worst_objective(plans["average"].fluence)

    outcome = plan(_protocol(WORST, terms=terms), case, tmp_path)
    assert outcome.succeeded
    record = json.loads((tmp_path / "plan.json").read_text())
    (underdose,) = [term for term in record["solver"]["terms"] if term["label"].startswith("worst case of quadratic_under")]
    assert underdose["label"].endswith("over 7 scenarios") and "worst of 7 scenarios: Target" in underdose["detail"]
    assert underdose["objective_contribution"] == pytest.approx(
        float(underdose["detail"].split("(penalty ")[1].split(")")[0]), rel=1e-3)
    assert record["robustness"]["objective"] == "worst_case"
    from specc.cli.plan import _how_robust
    from specc.evaluate.record import RobustnessRecord

    assert _how_robust(RobustnessRecord.model_validate(record["robustness"])) == "optimized robustly, worst case"
    assert "quadratic and uniform-dose penalties at their worst scenario (minimax)" in (tmp_path / "report.html").read_text()


def test_a_worst_case_over_a_structure_that_would_be_sampled_sees_every_voxel_and_goes_to_clarabel() -> None:
    """A robust organ under `sample_voxels`: the worst case compares the nominal copy with displaced ones on every
    voxel, so the nominal is not sampled either (a sample runs low against them; sampling it also crashed the sample
    check, a review found); and the fast path, with no form for the maximum, is not planned for: CLARABEL's sample."""
    from specc.solve.clinical import fast_path_alone

    section = "{setup_error: 5 mm, structures: [Target, Organ], optimize: true, objective: worst_case}"
    written = protocol(GOALS, terms=TERMS, robustness=section, solver="{sample_voxels: 10}")
    case = synthetic_case()
    compiled = compile_for_plan(written, case)
    assert not compiled.program.selection.structures["Organ"].sampled
    assert not fast_path_alone(compiled.protocol, compiled.settings, compiled.goal_priorities)
    result = compiled.solve().result
    assert result.converged and result.solver == "CLARABEL"
