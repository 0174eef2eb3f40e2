"""The protocol's content fingerprint (`ProtocolSource.fingerprint`): the same for every edit `specc diff` finds no
difference in, other for every edit it lists, so that `specc compare` can tell a comment from an unversioned change
by it (audit s20/t1 F0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specc.protocol import Protocol, load_protocol
from specc.protocol.diff import diff_protocols

WRITTEN = """\
# header comment
specc: 1
name: Fingerprinted
site: t
version: 1.0.0
structures:
  PTV_High: {role: target}
  PTV_Low: {role: target}
  Rectum: {role: oar, aliases: [rectum_o, RECTUM]}
  Bladder: {role: oar}
prescription:
  fractions: 30
  levels:
    - {target: PTV_High, dose: 60 Gy}
    - {target: PTV_Low, dose: 54 Gy}
goals:
  PTV_High: ["D95% >= 57 Gy"]
  Rectum:
    - "D30% <= 50 Gy"
    - "D10% <= 56 Gy"
  Bladder: ["Mean <= 40 Gy"]
optimization:
  terms:
    - {kind: quadratic_underdose, structure: PTV_High, dose: 60 Gy, weight: 10}
    - {kind: quadratic_overdose, structure: Rectum, dose: 40 Gy, weight: 2}
"""

# (label, old text, new text): edits `specc diff` finds no difference in
UNCHANGED = [
    ("a comment", "# header comment\n", "# header comment, a typo fixed\n"),
    ("two goals of one structure reordered", '    - "D30% <= 50 Gy"\n    - "D10% <= 56 Gy"\n',
     '    - "D10% <= 56 Gy"\n    - "D30% <= 50 Gy"\n'),
    ("the goals' structures reordered", '  PTV_High: ["D95% >= 57 Gy"]\n  Rectum:\n    - "D30% <= 50 Gy"\n'
     '    - "D10% <= 56 Gy"\n  Bladder: ["Mean <= 40 Gy"]\n', '  Bladder: ["Mean <= 40 Gy"]\n  Rectum:\n'
     '    - "D30% <= 50 Gy"\n    - "D10% <= 56 Gy"\n  PTV_High: ["D95% >= 57 Gy"]\n'),
    ("the structures reordered", "  PTV_High: {role: target}\n  PTV_Low: {role: target}\n",
     "  PTV_Low: {role: target}\n  PTV_High: {role: target}\n"),
    ("the levels reordered", "    - {target: PTV_High, dose: 60 Gy}\n    - {target: PTV_Low, dose: 54 Gy}\n",
     "    - {target: PTV_Low, dose: 54 Gy}\n    - {target: PTV_High, dose: 60 Gy}\n"),
    ("the terms reordered",
     "    - {kind: quadratic_underdose, structure: PTV_High, dose: 60 Gy, weight: 10}\n"
     "    - {kind: quadratic_overdose, structure: Rectum, dose: 40 Gy, weight: 2}\n",
     "    - {kind: quadratic_overdose, structure: Rectum, dose: 40 Gy, weight: 2}\n"
     "    - {kind: quadratic_underdose, structure: PTV_High, dose: 60 Gy, weight: 10}\n"),
    ("a goal spelled in cGy", '"D10% <= 56 Gy"', '"D10% <= 5600 cGy"'),
    ("a goal's spacing", '"D10% <= 56 Gy"', '"D10%<=56Gy"'),
    ("the default priority written out", '"D10% <= 56 Gy"', '"D10% <= 56 Gy (priority 1)"'),
    ("a goal as a mapping", '"D10% <= 56 Gy"', '{metric: D10%, "<=": 56 Gy}'),
]
# edits it lists
CHANGED = [
    ("a threshold", '"D10% <= 56 Gy"', '"D10% <= 55 Gy"'),
    ("a priority", '"D10% <= 56 Gy"', '"D10% <= 56 Gy (priority 2)"'),
    ("the same goal on another structure", '["Mean <= 40 Gy"]', '["Mean <= 40 Gy", "D10% <= 56 Gy"]'),
    ("a term's weight", "weight: 2}", "weight: 3}"),
    ("the aliases reordered", "[rectum_o, RECTUM]", "[RECTUM, rectum_o]"),
]


def _loaded(tmp_path: Path, name: str, text: str) -> Protocol:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return load_protocol(path)


@pytest.mark.parametrize(("label", "old", "new"), UNCHANGED, ids=[case[0] for case in UNCHANGED])
def test_what_specc_diff_finds_no_difference_in_keeps_the_fingerprint(tmp_path: Path, label: str, old: str,
                                                                       new: str) -> None:
    assert old in WRITTEN
    written, edited = _loaded(tmp_path, "written", WRITTEN), _loaded(tmp_path, "edited", WRITTEN.replace(old, new))
    assert diff_protocols(written, edited).changes == []
    assert written.source.sha256 != edited.source.sha256
    assert written.source.content_sha256 == edited.source.content_sha256


@pytest.mark.parametrize(("label", "old", "new"), CHANGED, ids=[case[0] for case in CHANGED])
def test_what_specc_diff_lists_changes_the_fingerprint(tmp_path: Path, label: str, old: str, new: str) -> None:
    assert old in WRITTEN
    written, edited = _loaded(tmp_path, "written", WRITTEN), _loaded(tmp_path, "edited", WRITTEN.replace(old, new))
    assert diff_protocols(written, edited).changes != []
    assert written.source.content_sha256 != edited.source.content_sha256


# edits specc diff lists as cosmetic (no new version needed): the fingerprint keeps them out too
DESCRIPTIVE = [
    ("a description added", "structures:\n", "description: Prostate with nodes, 60 / 54 Gy\nstructures:\n"),
    ("a structure's colour", "  Bladder: {role: oar}\n", '  Bladder: {role: oar, color: "#ffcc00"}\n'),
]


@pytest.mark.parametrize(("label", "old", "new"), DESCRIPTIVE, ids=[case[0] for case in DESCRIPTIVE])
def test_a_descriptive_edit_keeps_the_fingerprint_as_diff_keeps_the_version(tmp_path: Path, label: str, old: str,
                                                                            new: str) -> None:
    """Review s20/r1 F3: a description edit under one version, which specc diff says needs no new version, read
    "the same name and version with different content, so one was changed without a new version" in compare."""
    assert old in WRITTEN
    written, edited = _loaded(tmp_path, "written", WRITTEN), _loaded(tmp_path, "edited", WRITTEN.replace(old, new))
    diff = diff_protocols(written, edited)
    assert diff.changes and all(change.cosmetic for change in diff.changes) and diff.version_problem is None
    assert written.source.content_sha256 == edited.source.content_sha256
