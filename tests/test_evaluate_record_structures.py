"""plan.json's structure records carry each structure's role in the protocol, so that what reads the record alone
(the report's figures) knows a target without a dose level of its own (a boost's CTV) from an organ or a helper ring;
a record written before roles were recorded still reads (audit s21/p1 F2 follow-up)."""

from __future__ import annotations

import json
from typing import get_args

from evaluate_fakes import masks_of, solve_result, synthetic_case
from specc.evaluate import StructureDose, evaluate_plan
from specc.evaluate.record import StructureRole
from specc.protocol import parse_protocol_text
from specc.protocol.models import StructureSpec
from specc.report.identity import record_json

PROTOCOL = """\
specc: 1
name: Roles
site: test
version: 1.0.0
structures:
  Target: {role: target}
  CTV: {role: target}
  Organ: {role: oar}
  Body: {role: other}
prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}
goals:
  CTV: ['D98% >= 50 Gy']
"""


def test_each_structure_record_has_its_role_in_the_protocol_and_a_case_structure_it_does_not_name_none() -> None:
    case = synthetic_case()
    masks = {**masks_of(case), "CTV": masks_of(case)["Target"], "Unnamed": masks_of(case)["Organ"]}
    record = evaluate_plan(parse_protocol_text(PROTOCOL, "roles.yaml"), case, masks, solve_result(case), {}).record
    assert {s.structure: s.role for s in record.structures} == {
        "Target": "target", "CTV": "target", "Organ": "oar", "Body": "other", "Unnamed": None,
    }
    written = {s["structure"]: s["role"] for s in json.loads(record_json(record))["structures"]}
    assert written["CTV"] == "target" and written["Unnamed"] is None


def test_the_recorded_roles_are_the_protocol_languages() -> None:
    assert get_args(StructureRole) == get_args(StructureSpec.model_fields["role"].annotation)


def test_a_structure_record_written_before_roles_were_recorded_reads_as_none() -> None:
    older = {"structure": "PTV", "color": "#ff0000", "volume_cc": 1.0, "min_gy": 0.0, "mean_gy": 1.0, "max_gy": 2.0,
             "dose_gy": [0.0, 2.0], "volume_percent": [100.0, 0.0]}
    assert StructureDose.model_validate(older).role is None
