"""Whole-or-nothing exports: an export's files reach their destination complete, or not at all.

An RT Dose cut short by a full disk, or a DICOM study stopped by Ctrl-C after its CT slices but
before its RT Dose, would be read by a planning system as a whole object or a whole study. So an
export writes into a staging path beside its destination (a hidden name in the destination's
parent folder: the move is a rename on one file system) and moves it into place only once every
file is written. An export into an existing folder is staged beside it too, not inside it: a
process killed outright (kill -9, out of memory, power loss) cannot clean up, and a planning
system scanning the folder would import a half study from a hidden folder inside it. Only where
the parent cannot be written, or the folder is another file system (a mount point), is the
export staged inside the folder, and such a kill leaves `.specc-export-XXXXXXXX.partial` there.
On any error or interrupt before the move, the staging path and the folders made for it are
removed. The move itself is not interrupted: Ctrl-C during it is held until the context ends;
after a complete move it counts as done (exit 0), after a failed one it is raised once the
staging is removed, so that a caller sees the interrupt, not only the error.

Errors name the destination path, not the staging one, and the reason the system gave.

A plan folder (`specc plan`) is staged the same way (`what="plan"`): its files are moved into the
existing folder in an order a reader can trust, the record a reader believes (plan.json) last
(`last`), so that a kill part way through the moves leaves a folder without it; the moves do not
refuse the DICOM files beside them (`refuse_other_dicom`: an export's own rule).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType

from specc.errors import SpeccError
from specc.report.identity import STAGING_SUFFIX

NOTHING_EXPORTED = "nothing exported"


class ExportError(SpeccError):
    """An export that cannot be written where it was asked to go (names the path and why)."""


class StagedExport:
    """Staging for one export to `out`: a file (`folder=False`, e.g. RD.dcm) or a folder of files.

    Use as a context manager: write into `path`, call `commit()` once every file is written, then
    say what was written (`final` maps a written path to where it now is). An existing folder is
    written into (its other files stay); an existing file is replaced.

    `what` names the staged thing in messages and in the name of a staging folder inside `out`
    ("export", "plan"), `consequence` ends an error's message ("nothing exported", "no plan
    written"); `last`: the names moved into an existing folder after every other file, in that
    order; `refuse_other_dicom`: refuse a folder holding .dcm files this export does not write."""

    def __init__(
        self, out: str | Path, *, folder: bool, file_hint: str = "", what: str = "export",
        consequence: str = NOTHING_EXPORTED, last: tuple[str, ...] = (), refuse_other_dicom: bool = True,
    ) -> None:
        self.out = Path(out)
        self.folder = folder
        self.file_hint = file_hint  # for a file export given a folder: "RD.dcm", the name to suggest
        self.what, self.consequence, self.last, self.refuse_other_dicom = what, consequence, last, refuse_other_dicom
        self.path = self.out  # set on entry
        self._into_existing = False
        self._made: list[Path] = []  # folders made for the destination, outermost first
        self._committed = False
        self.interrupt_held = False  # Ctrl-C came while the export was moved into place
        self._holding = False  # the hold is installed (its previous handler is in _previous_handler)
        self._previous_handler: object = None

    def __enter__(self) -> StagedExport:
        out = self.out
        if self.folder and out.exists() and not out.is_dir():
            raise ExportError(f"{out}: a file, not a folder; this export writes a folder of files: give a folder")
        if not self.folder and out.is_dir():
            named = f" (e.g. {out / self.file_hint})" if self.file_hint else ""
            raise ExportError(f"{out}: a folder; give the file to write{named}")
        self._make_parents(out.parent)
        token = secrets.token_hex(4)
        self._into_existing = self.folder and out.is_dir()
        beside = out.parent / f".{out.name}.{token}{STAGING_SUFFIX}"
        self.path = beside
        if not self.folder:
            return self
        inside = out / f".specc-{self.what}-{token}{STAGING_SUFFIX}"
        candidates = [beside, inside] if self._into_existing else [beside]
        if self._into_existing and not _one_file_system(out, out.parent):
            candidates = [inside]  # a mount point: a rename from its parent would fail (EXDEV)
        failure: OSError | None = None
        for path in candidates:  # the parent read-only: inside the folder, whose permissions may differ
            try:
                path.mkdir()
            except OSError as error:
                failure = error
                continue
            self.path = path
            return self
        self._discard()
        raise ExportError(f"cannot write {out}: {_reason(failure)}; {self.consequence}") from None

    def final(self, written: Path) -> Path:
        """Where a path written under `path` is once committed."""
        return self.out / Path(written).relative_to(self.path) if self.folder else self.out

    @property
    def committed(self) -> bool:
        """Whether the export is in place, every file of it (a Ctrl-C from here on does not undo it)."""
        return self._committed

    def commit(self) -> None:
        """Move the staged export into place; from here on, Ctrl-C is held until the context ends."""
        entries = sorted(self.path.iterdir(), key=self._move_order) if self._into_existing else []
        occupied = [self.out / entry.name for entry in entries if (self.out / entry.name).is_dir()]
        if occupied:  # checked before the hold: nothing is moved, so a Ctrl-C here stops the export as any other
            raise ExportError(f"{occupied[0]}: a folder where the {self.what} writes a file; {self.consequence}")
        refused = self._into_existing and self.refuse_other_dicom
        foreign = _other_dicom(self.out, {entry.name for entry in entries}) if refused else []
        if foreign:
            raise ExportError(
                f"{self.out} holds DICOM files this export does not write ({_listed(foreign)}): a planning system "
                f"importing the folder would take them for part of this study (an earlier export's RT Plan, CT "
                f"slices beyond this one's); export into an empty folder, or remove them; {self.consequence}"
            )
        self._hold_interrupts()
        if not self.folder:
            os.replace(self.path, self.out)
        elif not self._into_existing:
            os.rename(self.path, self.out)
        else:
            for moved, entry in enumerate(entries):
                try:
                    os.replace(entry, self.out / entry.name)
                except OSError as error:
                    raise ExportError(
                        f"cannot move {entry.name} into {self.out}: {_reason(error)}; {moved} of the {self.what}'s "
                        f"{len(entries)} files were moved in before it, the others removed"
                    ) from None
            self.path.rmdir()
        self._committed = True

    def _move_order(self, entry: Path) -> tuple[int, str]:
        """The names in `last` after every other file, in their order (a plan's plan.json the very last)."""
        return (self.last.index(entry.name) + 1 if entry.name in self.last else 0, entry.name)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if self._committed:
                return
            left = self._discard()
            failure = error
            if isinstance(error, OSError):  # a full disk, a read-only folder, a path too long, ...
                error = _system_error(error)
                where = self.final(Path(error.filename)) if _under(error.filename, self.path) else self.out
                failure = ExportError(f"cannot write {where}: {_reason(error)}; {self.consequence}{left}")
            elif isinstance(error, ExportError) and left:
                failure = ExportError(f"{error}{left}")
            if self.interrupt_held:  # Ctrl-C during a move that failed: the caller must still see it
                raise KeyboardInterrupt(str(failure)) from failure
            if failure is not error:
                raise failure from None
        finally:
            self._release_interrupts()

    def _make_parents(self, parent: Path) -> None:
        missing = [folder for folder in (parent, *parent.parents) if not folder.exists()][::-1]
        existing = missing[0].parent if missing else parent
        if not existing.is_dir():
            raise ExportError(f"cannot write {self.out}: {existing} is a file, not a folder; {self.consequence}")
        for folder in missing:
            try:
                folder.mkdir()
            except OSError as error:
                self._discard()
                raise ExportError(f"cannot create the folder {folder}: {_reason(error)}; {self.consequence}") from None
            self._made.append(folder)

    def _discard(self) -> str:
        """Remove what was staged and the folders made for it; what could not be removed, as a
        clause for the message (empty: nothing is left)."""
        left = []
        try:
            if self.path != self.out and self.path.is_dir():
                shutil.rmtree(self.path)
            elif self.path != self.out and self.path.exists():
                self.path.unlink()
        except OSError as error:
            left.append(f"{self.path} ({_reason(error)})")
        for folder in reversed(self._made):
            try:
                folder.rmdir()
            except OSError as error:
                left.append(f"{folder} ({_reason(error)})")
        self._made = []
        return f"; left behind, remove by hand: {', '.join(left)}" if left else ""

    def _hold_interrupts(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only; nothing to hold here
        if signal.getsignal(signal.SIGINT) is None:
            # A handler installed outside Python (an embedding application's): Python raises no
            # KeyboardInterrupt then, and could not put that handler back, so it is left in place.
            return

        def hold(signum: int, frame: FrameType | None) -> None:
            self.interrupt_held = True

        self._previous_handler = signal.signal(signal.SIGINT, hold)
        self._holding = True

    def _release_interrupts(self) -> None:
        if self._holding:
            self._holding = False
            signal.signal(signal.SIGINT, self._previous_handler)  # type: ignore[arg-type]
            self._previous_handler = None


def _one_file_system(folder: Path, parent: Path) -> bool:
    """Whether `folder` is on its parent's file system (else it is a mount point, and a rename
    from the parent into it fails)."""
    try:
        return folder.stat().st_dev == parent.stat().st_dev
    except OSError:
        return False


def _under(filename: object, folder: Path) -> bool:
    if not isinstance(filename, (str, os.PathLike)):
        return False
    path = Path(filename)
    return path == folder or folder in path.parents


def _system_error(error: OSError) -> OSError:
    """The error the system raised: pydicom re-raises a write error as a new one of its type, with the
    tag and a traceback as its text and the original (errno, reason, file) as its cause."""
    while not error.strerror and isinstance(error.__cause__, OSError):
        error = error.__cause__
    return error


def _reason(error: OSError) -> str:
    """The system's reason ('permission denied', 'no space left on device'), else the error's text."""
    if error.strerror:
        return error.strerror[0].lower() + error.strerror[1:]
    return str(error)


def _other_dicom(folder: Path, written: set[str]) -> list[str]:
    """The DICOM files in `folder` (by the .dcm suffix specc and most systems write) that an export writing
    `written` leaves beside its own."""
    return sorted(entry.name for entry in folder.iterdir()
                  if entry.is_file() and entry.suffix.lower() == ".dcm" and entry.name not in written)


def _listed(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
