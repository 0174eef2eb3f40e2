"""StagedExport, the library side of whole-or-nothing exports: where an export is staged, and what a Ctrl-C
during the move into place becomes (review of the audit fixes)."""

from __future__ import annotations

import errno
import os
import signal

import pytest

from specc.export import staging
from specc.export.staging import ExportError, StagedExport


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
