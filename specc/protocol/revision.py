"""A protocol as a git revision holds it, with the templates it extends at that revision.

Reviewing a protocol change means comparing it with the version before; its site templates
may have changed too, so the whole tree is read at the revision (`git archive`), not only
the protocol file, and the protocol is loaded from there like any other.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from specc.errors import SpeccError
from specc.protocol.loader import load_protocol_or_template
from specc.protocol.models import Protocol, SiteTemplate


class RevisionError(SpeccError):
    """A revision that cannot be read (no git, not a repository, an unknown revision or path)."""


@contextmanager
def protocol_at_revision(path: Path, revision: str, root: Path | None = None) -> Iterator[Protocol | SiteTemplate]:
    """The protocol (or site template) at `path` as `revision` has it (`root`: the templates' folder, as for
    `load_protocol`)."""
    folder = path.resolve().parent
    top = _git(folder, "rev-parse", "--show-toplevel").decode().strip()
    repository = Path(top)
    tree = _git(repository, "archive", "--format=tar", revision)
    relative = path.resolve().relative_to(repository)
    with tempfile.TemporaryDirectory(prefix="specc-revision-") as scratch:
        with tarfile.open(fileobj=io.BytesIO(tree)) as archive:
            archive.extractall(scratch, filter="data")
        copy = Path(scratch) / relative
        if not copy.is_file():
            raise RevisionError(f"{path}: not in revision {revision!r} of {repository}")
        copied_root = Path(scratch) / root.resolve().relative_to(repository) if root is not None else None
        yield load_protocol_or_template(copy, root=copied_root)


def _git(folder: Path, *arguments: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(folder), *arguments], capture_output=True, check=False)
    except FileNotFoundError:
        raise RevisionError("git is not installed: compare two files instead of a revision") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise RevisionError(f"git {arguments[0]} in {folder}: {message[-1] if message else 'failed'}")
    return done.stdout
