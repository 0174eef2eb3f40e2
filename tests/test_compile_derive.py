"""Optimization derived from the prescription and goals (specc.compile.derive)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from specc.compile import compile_protocol
from specc.compile.derive import derive_optimization, explain_yaml, goal_weight, with_optimization
from specc.errors import CompileError
from specc.protocol import ProtocolError, load_protocol, parse_protocol_text
from specc.terms import DVH, MaxDose, MeanDose, QuadraticOverdose, QuadraticUnderdose
from tests.optimizer_fixtures import c_shape, protocol_text

# Judges the PTV's coverage: planning from goals refuses a dose level whose target has none. A minimum adds a
# min_dose, which none of the tests below counts among the kinds they pick.
PTV_GOAL = '  PTV:\n    - "Min >= 30 Gy"\n'

GOALS = """goals:
  {target}:
    - "D95% >= 50 Gy"
    - "D10% <= 55 Gy (priority 2)"
  {organ}:
    - "D10% <= 10 Gy (variation 25 Gy)"
    - "Max <= 30 Gy (priority 3)"
    - "Mean <= 15 Gy"
"""


def _derived(target: str = "PTV", organ: str = "Core"):
    protocol = parse_protocol_text(protocol_text(GOALS.format(target=target, organ=organ), target, organ), "p.yaml")
    return protocol, derive_optimization(protocol)


def test_targets_get_coverage_hot_spot_and_a_fall_off_shell_created_by_compile() -> None:
    protocol, derived = _derived()
    kinds = [(type(term), term.structure) for term in derived.optimization.terms[:3]]
    covered, shell = derived.structures
    assert kinds == [(QuadraticUnderdose, covered), (QuadraticOverdose, "PTV"), (QuadraticOverdose, shell)]
    assert str(derived.structures[covered].expression) == "PTV - Core"  # Core's goals cap it below 50 Gy
    assert str(derived.structures[shell].expression) == "ring(PTV, 5mm, 30mm)"
    assert shell not in protocol.structures  # the protocol is not edited
    assert derived.optimization.terms[2].dose.gy == pytest.approx(25.0)  # half the prescription
    # read from a file, the dose-level terms point at the prescription line
    from_file = derive_optimization(load_protocol("protocols/tg119/c-shape-goals.yaml"))
    level_line = "    - {target: PTV, dose: 50 Gy}"
    lines = open("protocols/tg119/c-shape-goals.yaml", encoding="utf-8").read().splitlines()
    assert from_file.optimization.terms[0].source.line == lines.index(level_line) + 1


def test_goals_become_constraints_or_penalties_by_priority() -> None:
    _, derived = _derived()
    by_line = {}
    for index, term in enumerate(derived.optimization.terms[3:], start=3):
        by_line.setdefault(term.source.line, []).append((term, derived.goal_priorities.get(index)))
    (coverage, none), = by_line[13]  # D95% >= 50 Gy, priority 1: hard, aiming 0.1% inside the goal
    assert isinstance(coverage, DVH) and coverage.hard and coverage.bound == "lower" and none is None
    assert coverage.priority is None  # hard in every step
    assert coverage.dose.gy == pytest.approx(50.05) and coverage.volume.value == 95
    (hot, priority), = by_line[14]  # priority 2: a penalty ten times lighter than priority 1
    assert not hot.hard and hot.weight == goal_weight(2) == goal_weight(1) / 10 and priority == hot.priority == 2
    (hard, _), (soft, soft_priority) = by_line[16]  # variation: hard at 25 Gy, penalty towards 10 Gy
    assert hard.hard and hard.dose.gy == pytest.approx(24.975)
    assert not soft.hard and soft.dose.gy == pytest.approx(9.99) and soft_priority == soft.priority == 1
    (maximum, max_priority), = by_line[17]
    assert isinstance(maximum, MaxDose) and maximum.weight == goal_weight(3) and max_priority == 3
    (mean, _), = by_line[18]
    assert isinstance(mean, MeanDose) and mean.hard and mean.max.gy == pytest.approx(14.985)


def test_derivation_follows_roles_and_prescription_not_structure_names() -> None:
    _, plain = _derived()
    _, renamed = _derived("Tumour", "Spine")
    expected = [term.label().replace("PTV", "Tumour").replace("Core", "Spine") for term in plain.optimization.terms]
    assert [term.label() for term in renamed.optimization.terms] == expected
    assert set(renamed.structures) == {"Coverage_Tumour", "Falloff_Tumour"}


def test_explain_yaml_merged_into_the_protocol_validates_and_compiles_to_the_same_terms() -> None:
    text = protocol_text(GOALS.format(target="PTV", organ="Core"))
    protocol = parse_protocol_text(text, "p.yaml")
    derived = derive_optimization(protocol)
    explained = yaml.safe_load(explain_yaml(protocol, derived))
    document = yaml.safe_load(text)
    document["structures"].update(explained["structures"])
    document["optimization"] = explained["optimization"]
    pasted = parse_protocol_text(yaml.safe_dump(document, sort_keys=False), "pasted.yaml")
    assert [t.label() for t in pasted.optimization.terms] == [t.label() for t in derived.optimization.terms]
    assert [t.priority for t in pasted.optimization.terms] == [t.priority for t in derived.optimization.terms]
    assert with_optimization(pasted)[1] == derived.goal_priorities == {4: 2, 6: 1, 7: 3}
    compiled = compile_protocol(pasted, c_shape())
    assert len(compiled.hard_terms()) == 3


def test_explain_gives_each_term_its_priority_and_the_step_the_solver_takes_it_in() -> None:
    """Audit h6 F7: the derivation summary named no priority, so only the weights hinted at the steps."""
    from specc.solve.priorities import group_steps

    protocol, derived = _derived()
    text = explain_yaml(protocol, derived)
    assert ("# Solved in steps: 1. priority 1; 2. terms without a priority (coverage, hot spots, fall-off); "
            "3. priority 2; 4. priority 3; hard limits hold in every step.") in text
    summary = [line for line in text.splitlines() if "  <-  " in line]
    terms = derived.optimization.terms
    assert len(summary) == len(terms)
    shown = {term.label(): line.rsplit("  [", 1)[1].rstrip("]") for term, line in zip(terms, summary)}
    assert shown[terms[1].label()] == "no priority, step 2"  # the hot-spot penalty of the dose level
    assert [shown[term.label()] for term in terms if term.source.line == 14] == ["priority 2, step 3"]
    variation = [shown[term.label()] for term in terms if term.source.line == 16]  # hard at 25 Gy, penalty to 10
    assert variation == ["hard, every step", "priority 1, step 1"]
    # the steps are the solver's, in its order (the compile stage cannot import it, so this test holds them together)
    with_objective = [index for index, term in enumerate(terms) if not term.is_constraint]
    steps = group_steps(with_objective, derived.goal_priorities)
    assert [{terms[index].priority for index in step.terms} for step in steps] == [{1}, {None}, {2}, {3}]


def test_a_hard_limit_with_a_priority_is_refused_at_its_line() -> None:
    from specc.protocol import ProtocolError

    term = "    - {kind: max_dose, structure: Core, dose: 20 Gy, priority: 2}"
    text = protocol_text(f"optimization:\n  terms:\n{term}\n")
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(text, "p.yaml")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.line == text.splitlines().index(term) + 1
    assert "a hard limit holds in every step, so it has no priority" in diagnostic.message
    soft = parse_protocol_text(text.replace("priority: 2", "hard: false, weight: 1, priority: 2"), "p.yaml")
    assert with_optimization(soft)[1] == {0: 2}


def test_a_protocol_with_an_optimization_section_is_compiled_as_written() -> None:
    protocol = load_protocol("protocols/tg119/c-shape.yaml")
    assert with_optimization(protocol) == (protocol, {})


def test_goal_only_tg119_protocol_compiles_with_its_shell() -> None:
    protocol, priorities = with_optimization(load_protocol("protocols/tg119/c-shape-goals.yaml"), c_shape())
    program = compile_protocol(protocol, c_shape())
    assert "Falloff_PTV" in program.masks and program.masks["Falloff_PTV"].any()
    assert set(priorities.values()) == {1}  # the core's penalty towards 10 Gy, beyond its variation


@pytest.mark.parametrize("goal", ['"Max >= 60 Gy"', '"Min <= 10 Gy"'])
def test_a_goal_no_convex_program_can_aim_for_is_refused_with_its_line(goal: str) -> None:
    protocol = parse_protocol_text(protocol_text(f"goals:\n  Core:\n    - {goal}\n" + PTV_GOAL), "p.yaml")
    with pytest.raises(ProtocolError, match=r"p\.yaml:13:7: goals.Core\[0\]: goal .* convex"):
        derive_optimization(protocol)


def test_a_complement_volume_in_cc_needs_the_case_volume() -> None:
    protocol = parse_protocol_text(protocol_text('goals:\n  Core:\n    - "CV20Gy >= 10 cc"\n' + PTV_GOAL), "p.yaml")
    with pytest.raises(CompileError, match="needs Core's volume"):
        derive_optimization(protocol)
    with_case, priorities = with_optimization(protocol, c_shape())  # the case gives the volume
    assert priorities == {} and with_case.optimization.terms[3].bound == "upper"
    derived = derive_optimization(protocol, {"Core": 26.0})
    limit = derived.optimization.terms[3]
    assert limit.bound == "upper" and limit.volume.value == pytest.approx(16.0) and limit.volume.unit == "cc"


def test_specc_compile_explain_prints_yaml_that_validates_in_the_protocol() -> None:
    from typer.testing import CliRunner

    from specc.cli import app
    from specc.cli.plan import compile_command  # noqa: F401  (registers `compile`)

    path = "protocols/tg119/c-shape-goals.yaml"
    result = CliRunner().invoke(app, ["compile", path, "--phantom", "c-shape", "--grid", "10", "--beams", "5", "--explain"])
    assert result.exit_code == 0, result.output
    explained = yaml.safe_load(result.output)
    document = yaml.safe_load(open(path, encoding="utf-8"))
    document["structures"].update(explained["structures"])
    document["optimization"] = explained["optimization"]
    pasted = parse_protocol_text(yaml.safe_dump(document, sort_keys=False), "pasted.yaml")
    derived = derive_optimization(load_protocol(path))
    assert [t.label() for t in pasted.optimization.terms] == [t.label() for t in derived.optimization.terms]


@pytest.mark.parametrize(
    ("organ_goal", "covered"),
    [
        ('"D10% <= 45 Gy (priority 2)"', "PTV - Core"),  # caps voxels below the prescription
        ('"V40Gy <= 15%"', "PTV - Core"),  # the dose of a V goal is its cap
        ('"D2cc <= 45 Gy"', "PTV - Core"),
        ('"V40Gy[cc] <= 1"', "PTV - Core"),
        ('"Max <= 49 Gy"', "PTV - Core"),
        # a volume budget (lung V20Gy <= 35%) caps no single voxel: the PTV's voxels in the organ may share it
        ('"V40Gy <= 35%"', None),
        ('"D20% <= 45 Gy"', None),
        ('"V40Gy[cc] <= 5"', None),
        ('"Max <= 55 Gy"', None),  # above the prescription: no conflict
        ('"Mean <= 20 Gy"', None),  # a mean caps no single voxel
        ('"D10% >= 5 Gy"', None),  # a lower goal caps nothing
    ],
)
def test_coverage_is_penalized_on_the_target_less_the_organs_capped_below_its_dose(
    organ_goal: str, covered: str | None
) -> None:
    goals = f'goals:\n  PTV:\n    - "D95% >= 50 Gy"\n  Core:\n    - {organ_goal}\n'
    derived = derive_optimization(parse_protocol_text(protocol_text(goals), "p.yaml"))
    coverage = derived.optimization.terms[0]
    assert isinstance(coverage, QuadraticUnderdose)
    if covered is None:
        assert coverage.structure == "PTV" and set(derived.structures) == {"Falloff_PTV"}
    else:
        assert str(derived.structures[coverage.structure].expression) == covered
        assert any(coverage.structure in note for note in derived.notes)
    # the target's own goals still count every voxel of it
    assert {term.structure for term in derived.optimization.terms if isinstance(term, DVH) and term.hard} >= {"PTV"}


def test_an_upper_d_goal_leaves_fewer_voxels_above_than_its_volume() -> None:
    """D50% <= 20 Gy of 200 voxels is the 100th hottest: at most 99 may exceed, not 100."""
    goals = 'goals:\n  Core:\n    - "D50% <= 20 Gy (priority 2)"\n    - "V20Gy <= 50%"\n'
    derived = derive_optimization(parse_protocol_text(protocol_text(goals + PTV_GOAL), "p.yaml"))
    d_form, v_form = derived.optimization.terms[3:5]
    assert d_form.volume.value == pytest.approx(49.95) and d_form.volume.value * 2 < 100  # 200 voxels: 99 above
    assert v_form.volume.value == 50  # a V goal counts voxels above exactly as the limit does


def test_solver_options_without_terms_keep_the_derived_optimization_and_apply() -> None:
    text = """
specc: 1
name: goals with solver options
site: phantom
version: 1.0.0
structures:
  PTV: {role: target}
  Core: {role: oar}
  Body: {role: other}
prescription:
  fractions: 25
  levels: [{target: PTV, dose: 50 Gy}]
goals:
  PTV: ["D95% >= 50 Gy"]
  Core: ["D10% <= 25 Gy (priority 2)"]
optimization:
  solver: {slip_percent: 5, coverage_slip_gy: 0.5}
"""
    from specc.compile.derive import with_optimization
    from specc.protocol import parse_protocol_text

    written = parse_protocol_text(text, "solver-only.yaml")
    assert written.optimization is not None and written.optimization.terms == []
    compiled, priorities = with_optimization(written)
    assert compiled.optimization is not None and compiled.optimization.terms
    assert compiled.optimization.solver.slip_percent == 5
    assert compiled.optimization.solver.coverage_slip_gy == 0.5
    assert 2 in priorities.values()


SHIPPED = sorted(path for path in (Path(__file__).parent.parent / "protocols").rglob("*.yaml")
                 if "template: true" not in path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", SHIPPED, ids=[path.name for path in SHIPPED])
def test_every_shipped_protocol_has_an_optimization_to_compile(path: Path) -> None:
    """Written or derived from its goals (the goals-only examples: no goal that no convex program can aim for). A
    limit by a structure's volume (lung SBRT's spillage table by PTV volume) is read on a case: here at 22 cc."""
    loaded = load_protocol(path)
    tabled = {goal.by_volume.structure: 22.0 for goal in loaded.goals if goal.by_volume is not None}
    protocol, priorities = with_optimization(loaded.with_limits_at(tabled, {}) if tabled else loaded)
    assert protocol.optimization is not None and protocol.optimization.terms
    named = set(protocol.structures) | set(protocol.optimization.scenarios)  # robust copies name displaced ones
    assert all(set(term.structures()) <= named for term in protocol.optimization.terms)


def test_plan_quality_index_goals_are_measured_not_optimized() -> None:
    """A CI or GI goal has no convex term: derivation leaves it to the coverage and fall-off terms, and says so."""
    body = GOALS.format(target="PTV", organ="Core").replace('    - "D95% >= 50 Gy"\n', '    - "D95% >= 50 Gy"\n    - "CI <= 1.2"\n    - "GI <= 4 (priority 2)"\n')
    protocol = parse_protocol_text(protocol_text(body), "p.yaml")
    derived = derive_optimization(protocol)
    _, plain = _derived()
    assert [term.label() for term in derived.optimization.terms] == [term.label() for term in plain.optimization.terms]
    noted = [note for note in derived.notes if "plan-quality index is measured on the plan, not optimized" in note]
    assert [note.split(" (")[0] for note in noted] == ["PTV CI <= 1.2", "PTV GI <= 4"]


def _isoeffective(goals: str, prior: str = ""):
    text = protocol_text(goals + PTV_GOAL).replace("aliases: [Core]}", "aliases: [Core], alpha_beta: 2 Gy}")
    if prior:
        text = text.replace("  levels: [{target: PTV, dose: 50 Gy}]\n", f"  levels: [{{target: PTV, dose: 50 Gy}}]\n{prior}")
    return parse_protocol_text(text, "p.yaml")


def test_an_isoeffective_goal_aims_at_its_physical_equivalent_on_the_plans_fractions() -> None:
    """25 fractions, alpha/beta 2 Gy: E Gy EQD2 is the physical D with D (1 + D / 50) / 2 = E, so
    D = 25 (sqrt(1 + 4 E / 25) - 1): 43.01 Gy for 40 Gy EQD2, 35.21 Gy for 30 (fractions under 2 Gy count less)."""
    protocol = _isoeffective('goals:\n  Core:\n    - "Max <= 40 Gy (EQD2)"\n'
                             '    - "V30Gy[%] <= 10 (EQD2, priority 2)"\n    - "D5% <= 30 Gy (EQD2, variation 32 Gy)"\n')
    derived = derive_optimization(protocol)
    maximum = next(term for term in derived.optimization.terms if isinstance(term, MaxDose))
    def physical(eqd2: float) -> float:
        return 25 * ((1 + 4 * eqd2 / 25) ** 0.5 - 1)

    assert maximum.hard and maximum.dose.gy == pytest.approx(physical(40.0) * (1 - 1e-3), abs=1e-4)
    physical_30 = physical(30.0)
    volume, hard, soft = [term for term in derived.optimization.terms if isinstance(term, DVH)]
    assert volume.dose.gy == pytest.approx(physical_30 * (1 - 1e-3), abs=1e-4) and not volume.hard
    assert hard.hard and hard.dose.gy == pytest.approx(physical(32.0) * (1 - 1e-3), abs=1e-4)
    assert not soft.hard and soft.dose.gy == pytest.approx(physical_30 * (1 - 1e-3), abs=1e-4)
    assert any("aimed at its physical equivalent Max <= 43.0074 Gy in 25 fractions" in note for note in derived.notes)


@pytest.mark.parametrize("goal, prior, message", [
    ("Mean >= 20 Gy (EQD2)", "", "a lower bound on the mean of an isoeffective dose"),
    ("Max <= 40 Gy (EQD2)", "  prior: {description: earlier, fractions: 20}\n", "changes its physical equivalent"),
])
def test_an_isoeffective_goal_no_derived_term_measures_is_refused_at_its_line(goal: str, prior: str, message: str) -> None:
    protocol = _isoeffective(f'goals:\n  Core:\n    - "{goal}"\n', prior)
    with pytest.raises(ProtocolError, match=message) as raised:
        derive_optimization(protocol)
    assert "p.yaml:" in str(raised.value) and "write an `optimization:` section by hand" in str(raised.value)


def test_a_mean_in_eqd2_becomes_a_mean_dose_in_eqd2_with_the_structures_ratio() -> None:
    protocol = _isoeffective('goals:\n  Core:\n    - "Mean <= 20 Gy (EQD2)"\n    - "Mean <= 30 Gy (BED, priority 2)"\n')
    hard, soft = [term for term in derive_optimization(protocol).optimization.terms if isinstance(term, MeanDose)]
    assert (hard.hard, hard.quantity, hard.alpha_beta.gy) == (True, "EQD2", 2.0)
    assert hard.max.gy == pytest.approx(20.0 * (1 - 1e-3))
    assert (soft.hard, soft.quantity, soft.priority) == (False, "BED", 2)


def test_dose_level_terms_point_at_the_level_only_in_the_bytes_the_protocol_was_read_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Coverage, hot-spot and fall-off terms point at their dose level's line; a protocol parsed from text
    named like a file on disk gets its own text's line, never that file's (audit a3 F7: the text's line 17 was shown
    as 12): the loader records it as it reads the text."""
    text = protocol_text("goals:\n" + PTV_GOAL)
    monkeypatch.chdir(tmp_path)
    Path("p.yaml").write_text(text, encoding="utf-8")
    level_line = text.splitlines().index(next(line for line in text.splitlines() if "target: PTV" in line)) + 1

    def level_lines(protocol) -> set[int]:
        terms = derive_optimization(protocol).optimization.terms
        return {term.source.line for term in terms if term.kind in ("quadratic_underdose", "quadratic_overdose")}

    assert level_lines(load_protocol("p.yaml")) == {level_line}
    assert level_lines(parse_protocol_text(text, "p.yaml")) == {level_line}  # the same bytes as the file
    shifted = parse_protocol_text("# a comment\n" * 5 + text, "p.yaml")
    assert level_lines(shifted) == {level_line + 5}  # its own line, not the file's
    assert [goal.source.line for goal in shifted.goals] == [goal.source.line + 5 for goal in load_protocol("p.yaml").goals]


def test_explain_marks_each_term_from_a_table_goal_as_this_case_only_and_warns() -> None:
    """Audit s18/b2 F2: --explain gave a table goal's term at one case's volume as a plain fixed term, ready to paste;
    pasted, every other case of a cohort was optimized to that case's limit without a word."""
    table = ('    - metric: Max\n      "<=": {by_volume_of: PTV, volume_cc: [1.8, 22, 163], limit: [50%, 54%, 77%]}\n'
             '      priority: 2\n')
    body = GOALS.format(target="PTV", organ="Core").replace('    - "Max <= 30 Gy (priority 3)"\n', table)
    protocol = parse_protocol_text(protocol_text(body), "p.yaml")
    goal = next(goal for goal in protocol.goals if goal.per_case)
    derived = derive_optimization(protocol, {"PTV": 60.0, "Core": 20.0})
    (index,) = derived.per_case  # the table goal's one max_dose term; no other term is marked
    term = derived.optimization.terms[index]
    assert isinstance(term, MaxDose) and term.source == goal.source
    text = explain_yaml(protocol, derived)
    lines = text.splitlines()
    warning = " ".join(line.lstrip("# ") for line in lines[:lines.index(next(
        line for line in lines if line.startswith("# Optimization derived")))])
    assert warning.startswith("WARNING: 1 term below (marked THIS CASE ONLY) comes from goals whose limit is a table "
                              "by a structure's volume")
    marked = [number for number, line in enumerate(lines) if "# THIS CASE ONLY" in line]
    assert len(marked) == 1
    comment, pasted_term = lines[marked[0]], lines[marked[0] + 1]
    assert f'Core "{goal.text}" ({goal.source})' in comment
    assert "from the table by PTV volume at 60.00 cc, between the 22 and 163 cc rows" in comment
    assert yaml.safe_load(pasted_term)[0]["kind"] == "max_dose"
    # the YAML is the same as before the marks: pasted, the terms are those derived
    explained = yaml.safe_load(text)
    assert len(explained["optimization"]["terms"]) == len(derived.optimization.terms)
    assert explained["optimization"]["terms"][index]["structure"] == "Core"
    # a protocol without a table goal gets no mark and no warning
    plain_protocol, plain = _derived()
    assert "THIS CASE ONLY" not in explain_yaml(plain_protocol, plain) and "WARNING" not in explain_yaml(
        plain_protocol, plain)
