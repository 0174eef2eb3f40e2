"""`specc plan --out` and `specc cohort`'s table as the terminal shows them (audits a2 F6, F7; a5 F5)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import specc.cli.plan  # noqa: F401  (registers the commands)
from evaluate_fakes import protocol
from specc.cli.app import app
from specc.cli.plan import cohort_table
from specc.pipeline import CohortEntry, CohortOutcome

PROTOCOL = Path(__file__).parent.parent / "protocols" / "tg119" / "c-shape.yaml"
COARSE = ["--phantom", "c-shape", "--grid", "10", "--beams", "5"]
runner = CliRunner()


def test_an_out_that_is_a_file_is_refused_before_the_case_is_built(tmp_path: Path) -> None:
    """a2 F7: found after the solve, with 'File exists'."""
    a_file = tmp_path / "afile.txt"
    a_file.write_text("mine", encoding="utf-8")
    result = runner.invoke(app, ["plan", str(PROTOCOL), *COARSE, "--out", str(a_file)])
    said = " ".join(result.output.split())
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert f"error: {a_file} is a file, not a folder" in said
    assert "phantom c-shape" not in said and "solve" not in said  # nothing built, nothing solved
    assert a_file.read_text(encoding="utf-8") == "mine"


def test_an_earlier_plan_that_cannot_be_removed_is_a_warning_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2 F6 (b): a read-only earlier plan gave a PermissionError traceback and stayed without a word."""
    out = tmp_path / "oldplan"
    out.mkdir()
    for name in ("plan.json", "report.html", "result.h5"):
        (out / name).write_text("earlier", encoding="utf-8")
    damaged = tmp_path / "damaged.h5"
    damaged.write_text("not a case", encoding="utf-8")
    unlink = Path.unlink

    def refused(self: Path, *args: object, **kwargs: object) -> None:
        if self.parent == out:
            raise PermissionError(errno.EACCES, "Permission denied")
        unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", refused)
    result = runner.invoke(app, ["plan", str(PROTOCOL), "--case", str(damaged), "--out", str(out), "-q"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "not a readable HDF5 file" in said
    assert (f"warning: could not remove {out / 'plan.json'} (Permission denied), so {out / 'report.html'}, "
            f"{out / 'result.h5'} stay beside it: an earlier run's plan, not this run's") in said


def test_a_plan_that_cannot_replace_an_earlier_one_is_one_error_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """audit s20/t2 F7: an immutable earlier plan.json printed one sentence twice, as 'error:' and as 'warning:',
    and neither said that the solved plan was not written because of it."""
    out = tmp_path / "imm"
    out.mkdir()
    for name in ("plan.json", "report.html", "result.h5"):
        (out / name).write_text("earlier", encoding="utf-8")
    unlink = Path.unlink

    def refused(self: Path, *args: object, **kwargs: object) -> None:
        if self == out / "plan.json":
            raise PermissionError(errno.EPERM, "Operation not permitted")
        unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", refused)
    result = runner.invoke(app, ["plan", str(PROTOCOL), "--phantom", "c-shape", "--grid", "10", "--beams", "5",
                                 "--out", str(out), "-q"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert said == (f"error: could not remove {out / 'plan.json'} (Operation not permitted), so {out / 'report.html'}, "
                    f"{out / 'result.h5'} stay beside it: an earlier run's plan, not this run's; no plan written, as "
                    "this run's cannot take its place: remove that plan, or write into another folder"), said
    assert sorted(path.name for path in out.iterdir()) == ["plan.json", "report.html", "result.h5"]


def test_each_cohort_error_is_item_then_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """audit s20/t2 F7: a case that could not be read said 'error: trunc.h5: ...', one that could not be compiled
    'pr.h5: error: cs-t1.yaml:19: ...'. Both now as a failed solve's line: 'ITEM: error: ...', the file once."""
    from specc.cli.app import error_console
    from specc.cli.plan import StagePrinter, cohort_progress

    report = cohort_progress(StagePrinter(quiet=True), True, "case")
    unreadable = CohortEntry("trunc.h5", None, None, None, "trunc.h5: not a readable HDF5 file (truncated file)")
    uncompiled = CohortEntry("pr.h5", "prostate", Path("pr"), None, "cs-t1.yaml:19: structure 'Core': no case "
                             "structure named 'Core'", kept="could not remove pr/plan.json (Permission denied)")
    kept = "could not remove c/plan.json (Operation not permitted): an earlier run's plan, not this run's"
    unreplaced = CohortEntry("cs.h5", "c", Path("c"), None, f"{kept}; no plan written, as this run's cannot take its "
                             "place", kept=kept)  # the folder tried again after the error: not said twice
    with error_console.capture() as captured:
        report(1, 3, "trunc.h5", unreadable)
        report(2, 3, "pr.h5", uncompiled)
        report(3, 3, "cs.h5", unreplaced)
    assert captured.get().splitlines() == [
        "  trunc.h5: error: not a readable HDF5 file (truncated file)",
        "  pr.h5: error: cs-t1.yaml:19: structure 'Core': no case structure named 'Core'",
        "  warning: could not remove pr/plan.json (Permission denied)",
        f"  cs.h5: error: {kept}; no plan written, as this run's cannot take its place",
    ]


def test_the_cohort_table_keeps_each_case_name_whole_at_80_columns() -> None:
    """a5 F5: with six goals, two cases each read 'pro-5m…' in an 80-column terminal or a log."""
    goals = {"Target": ["D95% >= 57 Gy", "D50% >= 60 Gy", "D2% <= 64 Gy"], "Organ": ["Mean <= 20 Gy", "D2% <= 40 Gy"],
             "Body": ["Max <= 66 Gy"]}
    names = ["pro-5mm-patient-000123-course2", "pro-5mm-patient-000124-course1", "cases/prostate-8mm-missing.h5"]
    entries = [CohortEntry(name, None, None, None, "cannot be read") for name in names]
    outcome = CohortOutcome(protocol(goals), entries, Path("cohort.csv"), [])
    console = Console(width=80, record=True)
    console.print(cohort_table(outcome, 80))
    shown = console.export_text()
    assert max(len(line) for line in shown.splitlines()) <= 80
    for name in names:
        assert f"│ {name} " in shown, shown
    assert "…" not in shown  # no column ends its text with an ellipsis: they fold


def test_ctrl_c_while_a_written_plan_is_printed_keeps_its_exit_code_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """audit b2 N3: a Ctrl-C while the goal table printed, every file written, exited 130 ('interrupted: no plan
    written') without a word, a complete plan left in OUT."""
    import specc.cli.plan as cli_plan

    def interrupted(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_plan, "_print_outcome", interrupted)
    out = tmp_path / "out"
    result = runner.invoke(app, ["plan", str(PROTOCOL), *COARSE, "--out", str(out)])
    said = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "Ctrl-C came after the plan had ended: what it wrote stands (exit 0)" in said
    assert {path.name for path in out.iterdir()} >= {"plan.json", "report.html", "result.h5"}
