"""plan.json's term records say of a limit what it was judged against and by how much it is broken, from the kind's
own evaluate, not only whether it held; a record written before they were recorded still reads (audit s21: the
benchmark worked the violation out from the kinds itself, and plan.json and the report gave `satisfied` alone)."""

from __future__ import annotations

import json
import math

import pytest
from evaluate_fakes import masks_of, protocol, solve_result, synthetic_case

from specc.evaluate import PlanRecord, evaluate_plan
from specc.evaluate.record import TermRecord
from specc.report.identity import record_json


@pytest.fixture(scope="module")
def evaluation():
    case = synthetic_case()
    plan_protocol = protocol({"Target": ["D95% >= 50 Gy"]}, terms=[
        "{kind: max_dose, structure: Organ, dose: 20 Gy}",
        "{kind: dvh, structure: Target, dose: 50 Gy, volume: 100000 cc, bound: lower}",
        "{kind: uniform_dose, structure: Target, dose: 60 Gy, weight: 1}",
    ])
    return case, evaluate_plan(plan_protocol, case, masks_of(case),
                               solve_result(case, scale=0.65, protocol=plan_protocol), {})


def test_a_limits_record_gives_its_limit_and_violation_and_an_objectives_none(evaluation) -> None:
    case, evaluated = evaluation
    maximum, undefined, objective = evaluated.record.solver.terms
    organ_max = evaluated.dose[case.structures["Organ"].mask].max()
    assert organ_max > 20.0 and maximum.satisfied is False
    assert (maximum.limit, maximum.violation) == (20.0, pytest.approx(organ_max - 20.0))
    assert undefined.value is not None and math.isnan(undefined.value)  # more volume than the Target has
    assert (undefined.limit, undefined.violation, undefined.satisfied) == (50.0, math.inf, False)
    assert (objective.limit, objective.violation) == (None, None)


def test_an_infinite_violation_is_written_as_json_can_and_reads_back(evaluation) -> None:
    _, evaluated = evaluation
    written = json.loads(record_json(evaluated.record))["solver"]["terms"]
    assert [(term["limit"], term["violation"]) for term in written][1:] == [(50.0, "Infinity"), (None, None)]
    read = PlanRecord.model_validate_json(record_json(evaluated.record)).solver.terms
    assert [(term.limit, term.violation) for term in read] == [
        (term.limit, term.violation) for term in evaluated.record.solver.terms
    ]


def test_a_term_record_written_before_limits_were_recorded_reads_as_none() -> None:
    older = {"label": "max_dose Organ <= 20 Gy", "kind": "max_dose", "source": "p.yaml:12", "hard": True,
             "objective_contribution": None, "value": 21.0, "unit": "Gy", "satisfied": False,
             "detail": "maximum dose in Organ"}
    record = TermRecord.model_validate_json(json.dumps(older))
    assert (record.limit, record.violation, record.satisfied) == (None, None, False)
