"""`specc.plan` and `PlanSession` as a notebook uses them (audit b3 N1-N4).

A protocol changed with `model_copy` is validated again before anything is solved; one built from a
dict (no file) is planned and recorded as built in memory; `PlanSession` takes files as `plan` does;
an outcome and its record show as one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from specc.pipeline import PlanSession, plan
from specc.protocol import Protocol, ProtocolError, ProtocolSource, load_protocol
from specc.protocol.models import BUILT_IN_MEMORY
from tests.optimizer_fixtures import c_shape

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols" / "tg119"


def _fractions(protocol: Protocol, count: object) -> Protocol:
    return protocol.model_copy(update={"prescription": protocol.prescription.model_copy(update={"fractions": count})})


def test_a_protocol_changed_by_model_copy_is_validated_before_the_solve(tmp_path: Path) -> None:
    """0 fractions was a ZeroDivisionError in the compile, a weight of -50 a cvxpy DCPError."""
    c_shape_protocol = load_protocol(PROTOCOLS / "c-shape.yaml")
    with pytest.raises(ProtocolError, match=r"c-shape.yaml \(changed in memory\): prescription.fractions: "):
        plan(_fractions(c_shape_protocol, 0), c_shape(), tmp_path / "plan")
    session = PlanSession(c_shape(), tmp_path / "session")
    with pytest.raises(ProtocolError, match="prescription.fractions: expected a whole number, got 2.5"):
        session.plan(_fractions(c_shape_protocol, 2.5))
    assert not (tmp_path / "plan").exists() and session.last_plan is None


def test_a_protocol_built_from_a_dict_is_planned_and_recorded_as_built_in_memory(tmp_path: Path) -> None:
    """It solved, then crashed writing the record ('NoneType' object has no attribute 'files')."""
    content = yaml.safe_load((PROTOCOLS / "c-shape-goals.yaml").read_text(encoding="utf-8"))
    built = Protocol.model_validate(content)
    assert built.source is None
    outcome = plan(built, c_shape(), tmp_path)
    assert outcome.succeeded
    recorded = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))["protocol"]
    assert recorded["files"] == [BUILT_IN_MEMORY]
    assert recorded["sha256"] == ProtocolSource.fingerprint(built)
    assert any(note.startswith(f"protocol {BUILT_IN_MEMORY}: the protocol SHA-256") for note in outcome.notes)
    goals = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))["goals"]
    assert {goal["source"] for goal in goals} == {BUILT_IN_MEMORY}  # was the string "None"


def test_a_session_takes_a_case_file_and_a_protocol_file(tmp_path: Path) -> None:
    """Both were a bare AttributeError at `.plan`; `specc.plan` took them."""
    case_file = tmp_path / "c-shape.h5"
    c_shape().save(case_file)
    session = PlanSession(str(case_file), tmp_path / "session")
    assert session.case_path == case_file
    outcome = session.plan(str(PROTOCOLS / "c-shape.yaml"))
    assert outcome.succeeded and outcome.record.protocol.files == [str(PROTOCOLS / "c-shape.yaml")]
    assert outcome.record.case.source  # the case as read from its file


def test_swapped_arguments_say_what_each_must_be(tmp_path: Path) -> None:
    case = c_shape()
    with pytest.raises(TypeError, match="protocol must be a specc Protocol or the path of its file, got Case"):
        plan(case, PROTOCOLS / "c-shape.yaml", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="case must be a specc Case or the path of its file, got NoneType"):
        PlanSession(None, tmp_path)  # type: ignore[arg-type]


def test_an_outcome_and_its_record_show_as_one_short_line(tmp_path: Path) -> None:
    """A notebook's last expression `outcome` printed 126,000 characters, `outcome.record` 60,000."""
    outcome = plan(load_protocol(PROTOCOLS / "c-shape.yaml"), c_shape(), tmp_path)
    shown, record = repr(outcome), repr(outcome.record)
    assert len(shown) < 400 and "\n" not in shown, shown
    assert shown.startswith("PlanOutcome(status='optimal', converged=True") and "report.html" in shown
    counts = outcome.record.goal_counts()
    assert all(f"{count} {status}" in shown and f"{count} {status}" in record for status, count in counts.items())
    assert len(record) < 300 and record.startswith("PlanRecord(protocol 'TG-119 C-shape'"), record

