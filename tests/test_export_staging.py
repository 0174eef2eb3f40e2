"""StagedExport, the library side of whole-or-nothing exports: where an export is staged, and what a Ctrl-C
during the move into place becomes (review of the audit fixes)."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest

from specc.export import staging
from specc.export.staging import ExportError, StagedExport


def _existing_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    return folder


def test_an_export_into_an_existing_folder_is_staged_beside_it_not_inside(tmp_path):
    """Staged inside, a killed export left a hidden half study in the folder a planning system scans."""
    folder = _existing_folder(tmp_path)
    with StagedExport(folder, folder=True) as staged:
        assert staged.path.parent == tmp_path and staged.path.name.startswith(".study.")
        assert sorted(path.name for path in folder.iterdir()) == ["notes.txt"]
        (staged.path / "RD.dcm").write_bytes(b"dose")
        staged.commit()
    assert sorted(path.name for path in folder.iterdir()) == ["RD.dcm", "notes.txt"]
    assert [path.name for path in tmp_path.iterdir()] == ["study"]


def test_where_the_parent_cannot_be_written_the_export_is_staged_inside_the_folder(tmp_path, monkeypatch):
    """As root every folder is writable, so the parent's refusal is raised where the staging folder is made."""
    folder = _existing_folder(tmp_path)
    made = Path.mkdir

    def refuse_beside(self, *args, **kwargs):
        if self.parent == tmp_path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return made(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse_beside)
    with StagedExport(folder, folder=True) as staged:
        assert staged.path.parent == folder and staged.path.name.startswith(".specc-export-")
        (staged.path / "RD.dcm").write_bytes(b"dose")
        staged.commit()
    assert sorted(path.name for path in folder.iterdir()) == ["RD.dcm", "notes.txt"]


def test_a_folder_that_is_a_mount_point_is_staged_inside_it(tmp_path, monkeypatch):
    """A rename from the parent into another file system fails (EXDEV): staged inside, the move stays a rename."""
    folder = _existing_folder(tmp_path)
    monkeypatch.setattr(staging, "_one_file_system", lambda folder, parent: False)
    with StagedExport(folder, folder=True) as staged:
        assert staged.path.parent == folder


def test_ctrl_c_during_a_move_that_fails_is_raised_after_the_staging_is_removed(tmp_path, monkeypatch):
    """The hold swallowed it: the caller got the ExportError only, and a loop over exports went on to the next."""
    before = signal.getsignal(signal.SIGINT)

    def ctrl_c_then_full(source, destination):
        os.kill(os.getpid(), signal.SIGINT)  # held: the move has begun
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(destination))

    monkeypatch.setattr(staging.os, "replace", ctrl_c_then_full)
    with pytest.raises(KeyboardInterrupt) as raised:
        with StagedExport(tmp_path / "RD.dcm", folder=False) as staged:
            staged.path.write_bytes(b"dose")
            staged.commit()
    assert isinstance(raised.value.__cause__, ExportError)
    assert f"cannot write {tmp_path / 'RD.dcm'}: no space left on device" in str(raised.value.__cause__)
    assert list(tmp_path.iterdir()) == [] and signal.getsignal(signal.SIGINT) is before


def test_a_sigint_handler_installed_outside_python_is_left_in_place(tmp_path, monkeypatch):
    """signal.signal returns None for a handler not set from Python (an embedding application's); None also meant
    'nothing held', so the hold stayed installed and swallowed every later Ctrl-C of the process."""
    installed: list[object] = [None]  # the handler now in place, as Python sees it: None, not set from Python

    def fake_signal(signum, handler):
        previous = installed[-1]
        installed.append(handler)
        return previous

    monkeypatch.setattr(staging.signal, "signal", fake_signal)
    monkeypatch.setattr(staging.signal, "getsignal", lambda signum: installed[-1])
    with StagedExport(tmp_path / "tables", folder=True) as staged:
        (staged.path / "dvh.csv").write_text("structure\n")
        staged.commit()
    assert installed[-1] is None  # the outside handler, not specc's hold
    assert (tmp_path / "tables" / "dvh.csv").is_file()


def test_an_export_into_a_folder_holding_other_dicom_files_is_refused_and_one_replacing_its_own_is_not(tmp_path):
    """audit b2 N4: a study exported again into a folder holding an earlier export kept the earlier RP.dcm and CT
    slices beyond the new ones beside the new RD.dcm, one study to a planning system that imports the folder."""
    folder = _existing_folder(tmp_path)
    for name in ("RD.dcm", "RP.dcm", "CT_0024.dcm"):
        (folder / name).write_bytes(b"earlier export")
    with pytest.raises(ExportError, match=r"holds DICOM files this export does not write \(CT_0024.dcm, RP.dcm\)"):
        with StagedExport(folder, folder=True) as staged:
            (staged.path / "RD.dcm").write_bytes(b"dose")
            staged.commit()
    assert (folder / "RD.dcm").read_bytes() == b"earlier export"  # nothing moved in
    assert [path.name for path in tmp_path.iterdir()] == ["study"]  # the staging removed
    for name in ("RP.dcm", "CT_0024.dcm"):
        (folder / name).unlink()
    with StagedExport(folder, folder=True) as staged:  # the same files again: this export's own, replaced
        (staged.path / "RD.dcm").write_bytes(b"dose")
        staged.commit()
    assert sorted(path.name for path in folder.iterdir()) == ["RD.dcm", "notes.txt"]
    assert (folder / "RD.dcm").read_bytes() == b"dose"


def test_a_plan_folder_moves_in_the_file_a_reader_trusts_last_and_keeps_the_dicom_beside_it(tmp_path, monkeypatch):
    """A plan (`specc.pipeline.staged_plan`) is staged as an export is; killed between two moves, a folder
    holding plan.json must hold the whole plan: plan.json is moved in after every other file. An RD.dcm exported
    into the plan folder is the user's and stays; errors say what a plan's failure means."""
    folder = _existing_folder(tmp_path)
    (folder / "RD.dcm").write_bytes(b"an export of the plan")
    moved: list[str] = []
    replace = os.replace

    def recorded(source, destination):
        moved.append(Path(destination).name)
        replace(source, destination)

    monkeypatch.setattr(staging.os, "replace", recorded)
    plan_like = {"what": "plan", "consequence": "no plan written", "last": ("report.html", "plan.json"),
                 "refuse_other_dicom": False}
    with StagedExport(folder, folder=True, **plan_like) as staged:
        for name in ("plan.json", "report.html", "result.h5", "segments.json"):
            (staged.path / name).write_text(name)
        staged.commit()
    assert moved == ["result.h5", "segments.json", "report.html", "plan.json"]
    assert sorted(path.name for path in folder.iterdir()) == [
        "RD.dcm", "notes.txt", "plan.json", "report.html", "result.h5", "segments.json"]

    def full(source, destination):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(destination))

    monkeypatch.setattr(staging.os, "replace", full)
    with pytest.raises(ExportError, match=r"cannot move result\.h5 into .*study: no space left on device; 0 of the "
                                          r"plan's 2 files were moved in before it, the others removed"):
        with StagedExport(folder, folder=True, **plan_like) as staged:
            (staged.path / "result.h5").write_text("new")
            (staged.path / "plan.json").write_text("new")
            staged.commit()
    assert (folder / "plan.json").read_text() == "plan.json" and [path.name for path in tmp_path.iterdir()] == ["study"]
