"""PortPy clinical criteria -> specc protocol: goals, variations, derived structures, the untranslatable."""

from __future__ import annotations

import json

import pytest

from specc.case.importers.portpy_criteria import CriteriaError, convert_portpy_criteria
from specc.evaluate.goals import judge
from specc.protocol import parse_protocol_text

CRITERIA = {
    "disease_site": "Lung",
    "protocol_name": "Lung_2Gy_30Fx",
    "pres_per_fraction_gy": 2,
    "num_of_fractions": 30,
    "criteria": [
        {"type": "max_dose", "parameters": {"structure_name": "GTV"}, "constraints": {"limit_dose_gy": 69, "goal_dose_gy": 66}},
        {"type": "max_dose", "parameters": {"structure_name": "PTV"}, "constraints": {"limit_dose_perc": 110, "goal_dose_perc": 105}},
        {"type": "max_dose", "parameters": {"structure_name": "CORD"}, "constraints": {"limit_dose_gy": 50}},
        {"type": "mean_dose", "parameters": {"structure_name": "LUNGS_NOT_GTV"}, "constraints": {"limit_dose_gy": 21, "goal_dose_gy": 20}},
        {"type": "dose_volume_V", "parameters": {"structure_name": "LUNGS_NOT_GTV", "dose_gy": 20},
         "constraints": {"limit_volume_perc": 37, "goal_volume_perc": 30}},
        {"type": "dose_volume_V", "parameters": {"structure_name": "HEART", "dose_gy": 30}, "constraints": {"limit_volume_cc": 50}},
        {"type": "dose_volume_D", "parameters": {"structure_name": "ESOPHAGUS", "volume_perc": 33}, "constraints": {"limit_dose_gy": 45}},
        {"type": "conformity_index", "parameters": {"structure_name": "PTV"}, "constraints": {"limit": 1.2}},
        {"type": "max_dose", "parameters": {"structure_name": "SKIN"}, "constraints": {"limit_dose_gy": 40, "goal_dose_perc": 60}},
    ],
}


@pytest.fixture()
def converted(tmp_path):
    path = tmp_path / "Lung_2Gy_30Fx.json"
    path.write_text(json.dumps(CRITERIA))
    return convert_portpy_criteria(path, target="PTV")


def test_output_is_a_valid_protocol_with_the_prescription(converted):
    protocol = parse_protocol_text(converted.yaml_text)
    assert protocol.prescription.fractions == 30
    assert protocol.prescription.levels[0].target == "PTV"
    assert protocol.prescription.levels[0].dose.gy == pytest.approx(60.0)


def test_goal_is_the_threshold_and_limit_the_variation(converted):
    goals = {(g.structure, str(g.metric)): g for g in parse_protocol_text(converted.yaml_text).goals}
    gtv = goals[("GTV", "Max")]
    assert (gtv.comparator, gtv.threshold_value, gtv.variation_value) == ("<=", 66, 69)
    v20 = goals[("LUNGS_NOT_GTV", "V20Gy[%]")]
    assert (v20.threshold_value, v20.variation_value) == (30, 37)
    assert goals[("HEART", "V30Gy[cc]")].threshold_value == 50
    assert goals[("ESOPHAGUS", "D33%")].variation_value is None
    assert "Max <= 105% (variation 110%)" in converted.yaml_text
    assert converted.goals == 7


def test_not_structures_become_differences_and_target_prefixes_targets(converted):
    protocol = parse_protocol_text(converted.yaml_text)
    assert str(protocol.structures["LUNGS_NOT_GTV"].expression) == "LUNGS - GTV"
    assert protocol.structures["GTV"].role == "target"
    assert protocol.structures["CORD"].role == "oar"


def test_untranslatable_criteria_are_listed_in_the_result_and_the_yaml(converted):
    assert len(converted.untranslated) == 2
    assert "conformity_index" in converted.untranslated[0]
    assert "different units" in converted.untranslated[1]
    assert "# Not translated" in converted.yaml_text and "conformity_index" in converted.yaml_text


def test_a_file_without_prescription_is_refused(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"criteria": []}))
    with pytest.raises(CriteriaError, match="pres_per_fraction_gy"):
        convert_portpy_criteria(path, target="PTV")
    path.write_text("{not json")
    with pytest.raises(CriteriaError, match=r"c.json:1: invalid JSON"):
        convert_portpy_criteria(path, target="PTV")


# PortPy's current files (portpy/config_files/clinical_criteria/Default/Lung_2Gy_30Fx.json) key each criterion by
# `name`, as its ClinicalCriteria and Evaluation code read it, and define LUNGS_NOT_GTV by `structure_def`.
LUNG_BY_NAME = {
    "disease_site": "Lung",
    "protocol_name": "Lung_Default_2Gy_30Fr",
    "pres_per_fraction_gy": 2,
    "num_of_fractions": 30,
    "criteria": [
        {"name": "max_dose", "parameters": {"structure_name": "GTV"}, "constraints": {"limit_dose_gy": 69, "goal_dose_gy": 66}},
        {"name": "max_dose", "parameters": {"structure_name": "CORD"}, "constraints": {"limit_dose_gy": 50, "goal_dose_gy": 48}},
        {"name": "dose_volume_V", "parameters": {"structure_name": "HEART", "dose_gy": 30}, "constraints": {"goal_volume_perc": 48}},
        {"name": "mean_dose",
         "parameters": {"structure_name": "LUNGS_NOT_GTV",
                        "structure_def": {"type": "boolean", "expression": "(LUNG_L | LUNG_R) - GTV"}},
         "constraints": {"limit_dose_gy": 21, "goal_dose_gy": 20}},
    ],
}


def _convert(tmp_path, criteria):
    path = tmp_path / "criteria.json"
    path.write_text(json.dumps(criteria))
    return convert_portpy_criteria(path, target="PTV")


def test_criteria_keyed_by_name_are_translated(tmp_path):
    converted = _convert(tmp_path, LUNG_BY_NAME)
    assert converted.goals == 4 and converted.untranslated == []
    goals = {(g.structure, str(g.metric)) for g in parse_protocol_text(converted.yaml_text).goals}
    assert {("GTV", "Max"), ("CORD", "Max"), ("HEART", "V30Gy[%]"), ("LUNGS_NOT_GTV", "Mean")} <= goals


def test_structure_def_is_the_derived_structure_and_its_parts_are_optional(tmp_path):
    protocol = parse_protocol_text(_convert(tmp_path, LUNG_BY_NAME).yaml_text)
    assert str(protocol.structures["LUNGS_NOT_GTV"].expression) == "LUNG_L | LUNG_R - GTV"  # specc: left to right
    assert "LUNGS" not in protocol.structures
    # PortPy skips a criterion on a structure the patient lacks: organs and parts are if_contoured, targets not.
    assert protocol.structures["LUNG_L"].if_contoured and protocol.structures["CORD"].if_contoured
    assert not protocol.structures["GTV"].if_contoured and not protocol.structures["PTV"].if_contoured


def test_a_name_read_expression_is_noted(converted):
    assert converted.notes == ["LUNGS_NOT_GTV: expression LUNGS - GTV read from its name (the file gives no "
                               "structure_def): check it"]
    assert "# LUNGS_NOT_GTV: expression LUNGS - GTV read from its name" in converted.yaml_text


def test_a_file_of_which_nothing_translates_is_refused_listing_each(tmp_path):
    criteria = dict(LUNG_BY_NAME, criteria=[
        {"name": "conformity_index", "parameters": {"structure_name": "PTV"}, "constraints": {"limit": 1.2}},
        {"parameters": {"structure_name": "CORD"}, "constraints": {"limit_dose_gy": 50}},
    ])
    with pytest.raises(CriteriaError, match="none of its 2 criteria") as error:
        _convert(tmp_path, criteria)
    assert "'conformity_index' has no specc equivalent" in str(error.value)
    assert "no criterion name (or type)" in str(error.value)


def test_unreadable_structure_defs_are_listed_not_guessed(tmp_path):
    criteria = dict(LUNG_BY_NAME, criteria=LUNG_BY_NAME["criteria"] + [
        {"name": "max_dose", "parameters": {"structure_name": "RING", "structure_def": {"type": "ring", "margin": 5}},
         "constraints": {"limit_dose_gy": 40}},
        {"name": "max_dose", "parameters": {"structure_name": "X_NOT_Y", "structure_def": {"type": "boolean",
                                                                                           "expression": "X -"}},
         "constraints": {"limit_dose_gy": 40}},
        {"name": "max_dose", "type": "mean_dose", "parameters": {"structure_name": "CORD"},
         "constraints": {"limit_dose_gy": 40}},
    ])
    converted = _convert(tmp_path, criteria)
    assert converted.goals == 4 and len(converted.untranslated) == 3
    assert "is not an expression specc can read" in converted.untranslated[0]
    assert "is not a specc expression" in converted.untranslated[1]
    assert "disagree" in converted.untranslated[2]
    assert "X_NOT_Y" not in parse_protocol_text(converted.yaml_text).structures


@pytest.mark.parametrize("expression", [
    "LUNG_L | LUNG_R - GTV",  # Python: LUNG_L | (LUNG_R - GTV); PortPy's parser and specc: (LUNG_L | LUNG_R) - GTV
    "LUNG_L | LUNG_R & GTV",  # Python and specc: LUNG_L | (LUNG_R & GTV); PortPy's parser: (LUNG_L | LUNG_R) & GTV
])
def test_an_object_structure_def_whose_reading_depends_on_precedence_is_listed(tmp_path, expression):
    # PortPy's code does not read the object form, so which precedence its author meant is open.
    criterion = {"name": "mean_dose", "constraints": {"limit_dose_gy": 20},
                 "parameters": {"structure_name": "LUNGS_NOT_GTV",
                                "structure_def": {"type": "boolean", "expression": expression}}}
    converted = _convert(tmp_path, dict(LUNG_BY_NAME, criteria=LUNG_BY_NAME["criteria"][:3] + [criterion]))
    assert len(converted.untranslated) == 1 and "parenthesize it" in converted.untranslated[0]


# PortPy's shipped Paraspinal_1Fx.json (portpy/config_files/clinical_criteria/Default) writes structure_def as the text
# PortPy's Structures.evaluate_expression reads: these are its criteria with one, in its layout (LUNG_R_INTER_PTV_2's
# definition on LUNG_L is the file's).
PARASPINAL = {
    "disease_site": "Paraspinal",
    "protocol_name": "Paraspinal_1Fx",
    "pres_per_fraction_gy": 24,
    "num_of_fractions": 1,
    "criteria": [
        {"type": "max_dose", "parameters": {"structure_name": name, "structure_def": definition},
         "constraints": {limit: value}}
        for name, definition, limit, value in [
            ("LARYNX_MINUS_PTV", "LARYNX - PTV", "limit_dose_perc", 100),
            ("LARYNX_INTER_PTV", "LARYNX & PTV", "limit_dose_perc", 110),
            ("ESOPHAGUS_MINUS_PTV", "ESOPHAGUS - PTV", "limit_dose_perc", 100),
            ("BRPLX_L_MINUS_PTV_3", "BRPLX_L - (PTV + 3)", "limit_dose_gy", 24),
            ("BRPLX_L_INTER_PTV_3", "BRPLX_L & (PTV + 3)", "limit_dose_perc", 110),
            ("SACRAPLEXUS_R_MINUS_PTV_3", "SACRAPLEXUS_R - (PTV + 3)", "limit_dose_gy", 24),
            ("LUNG_R_INTER_PTV_2", "LUNG_L & (PTV + 2)", "limit_dose_perc", 110),
            ("LUNGS_NOT_GTV_MINUS_PTV_2", "LUNGS_NOT_GTV - (PTV + 2)", "limit_dose_perc", 100),
        ]
    ],
}


def test_portpy_text_structure_defs_become_derived_structures(tmp_path):
    converted = _convert(tmp_path, PARASPINAL)
    assert converted.untranslated == [] and converted.goals == 8
    structures = parse_protocol_text(converted.yaml_text).structures
    # `-` / `&` between structures a difference / intersection, `+ 3` a 3 mm margin, clipped to BODY as PortPy does.
    expressions = {name: str(structures[name].expression) for name in (
        "LARYNX_MINUS_PTV", "LARYNX_INTER_PTV", "BRPLX_L_MINUS_PTV_3", "BRPLX_L_INTER_PTV_3", "LUNG_R_INTER_PTV_2")}
    assert expressions == {
        "LARYNX_MINUS_PTV": "(LARYNX - PTV) & BODY",
        "LARYNX_INTER_PTV": "LARYNX & PTV & BODY",
        "BRPLX_L_MINUS_PTV_3": "(BRPLX_L - expand(PTV, 3mm)) & BODY",
        "BRPLX_L_INTER_PTV_3": "BRPLX_L & expand(PTV, 3mm) & BODY",
        "LUNG_R_INTER_PTV_2": "LUNG_L & expand(PTV, 2mm) & BODY",
    }
    # The parts are optional (PortPy skips a criterion whose structure it cannot make); the target is not.
    assert structures["BRPLX_L"].role == "other" and structures["BRPLX_L"].if_contoured
    assert structures["BODY"].if_contoured and not structures["PTV"].if_contoured
    goals = {(g.structure, str(g.metric), g.threshold_value) for g in parse_protocol_text(converted.yaml_text).goals}
    assert ("BRPLX_L_MINUS_PTV_3", "Max", 24) in goals


@pytest.mark.parametrize(("definition", "expression"), [
    ("AA - BB & CC", "(AA - BB) & CC & BODY"),  # strictly left to right: no precedence
    ("CORD-TREATED + PTV", '("CORD-TREATED" | PTV) & BODY'),  # `-` inside a name; + between structures a union
    ("PTV -3", "shrink(PTV, 3mm) & BODY"),  # - before a whole number: an inner margin
    # PortPy's unbounded margin (its 500 mm) and any region beyond a clinical margin: the structure and a ring
    # around it, since specc refuses an expand that large as a unit slip (the import failed whole on it)
    ("(PTV + inf) - (PTV + 20)", "(PTV | ring(PTV, 0mm, 500mm) - expand(PTV, 20mm)) & BODY"),  # left to right
    ("CORD + 60", "(CORD | ring(CORD, 0mm, 60mm)) & BODY"),
])
def test_portpy_text_is_read_as_portpys_parser_reads_it(tmp_path, definition, expression):
    criterion = {"type": "max_dose", "parameters": {"structure_name": "DERIVED", "structure_def": definition},
                 "constraints": {"limit_dose_gy": 20}}
    converted = _convert(tmp_path, dict(PARASPINAL, criteria=[criterion]))
    assert str(parse_protocol_text(converted.yaml_text).structures["DERIVED"].expression) == expression


@pytest.mark.parametrize(("definition", "reason"), [
    ("LUNG_L | A - PTV", "does not finish on the one-character operand 'A'"),
    ("BRPLX_L - (PTV + 2.5)", "PortPy reads '2.5' as a structure name"),
    ("BRPLX_L * PTV", "PortPy's parser skips '*' without a word"),
    ("BRPLX_L & 3", "PortPy fails on a margin after '&'"),
    ("BRPLX_L - (PTV + 3", "a '(' is not closed"),
    ("BODY - inf", "a shrink by 500 mm, beyond any clinical margin (50 mm), which specc refuses as a likely unit slip"),
])
def test_portpy_text_that_portpy_cannot_evaluate_is_listed(tmp_path, definition, reason):
    criterion = {"type": "max_dose", "parameters": {"structure_name": "DERIVED", "structure_def": definition},
                 "constraints": {"limit_dose_gy": 20}}
    converted = _convert(tmp_path, dict(PARASPINAL, criteria=PARASPINAL["criteria"][:1] + [criterion]))
    assert converted.goals == 1 and len(converted.untranslated) == 1
    assert reason in converted.untranslated[0]
    assert "DERIVED" not in parse_protocol_text(converted.yaml_text).structures


# PortPy's shipped Lung_2Gy_30Fx.json (portpy/config_files/clinical_criteria/Default) writes HEART V30Gy as two
# criteria, a limit and then a goal, and ESOPHAGUS Mean as one criterion holding both; its ESOPHAGUS V60Gy has a
# limit alone. This is that part of the file, in its layout.
LUNG_SHIPPED = dict(LUNG_BY_NAME, criteria=[
    {"name": "mean_dose", "parameters": {"structure_name": "ESOPHAGUS"},
     "constraints": {"limit_dose_gy": 34, "goal_dose_gy": 21}},
    {"name": "dose_volume_V", "parameters": {"structure_name": "ESOPHAGUS", "dose_gy": 60},
     "constraints": {"limit_volume_perc": 17}},
    {"name": "mean_dose", "parameters": {"structure_name": "HEART"},
     "constraints": {"limit_dose_gy": 27, "goal_dose_gy": 20}},
    {"name": "dose_volume_V", "parameters": {"structure_name": "HEART", "dose_gy": 30},
     "constraints": {"limit_volume_perc": 50}},
    {"name": "dose_volume_V", "parameters": {"structure_name": "HEART", "dose_gy": 30},
     "constraints": {"goal_volume_perc": 48}},
])


def _goals(converted, structure):
    return [g for g in parse_protocol_text(converted.yaml_text).goals if g.structure == structure]


def test_a_limit_and_its_goal_in_two_criteria_are_one_goal_with_variation(tmp_path):
    converted = _convert(tmp_path, LUNG_SHIPPED)
    heart_v30 = [g for g in _goals(converted, "HEART") if str(g.metric) == "V30Gy[%]"]
    assert [(g.threshold_value, g.variation_value) for g in heart_v30] == [(48, 50)]
    assert "- V30Gy[%] <= 48 (variation 50)" in converted.yaml_text
    # PortPy counts 49% as within the limit and short of the goal: an acceptable variation, not a failed goal.
    assert [judge(49, g.comparator, g.threshold_value, g.variation_value) for g in heart_v30] == ["variation"]
    assert converted.goals == 4 and converted.untranslated == []
    assert converted.notes == [
        "HEART: criteria[3] and criteria[4] state one criterion, read as one goal: V30Gy[%] <= 48 (variation 50)"]


def test_a_limit_alone_is_a_plain_goal_at_the_limit_and_a_goal_alone_at_the_goal(tmp_path):
    converted = _convert(tmp_path, LUNG_SHIPPED)
    esophagus = {str(g.metric): (g.threshold_value, g.variation_value) for g in _goals(converted, "ESOPHAGUS")}
    assert esophagus == {"Mean": (21, 34), "V60Gy[%]": (17, None)}
    goal_alone = dict(LUNG_SHIPPED, criteria=LUNG_SHIPPED["criteria"][4:])
    heart = _goals(_convert(tmp_path, goal_alone), "HEART")
    assert [(g.threshold_value, g.variation_value) for g in heart] == [(48, None)]


def test_a_criterion_stated_twice_alike_is_one_goal(tmp_path):
    repeated = dict(LUNG_SHIPPED, criteria=LUNG_SHIPPED["criteria"] + [LUNG_SHIPPED["criteria"][2]])
    heart = _goals(_convert(tmp_path, repeated), "HEART")
    assert [(str(g.metric), g.threshold_value, g.variation_value) for g in heart] == [
        ("Mean", 20, 27), ("V30Gy[%]", 48, 50)]


@pytest.mark.parametrize(("heart_v30", "reason"), [
    ([{"limit_volume_perc": 50}, {"goal_volume_perc": 48}, {"limit_volume_perc": 45}],
     "different limits for V30Gy (criteria[3] 50%, criteria[5] 45%)"),
    ([{"limit_volume_perc": 50}, {"goal_volume_perc": 48}, {"goal_volume_perc": 40}],
     "different goals for V30Gy (criteria[4] 48%, criteria[5] 40%)"),
    ([{"limit_volume_perc": 50}, {"goal_volume_perc": 55}], "goal 55% is looser than limit 50%"),
    ([{"limit_volume_cc": 200}, {"goal_volume_perc": 48}], "goal 48% and limit 200 cc are in different units"),
])
def test_split_criteria_that_disagree_are_listed_not_guessed(tmp_path, heart_v30, reason):
    split = [{"name": "dose_volume_V", "parameters": {"structure_name": "HEART", "dose_gy": 30}, "constraints": bounds}
             for bounds in heart_v30]
    converted = _convert(tmp_path, dict(LUNG_SHIPPED, criteria=LUNG_SHIPPED["criteria"][:3] + split))
    assert [str(g.metric) for g in _goals(converted, "HEART")] == ["Mean"]
    assert [item.split(" ")[0] for item in converted.untranslated] == [f"criteria[{3 + n}]" for n in range(len(split))]
    assert all(reason in item for item in converted.untranslated)


def test_a_dose_or_volume_point_that_is_not_a_number_is_listed(tmp_path):
    criteria = LUNG_SHIPPED["criteria"][:3] + [
        {"name": "dose_volume_V", "parameters": {"structure_name": "HEART", "dose_gy": "thirty"},
         "constraints": {"limit_volume_perc": 50}},
        {"name": "dose_volume_D", "parameters": {"structure_name": "CORD", "volume_cc": None},
         "constraints": {"limit_dose_gy": 45}},
    ]
    converted = _convert(tmp_path, dict(LUNG_SHIPPED, criteria=criteria))
    assert converted.goals == 3 and len(converted.untranslated) == 2
    assert 'parameters.dose_gy "thirty" is not a finite, non-negative number' in converted.untranslated[0]
    assert "parameters.volume_cc null is not a finite, non-negative number" in converted.untranslated[1]


# Python's json (which writes PortPy's files) writes NaN and Infinity by default, and reads them back.
def _with_a_fourth_criterion(tmp_path, parameters: dict, constraints: dict, reason: str):
    """The shipped lung file's first three criteria and one more of `parameters` and `constraints`, translated: the
    three translate and the fourth is listed, saying `reason`."""
    kind = "max_dose" if set(parameters) == {"structure_name"} else (
        "dose_volume_V" if "dose_gy" in parameters else "dose_volume_D")
    criteria = LUNG_SHIPPED["criteria"][:3] + [{"name": kind, "parameters": parameters, "constraints": constraints}]
    converted = _convert(tmp_path, dict(LUNG_SHIPPED, criteria=criteria))
    assert converted.goals == 3 and len(converted.untranslated) == 1
    assert converted.untranslated[0].startswith("criteria[3] ") and reason in converted.untranslated[0]
    return converted


@pytest.mark.parametrize(("parameters", "constraints", "reason"), [
    ({"structure_name": "CORD"}, {"limit_dose_gy": float("nan")}, "limit_dose_gy NaN is not a finite, non-negative number"),
    ({"structure_name": "CORD"}, {"limit_dose_gy": float("inf")}, "limit_dose_gy Infinity is not a finite"),
    ({"structure_name": "CORD"}, {"limit_dose_gy": 50, "goal_dose_perc": float("-inf")}, "goal_dose_perc -Infinity is not"),
    ({"structure_name": "CORD"}, {"limit_dose_gy": 10**400}, "limit_dose_gy 1000"),  # past a float's range
    ({"structure_name": "CORD", "dose_gy": float("nan")}, {"limit_volume_cc": 1}, "parameters.dose_gy NaN is not a finite"),
    ({"structure_name": "CORD"}, {"limit_dose_gy": -5}, "limit_dose_gy -5 is not a finite, non-negative number"),
    ({"structure_name": "CORD", "dose_gy": 20}, {"limit_volume_perc": 150},
     "limit_volume_perc 150: a volume cannot exceed 100%"),
    ({"structure_name": "CORD", "dose_gy": 20}, {"limit_volume_cc": 10, "goal_volume_cc": -1},
     "goal_volume_cc -1 is not a finite, non-negative number"),
    ({"structure_name": "CORD", "volume_perc": 120}, {"limit_dose_gy": 30},
     "parameters.volume_perc 120: a volume cannot exceed 100%"),
])
def test_a_limit_goal_or_point_out_of_range_is_listed_and_the_rest_translate(tmp_path, parameters, constraints, reason):
    converted = _with_a_fourth_criterion(tmp_path, parameters, constraints, reason)
    assert "CORD" not in parse_protocol_text(converted.yaml_text).structures


def test_a_volume_of_100_percent_and_a_dose_over_100_percent_translate(tmp_path):
    criteria = [
        {"name": "dose_volume_V", "parameters": {"structure_name": "CORD", "dose_perc": 120}, "constraints": {"limit_volume_perc": 100}},
        {"name": "dose_volume_D", "parameters": {"structure_name": "CORD", "volume_perc": 100}, "constraints": {"limit_dose_perc": 110}},
    ]
    converted = _convert(tmp_path, dict(LUNG_SHIPPED, criteria=criteria))
    assert converted.untranslated == []
    assert [str(g) for g in _goals(converted, "CORD")] == ["V120%[%] <= 100%", "D100% <= 110%"]


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("pres_per_fraction_gy", float("nan"), "pres_per_fraction_gy NaN is not a finite, positive number of Gy"),
    ("pres_per_fraction_gy", float("inf"), "pres_per_fraction_gy Infinity is not a finite, positive number of Gy"),
    ("pres_per_fraction_gy", "2", 'pres_per_fraction_gy "2" is not a finite, positive number of Gy'),
    ("pres_per_fraction_gy", 0, "pres_per_fraction_gy 0 is not a finite, positive number of Gy"),
    ("pres_per_fraction_gy", 1e308, r"the prescription 1e\+308 Gy x 30 is not a finite dose"),
    ("num_of_fractions", 2.5, "num_of_fractions 2.5 is not a whole number >= 1"),
    ("num_of_fractions", True, "num_of_fractions true is not a whole number >= 1"),
    ("num_of_fractions", 0, "num_of_fractions 0 is not a whole number >= 1"),
    ("num_of_fractions", float("inf"), "num_of_fractions Infinity is not a whole number >= 1"),
    ("num_of_fractions", None, r"needs numeric 'pres_per_fraction_gy' and 'num_of_fractions' \(num_of_fractions not given\)"),
])
def test_a_prescription_that_is_not_one_is_refused_naming_the_file_and_field(tmp_path, field, value, reason):
    # 2.5 fractions of 2 Gy used to become 2 fractions (4 Gy), `true` 1: every %-of-prescription goal judged by it.
    with pytest.raises(CriteriaError, match=r"criteria.json: " + reason):
        _convert(tmp_path, dict(LUNG_SHIPPED, **{field: value}))


def test_a_whole_fraction_count_written_as_a_float_is_that_count(tmp_path):
    protocol = parse_protocol_text(_convert(tmp_path, dict(LUNG_SHIPPED, num_of_fractions=30.0)).yaml_text)
    assert protocol.prescription.fractions == 30
    assert protocol.prescription.levels[0].dose.gy == pytest.approx(60.0)


# A dose in cGy written as Gy (4500 "Gy" under 60 Gy) failed the whole import at a line of a translation never
# written (audit r3 F6): each dose a criterion states is now held to the prescription by the protocol's own rule.
@pytest.mark.parametrize(("parameters", "constraints", "reason"), [
    ({"structure_name": "CORD"}, {"limit_dose_gy": 4500},
     'limit_dose_gy 4500: "Max <= 4500 Gy" is 75 times the highest dose level (PTV\'s 60 Gy): a dose in the wrong '
     "unit? (cGy written as Gy"),
    ({"structure_name": "CORD"}, {"limit_dose_gy": 600}, 'limit_dose_gy 600: "Max <= 600 Gy" is 10 times'),
    ({"structure_name": "CORD"}, {"limit_dose_gy": 5000, "goal_dose_gy": 45}, "limit_dose_gy 5000: "),
    ({"structure_name": "CORD"}, {"limit_dose_gy": 1e300}, "limit_dose_gy 1e+300: "),
    ({"structure_name": "CORD", "dose_gy": 2000}, {"limit_volume_perc": 5},
     "parameters.dose_gy 2000: \"V2000Gy[%] <= 5\": the dose of V2000Gy[%] (2000 Gy) is 33.3 times"),
    ({"structure_name": "PTV"}, {"limit_dose_gy": 6600}, "limit_dose_gy 6600: \"Max <= 6600 Gy\" is 110 times PTV's"),
    ({"structure_name": "PTV", "volume_perc": 95}, {"goal_dose_gy": 10}, "goal_dose_gy 10: \"D95% <= 10 Gy\" is 17% of"),
    # written as a decimal (it was "V1e+20Gy", which the metric grammar does not read), then held to the rule
    ({"structure_name": "CORD", "dose_gy": 1e20}, {"limit_volume_perc": 5},
     'parameters.dose_gy 1e+20: "V100000000000000000000Gy[%] <= 5": the dose of V100000000000000000000Gy[%] '
     "(100000000000000000000 Gy) is 1.67e+18 times the highest dose level"),
])
def test_a_dose_the_protocol_refuses_is_listed_and_the_rest_translate(tmp_path, parameters, constraints, reason):
    converted = _with_a_fourth_criterion(tmp_path, parameters, constraints, reason)
    assert [str(g.metric) for g in _goals(converted, "ESOPHAGUS")] == ["Mean", "V60Gy[%]"]
    assert parameters["structure_name"] not in {g.structure for g in parse_protocol_text(converted.yaml_text).goals}


@pytest.mark.parametrize(("parameters", "written"), [
    ({"volume_perc": 1e-30}, "D0.000000000000000000000000000001%"),
    ({"volume_cc": 0.00001}, "D0.00001cc"),
    ({"volume_perc": 0.035}, "D0.035%"),
])
def test_a_point_is_written_as_a_decimal_the_protocol_reads_back(tmp_path, parameters, written):
    # format_number's exponent ("D1e-30%", "D1e-05cc") was no metric: the point was listed as untranslated.
    point = next(iter(parameters.values()))
    criterion = {"name": "dose_volume_D", "parameters": {"structure_name": "CORD", **parameters},
                 "constraints": {"limit_dose_gy": 45}}
    converted = _convert(tmp_path, dict(LUNG_SHIPPED, criteria=LUNG_SHIPPED["criteria"][:3] + [criterion]))
    assert converted.untranslated == [] and f"- {written} <= 45 Gy" in converted.yaml_text
    (cord,) = _goals(converted, "CORD")
    assert cord.metric.volume.value == point and cord.threshold_value == 45


def test_a_dose_within_the_rule_translates(tmp_path):
    # The rule's bound (4 times the highest level: 240 Gy here) is the protocol's: a hot spot limit of 90 Gy on a
    # 60 Gy target, an organ's 66 Gy, a V metric at 70 Gy and a split limit's variation all stay goals.
    criteria = [
        {"name": "max_dose", "parameters": {"structure_name": "PTV"}, "constraints": {"limit_dose_gy": 90}},
        {"name": "max_dose", "parameters": {"structure_name": "CORD"}, "constraints": {"limit_dose_gy": 66}},
        {"name": "dose_volume_V", "parameters": {"structure_name": "LUNG", "dose_gy": 70}, "constraints": {"limit_volume_cc": 5}},
        {"name": "mean_dose", "parameters": {"structure_name": "HEART"}, "constraints": {"limit_dose_gy": 200, "goal_dose_gy": 20}},
    ]
    converted = _convert(tmp_path, dict(LUNG_SHIPPED, criteria=criteria))
    assert converted.untranslated == [] and converted.goals == 4


def test_a_translation_that_does_not_validate_says_no_protocol_was_written(tmp_path):
    # 200 "Gy" per fraction is 200 cGy written as Gy: the prescription itself, which no criterion explains.
    with pytest.raises(CriteriaError, match=r"criteria.json: the translated protocol does not validate \(no protocol "
                                            r"written\):\n<translation of criteria.json>:") as error:
        _convert(tmp_path, dict(LUNG_SHIPPED, pres_per_fraction_gy=200))
    assert "prescription.levels[0].dose: 6000 Gy in 30 fractions is 200 Gy per fraction" in str(error.value)
