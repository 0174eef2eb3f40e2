"""A plan killed outright while it writes its folder (kill -9, the out-of-memory killer, a cluster's wall-time
kill, power loss: no clean-up runs) leaves the earlier plan whole, the new plan whole, or a folder without
plan.json holding files of one run, each whole: never a report, plan.json or result.h5 of one run beside
another's, never half a file, and plan.json only beside the whole plan it records.

The child process plans into a folder holding an earlier plan and is killed at the N-th change its run makes
on disk (a file opened for writing, renamed, removed; a folder made or removed), for every N up to the run's
last: every point at which a kill can leave something other than what the last change left.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import h5py
import pytest

from evaluate_fakes import protocol, synthetic_case
from specc.pipeline import plan
import specc.report.write
from specc.report.identity import (
    PLAN_FOLDER_FILES, PLAN_JSON, RECORD_META, REPORT_HTML, RESULT_H5, html_record_sha256s, record_sha256,
)

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Target, dose: 61 Gy, weight: 10}",
]
# The audit events of a change on disk (os.replace raises "os.rename").
_CHANGES = ("open", "os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree")


def _changes_under(root: Path, event: str, args: tuple) -> bool:
    """Whether `event` is a change on disk below `root` (an open only when it writes)."""
    if event not in _CHANGES:
        return False
    if event == "open":
        mode, flags = args[1], args[2]
        writes = ("w" in mode or "a" in mode or "x" in mode or "+" in mode) if isinstance(mode, str) \
            else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if not writes:
            return False
    paths = [arg for arg in args if isinstance(arg, (str, os.PathLike))]
    return any(str(root) in os.fsdecode(path) for path in paths)


def _plan_killed_at(n: int | None, good, case, out: Path) -> tuple[int, list[str]] | None:
    """Plan into `out` in a child process killed at its `n`-th change on disk under `out`'s parent, before it is
    made (None: not killed); returns how many changes it made and the files it opened to write, None if killed."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: counts, kills itself at the n-th, reports the count when it ends on its own
        os.close(reader)
        count, written = 0, []

        def hook(event: str, args: tuple) -> None:
            nonlocal count
            if _changes_under(out.parent, event, args):
                count += 1
                if event == "open":
                    written.append(os.fsdecode(args[0]))
                if count == n:
                    os.kill(os.getpid(), signal.SIGKILL)

        sys.addaudithook(hook)
        try:
            plan(good, case, out)
        finally:
            os.write(writer, json.dumps([count, written]).encode())
            os._exit(0)
    os.close(writer)
    deadline = time.monotonic() + 120
    while (waited := os.waitpid(child, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the planning child did not end")
        time.sleep(0.02)
    with os.fdopen(reader) as said:
        told = said.read()
    status = waited[1]
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return None
    count, written = json.loads(told)
    return count, written


def _record_of(path: Path) -> str:
    """The SHA-256 of the plan record `path` is of (plan.json's own; the one report.html names, result.h5
    embeds); a file cut short fails here."""
    data = path.read_bytes()
    if path.name == PLAN_JSON:
        return hashlib.sha256(data).hexdigest()
    if path.name == REPORT_HTML:
        assert data.rstrip().endswith(b"</html>"), f"{path} is cut short"
        named = html_record_sha256s(path)
        assert len(named) == 1
        return named[0]
    with h5py.File(path, "r") as result:
        return hashlib.sha256(result["plan_json"][()]).hexdigest()


def _honest(out: Path, earlier: str) -> str:
    """What `out` holds, checked to be one of the honest states: 'earlier', 'new' (whole plans) or 'partial'
    (no plan.json; files of one run, each whole)."""
    present = [out / name for name in PLAN_FOLDER_FILES if (out / name).exists()]
    runs = {_record_of(path) for path in present}
    assert len(runs) <= 1, f"files of two runs in {out}: {[path.name for path in present]}"
    assert sorted(path.name for path in out.iterdir() if path not in present) == ["mine.txt"]
    if not (out / PLAN_JSON).exists():
        return "partial"
    assert {path.name for path in present} == {PLAN_JSON, REPORT_HTML, RESULT_H5}, "plan.json beside part of a plan"
    return "earlier" if runs == {earlier} else "new"


def _quick_page(record, *args: object) -> str:
    """A report page that names its record as the real one does, without its figures (seconds per plan here)."""
    return f'<html><head><meta name="{RECORD_META}" content="{record_sha256(record)}"></head><body></body></html>\n'


def test_a_plan_killed_at_any_point_while_it_writes_its_folder_leaves_it_honest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, a kill left a complete-looking report.html of the new run alone in the folder (between the report
    and plan.json), a report cut short, plan.json and report.html without result.h5, or the earlier run's
    report.html without its plan.json."""
    monkeypatch.setattr(specc.report.write, "render_html", _quick_page)
    good, case = protocol({"Target": ["D50% >= 50 Gy"]}, terms=TERMS), synthetic_case()
    earlier_folder = tmp_path / "earlier"
    plan(good, case, earlier_folder)
    (earlier_folder / "mine.txt").write_text("mine", encoding="utf-8")
    earlier = _record_of(earlier_folder / PLAN_JSON)

    root = tmp_path / "run"
    root.mkdir()
    out = root / "out"
    shutil.copytree(earlier_folder, out)
    whole = _plan_killed_at(None, good, case, out)
    assert whole is not None and _honest(out, earlier) == "new"
    total, written = whole
    assert total > 6  # the writes, the earlier plan's removal and the moves
    # no file is written under its name in the folder (a kill part way would leave it cut short there)
    assert written and not [name for name in written if Path(name).parent == out]

    seen = []
    for n in range(1, total + 1):
        shutil.rmtree(root)
        root.mkdir()
        shutil.copytree(earlier_folder, out)
        assert _plan_killed_at(n, good, case, out) is None
        seen.append(_honest(out, earlier))
    # the earlier plan stands until the new one is written aside, whole; then no plan.json until it is in place
    # (the last change, the staging folder's removal, comes after the move of plan.json)
    assert seen == ["earlier"] * seen.index("partial") + ["partial"] * (seen.count("partial")) + ["new"], seen
    assert seen.index("partial") > len(seen) // 2  # written aside first: the folder is touched only at the end
