"""`specc approve` of a plan whose protocol file has moved on since it was planned: approved, with a warning."""

from __future__ import annotations

import hashlib
from pathlib import Path

from typer.testing import CliRunner

from evaluate_fakes import synthetic_case
from specc.approval import protocol_changed_since, verify
from specc.cli import app
from specc.pipeline import plan
from specc.protocol import load_protocol
from specc.report.compare import read_record

PROTOCOL = (
    "specc: 1\nname: Tuned\nsite: t\nversion: 1.1.1\n"
    "structures: {Target: {role: target}, Organ: {role: oar}}\n"
    "prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}\n"
    "goals: {Target: ['D50% >= 50 Gy'], Organ: ['Mean <= 40 Gy']}\n"
    "optimization:\n  terms:\n"
    "    - {kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}\n"
    "    - {kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}\n"
)
APPROVE = ["--reviewer", "Dr. A. Example", "--role", "Radiation oncologist"]


def _planned(tmp_path: Path, name: str) -> tuple[Path, Path]:
    protocol = tmp_path / f"{name}.yaml"
    protocol.write_text(PROTOCOL, encoding="utf-8")
    folder = tmp_path / name
    assert plan(load_protocol(protocol), synthetic_case(), folder).succeeded
    return protocol, folder


def test_a_plan_of_a_protocol_file_edited_since_is_approved_with_a_warning_naming_both_sha256(tmp_path: Path) -> None:
    """The file still at its recorded path holds other content (a later save, the same name and version): the
    approval is written, and its output ends with a warning naming the files and both SHA-256 (audit s18/a4 F2)."""
    protocol, folder = _planned(tmp_path, "stale")
    planned = hashlib.sha256(PROTOCOL.encode()).hexdigest()
    edited = PROTOCOL.replace("weight: 1}", "weight: 3}")
    protocol.write_text(edited, encoding="utf-8")
    result = CliRunner().invoke(app, ["approve", str(folder), *APPROVE])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    now = hashlib.sha256(edited.encode()).hexdigest()
    expected = (f"WARNING: the protocol files this plan names ({protocol}) hold other content now (SHA-256 {now[:12]}) "
                f"than the plan was made from ({planned[:12]}), both named Tuned v1.1.1")
    assert expected in said and said.index("approved by Dr. A. Example") < said.index("WARNING:")
    assert verify(folder).intact  # approved as it is: the file may have moved on rightly


def test_no_warning_where_the_file_holds_the_plan_s_content_or_is_gone(tmp_path: Path) -> None:
    protocol, folder = _planned(tmp_path, "current")
    assert protocol_changed_since(read_record(folder / "plan.json")) is None
    result = CliRunner().invoke(app, ["approve", str(folder), *APPROVE])
    assert result.exit_code == 0 and "WARNING" not in result.output, result.output
    moved, folder = _planned(tmp_path, "moved")
    moved.unlink()  # nothing on disk to compare with: nothing to say
    assert protocol_changed_since(read_record(folder / "plan.json")) is None


def test_a_comment_or_formatting_edit_since_is_said_as_one_not_as_other_content(tmp_path: Path) -> None:
    """The file edited in a comment and a goal's spelling since it was planned (`specc diff`: no difference): the
    approval's warning says the files differ in comments or formatting only, not that they hold other content
    (audit s20/t1 F0)."""
    protocol, folder = _planned(tmp_path, "commented")
    protocol.write_text("# reviewed, no change\n" + PROTOCOL.replace("'Mean <= 40 Gy'", "'Mean<=4000 cGy'"),
                        encoding="utf-8")
    record = read_record(folder / "plan.json")
    said = protocol_changed_since(record)
    assert said is not None and not said.warning and said.text.startswith(
        f"the protocol files this plan names ({protocol}) differ in comments, formatting or descriptive fields only "
        f"(description, references, authors, colours) (same content, "
        f"content SHA-256 {record.protocol.content_sha256[:12]}; ")
    assert "other content" not in said.text and said.text.endswith("the plan is of the protocol as it states now")
    result = CliRunner().invoke(app, ["approve", str(folder), *APPROVE])
    shown = " ".join(result.output.split())
    # a note, not a WARNING: the plan is of the protocol as it states now (fx-hash's note)
    assert result.exit_code == 0 and "note: the protocol files" in shown and "WARNING" not in shown, result.output


def test_a_plan_without_the_content_fingerprint_or_a_file_that_no_longer_loads_is_said_honestly(
    tmp_path: Path,
) -> None:
    """plan.json written before the content fingerprint was recorded: other bytes cannot be told a comment or a
    clinical change, and the warning says so; a file that no longer loads is named with its first problem."""
    protocol, folder = _planned(tmp_path, "older")
    protocol.write_text("# reviewed\n" + PROTOCOL, encoding="utf-8")
    record = read_record(folder / "plan.json")
    older = record.model_copy(update={"protocol": record.protocol.model_copy(update={"content_sha256": None})})
    said = protocol_changed_since(older)
    assert said is not None and said.warning and "differ now (SHA-256 " in said.text
    assert "other content" not in said.text
    assert f"from those the plan was made from ({record.protocol.sha256[:12]}), named Tuned v1.1.1: " in said.text
    assert ("a plan written before specc recorded the content fingerprint cannot tell a comment from a clinical "
            "change") in said.text
    protocol.write_text(PROTOCOL.replace("fractions: 30", "fractions: 0"), encoding="utf-8")
    said = protocol_changed_since(record)
    assert said is not None and said.warning and "hold other content now" in said.text
    assert f"no longer load as a protocol ({protocol}:" in said.text
