"""PortPy clinical criteria -> specc protocol: goals, variations, derived structures, the untranslatable."""

from __future__ import annotations

import json

import pytest

from specc.case.importers.portpy_criteria import CriteriaError, convert_portpy_criteria
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
