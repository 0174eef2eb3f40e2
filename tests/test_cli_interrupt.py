"""Ctrl-C at any moment of `specc plan`, `specc check` and `specc cohort` (audit s20/t2 F1), and in the first seconds
of `specc export`.

Pressed in the first seconds (the command line loading, then each command importing its stages), it exited
130 without a word and left the earlier plan, check or cohort page in DIR; while `specc.cli` loaded, a Python
traceback reached the user. The interrupt is sent for real, by the process to itself, at the moment a given
module is first imported: no timing to guess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import specc.cli  # noqa: F401  (registers the commands)
from specc.cli.app import imports_uninterrupted

ROOT = Path(__file__).parent.parent
PROTOCOL = ROOT / "protocols" / "tg119" / "c-shape.yaml"

# The `specc` console script as pyproject.toml declares it, with SIGINT sent when `argv[1]` is first imported.
_CTRL_C_ON_IMPORT = """
import importlib, os, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == TARGET:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

TARGET, ENTRY = sys.argv[1], sys.argv[2]
sys.argv = ["specc", *sys.argv[3:]]
sys.meta_path.insert(0, CtrlC())
module, function = ENTRY.split(":")
getattr(importlib.import_module(module), function)()
"""


def _specc_interrupted_on_import(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["specc"]
    return subprocess.run(
        [sys.executable, "-c", _CTRL_C_ON_IMPORT, module, entry, *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _earlier(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("an earlier run's", encoding="utf-8")


def test_ctrl_c_while_the_command_line_loads_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _earlier(out, "plan.json", "report.html", "result.h5")
    run = _specc_interrupted_on_import("specc.cli.plan", "plan", str(PROTOCOL), "--case", "x.h5", "--out", str(out))
    assert run.returncode == 130, run.stderr[-3000:]
    assert run.stderr == "interrupted\n" and run.stdout == ""  # no run had begun on OUT: its plan stays
    assert sorted(path.name for path in out.iterdir()) == ["plan.json", "report.html", "result.h5"]


@pytest.mark.parametrize(("command", "stage", "args"), [
    ("plan", "specc.pipeline", ["--case", "x.h5"]),
    # halfway through matplotlib's own import: the clean-up, importing it again, failed ("no attribute
    # 'get_data_path'") where the interrupt was not held until the imports were done
    ("plan", "matplotlib.rcsetup", ["--case", "x.h5"]),
    ("check", "specc.check", ["--case", "x.h5", "--dose", "RD.dcm"]),
])
def test_ctrl_c_while_a_command_imports_its_stages_removes_the_earlier_plan_and_says_so(
    tmp_path: Path, command: str, stage: str, args: list[str]
) -> None:
    out = tmp_path / "out"
    _earlier(out, "plan.json", "report.html", "result.h5", "mine.txt")
    run = _specc_interrupted_on_import(stage, command, str(PROTOCOL), *args, "--out", str(out))
    assert run.returncode == 130, run.stderr[-3000:]
    assert " ".join(run.stderr.split()) == f"interrupted: no {command} written; the earlier plan in {out} was removed"
    assert [path.name for path in out.iterdir()] == ["mine.txt"]


def test_ctrl_c_while_a_cohort_imports_its_stages_removes_the_earlier_cohort_page(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    _earlier(out, "cohort.csv", "cohort.html")
    _earlier(out / "c-shape", "plan.json", "report.html", "result.h5")  # a case's: removed only when it is planned
    run = _specc_interrupted_on_import("specc.pipeline", "cohort", str(PROTOCOL), "x.h5", "--out", str(out), "-q")
    assert run.returncode == 130, run.stderr[-3000:]
    said = " ".join(run.stderr.split())
    assert said == f"interrupted; the earlier run's cohort.csv, cohort.html in {out} were removed", said
    assert [path.name for path in out.iterdir()] == ["c-shape"]
    assert len(list((out / "c-shape").iterdir())) == 3


@pytest.mark.parametrize(("stage", "args"), [
    # halfway through matplotlib (specc.report): the clean-up's import of the staging module then ended in a
    # traceback ("KeyError: 'Rectangle:kwdoc'") where the interrupt was not held until the imports were done
    ("matplotlib.rcsetup", ["dvh"]),
    # --machine was checked before the command's try: its import got the command line's bare `interrupted`
    ("specc.export.dicom_identity", ["rtdose", "--machine", "TrueBeam"]),
])
def test_ctrl_c_while_an_export_imports_its_stages_says_nothing_was_exported(
    tmp_path: Path, stage: str, args: list[str]
) -> None:
    format, *options = args
    out = tmp_path / "out"
    run = _specc_interrupted_on_import(stage, "export", format, str(tmp_path / "plan"), "--out", str(out), *options)
    assert run.returncode == 130, run.stderr[-3000:]
    assert " ".join(run.stderr.split()) == "interrupted: nothing exported" and run.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_a_cohort_stopped_after_its_last_case_keeps_its_own_cohort_csv(tmp_path: Path) -> None:
    """Stopped while it wrote the cohort page, the run's cohort.csv (all its cases) stays; an earlier page goes."""
    from specc.pipeline import cohort_files, remove_earlier_cohort

    _earlier(tmp_path, "cohort.csv", "cohort.html", "cohort.pdf")
    found = cohort_files(tmp_path)
    (tmp_path / "cohort.csv").write_text("case_id,...\nthis run's case\n", encoding="utf-8")
    assert remove_earlier_cohort(tmp_path, found) == ([tmp_path / "cohort.html", tmp_path / "cohort.pdf"], [])
    assert [path.name for path in tmp_path.iterdir()] == ["cohort.csv"]


@pytest.fixture
def sigint_restored() -> Iterator[None]:
    """`specc.cli.main` ignores SIGINT once the command has finished: the test process's handler is put back."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def test_a_ctrl_c_during_the_imports_is_raised_once_they_are_done(sigint_restored: None) -> None:
    """An import stopped half-way leaves its package half-initialized: the clean-up, importing the same modules,
    failed with a traceback (matplotlib: "no attribute 'get_data_path'"). The interrupt waits for the imports."""
    imported = []
    with pytest.raises(KeyboardInterrupt):
        with imports_uninterrupted():
            os.kill(os.getpid(), signal.SIGINT)
            imported.append("the rest of the imports")
    assert imported == ["the rest of the imports"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_process_that_ignores_sigint_goes_on_through_the_imports(sigint_restored: None) -> None:
    """Review s20/r2 F1: `specc plan ... &` in a script ignores SIGINT; holding it during the imports raised it
    afterwards, so the run stopped and removed the earlier plan where it had gone on before."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    imported = []
    with imports_uninterrupted():
        os.kill(os.getpid(), signal.SIGINT)
        imported.append("the rest of the imports")
    assert imported == ["the rest of the imports"] and signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.parametrize("where", ["typer.main.get_command", "specc.cli.plan.StagePrinter.__init__"])
def test_a_ctrl_c_no_command_caught_is_one_line(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    sigint_restored: None,
) -> None:
    """Before a command began its work (typer building the command line, which let the KeyboardInterrupt through
    as a traceback; or a command's first line, which typer ended as a silent exit 130)."""
    from specc.cli import main

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(where, ctrl_c)
    monkeypatch.setattr(sys, "argv", ["specc", "plan", str(PROTOCOL), "--case", "x.h5", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 130
    assert " ".join(capsys.readouterr().err.split()) == "interrupted"


def test_ctrl_c_during_a_cohort_case_names_the_earlier_runs_files_it_could_not_remove(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`CohortInterrupted.kept` (an earlier run's cohort.html that could not be removed) reached no terminal: the
    file, read as this run's page, was left without a word."""
    import typer

    from specc.cli.plan import stop_cohort
    from specc.pipeline import CohortInterrupted

    kept = f"could not remove {tmp_path / 'cohort.html'} (Permission denied): an earlier run's, not this run's"
    stopped = CohortInterrupted("a.h5", [], None, [tmp_path / "cohort.csv"], None, [kept])
    with pytest.raises(typer.Exit) as raised:
        stop_cohort(stopped, "case", "plan", tmp_path, None)
    assert raised.value.exit_code == 130
    said = " ".join(capsys.readouterr().err.split())
    assert said == f"interrupted: no plan written for a.h5; no case finished; no cohort page written warning: {kept}"
