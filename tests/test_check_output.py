"""Where `specc check` writes: a report or plan.json that cannot be written (a full disk, no permission) is one
error naming the file and why, and the folder holds a whole check or none, as for `specc plan`
(tests/test_pipeline_output.py)."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from evaluate_fakes import synthetic_case
from interop_fixtures import write_rtdose_file
from typer.testing import CliRunner

import specc
import specc.report.write
from specc.cli import app
from specc.report.write import ReportError
from specc.pipeline import PlanFolderError

PROTOCOL = """\
specc: 1
name: Check output
site: test
version: 1.0.0
structures:
  Target: {role: target}
  Organ: {role: oar}
prescription:
  fractions: 30
  levels: [{target: Target, dose: 60 Gy}]
goals:
  Target: ["D95% >= 57 Gy"]
  Organ: ["Max <= 45 Gy"]
"""


@pytest.fixture
def checked_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A case, its RT Dose and a protocol file, and an earlier check in tmp_path/out."""
    case = synthetic_case()
    case.save(tmp_path / "case.h5")
    dose = np.where(case.structures["Target"].mask, 60.0, 20.0)
    rd = write_rtdose_file(tmp_path / "RD.dcm", dose, case.grid.origin_mm, case.grid.spacing_mm)
    protocol_file = tmp_path / "check.yaml"
    protocol_file.write_text(PROTOCOL, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("plan.json", "report.html"):
        (out / name).write_text("earlier", encoding="utf-8")
    (out / "mine.txt").write_text("mine", encoding="utf-8")
    return protocol_file, rd, out


def _plan_json_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    written = Path.write_bytes

    def refused(self: Path, data: bytes) -> int:
        if self.name == "plan.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return written(self, data)

    monkeypatch.setattr(Path, "write_bytes", refused)


def test_a_plan_json_that_cannot_be_written_is_one_error_and_leaves_no_half_check(
    checked_files: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError writing plan.json escaped as itself, after report.html was written: a report with no record
    beside it read as a check."""
    protocol_file, rd, out = checked_files
    _plan_json_refused(monkeypatch)
    with pytest.raises(PlanFolderError) as raised:
        specc.check_dose(protocol_file, tmp_path / "case.h5", rd, out)
    assert str(raised.value) == f"cannot write {out / 'plan.json'}: No space left on device; no check written"
    assert [path.name for path in out.iterdir()] == ["mine.txt"]  # neither this check's report nor the earlier check


def test_the_command_says_it_in_one_line_and_exits_1(
    checked_files: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol_file, rd, out = checked_files
    _plan_json_refused(monkeypatch)
    result = CliRunner().invoke(
        app, ["check", str(protocol_file), "--case", str(tmp_path / "case.h5"), "--dose", str(rd), "--out", str(out)]
    )
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # not the OSError, as a traceback
    error = f"error: cannot write {out / 'plan.json'}: No space left on device; no check written"
    assert error in " ".join(result.output.split())
    assert [path.name for path in out.iterdir()] == ["mine.txt"]


def test_a_pdf_that_cannot_be_written_leaves_no_report_html_behind(
    checked_files: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """report.pdf fails after report.html is written: the check stopped with report.html alone in OUT."""
    protocol_file, rd, out = checked_files

    def full(html: str, path: Path, named: Path | None = None) -> None:  # html_to_pdf's signature
        path.write_bytes(b"%PDF-1.7 half")
        raise ReportError(f"cannot write {named or path}: No space left on device")

    monkeypatch.setattr(specc.report.write, "html_to_pdf", full)
    with pytest.raises(ReportError, match=r"cannot write .*report\.pdf: No space left on device"):
        specc.check_dose(protocol_file, tmp_path / "case.h5", rd, out, pdf=True)
    assert [path.name for path in out.iterdir()] == ["mine.txt"]
