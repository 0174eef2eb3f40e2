"""docs/python.md runs as written: its Python blocks, in order, in one namespace (a3 F5)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def test_every_python_block_of_the_library_page_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 6, "docs/python.md lost its examples"
    (tmp_path / "protocols").symlink_to(DOC.parents[1] / "protocols")  # the page runs from the repository root
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name} block {index + 1}", "exec"), namespace)  # noqa: S102 (the doc's own code)
    outcome, second = namespace["outcome"], namespace["second"]
    assert outcome.succeeded and second.succeeded  # type: ignore[attr-defined]
    changed = ["changed in memory after loading protocols/tg119/c-shape.yaml"]
    assert second.record.protocol.files == changed  # type: ignore[attr-defined]


def test_every_entry_point_architecture_md_names_imports_from_where_it_says() -> None:
    """a3 F5: `from specc.compile import with_optimization` and `from specc.solve import solve_clinical`, as the
    stage table put them, raised ImportError."""
    import importlib

    text = (DOC.parent / "architecture.md").read_text(encoding="utf-8")
    named = re.findall(r"`(specc(?:\.\w+)+)\(", text)
    assert len(named) >= 15
    for dotted in named:
        parts = dotted.split(".")
        for split in range(len(parts) - 1, 0, -1):  # the longest importable module, then attributes
            try:
                found: object = importlib.import_module(".".join(parts[:split]))
            except ModuleNotFoundError:
                continue
            for attribute in parts[split:]:
                found = getattr(found, attribute)
            break
        else:
            raise AssertionError(f"{dotted}: no module of it imports")
