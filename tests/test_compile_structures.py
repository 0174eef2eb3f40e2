"""Structure errors at compile time point at the protocol line that defines the structure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from evaluate_fakes import synthetic_case
from specc.compile import resolve_structures
from specc.errors import CompileError
from specc.protocol import ProtocolError, parse_protocol_text

HEADER = "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n"
PRESCRIPTION = "prescription: {fractions: 2, levels: [{target: Target, dose: 4 Gy}]}\n"


def _resolve(structures: str, case=None):
    text = HEADER + structures + PRESCRIPTION
    return resolve_structures(parse_protocol_text(text, "site/p.yaml"), case or synthetic_case())


def test_each_structure_remembers_the_line_of_its_name() -> None:
    text = HEADER + "  Target: {role: target}\n  Ring:\n    role: other\n    expression: ring(Target, 5mm, 20mm)\n"
    protocol = parse_protocol_text(text + PRESCRIPTION, "site/p.yaml")
    assert str(protocol.structures["Target"].source) == "site/p.yaml:6"
    assert str(protocol.structures["Ring"].source) == "site/p.yaml:7"


def test_a_protocol_may_not_set_a_structures_source() -> None:
    text = HEADER + "  Target: {role: target, source: here}\n" + PRESCRIPTION
    with pytest.raises(ProtocolError, match='unknown key "source"'):
        parse_protocol_text(text, "site/p.yaml")


def test_a_structure_missing_from_the_case_names_its_line() -> None:
    with pytest.raises(CompileError, match=r"^site/p\.yaml:7: structure 'Rectum': no case structure named"):
        _resolve("  Target: {role: target}\n  Rectum: {role: oar}\n")


def test_an_empty_case_structure_is_an_error_at_its_line_when_used_and_a_note_otherwise() -> None:
    case = synthetic_case()
    organ = case.structures["Organ"]
    case.structures["Organ"] = dataclasses.replace(organ, mask=np.zeros_like(organ.mask))
    with pytest.raises(CompileError, match=r"^site/p\.yaml:7: structure 'Organ': .*no voxel on the dose grid"):
        _resolve("  Target: {role: target}\n  Organ: {role: oar}\n", case)
    resolved = _resolve("  Target: {role: target}\n  Organ: {role: other}\n", case)
    assert "Organ" not in resolved.masks
    assert any(note.startswith("Organ:") and "empty" in note for note in resolved.notes)


def test_an_empty_derived_structure_names_its_line() -> None:
    structures = "  Target: {role: target}\n  Organ: {role: oar}\n  Nothing: {role: other, expression: Target & Organ}\n"
    with pytest.raises(CompileError, match=r"^site/p\.yaml:8: derived structure 'Nothing' = .* is empty"):
        _resolve(structures)


def test_a_structure_used_only_by_an_expression_must_be_in_the_case_and_names_its_line() -> None:
    structures = "  Target: {role: target}\n  Couch: {role: other}\n  Room: {role: other, expression: Target | Couch}\n"
    with pytest.raises(CompileError, match=r"^site/p\.yaml:7: structure 'Couch': no case structure named"):
        _resolve(structures)


def test_a_case_structure_named_like_a_derived_one_is_replaced_by_the_expression_with_a_note() -> None:
    """An RTSTRUCT's own Shell (a planner's, or the one specc's DICOM export wrote) is not what the
    protocol's Shell means: the expression is used, and the note gives both volumes."""
    case = synthetic_case()
    target = case.structures["Target"].mask
    case.structures["shell"] = dataclasses.replace(case.structures["Organ"], name="shell")  # another region, another case
    structures = "  Target: {role: target}\n  Shell: {role: other, expression: 'ring(Target, 5mm, 10mm)'}\n"
    resolved = _resolve(structures, case)
    voxel_cc = case.voxel_volume_cc
    ours = np.count_nonzero(resolved.masks["Shell"]) * voxel_cc
    assert not (resolved.masks["Shell"] & target).any()  # the ring, not the case's structure
    assert resolved.notes == [
        f"Shell: the case has its own structure 'shell' ({case.structures['shell'].n_voxels * voxel_cc:.1f} cc); "
        f"the protocol derives Shell as `ring(Target, 5mm, 10mm)` ({ours:.1f} cc), and the protocol's expression is used"
    ]
    # The very voxels (a study specc exported, read back): still said, as the same.
    case.structures["shell"] = dataclasses.replace(case.structures["shell"], mask=resolved.masks["Shell"].copy())
    assert f"({ours:.1f} cc, the same voxels), and the protocol's expression is used" in _resolve(structures, case).notes[0]
