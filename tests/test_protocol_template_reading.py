"""Reading a template chain: each file is read once, and each template's own reading is kept to check it alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from specc.protocol import load_protocol
from specc.protocol.templates import ReadProtocol, read_protocol_tree
from specc.protocol.yaml_source import to_document


def _chain(tmp_path: Path, base_keys: str = "") -> Path:
    """p.yaml extends mid.yaml (a template replacing a goal) extends base.yaml, a template (with `base_keys` at its
    line 3)."""
    (tmp_path / "base.yaml").write_text(
        f"template: true\nversion: 1.0.0\n{base_keys}structures: {{Cord: {{role: oar}}}}\n"
        'goals:\n  Cord: ["Max <= 45 Gy"]\n'
    )
    (tmp_path / "mid.yaml").write_text(
        'extends: base.yaml\ntemplate: true\nversion: 2.0.0\ngoals:\n  Cord: ["Max <= 40 Gy"]\n'
    )
    path = tmp_path / "p.yaml"
    path.write_text(
        "extends: mid.yaml\nspecc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n  PTV: {role: target}\n"
        'prescription: {fractions: 25, levels: [{target: PTV, dose: 50 Gy}]}\ngoals:\n  PTV: ["D95% >= 95%"]\n'
    )
    return path


def test_loading_a_protocol_reads_each_file_of_its_chain_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each template was validated on its own from a second reading of its chain from disk: base.yaml was read three
    times, a fifth of the time of loading a shipped protocol (code review)."""
    path = _chain(tmp_path)
    reads: list[str] = []
    read_bytes = Path.read_bytes

    def counted(self: Path) -> bytes:
        reads.append(self.name)
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", counted)
    load_protocol(path)
    assert sorted(reads) == ["base.yaml", "mid.yaml", "p.yaml"]


def _replaced(tree: ReadProtocol) -> list[tuple[str, tuple[str, bool, str, str], str, list[str]]]:
    """A tree's goal replacements by what they hold (nodes compare by identity): structure, key, goals' texts."""
    return [(r.structure, r.key, r.replaced.value, [node.value for node in r.by]) for r in tree.replacements]


def _assert_same_reading(kept: ReadProtocol, alone: ReadProtocol) -> None:
    assert (kept.files, kept.sha256, kept.diagnostics, kept.extends_at, kept.goal_paths, kept.versions) == (
        alone.files, alone.sha256, alone.diagnostics, alone.extends_at, alone.goal_paths, alone.versions)
    assert _replaced(kept) == _replaced(alone)
    assert kept.node is not None and alone.node is not None
    kept_document, alone_document = to_document(kept.node)[0], to_document(alone.node)[0]
    assert (kept_document.data, kept_document.values) == (alone_document.data, alone_document.values)
    assert [display for display, _ in kept.templates] == [display for display, _ in alone.templates]
    for (_, inner_kept), (_, inner_alone) in zip(kept.templates, alone.templates):
        _assert_same_reading(inner_kept, inner_alone)


def test_a_templates_kept_reading_is_that_file_read_alone(tmp_path: Path) -> None:
    """What a template is validated as is what `specc validate TEMPLATE` reads: its own files, digest, problems
    (the duplicate key of the template it extends), goal replacements, and its own `extends:` line."""
    tree = read_protocol_tree(_chain(tmp_path, "site: pelvis\nsite: pelvis\n"), str(tmp_path / "p.yaml"), tmp_path)
    mid, base = str(tmp_path / "mid.yaml"), str(tmp_path / "base.yaml")
    assert [display for display, _ in tree.templates] == [mid, base]
    kept = dict(tree.templates)
    _assert_same_reading(kept[mid], read_protocol_tree(tmp_path / "mid.yaml", mid, tmp_path))
    _assert_same_reading(kept[base], read_protocol_tree(tmp_path / "base.yaml", base, tmp_path))
    assert kept[mid].extends_at is not None and (kept[mid].extends_at.file, kept[mid].extends_at.line) == (mid, 1)
    assert [d.message for d in kept[mid].diagnostics] == ['duplicate key "site" (first written at line 3)']
