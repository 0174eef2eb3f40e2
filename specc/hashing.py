"""Content hashes of files, for every stage that binds what it read: a case's dose source, an exported
plan's files, an approval's pages. Kept outside the stages so that none imports another for it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks: a matRad workspace with its dij can be gigabytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
