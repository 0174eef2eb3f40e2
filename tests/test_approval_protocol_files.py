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
