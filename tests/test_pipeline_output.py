"""Where `specc.plan` writes, and what the library user gets back (audits a2 F6, F7, F15, F19; a3 F2, F3, F4).

A folder no plan can go into is refused before anything is loaded; a file that cannot be
written (a full disk, no permission) is one error naming it and why, with no half plan and no
earlier plan left; an earlier plan that cannot be removed is said to be an earlier run's. The
outcome carries the plan's own fluence and dose, and a protocol changed in memory is recorded
as such, not as its file.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

import specc.pipeline
from evaluate_fakes import protocol, synthetic_case
from specc.errors import SpeccError
from specc.export import read_result
from specc.pipeline import PlanFolderError, PlanSession, plan

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Target, dose: 61 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
]
PLAN_FILES = ("plan.json", "report.html", "result.h5")


def _earlier_plan(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*PLAN_FILES, "mine.txt"):
        (folder / name).write_text("earlier", encoding="utf-8")


def _refuse_removing(monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> None:
    """Removing any file called `name` refused with `code` (EACCES: no permission; EPERM: an immutable file)."""
    unlink = Path.unlink

    def refused(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == name:
            raise PermissionError(code, os.strerror(code))
        unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", refused)


def _good():
    return protocol({"Target": ["D50% >= 50 Gy"]}, terms=TERMS)


def test_a_full_disk_while_writing_result_h5_is_one_error_naming_the_file_and_leaves_no_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write the disk refused (a2 F15) was a traceback, and a half-written result.h5 sat under its own
    name until the clean-up. (write_result writes the file's bytes with one plain write: an OSError.)
    The earlier plan is removed, as by any run that writes no plan, and the error said nothing of it: its notes
    name the files removed and why (the CLI prints them under the error)."""
    seen: list[Path] = []

    def disk_full(path: Path, *args: object, **kwargs: object) -> Path:
        seen.append(Path(path))
        Path(path).write_bytes(b"half an HDF5 file")
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "out"
    _earlier_plan(out)
    monkeypatch.setattr(specc.pipeline, "write_result", disk_full)
    with pytest.raises(PlanFolderError) as raised:
        plan(_good(), synthetic_case(), out)
    assert str(raised.value) == f"cannot write {out / 'result.h5'}: No space left on device; no plan written"
    assert raised.value.__notes__ == [
        f"removed {out / 'plan.json'}, {out / 'report.html'}, {out / 'result.h5'}: they were an earlier run's plan, "
        "not this one (a run that writes no plan removes the plan in its folder, so that it is not taken for this "
        "run's)"
    ]
    # written in a staging folder beside the plan's, never under its own name in it; that folder is removed
    assert seen and seen[0].parent.parent == tmp_path and seen[0].parent.name.startswith(".out.")
    assert sorted(path.name for path in out.iterdir()) == ["mine.txt"]  # no half plan, no earlier one
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]


def test_a_report_that_cannot_be_written_is_one_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """a2 F6 (c), F15: an OSError from writing report.html was a traceback."""
    written = Path.write_text

    def refused(self: Path, *args: object, **kwargs: object) -> int:
        if self.name == "report.html":
            raise OSError(errno.ENOSPC, "No space left on device")
        return written(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", refused)
    out = tmp_path / "out"
    with pytest.raises(SpeccError) as raised:
        plan(_good(), synthetic_case(), out)
    assert str(raised.value) == f"cannot write {out / 'report.html'}: No space left on device"  # not the staging's
    assert list(tmp_path.iterdir()) == []


def test_an_earlier_plan_that_cannot_be_removed_is_said_to_be_an_earlier_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2 F6 (b, b2): a PermissionError removing the earlier plan replaced the real error by a traceback."""
    out = tmp_path / "out"
    _earlier_plan(out)
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(b"not an HDF5 file")
    _refuse_removing(monkeypatch, "plan.json", errno.EACCES)
    with pytest.raises(SpeccError, match="not a readable HDF5 file") as raised:  # the case's error, not the removal's
        plan(_good(), damaged, out)
    assert raised.value.__notes__ == [  # the file refused named alone as not removable; the others, left with it
        f"warning: could not remove {out / 'plan.json'} (Permission denied), so {out / 'report.html'}, "
        f"{out / 'result.h5'} stay beside it: an earlier run's plan, not this run's"
    ]


def test_a_solved_plan_that_cannot_replace_the_earlier_one_says_why_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """audit s20/t2 F7: an earlier plan.json that could not be removed (chattr +i) stopped a solved plan with
    'could not remove plan.json, report.html, result.h5 (...): they are an earlier run's plan', which did not say
    that this run's plan was not written for it (nor that only plan.json was refused), and a note said the same
    sentence again as a warning."""
    unlink = Path.unlink

    def refused(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == "plan.json" and self.parent.name == "out":
            raise PermissionError(errno.EPERM, "Operation not permitted")
        unlink(self, *args, **kwargs)

    out = tmp_path / "out"
    _earlier_plan(out)
    monkeypatch.setattr(Path, "unlink", refused)
    with pytest.raises(PlanFolderError) as raised:
        plan(_good(), synthetic_case(), out)
    assert str(raised.value) == (
        f"could not remove {out / 'plan.json'} (Operation not permitted), so {out / 'report.html'}, "
        f"{out / 'result.h5'} stay beside it: an earlier run's plan, not this run's; no plan written, as this run's "
        "cannot take its place: remove that plan, or write into another folder")
    assert getattr(raised.value, "__notes__", []) == []  # not said again
    assert {path.name for path in out.iterdir()} == {*PLAN_FILES, "mine.txt"}  # the earlier plan whole
    assert [path.name for path in tmp_path.iterdir()] == ["out"]  # no staging left


def test_an_output_folder_no_plan_can_go_into_is_refused_before_anything_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2 F7: `--out` an existing file, or a folder without write permission, was found after the solve."""
    events: list[str] = []
    a_file = tmp_path / "afile.txt"
    a_file.write_text("mine", encoding="utf-8")
    with pytest.raises(PlanFolderError, match=r"afile\.txt is a file, not a folder"):
        plan(_good(), tmp_path / "case.h5", a_file, progress=lambda stage, seconds: events.append(stage))
    with pytest.raises(PlanFolderError, match=r"cannot create the output folder .*afile\.txt/sub: .*afile\.txt is a file"):
        plan(_good(), tmp_path / "case.h5", a_file / "sub", progress=lambda stage, seconds: events.append(stage))
    # the tests run as root, whom permissions do not stop: the folder reads as not writable
    monkeypatch.setattr(specc.pipeline.os, "access", lambda path, mode: Path(path) != tmp_path / "ro")
    (tmp_path / "ro").mkdir()
    with pytest.raises(PlanFolderError, match=r"cannot write into .*ro: permission denied"):
        plan(_good(), tmp_path / "case.h5", tmp_path / "ro", progress=lambda stage, seconds: events.append(stage))
    with pytest.raises(PlanFolderError, match=r"cannot create the output folder .*ro/new in .*ro: permission denied"):
        PlanSession(synthetic_case(), tmp_path / "ro" / "new")
    assert events == []  # the protocol given is loaded, the case file (which does not exist) is not read
    assert a_file.read_text(encoding="utf-8") == "mine" and not (tmp_path / "ro" / "new").exists()


def test_an_error_that_is_not_specc_s_shows_as_it_is_and_removes_the_earlier_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2 F19: a KeyError from h5py left the earlier plan in the folder; a bug still raises as itself."""

    def broken(path: Path) -> None:
        raise KeyError("Unable to synchronously open object (can't open file)")

    monkeypatch.setattr(specc.pipeline.Case, "load", broken)
    _earlier_plan(tmp_path)
    with pytest.raises(KeyError):
        plan(_good(), tmp_path / "case.h5", tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["mine.txt"]


def test_the_outcome_carries_the_plan_s_fluence_and_dose_after_normalization(tmp_path: Path) -> None:
    """a3 F2: the only fluence on the outcome was the optimizer's, before normalization."""
    case = synthetic_case()
    outcome = plan(protocol({"Target": ["D50% >= 50 Gy"]}, terms=TERMS, normalization="{structure: Target, metric: D95%, "
                            "percent: 100}"), case, tmp_path)
    assert outcome.record is not None and outcome.record.normalization is not None
    factor = outcome.record.normalization_factor
    assert abs(factor - 1.0) > 1e-3  # the test means something only where normalization changed the fluence
    result = read_result(tmp_path / "result.h5")
    assert outcome.fluence is not None and outcome.dose_gy is not None
    np.testing.assert_allclose(outcome.fluence, result.fluence, rtol=1e-12)
    np.testing.assert_allclose(outcome.fluence, factor * outcome.solve.fluence, rtol=1e-9)
    np.testing.assert_allclose(outcome.dose_gy, result.dose_gy, rtol=1e-5, atol=1e-4)
    target = case.structures["Target"].mask
    assert np.percentile(outcome.dose_gy[target], 5) == pytest.approx(60.0, abs=0.5)  # D95% = 100% of 60 Gy


def test_a_session_takes_its_folder_as_a_string(tmp_path: Path) -> None:
    """a3 F3: `PlanSession(case, "out/dir")` raised a TypeError."""
    session = PlanSession(synthetic_case(), str(tmp_path / "out"), str(tmp_path / "case.h5"))
    assert session.out == tmp_path / "out" and session.case_path == tmp_path / "case.h5"
    assert session.plan(_good()).succeeded and (tmp_path / "out" / "plan.json").is_file()


def test_a_protocol_changed_in_memory_is_recorded_as_such_not_as_its_file(tmp_path: Path) -> None:
    """a3 F4: a weight changed with model_copy was planned under the unchanged file's path and SHA-256."""
    loaded = _good()
    case = synthetic_case()
    as_read = plan(loaded, case, tmp_path / "a")
    assert as_read.record is not None and as_read.record.protocol.sha256 == loaded.source.sha256
    assert as_read.record.protocol.files == ["protocols/test.yaml"]

    optimization = loaded.optimization
    heavier = optimization.terms[2].model_copy(update={"weight": 50})
    changed = loaded.model_copy(update={"optimization": optimization.model_copy(update={"terms": [
        *optimization.terms[:2], heavier]})})
    outcome = plan(changed, case, tmp_path / "b")
    record = outcome.record
    assert record is not None
    assert record.protocol.files == ["changed in memory after loading protocols/test.yaml"]
    assert record.protocol.sha256 == changed.source.fingerprint(changed) != loaded.source.sha256
    assert any("not of protocols/test.yaml" in note for note in outcome.notes + record.notes)
    report = (tmp_path / "b" / "report.html").read_text(encoding="utf-8")
    assert "changed in memory after loading protocols/test.yaml" in report and record.protocol.sha256 in report
    unchanged = loaded.model_copy(deep=True)  # a copy of the same content is the file's
    assert specc.pipeline.as_planned(unchanged).source == loaded.source


def test_result_h5_is_readable_as_the_other_plan_files_are(tmp_path: Path) -> None:
    """result.h5 came out owner-only (0600, the temporary file's mode) beside 0644 plan.json and report.html: a
    colleague or a reporting job could read the report of a plan but not its dose."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        plan(_good(), synthetic_case(), tmp_path)
    finally:
        os.umask(old)
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in PLAN_FILES}
    assert modes == dict.fromkeys(PLAN_FILES, 0o644)


def test_a_bug_while_writing_result_h5_shows_as_itself_and_leaves_no_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every RuntimeError of write_result read as a refused write, 'cannot write result.h5 ...; no plan written', its
    traceback hidden (review M4): only an OSError says the disk refused, anything else is a bug shown as one."""

    def broken(path: Path, *args: object, **kwargs: object) -> Path:
        Path(path).write_bytes(b"half an HDF5 file")
        raise RuntimeError("a bug in write_result")

    monkeypatch.setattr(specc.pipeline, "write_result", broken)
    with pytest.raises(RuntimeError, match="a bug in write_result"):
        plan(_good(), synthetic_case(), tmp_path)
    assert not list(tmp_path.iterdir())  # no half plan, no hidden partial file


def test_a_warning_of_files_kept_is_left_out_only_after_the_refusal_of_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """audit s20/t2 F7 left out the warning of an earlier plan that could not be removed wherever the error's text
    held the warning's: decided on the files themselves now. After the refusal of those files (a solved plan that
    cannot take their place) the warning would say the error again; after any other error it is said."""
    from specc.pipeline import EarlierPlanKept, discard_earlier_plan

    out = tmp_path / "out"
    _earlier_plan(out)
    _refuse_removing(monkeypatch, "plan.json", errno.EPERM)
    discarded = discard_earlier_plan(out)
    assert discarded.kept is not None and discarded.kept.kept == [out / name for name in PLAN_FILES]
    warning = f"warning: {discarded.kept}"
    refusal = EarlierPlanKept([], discarded.kept.kept, "Operation not permitted", "; no plan written")
    assert discarded.said(refusal) == [] and discarded.said() == [warning]
    # another folder's refusal, and an error whose message quotes the warning, name other files: said
    elsewhere = EarlierPlanKept([], [tmp_path / "other" / "plan.json"], "Operation not permitted")
    quoting = SpeccError(f"the case could not be read; earlier: {discarded.kept}")
    assert discarded.said(elsewhere) == [warning]
    discarded.note_on(quoting)
    assert quoting.__notes__ == [warning]
