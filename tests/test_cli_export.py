"""`specc export` is whole or nothing: a destination it cannot write, a full disk or Ctrl-C give one line
and leave no partial file or study; a completed export exits 0 (audit a2 F16, F20)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import pydicom
import pytest
from evaluate_fakes import protocol, synthetic_case
from typer.testing import CliRunner

from specc.cli import app
from specc.evaluate import PlanRecord
from specc.export.dicom_identity import check_text_value
from specc.export.staging import StagedExport
from specc.pipeline import plan

TERMS = ["{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}"]


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    synthetic_case().save(folder / "case.h5")
    assert plan(protocol({"Target": ["D50% >= 55 Gy"]}, terms=TERMS), folder / "case.h5", folder / "plan").succeeded
    return folder / "plan"


def _export(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, ["export", *args])
    return result.exit_code, " ".join(result.output.split()), result.exception


def _fail_on_save(monkeypatch, call: int, error: BaseException) -> None:
    """Every DICOM object goes through Dataset.save_as: the `call`-th one writes half a file and raises `error`
    (a full disk, Ctrl-C), as a real failure part way through a study would."""
    calls = []
    original = pydicom.dataset.Dataset.save_as

    def save_as(self, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == call:
            Path(filename).write_bytes(b"DICM half")
            raise error
        return original(self, filename, *args, **kwargs)

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", save_as)


def _nothing_staged(folder: Path) -> bool:
    return not [path for path in folder.iterdir() if path.name.endswith(".partial")]


@pytest.mark.parametrize("format, out", [("dicom", "study"), ("rtdose", "RD.dcm"), ("dvh", "tables")])
def test_a_full_disk_part_way_leaves_nothing_and_says_where_and_why(planned, tmp_path, monkeypatch, format, out):
    """The study kept 25 files of its 26 (no RD.dcm) and a traceback ended the run."""
    if format == "dvh":  # CSV and JSON, not DICOM: the disk fills as the second table is opened
        opened = Path.open

        def full(self, *args, **kwargs):
            if self.name == "goals.csv":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
            return opened(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", full)
    else:
        _fail_on_save(monkeypatch, 4 if format == "dicom" else 1, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    code, said, error = _export(format, str(planned / "result.h5"), "--out", str(tmp_path / out))
    assert code == 1 and isinstance(error, SystemExit), said  # no traceback
    assert f"error: cannot write {tmp_path / out}" in said and "no space left on device; nothing exported" in said
    assert not (tmp_path / out).exists() and _nothing_staged(tmp_path)


def test_ctrl_c_part_way_through_a_study_leaves_none_of_it_and_exits_130(planned, tmp_path, monkeypatch):
    """It left CT slices and a structure set without their RT Dose, silently."""
    _fail_on_save(monkeypatch, 6, KeyboardInterrupt())
    code, said, _ = _export("dicom", str(planned / "result.h5"), "--out", str(tmp_path / "study"))
    assert code == 130 and "interrupted: nothing exported" in said
    assert not (tmp_path / "study").exists() and _nothing_staged(tmp_path)


def test_an_existing_folder_keeps_its_files_when_an_export_into_it_fails_and_gets_the_study_when_it_does_not(
    planned, tmp_path, monkeypatch
):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "RD.dcm").write_bytes(b"an earlier export")
    with monkeypatch.context() as patched:
        _fail_on_save(patched, 3, KeyboardInterrupt())
        code, said, _ = _export("dicom", str(planned / "result.h5"), "--out", str(folder))
    assert code == 130 and sorted(path.name for path in folder.iterdir()) == ["RD.dcm", "notes.txt"]
    assert (folder / "RD.dcm").read_bytes() == b"an earlier export"
    code, said, _ = _export("dicom", str(planned / "result.h5"), "--out", str(folder))
    assert code == 0, said
    names = sorted(path.name for path in folder.iterdir())
    assert "notes.txt" in names and "RS.dcm" in names and names.count("RD.dcm") == 1 and not any(".partial" in n for n in names)
    assert pydicom.dcmread(folder / "RD.dcm").Modality == "RTDOSE"


def test_a_destination_of_the_wrong_kind_is_one_error_line(planned, tmp_path):
    """An existing folder for a file, a file for a folder, a file in the way of a folder: each gave a traceback."""
    (tmp_path / "a-file").write_text("x")
    cases = [
        (("rtdose", "--out", str(planned)), f"error: {planned}: a folder; give the file to write (e.g. {planned / 'RD.dcm'})"),
        (("dvh", "--out", str(tmp_path / "a-file")), f"error: {tmp_path / 'a-file'}: a file, not a folder"),
        (("dicom", "--out", str(tmp_path / "a-file")), f"error: {tmp_path / 'a-file'}: a file, not a folder"),
        (("rtdose", "--out", str(tmp_path / "a-file" / "sub" / "RD.dcm")),
         f"error: cannot write {tmp_path / 'a-file' / 'sub' / 'RD.dcm'}: {tmp_path / 'a-file'} is a file, not a folder"),
    ]
    for (format, *options), message in cases:
        code, said, error = _export(format, str(planned / "result.h5"), *options)
        assert code == 1 and isinstance(error, SystemExit) and message in said, said
    assert (tmp_path / "a-file").read_text() == "x"


def test_an_unwritable_folder_is_named_with_the_reason(planned, tmp_path, monkeypatch):
    """As root every folder is writable, so the system's refusal is raised where the folder is made."""
    made = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self.name == "locked":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return made(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    code, said, _ = _export("rtdose", str(planned / "result.h5"), "--out", str(tmp_path / "locked" / "RD.dcm"))
    assert code == 1 and f"error: cannot create the folder {tmp_path / 'locked'}: permission denied; nothing exported" in said


def test_new_folders_made_for_an_export_that_fails_are_removed(planned, tmp_path, monkeypatch):
    _fail_on_save(monkeypatch, 1, OSError(errno.EIO, os.strerror(errno.EIO)))
    code, said, _ = _export("rtdose", str(planned / "result.h5"), "--out", str(tmp_path / "a" / "b" / "RD.dcm"))
    assert code == 1 and "input/output error; nothing exported" in said
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_once_the_files_are_moved_into_place_is_held_and_the_export_completes(tmp_path):
    """Ctrl-C after the last write returned 130 for a complete export; from the move on it is held, then
    the handler before it is back."""
    before = signal.getsignal(signal.SIGINT)
    with StagedExport(tmp_path / "tables", folder=True) as staged:
        (staged.path / "dvh.csv").write_text("structure\n")
        staged.commit()
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt here
        written = staged.final(staged.path / "dvh.csv")
    assert staged.interrupt_held and written == tmp_path / "tables" / "dvh.csv" and written.read_text() == "structure\n"
    assert signal.getsignal(signal.SIGINT) is before
    assert _nothing_staged(tmp_path)


# The command line as the `specc` script runs it; a Ctrl-C arrives after the command has finished, as Python shuts down.
_CTRL_C_AFTER_THE_COMMAND = """
import os, signal, sys, time
from specc.cli import main
sys.argv = ["specc", *sys.argv[1:]]
try:
    main()
finally:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)  # where the KeyboardInterrupt would replace the command's exit
"""


def test_ctrl_c_after_a_complete_export_leaves_its_exit_code_0(planned, tmp_path):
    """A Ctrl-C during shutdown after a complete export (every file written and reported) exited 130."""
    run = subprocess.run(
        [sys.executable, "-c", _CTRL_C_AFTER_THE_COMMAND, "export", "dvh", str(planned / "result.h5"),
         "--out", str(tmp_path / "tables")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "tables" / "dvh.csv").is_file() and "KeyboardInterrupt" not in run.stderr


@pytest.mark.parametrize("machine", ["TrueBeam-SN-12345", "Linac\\2"])
def test_a_machine_name_dicom_cannot_hold_is_refused_before_anything_is_written(planned, tmp_path, machine):
    """The RT Plan writes --machine as TreatmentMachineName (SH: 16 characters); the RT Dose only references that RT
    Plan by a UID derived from it, so a name the RT Plan cannot hold gave an RT Dose that references no RT Plan. The
    reason is the one every DICOM object is checked with (one home for SH's limits)."""
    code, said, _ = _export("rtdose", str(planned / "result.h5"), "--out", str(tmp_path / "RD.dcm"), "--machine", machine)
    assert code == 1 and f"--machine {machine!r} {check_text_value('SH', machine)}" in " ".join(said.split()), said
    assert "TreatmentMachineName" in said and not (tmp_path / "RD.dcm").exists()


def test_ctrl_c_just_after_the_hold_is_released_still_reports_a_complete_export(planned, tmp_path, monkeypatch):
    """The hold ended with the `with` block; a Ctrl-C after it, every file in place, said 'interrupted: nothing
    exported' and exited 130. It is delivered deterministically, right after the previous handler is back."""
    release = StagedExport._release_interrupts

    def release_then_ctrl_c(self):
        release(self)
        if self.committed:
            os.kill(os.getpid(), signal.SIGINT)  # KeyboardInterrupt at the next bytecode, still in __exit__

    monkeypatch.setattr(StagedExport, "_release_interrupts", release_then_ctrl_c)
    code, said, _ = _export("dvh", str(planned / "result.h5"), "--out", str(tmp_path / "tables"))
    assert code == 0, said
    assert "the export is complete" in said and "nothing exported" not in said
    assert (tmp_path / "tables" / "dvh.csv").is_file() and _nothing_staged(tmp_path)


def test_ctrl_c_during_a_move_that_fails_is_not_lost(planned, tmp_path, monkeypatch):
    """The Ctrl-C held while the move failed was dropped: the command exited 1 with the error, as if never pressed."""
    from specc.export import staging

    def ctrl_c_then_full(source, destination):
        os.kill(os.getpid(), signal.SIGINT)  # held: the move has begun
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(destination))

    monkeypatch.setattr(staging.os, "replace", ctrl_c_then_full)
    code, said, _ = _export("rtdose", str(planned / "result.h5"), "--out", str(tmp_path / "RD.dcm"))
    assert code == 130, said
    assert f"interrupted during a move that failed: cannot write {tmp_path / 'RD.dcm'}: no space left on device; " \
        "nothing exported" in said
    assert not (tmp_path / "RD.dcm").exists() and _nothing_staged(tmp_path)


# `specc export dicom` killed outright (SIGKILL: no clean-up runs) as it writes the study's third object.
_KILLED_PART_WAY = """
import os, signal, sys
import pydicom
from specc.cli import main
original, calls = pydicom.dataset.Dataset.save_as, []

def save_as(self, filename, *args, **kwargs):
    calls.append(filename)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, filename, *args, **kwargs)

pydicom.dataset.Dataset.save_as = save_as
sys.argv = ["specc", *sys.argv[1:]]
main()
"""


def test_an_export_into_a_folder_killed_part_way_leaves_nothing_inside_the_folder(planned, tmp_path):
    """The study was staged in a hidden folder inside OUT: after kill -9 a planning system scanning OUT (recursively,
    dot-folders included) found half a study there. It is staged beside OUT, and that is where a kill leaves it."""
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    run = subprocess.run(
        [sys.executable, "-c", _KILLED_PART_WAY, "export", "dicom", str(planned / "result.h5"), "--out", str(folder)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert [path.name for path in folder.iterdir()] == ["notes.txt"]
    left = [path for path in tmp_path.iterdir() if path.name.endswith(".partial")]
    assert len(left) == 1 and left[0].name.startswith(".study.") and len(list(left[0].iterdir())) == 2


def test_an_rt_dose_of_an_optimized_fluence_says_it_references_no_rt_plan(planned, tmp_path):
    """Audit s18/a3 F4: DoseSummationType PLAN without the Referenced RT Plan Sequence DICOM requires for it (type
    1C); `specc export dicom` said so, `specc export rtdose` wrote it without a word."""
    from specc.export.rtdose import NO_RT_PLAN_NOTE

    code, said, _ = _export("rtdose", str(planned / "result.h5"), "--out", str(tmp_path / "RD.dcm"))
    assert code == 0, said
    assert " ".join(NO_RT_PLAN_NOTE.split()) in said


def test_a_not_converged_plan_is_said_in_the_record_s_words_with_or_without_its_record(tmp_path):
    """result.h5 without its plan record is said by its root solver_status in the words of the record's
    `why_not_converged` (`PlanRecord.solver_ended`), not in a second wording of the command line's."""
    terms = [*TERMS, "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}"]
    folder = tmp_path / "plan"
    synthetic_case().save(tmp_path / "case.h5")  # the case result.h5 names: a result without its record needs it
    outcome = plan(protocol({"Target": ["D50% >= 55 Gy"]}, terms=terms, solver="{max_iterations: 3}"),
                   tmp_path / "case.h5", folder)
    record = outcome.record
    assert not record.converged
    said = PlanRecord.solver_ended(record.solver.status)
    assert record.why_not_converged() == f"{said} ({record.solver.solver})"
    code, output, _ = _export("dvh", str(folder / "result.h5"), "--out", str(tmp_path / "with"))
    assert code == 0 and f"NOT CONVERGED: {record.why_not_converged()}; not a usable plan" in output, output
    with h5py.File(folder / "result.h5", "r+") as handle:
        del handle["plan_json"]
    code, output, _ = _export("dvh", str(folder / "result.h5"), "--out", str(tmp_path / "without"))
    assert code == 0 and f"NOT CONVERGED: {said}; not a usable plan" in output, output
    assert PlanRecord.solver_ended(None) == PlanRecord.solver_ended("") == "no solver status"
