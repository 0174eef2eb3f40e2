"""matRad cst objectives -> specc protocol: each kind, both of matRad's formats, v5 and v7.3, the
untranslatable listed, clear errors, matRad's overlap priorities as derived structures, and the
protocol planning the case of the same workspace."""

from __future__ import annotations

import numpy as np
import pytest
from interop_fixtures import matrad_workspace, save_matrad_v5, save_matrad_v73
from typer.testing import CliRunner

import specc
import specc.cli.io  # noqa: F401  (registers the commands)
from specc.case.importers.matrad import import_matrad
from specc.case.importers.matrad_cst_functions import ObjectivesError, cst_functions
from specc.case.importers.matrad_objective_kinds import Untranslatable, translate
from specc.case.importers.matrad_objectives import _quoted, convert_matrad_objectives
from specc.cli.app import app
from specc.compile import resolve_structures
from specc.protocol import parse_protocol_text
from specc.protocol.units import Dose

SAVERS = {"v5": save_matrad_v5, "v7.3": save_matrad_v73}

# What the fixture's objectives become from either format (tests/interop_fixtures.py): Body's on Body_opt
# (Body - PTV), as the PTV's higher overlap priority leaves matRad's Body functions, goals included. The old
# format's DVH, mean and EUD objectives weigh 1 whatever penalty they store (`_old_weights`).
EXPECTED_TERMS = [
    {"kind": "uniform_dose", "structure": "PTV", "dose": "60 Gy", "weight": 800.0},
    {"kind": "dvh", "structure": "PTV", "dose": "57 Gy", "volume": "95%", "bound": "lower", "hard": False, "weight": 100.0},
    {"kind": "geud", "structure": "PTV", "a": -10.0, "min": "60 Gy", "hard": False, "weight": 10.0},
    {"kind": "min_dose", "structure": "PTV", "dose": "25.025 Gy"},
    {"kind": "max_dose", "structure": "PTV", "dose": "79.92 Gy"},
    {"kind": "quadratic_overdose", "structure": "Body_opt", "dose": "30 Gy", "weight": 300.0},
    {"kind": "dvh", "structure": "Body_opt", "dose": "40 Gy", "volume": "30%", "bound": "upper", "hard": False, "weight": 50.0},
    {"kind": "linear_overdose", "structure": "Body_opt", "dose": "0 Gy", "weight": 1.0},
    {"kind": "geud", "structure": "Body_opt", "a": 3.5, "max": "0 Gy", "hard": False, "weight": 1.0},
    {"kind": "mean_dose", "structure": "Body_opt", "max": "49.95 Gy"},
    {"kind": "dvh", "structure": "Body_opt", "dose": "59.94 Gy", "volume": "40%", "bound": "upper"},
]
EXPECTED_GOALS = {
    "PTV": ["D95% >= 57 Gy (priority 2)", "Min >= 25 Gy", "Max <= 80 Gy"],
    "Body_opt": ["V40Gy[%] <= 30 (priority 2)", "Mean <= 50 Gy", "V60Gy[%] <= 40"],
}
UNTRANSLATED = {
    "current": [
        "Couch: cst type IGNORED",
        "cst{2,6}{1} (Body, matRad_SquaredOverdosing): robustness 'STOCH'",
        "cst{2,6}{7} (Body, matRad_MinMaxEUD): EUD <= 40 Gy with exponent 0.5 < 1 is not convex",
        "cst{2,6}{8} (Body, matRad_SquaredOverdosingLETd): LET and dirty-dose objectives",
    ],
    "old": [
        "Couch: cst type IGNORED",
        "cst{1,6}(6) (PTV, exact DVH constraint): an exact DVH point",
        "cst{2,6}(1) (Body, square overdosing): robustness 'COWC'",
        "cst{2,6}(7) (Body, max EUD constraint): matRad cannot optimize it: its convertOldOptimizationStruct writes "
        "the exponent to S.parameters{1}",
    ],
}


def _old_weights(terms: list[dict]) -> list[dict]:
    """matRad's convertOldOptimizationStruct keeps the penalty of the squared types only: the fixture's old min DVH,
    EUD and max DVH objectives (penalties 100, 10, 50) weigh 1, matRad's class default."""
    squared = ("uniform_dose", "quadratic_overdose", "quadratic_underdose")
    return [{**term, "weight": 1.0} if "weight" in term and term["kind"] not in squared else term for term in terms]


@pytest.fixture(scope="module", params=[(form, saver) for form in ("current", "old") for saver in sorted(SAVERS)])
def translated(request, tmp_path_factory):
    form, saver = request.param
    path = SAVERS[saver](tmp_path_factory.mktemp("objectives") / "ws.mat", matrad_workspace(objectives=form))
    return form, convert_matrad_objectives(path)


def _document(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


def test_each_kind_becomes_its_specc_term_in_either_format(translated):
    form, result = translated
    expected = EXPECTED_TERMS if form == "current" else _old_weights(EXPECTED_TERMS)
    assert _document(result.yaml_text)["optimization"]["terms"] == expected
    assert result.terms == len(EXPECTED_TERMS)


def test_old_dvh_mean_and_eud_objectives_weigh_what_matrad_gives_them(translated):
    form, result = translated
    comments = " ".join(line[2:].strip() for line in result.yaml_text.splitlines() if line.startswith("#"))
    if form == "current":
        assert "convertOldOptimizationStruct" not in comments
        return
    assert "which copies the penalty only for the squared types" in comments
    assert "ignores the stored one" in comments
    for line in ("cst{1,6}(2) (PTV, min DVH objective): the stored penalty 100 is not read; weight 1",
                 "cst{1,6}(3) (PTV, EUD): the stored penalty 10 is not read; weight 1",
                 "cst{2,6}(2) (Body, max DVH objective): the stored penalty 50 is not read; weight 1"):
        assert line in comments
    assert "(Body, mean)" not in comments  # it stores 1, the weight matRad gives it


def test_an_old_function_reads_as_matrad_converts_it():
    dvh = _functions({"type": "max DVH objective", "dose": 30.0, "volume": 20.0, "penalty": 50.0})[0]
    translation = translate(dvh, "ws.mat")
    assert translation.terms[0]["weight"] == 1.0 and "old_penalty" in translation.notes
    assert translation.ignored_penalty == (
        "cst{1,6}{1} (Organ, max DVH objective): the stored penalty 50 is not read; weight 1")
    without = _functions({"type": "min DVH objective", "dose": 30.0, "volume": 95.0})[0]  # matRad needs none either
    assert translate(without, "ws.mat").terms[0]["weight"] == 1.0
    squared = translate(_functions({"type": "square overdosing", "dose": 30.0, "penalty": 50.0})[0], "ws.mat")
    assert squared.terms[0]["weight"] == 50.0 and squared.ignored_penalty is None and "old_penalty" not in squared.notes
    # matRad's conversion loses a max EUD constraint's exponent (S.parameters{1}), whatever it is
    with pytest.raises(Untranslatable, match=r"S\.parameters\{1\} \(a typo for s\).*stops the optimization"):
        translate(_functions({"type": "max EUD constraint", "dose": 30.0, "EUD": 2.0})[0], "ws.mat")


def test_dvh_and_dose_limits_are_goals_constraints_at_priority_1(translated):
    _, result = translated
    assert _document(result.yaml_text)["goals"] == EXPECTED_GOALS
    priorities = {(g.structure, str(g.metric)): g.priority for g in parse_protocol_text(result.yaml_text).goals}
    assert priorities[("PTV", "D95%")] == 2 and priorities[("Body_opt", "V60Gy[%]")] == 1


def test_prescription_from_pln_and_the_targets_own_objective(translated):
    _, result = translated
    protocol = parse_protocol_text(result.yaml_text)
    assert protocol.prescription.fractions == 30
    assert [(level.target, level.dose.gy) for level in protocol.prescription.levels] == [("PTV", 60.0)]
    assert "PTV 60 Gy: the dose of its squared deviation objective cst{1,6}" in result.yaml_text.replace("\n# ", " ")


def test_structures_keep_cst_names_roles_and_colours(translated):
    _, result = translated
    structures = parse_protocol_text(result.yaml_text).structures
    assert {name: (spec.role, spec.color) for name, spec in structures.items()} == {
        "PTV": ("target", "#ff0000"), "Body": ("oar", "#00ff00"), "Body_opt": ("other", None)}
    assert str(structures["Body_opt"].expression) == "Body - PTV"


def test_untranslated_functions_are_listed_in_the_result_and_the_yaml(translated):
    form, result = translated
    assert len(result.untranslated) == len(UNTRANSLATED[form])
    for item, expected in zip(result.untranslated, UNTRANSLATED[form]):
        assert item.startswith(expected)
    comments = " ".join(line[2:].strip() for line in result.yaml_text.splitlines() if line.startswith("#"))
    assert "Not translated (review these by hand):" in comments
    for expected in UNTRANSLATED[form]:
        assert expected in comments


def test_the_comments_say_how_each_kind_differs_from_matrad(translated):
    _, result = translated
    comments = " ".join(line[2:].strip() for line in result.yaml_text.splitlines() if line.startswith("#"))
    assert "matRad's squared overdosing / underdosing / deviation exactly" in comments
    assert "dvh (soft) is not matRad's DVH objective" in comments and "(non-convex)" in comments
    assert "log-sum-exp" in comments and "linear_overdose at 0 Gy" in comments


# --- single kinds, read from an in-memory cst -------------------------------------------------------
def _functions(*structs: dict, kind: str = "OAR"):
    cell = np.empty((len(structs), 1), dtype=object)
    for index, struct in enumerate(structs):
        cell[index, 0] = struct
    cst = np.empty((1, 6), dtype=object)
    cst[0, 1], cst[0, 2], cst[0, 5] = "Organ", kind, cell
    return cst_functions(cst, 0, "Organ", "ws.mat")


def _objective(name: str, *parameters, penalty: float = 2.0) -> dict:
    cell = np.empty((1, len(parameters)), dtype=object)
    cell[0, :] = [np.array([[value]]) for value in parameters]
    return {"className": name, "parameters": cell, "penalty": penalty, "robustness": "none"}


def _terms(struct: dict) -> list[dict]:
    return translate(_functions(struct)[0], "ws.mat").terms


def test_mean_dose_objective_forms():
    linear = translate(_functions(_objective("DoseObjectives.matRad_MeanDose", 20.0, 1.0))[0], "ws.mat")
    assert linear.terms == [{"kind": "mean_dose", "structure": "Organ", "max": "20 Gy", "hard": False, "weight": 2.0}]
    assert linear.notes == ["mean_linear"]
    quadratic = translate(_functions(_objective("DoseObjectives.matRad_MeanDose", 20.0, 2.0))[0], "ws.mat")
    assert quadratic.notes == ["mean_squared"]
    assert _terms(_objective("DoseObjectives.matRad_MeanDose", 0.0))[0]["kind"] == "linear_overdose"


def test_two_sided_constraints_give_both_terms():
    assert _terms(_objective("DoseConstraints.matRad_MinMaxDVH", 20.0, 50.0, 90.0)) == [
        {"kind": "dvh", "structure": "Organ", "dose": "20.02 Gy", "volume": "50%", "bound": "lower"},
        {"kind": "dvh", "structure": "Organ", "dose": "19.98 Gy", "volume": "90%", "bound": "upper"},
    ]
    assert _terms(_objective("DoseConstraints.matRad_MinMaxEUD", 1.0, 10.0, 30.0)) == [
        {"kind": "geud", "structure": "Organ", "a": 1.0, "max": "30 Gy", "min": "10 Gy"}]
    assert _terms(_objective("DoseConstraints.matRad_MinMaxMeanDose", 5.0, np.inf)) == [
        {"kind": "mean_dose", "structure": "Organ", "min": "5.005 Gy"}]


def test_a_constraint_term_aims_inside_its_goal():
    """A max-dose constraint was a hard term at exactly its goal's dose: met within the solver's round-off
    (30.0001 Gy 'satisfied') while its goal 'Max <= 30 Gy' failed. The term aims LIMIT_TOLERANCE inside."""
    from specc.terms.base import LIMIT_TOLERANCE

    translation = translate(_functions(_objective("DoseConstraints.matRad_MinMaxDose", 2.0, 30.0))[0], "ws.mat")
    assert translation.goals == ["Min >= 2 Gy", "Max <= 30 Gy"]
    low, high = (Dose.parse(term["dose"]).gy for term in translation.terms)
    assert low == pytest.approx(2.0 * (1 + LIMIT_TOLERANCE)) and high == pytest.approx(30.0 * (1 - LIMIT_TOLERANCE))
    assert "aimed_inside" in translation.notes


def test_eud_objective_keeps_the_convex_side():
    assert _terms(_objective("DoseObjectives.matRad_EUD", 70.0, -8.0))[0]["min"] == "70 Gy"
    assert _terms(_objective("DoseObjectives.matRad_EUD", 20.0, 8.0))[0]["max"] == "20 Gy"
    with pytest.raises(Untranslatable, match="not convex"):
        _terms(_objective("DoseObjectives.matRad_EUD", 0.0, 0.5))


@pytest.mark.parametrize(
    ("struct", "reason"),
    [
        (_objective("DoseObjectives.matRad_SquaredOverdosing", 30.0, penalty=0.0), "penalty 0"),
        (_objective("DoseObjectives.matRad_SquaredUnderdosing", 0.0), "penalizes nothing"),
        (_objective("DoseObjectives.matRad_MaxDVH", 30.0, 100.0), "constrains nothing"),
        (_objective("DoseConstraints.matRad_MinMaxDose", 0.0, np.inf, 1.0), "constrains nothing"),
        (_objective("DoseConstraints.matRad_DoseConstraintFromObjective", 1.0), "has no specc equivalent"),
        ({"type": "exact DVH constraint", "dose": 30.0, "volume": 50.0}, "not convex"),
    ],
)
def test_functions_without_a_specc_equivalent_say_why(struct, reason):
    with pytest.raises(Untranslatable, match=reason):
        translate(_functions(struct)[0], "ws.mat")


@pytest.mark.parametrize(
    ("struct", "message"),
    [
        ({"parameters": np.empty((1, 0), dtype=object)}, r"ws.mat: cst\{1,6\}\{1\} \(Organ\) has neither className"),
        (_objective("DoseObjectives.matRad_SquaredOverdosing", "thirty"), r"cst\{1,6\}\{1\}\.parameters\{1\} is not a number"),
        ({**_objective("DoseObjectives.matRad_MaxDVH", 30.0)}, r"cst\{1,6\}\{1\} \(Organ, matRad_MaxDVH\) has 1 parameters"),
        ({**_objective("DoseObjectives.matRad_MaxDVH", -3.0, 20.0)}, r"parameters\{1\} is a negative dose"),
        ({"type": "min DVH objective", "dose": 30.0, "penalty": 1.0}, r"cst\{1,6\}\{1\} \(type 'min DVH objective'\) has no field 'volume'"),
        ({"type": "square overdosing", "dose": 30.0}, r"cst\{1,6\}\{1\} \(Organ, square overdosing\) is an objective without a penalty"),
        (np.zeros((1, 3)), r"cst\{1,6\}\{1\} \(Organ\) is not a struct"),
    ],
)
def test_malformed_functions_name_the_file_and_field(struct, message):
    with pytest.raises(ObjectivesError, match=message):
        for function in _functions(struct):
            translate(function, "ws.mat")


# --- whole workspaces ---------------------------------------------------------------------------------
def _save(tmp_path, workspace, saver="v5"):
    return SAVERS[saver](tmp_path / "ws.mat", workspace)


@pytest.mark.parametrize("saver", sorted(SAVERS))
def test_a_malformed_objective_in_a_file_is_an_error_naming_it(tmp_path, saver):
    workspace = matrad_workspace(objectives="current")
    workspace["cst"][1, 5][2, 0]["parameters"][0, 0] = "zero"
    with pytest.raises(ObjectivesError, match=r"ws.mat: cst\{2,6\}\{3\}\.parameters\{1\} is not a number"):
        convert_matrad_objectives(_save(tmp_path, workspace, saver))
    old = matrad_workspace(objectives="old")
    for struct in old["cst"][0, 5]:
        del struct["volume"]
    with pytest.raises(ObjectivesError, match=r"ws.mat: cst\{1,6\}\(2\) \(type 'min DVH objective'\) has no field 'volume'"):
        convert_matrad_objectives(_save(tmp_path, old, saver))


def test_fractions_are_needed_from_pln_or_the_caller(tmp_path):
    workspace = matrad_workspace(objectives="old")
    del workspace["pln"]
    path = _save(tmp_path, workspace)
    with pytest.raises(ObjectivesError, match=r"no pln.numOfFractions.*--fractions N"):
        convert_matrad_objectives(path)
    given = convert_matrad_objectives(path, fractions=20)
    assert parse_protocol_text(given.yaml_text).prescription.fractions == 20
    assert "20 fractions (given)" in given.yaml_text


def test_fractions_other_than_the_workspaces_are_refused(tmp_path):
    """matRad divided the doses by pln.numOfFractions, and `specc check` of the workspace judges its plan in
    them: another number would be neither matRad's objectives nor its plan."""
    path = _save(tmp_path, matrad_workspace(objectives="old"))  # pln.numOfFractions 30
    with pytest.raises(ObjectivesError, match=r"ws.mat: --fractions 20, but pln.numOfFractions is 30: matRad "
                                              r"divided these objectives' doses by 30.*leave --fractions out"):
        convert_matrad_objectives(path, fractions=20)
    same = convert_matrad_objectives(path, fractions=30)
    assert same.fractions == 30 and "30 fractions (pln.numOfFractions)" in same.yaml_text


def test_a_target_without_a_dose_objective_is_refused_unless_its_dose_is_given(tmp_path):
    workspace = matrad_workspace(objectives="current")
    workspace["cst"][0, 5] = workspace["cst"][0, 5][3:, :]  # the PTV's min/max dose constraint only
    path = _save(tmp_path, workspace)
    with pytest.raises(ObjectivesError, match=r"target 'PTV' has no squared deviation.*--target 'PTV=60 Gy'"):
        convert_matrad_objectives(path)
    given = convert_matrad_objectives(path, targets={"PTV": Dose(gy=66.0)})
    assert given.levels == {"PTV": Dose(gy=66.0)} and "PTV 66 Gy (given)" in given.yaml_text
    with pytest.raises(ObjectivesError, match=r"--target Body: not a TARGET structure of cst \(targets: PTV\)"):
        convert_matrad_objectives(path, targets={"Body": Dose(gy=20.0)})


def test_contradictory_constraints_are_an_error_not_a_protocol(tmp_path):
    workspace = matrad_workspace(objectives="current")
    workspace["cst"][0, 5][3, 0]["parameters"][0, 0] = 90.0  # min dose 90 Gy, max 80 Gy
    with pytest.raises(ObjectivesError, match="the translated protocol does not validate"):
        convert_matrad_objectives(_save(tmp_path, workspace))


def test_a_validation_error_names_the_output_file_not_the_workspace_stem(tmp_path):
    """The error named 'workspace.yaml:LINE', another file (or none), not the --out file, which is not written."""
    workspace = matrad_workspace(objectives="current")
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "sub_t.yaml"
    with pytest.raises(ObjectivesError, match=rf"the translated protocol \(not written to {out}\) does not "
                                              rf"validate:\n{out}:\d+:\d+: prescription.levels\[0\].dose"):
        convert_matrad_objectives(_save(tmp_path, workspace), targets={"PTV": Dose(gy=2.0)}, out=out)


@pytest.mark.parametrize("empty", ["struct", "cell of struct"])
def test_a_workspace_of_empty_objective_structs_holds_no_objectives(tmp_path, empty):
    """pyRadPlan's StructureSet.to_matrad writes an empty struct (or a cell of one) in every cst{i,6}: that is no
    objective, not a malformed one ('has neither className nor type')."""
    workspace = matrad_workspace()
    for row in range(workspace["cst"].shape[0]):
        cell = np.empty((1, 1), dtype=object)
        cell[0, 0] = {}
        workspace["cst"][row, 5] = {} if empty == "struct" else cell
    workspace["pln"] = {"numOfFractions": 30.0}
    with pytest.raises(ObjectivesError, match=r"the workspace holds no objectives or constraints: every cst\{i,6\} "
                                              r"is empty \(a workspace saved by pyRadPlan's StructureSet.to_matrad"):
        convert_matrad_objectives(_save(tmp_path, workspace), targets={"PTV": Dose(gy=60.0)})


def test_a_biological_optimization_and_excluded_structures_are_listed(tmp_path):
    workspace = matrad_workspace(objectives="current")
    workspace["pln"]["propOpt"]["quantityOpt"] = "RBExD"
    result = convert_matrad_objectives(_save(tmp_path, workspace), exclude=["Body"])
    assert any(item.startswith("pln.propOpt.quantityOpt 'RBExD'") for item in result.untranslated)
    assert any(item.startswith("Body: excluded on request") for item in result.untranslated)
    assert "Body" not in parse_protocol_text(result.yaml_text).structures


@pytest.mark.parametrize(("form", "saver"), [("current", "v7.3"), ("old", "v5")])
def test_the_protocol_plans_the_case_of_the_same_workspace(tmp_path, form, saver):
    path = _save(tmp_path, matrad_workspace(objectives=form), saver)
    protocol_path = tmp_path / "protocol.yaml"
    protocol_path.write_text(convert_matrad_objectives(path).yaml_text)
    case = import_matrad(path).case
    outcome = specc.plan(specc.load_protocol(protocol_path), case, tmp_path / "plan")
    assert outcome.succeeded, outcome.solve.message
    goals = {(goal.structure, goal.text): goal.status for goal in outcome.record.goals}
    assert goals[("PTV", "Min >= 25 Gy")] == "pass" and goals[("Body_opt", "V60Gy[%] <= 40")] == "pass"


# --- overlap priorities --------------------------------------------------------------------------------
# matRad_setOverlapPriorities: a row's functions see its voxels less those of every row of strictly higher
# priority (lower cst{i,5}.Priority) with functions of its own; the organs fixture has PTV 1, Rectum and
# "Bladder wall" 2 (sharing voxels), Body 4, Couch 5, and Marker 1 without functions.
ORGAN_EXPRESSIONS = {
    "Body_opt": 'Body - (PTV | Rectum | "Bladder wall")',
    "Rectum_opt": "Rectum - PTV",
    "Bladder wall_opt": '"Bladder wall" - PTV',
}


@pytest.fixture(scope="module", params=[(form, saver) for form in ("current", "old") for saver in sorted(SAVERS)])
def organs(request, tmp_path_factory):
    form, saver = request.param
    folder = tmp_path_factory.mktemp("organs")
    path = SAVERS[saver](folder / "ws.mat", matrad_workspace(objectives=form, organs=True))
    return path, convert_matrad_objectives(path)


def test_terms_go_on_derived_structures_less_the_rows_of_higher_priority(organs):
    _, result = organs
    protocol = parse_protocol_text(result.yaml_text)
    derived = {name: str(spec.expression) for name, spec in protocol.structures.items() if spec.expression}
    assert derived == ORGAN_EXPRESSIONS
    assert {name: protocol.structures[name].role for name in derived} == dict.fromkeys(derived, "other")
    assert result.optimized_on == {"Body": "Body_opt", "Rectum": "Rectum_opt", "Bladder wall": "Bladder wall_opt"}
    on = {term["structure"] for term in _document(result.yaml_text)["optimization"]["terms"]}
    assert on == {"PTV", "Body_opt", "Rectum_opt", "Bladder wall_opt"}  # the PTV's own voxels: nothing above it
    goals = _document(result.yaml_text)["goals"]  # where the terms of the same functions are: matRad's voxels
    assert set(goals) == {"PTV", "Body_opt", "Rectum_opt"} and goals["Rectum_opt"] == ["V50Gy[%] <= 20 (priority 2)"]
    comments = " ".join(line[2:].strip() for line in result.yaml_text.splitlines() if line.startswith("#"))
    assert "equal priorities share their overlap (matRad_setOverlapPriorities)" in comments
    assert "the goals made of the same functions, are on derived ones" in comments
    assert "Each is on the structure its function's terms are on" in comments
    assert "- Body -> Body_opt: Body - (PTV | Rectum | \"Bladder wall\")" in comments
    assert "the squared ones exactly" in comments


def test_the_body_terms_see_no_ptv_voxel_and_equal_priorities_keep_their_overlap(organs, tmp_path):
    path, result = organs
    protocol_path = tmp_path / "protocol.yaml"
    protocol_path.write_text(result.yaml_text)
    protocol = specc.load_protocol(protocol_path)
    case = import_matrad(path).case
    clinical = {name: structure.mask for name, structure in case.structures.items()}
    masks = resolve_structures(protocol, case).masks
    assert np.array_equal(masks["Body_opt"], clinical["Body"] & ~(clinical["PTV"] | clinical["Rectum"]
                                                                  | clinical["Bladder wall"]))
    assert not (masks["Body_opt"] & clinical["PTV"]).any() and masks["Body_opt"].sum() < clinical["Body"].sum()
    assert (masks["Body_opt"] & clinical["Marker"]).any()  # a row without functions takes no voxel in matRad
    assert (masks["Rectum_opt"] & masks["Bladder wall_opt"]).any()  # equal priorities: both keep the overlap
    assert not (masks["Rectum_opt"] & clinical["PTV"]).any()
    assert np.array_equal(masks["Bladder wall_opt"], clinical["Bladder wall"])  # shares CT voxels only
    outcome = specc.plan(protocol, case, tmp_path / "plan")
    assert outcome.succeeded, outcome.solve.message
    sizes = {structure.name: structure.voxels for structure in outcome.stats.structures}
    assert sizes["Body_opt"] == masks["Body_opt"].sum() and "Body" not in sizes  # the program optimizes Body_opt
    judged = {goal.structure for goal in outcome.record.goals}
    assert judged == {"PTV", "Body_opt", "Rectum_opt"}


def test_any_row_with_functions_takes_voxels_and_a_structure_it_covers_is_not_optimized(tmp_path):
    workspace = matrad_workspace(objectives="current", organs=True)
    cst = workspace["cst"]
    couch = list(cst[:, 1]).index("Couch")
    cst[couch, 3] = cst[list(cst[:, 1]).index("Rectum"), 3]  # an IGNORED row on the Rectum's voxels
    cst[couch, 4]["Priority"] = 0.5
    path = _save(tmp_path, workspace)
    result = convert_matrad_objectives(path)
    protocol = parse_protocol_text(result.yaml_text)
    assert protocol.structures["Couch"].role == "other"  # declared so that expressions can subtract it
    assert str(protocol.structures["Body_opt"].expression) == 'Body - (PTV | Couch | Rectum | "Bladder wall")'
    assert str(protocol.structures["PTV_opt"].expression) == "PTV - Couch"
    assert protocol.structures["PTV_opt"].role == "target"  # a target's part is optimized on every voxel
    assert [level.target for level in protocol.prescription.levels] == ["PTV"]
    assert "Rectum" not in result.optimized_on and "Rectum_opt" not in protocol.structures
    assert not any("Rectum" in term.structures()[0] for term in protocol.optimization.terms)
    assert not any(goal.structure.startswith("Rectum") for goal in protocol.goals)  # no goal that fails by design
    said = " ".join(result.untranslated)
    assert ("Rectum (Priority 2): every voxel of it is in a cst row of higher overlap priority with functions, "
            "PTV (Priority 1), Couch (Priority 0.5), so matRad optimizes none of its 2 cst{4,6} function(s) "
            "(matRad_setOverlapPriorities): no term and no goal from them") in said
    resolve_structures(specc.load_protocol(_written(tmp_path, result)), import_matrad(path).case)


def test_a_row_left_out_of_the_case_cannot_be_subtracted_and_is_listed(tmp_path):
    path = _save(tmp_path, matrad_workspace(objectives="old", organs=True), "v7.3")
    result = convert_matrad_objectives(path, exclude=["Rectum"])
    protocol = parse_protocol_text(result.yaml_text)
    assert str(protocol.structures["Body_opt"].expression) == 'Body - (PTV | "Bladder wall")'
    assert "Rectum" not in protocol.structures
    assert any(item.startswith("Body: its terms also see the voxels it shares with Rectum (Priority 2)")
               and item.endswith("Rectum is excluded from the case") for item in result.untranslated)
    case = import_matrad(path, exclude=["Rectum"]).case
    assert resolve_structures(specc.load_protocol(_written(tmp_path, result)), case).masks["Body_opt"].any()


@pytest.mark.parametrize("form", ["current", "old"])
def test_external_rows_are_optimized_as_matrad_does(tmp_path, form):
    """matRad_objectiveFunction (and the constraint functions) take cst rows of type OAR, TARGET and EXTERNAL;
    matRad_setOverlapPriorities treats every type alike."""
    workspace = matrad_workspace(objectives=form, organs=True)
    workspace["cst"][1, 2] = "EXTERNAL"  # Body, Priority 4
    path = _save(tmp_path, workspace)
    result = convert_matrad_objectives(path)
    protocol = parse_protocol_text(result.yaml_text)
    assert protocol.structures["Body"].role == "other"  # no organ to block in a forward plan
    assert str(protocol.structures["Body_opt"].expression) == ORGAN_EXPRESSIONS["Body_opt"]
    on_body = [term for term in protocol.optimization.terms if term.structures() == ("Body_opt",)]
    assert len(on_body) == 6
    assert [str(goal.metric) for goal in protocol.goals if goal.structure == "Body_opt"] == [
        "V40Gy[%]", "Mean", "V60Gy[%]"]
    assert not any(item.startswith("Body: cst type") for item in result.untranslated)
    case = import_matrad(path).case
    outcome = specc.plan(specc.load_protocol(_written(tmp_path, result)), case, tmp_path / "plan")
    assert outcome.succeeded, outcome.solve.message


def test_an_ignored_row_is_listed_with_why(tmp_path):
    result = convert_matrad_objectives(_save(tmp_path, matrad_workspace(objectives="current")))
    assert ("Couch: cst type IGNORED: matRad optimizes the functions of TARGET, OAR and EXTERNAL rows only "
            "(matRad_objectiveFunction); its 1 cst{3,6} function(s) with it") in result.untranslated


def test_names_alike_once_trimmed_are_excluded_as_the_case_import_excludes_them(tmp_path):
    workspace = matrad_workspace(objectives="current", organs=True)
    workspace["cst"][5, 1] = "Rectum "  # Marker (Priority 1, no functions) renamed
    path = _save(tmp_path, workspace)
    with pytest.raises(ObjectivesError, match=r"ws.mat: cst\{4,2\} 'Rectum' and cst\{6,2\} 'Rectum ' are the same "
                                              r"structure name, 'Rectum', once leading.*--exclude 'Rectum '"):
        convert_matrad_objectives(path)
    for exclude, rectum_row in ((["Rectum "], 3), (["Rectum"], 5)):
        result = convert_matrad_objectives(path, exclude=exclude)
        case = import_matrad(path, exclude=exclude).case
        assert np.array_equal(case.structures["Rectum"].mask, import_matrad_row_mask(path, rectum_row))
        protocol = specc.load_protocol(_written(tmp_path, result))
        resolve_structures(protocol, case)
        on_rectum = [term for term in protocol.optimization.terms if term.structures()[0].startswith("Rectum")]
        assert bool(on_rectum) == (rectum_row == 3)  # only the row with functions has terms
    said = " ".join(result.untranslated)  # exclude=["Rectum"]: the row with functions is out of the case
    assert "Body: its terms also see the voxels it shares with Rectum (Priority 2)" in said
    assert "Rectum (cst{6,2} 'Rectum ')" not in said
    spaced = convert_matrad_objectives(path, exclude=["Rectum "])
    assert "Rectum (cst{6,2} 'Rectum '): excluded on request" in spaced.untranslated


def import_matrad_row_mask(path, row: int) -> np.ndarray:
    """The case mask of cst row `row` alone: every other row left out by its exact name."""
    from specc.case.importers.mat_file import load_mat

    names = list(load_mat(path, names=("cst",))["cst"][:, 1])
    case = import_matrad(path, exclude=[name for index, name in enumerate(names) if index != row])
    (structure,) = case.case.structures.values()
    return structure.mask


def test_derived_names_clash_with_no_cst_name(tmp_path):
    workspace = matrad_workspace(objectives="current", organs=True)
    workspace["cst"][list(workspace["cst"][:, 1]).index("Marker"), 1] = "body_OPT"
    result = convert_matrad_objectives(_save(tmp_path, workspace))
    assert result.optimized_on["Body"] == "Body_opt2"
    assert "Body_opt2" in parse_protocol_text(result.yaml_text).structures


@pytest.mark.parametrize("saver", sorted(SAVERS))
def test_a_row_without_an_overlap_priority_is_an_error_as_in_matrad(tmp_path, saver):
    workspace = matrad_workspace(objectives="current")
    del workspace["cst"][2, 4]["Priority"]
    with pytest.raises(ObjectivesError, match=r"ws.mat: cst\{3,5\} \(Couch\) has no Priority: matRad_setOverlap"):
        convert_matrad_objectives(_save(tmp_path, workspace, saver))
    workspace["cst"][2, 4]["Priority"] = "high"
    with pytest.raises(ObjectivesError, match=r"cst\{3,5\}\.Priority \(Couch\) is not a number"):
        convert_matrad_objectives(_save(tmp_path, workspace, saver))


def test_names_are_quoted_as_structure_expressions_need():
    assert _quoted("Body") == "Body" and _quoted("Bladder wall") == '"Bladder wall"'
    assert _quoted("crop") == '"crop"' and _quoted('say "a"') == "'say \"a\"'"
    assert _quoted("it's \"x\"") is None


def _written(tmp_path, result) -> object:
    path = tmp_path / "protocol.yaml"
    path.write_text(result.yaml_text)
    return path


def test_cli_writes_the_protocol_and_lists_what_it_left_out(tmp_path):
    workspace = matrad_workspace(objectives="old")
    del workspace["pln"]["numOfFractions"]
    path = _save(tmp_path, workspace)
    runner = CliRunner()
    result = runner.invoke(app, ["import", "matrad-objectives", str(path), "-o", str(tmp_path / "p.yaml"),
                                 "--target", "PTV=6000 cGy", "--fractions", "25"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "11 terms, 6 goals, prescription PTV 60 Gy in 25 fractions" in said
    assert "not translated: cst{1,6}(6) (PTV, exact DVH constraint)" in said
    assert specc.load_protocol(tmp_path / "p.yaml").prescription.fractions == 25
    bad = runner.invoke(app, ["import", "matrad-objectives", str(path), "-o", str(tmp_path / "q.yaml"),
                              "--target", "PTV=60"])
    assert bad.exit_code == 1 and "--target PTV=60" in bad.output and not (tmp_path / "q.yaml").exists()
    stated = _save(tmp_path, matrad_workspace(objectives="old"))  # pln.numOfFractions 30
    refused = runner.invoke(app, ["import", "matrad-objectives", str(stated), "-o", str(tmp_path / "r.yaml"),
                                  "--fractions", "25"])
    assert refused.exit_code == 1 and not (tmp_path / "r.yaml").exists()
    assert "--fractions 25, but pln.numOfFractions is 30" in " ".join(refused.output.split())
    misplaced = runner.invoke(app, ["import", "matrad", str(path), "-o", str(tmp_path / "c.h5"), "--fractions", "5"])
    assert misplaced.exit_code == 1 and "--fractions is for matrad-objectives only" in " ".join(misplaced.output.split())


def test_cst_voxels_are_read_as_the_case_import_reads_them(tmp_path):
    """A 4D-CT workspace (two scenarios in cst{i,4}) was translated on its first scenario although the case
    import refuses it, and non-integer indices were truncated: both are now the case import's errors."""
    workspace = matrad_workspace(objectives="current")
    voxels = workspace["cst"][1, 3]
    scenario = voxels.ravel()[0] if isinstance(voxels, np.ndarray) and voxels.dtype == object else voxels
    four_d = np.empty((1, 2), dtype=object)
    four_d[0, 0], four_d[0, 1] = scenario, scenario
    workspace["cst"][1, 3] = four_d
    with pytest.raises(ObjectivesError, match="has 2 CT scenarios; specc imports one"):
        convert_matrad_objectives(_save(tmp_path, workspace))
    halves = matrad_workspace(objectives="current")
    halves["cst"][1, 3] = np.asarray(scenario, dtype=np.float64) + 0.5
    with pytest.raises(ObjectivesError, match="voxel indices that are not whole numbers from 1"):
        convert_matrad_objectives(_save(tmp_path, halves))
