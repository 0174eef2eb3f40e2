"""Structure errors at compile time point at the protocol line that defines the structure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from evaluate_fakes import synthetic_case
from specc.compile import resolve_structures
from specc.compile.derive import with_optimization
from specc.errors import CompileError
from specc.protocol import Protocol, ProtocolError, parse_protocol_text

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
    with pytest.raises(CompileError, match=r"^site/p\.yaml:7:3: structures\.Rectum: "
                                           r"structure 'Rectum': no case structure named"):
        _resolve("  Target: {role: target}\n  Rectum: {role: oar}\n")


def test_an_empty_case_structure_is_an_error_at_its_line_when_used_and_a_note_otherwise() -> None:
    case = synthetic_case()
    organ = case.structures["Organ"]
    case.structures["Organ"] = dataclasses.replace(organ, mask=np.zeros_like(organ.mask))
    with pytest.raises(CompileError, match=r"^site/p\.yaml:7:3: structures\.Organ: "
                                           r"structure 'Organ': .*no voxel on the dose grid"):
        _resolve("  Target: {role: target}\n  Organ: {role: oar}\n", case)
    resolved = _resolve("  Target: {role: target}\n  Organ: {role: other}\n", case)
    assert "Organ" not in resolved.masks
    assert any(note.startswith("Organ:") and "empty" in note for note in resolved.notes)


def test_an_empty_derived_target_names_its_line() -> None:
    """An empty overlap of organs is anatomy (tests/test_compile_structures_absent.py); an empty target is not."""
    structures = "  Target: {role: target}\n  Organ: {role: oar}\n  Nothing: {role: target, expression: Target & Organ}\n"
    with pytest.raises(CompileError, match=r"^site/p\.yaml:8:39: structures\.Nothing\.expression: "
                                           r"derived structure 'Nothing' = .* is empty on the case "
                                           r"grid, and a target must be on every case"):
        _resolve(structures)


def test_a_structure_used_only_by_an_expression_must_be_in_the_case_and_names_its_line() -> None:
    structures = "  Target: {role: target}\n  Couch: {role: other}\n  Room: {role: other, expression: Target | Couch}\n"
    with pytest.raises(CompileError, match=r"^site/p\.yaml:7:3: structures\.Couch: "
                                           r"structure 'Couch': no case structure named"):
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


def _margin_notes(resolved) -> list[str]:
    return [note for note in resolved.notes if "a margin keeps the voxels whose centre lies within it" in note]


def test_a_margin_the_grid_cannot_hold_is_noted_with_what_the_grid_gives() -> None:
    """Audit h2 F1: on the 5 mm grid a 3 mm PRV is its organ and 7 mm is the 5 mm expansion, silently."""
    structures = (
        "  Target: {role: target}\n  Organ: {role: oar}\n"
        "  PRV: {role: oar, expression: 'expand(Organ, 3mm)'}\n"
        "  PTV7: {role: other, expression: 'expand(Target, 7mm)'}\n"
        "  PTV5: {role: other, expression: 'expand(Target, 5mm) | ring(Target, 5mm, 10mm)'}\n"
    )
    resolved = _resolve(structures)
    assert np.array_equal(resolved.masks["PRV"], resolved.masks["Organ"])
    assert _margin_notes(resolved) == [
        "PRV = `expand(Organ, 3mm)`: on this 5 mm grid a margin keeps the voxels whose centre lies within it, so the "
        "margin 3 mm along x, y, z gives 0 mm: PRV is Organ itself; a finer grid, or margins in whole voxels "
        "(multiples of 5 mm), avoid it",
        "PTV7 = `expand(Target, 7mm)`: on this 5 mm grid a margin keeps the voxels whose centre lies within it, so "
        "the margin 7 mm along x, y, z gives 5 mm; a finer grid, or margins in whole voxels (multiples of 5 mm), "
        "avoid it",
    ]  # PTV5's margins are whole voxels: no note


def test_a_coarse_margin_note_is_one_per_structure_and_names_each_margin_and_axis() -> None:
    case = synthetic_case()
    case = dataclasses.replace(case, grid=dataclasses.replace(case.grid, spacing_mm=(3.0, 3.0, 2.5)))
    structures = (
        "  Target: {role: target}\n  Organ: {role: oar}\n"
        "  Both: {role: other, expression: 'expand(Organ, 5mm) | (expand(Organ, 5mm) & Target) | shrink(Target, z=2mm)'}\n"
        "  Shell: {role: other, expression: 'ring(Target, 5mm, 12mm) - Organ'}\n"
    )
    notes = _margin_notes(_resolve(structures, case))
    assert notes == [
        "Both = `expand(Organ, 5mm) | expand(Organ, 5mm) & Target | shrink(Target, 0mm, 0mm, 2mm)`: on this "
        "3 × 3 × 2.5 mm grid a margin keeps the voxels whose centre lies within it, so in `expand(Organ, 5mm)` the "
        "margin 5 mm along x, y gives 3 mm; in `shrink(Target, 0mm, 0mm, 2mm)` the margin 2 mm along z gives 0 mm: "
        "`shrink(Target, 0mm, 0mm, 2mm)` is Target itself; a finer grid, or margins in whole voxels (multiples of "
        "3 mm along x, y and multiples of 2.5 mm along z), avoid it",
        "Shell = `ring(Target, 5mm, 12mm) - Organ`: on this 3 × 3 × 2.5 mm grid a margin keeps the voxels whose "
        "centre lies within it, so in `ring(Target, 5mm, 12mm)` the inner distance 5 mm along x, y starts the ring at 6 mm and "
        "the outer distance 12 mm along z gives 10 mm; a finer grid, or margins in whole voxels (multiples of 3 mm along x, y and multiples of 2.5 mm along z), avoid it",
    ]


def test_an_anisotropic_margin_lost_along_every_axis_is_said_once_and_of_the_structure() -> None:
    """Audit b4 F7: a PTV of `crop(expand(CTV, 7mm, 5mm, 7mm), Body)` on a 10 mm grid read 'is CTV itself' twice,
    once per group of axes, and of the inner `expand`, not of the PTV that equals its CTV."""
    structures = "  Target: {role: target}\n  Body: {role: other}\n  PTV: {role: other, expression: 'crop(expand(Target, 3mm, 2mm, 4mm), Body)'}\n"
    resolved = _resolve(structures)
    assert np.array_equal(resolved.masks["PTV"], resolved.masks["Target"])
    assert _margin_notes(resolved) == [
        "PTV = `crop(expand(Target, 3mm, 2mm, 4mm), Body)`: on this 5 mm grid a margin keeps the voxels whose centre "
        "lies within it, so in `expand(Target, 3mm, 2mm, 4mm)` the margin 3 mm along x and 2 mm along y and 4 mm "
        "along z gives 0 mm: PTV is Target itself; a finer grid, or margins in whole voxels (multiples of 5 mm), "
        "avoid it",
    ]


def test_the_fall_off_shell_the_compiler_adds_gets_no_margin_note() -> None:
    """Nobody wrote its 5 mm, which a 3 mm grid gives as 3 mm: a note would name a margin no one can change."""
    case = synthetic_case()
    case = dataclasses.replace(case, grid=dataclasses.replace(case.grid, spacing_mm=(3.0, 3.0, 3.0)))
    text = HEADER + "  Target: {role: target}\n  Organ: {role: oar}\n" + PRESCRIPTION + 'goals: {Target: ["D95% >= 4 Gy"]}\n'
    protocol, _ = with_optimization(parse_protocol_text(text, "site/p.yaml"), case)
    resolved = resolve_structures(protocol, case)
    assert "Falloff_Target" in resolved.masks
    assert _margin_notes(resolved) == []


def test_a_ring_around_a_structure_covering_the_whole_case_names_that_structure_and_its_line() -> None:
    """Audit h2 F6: a goals-only protocol whose PTV margin covers the body failed on 'Falloff_PTV', a
    structure nobody wrote, with no line and no word of the margin."""
    text = (
        HEADER + "  CTV: {role: other}\n  Target:\n    role: target\n    expression: expand(CTV, 50mm)\n"
        + PRESCRIPTION + 'goals: {Target: ["D95% >= 4 Gy"]}\n'
    )
    case = synthetic_case()
    case.structures["CTV"] = case.structures.pop("Target")
    protocol, _ = with_optimization(parse_protocol_text(text, "site/p.yaml"), case)
    rows = len(case.voxel_indices)
    with pytest.raises(CompileError) as error:
        resolve_structures(protocol, case)
    assert str(error.value) == (
        "site/p.yaml:9:17: structures.Target.expression: "
        f"structure 'Target' = expand(CTV, 50mm) covers the whole case (all {rows} voxels it holds "
        "dose for), which leaves no room for `ring(Target, 5mm, 30mm)` outside it: structure 'Falloff_Target' = "
        "ring(Target, 5mm, 30mm), which specc adds to the optimization it derives from the goals, is empty; check "
        "the margins of Target"
    )
    # A ring the protocol writes itself: the ring's line too.
    written = HEADER + "  Target: {role: target}\n  Big: {role: other, expression: 'expand(Target, 50mm)'}\n" \
        "  Shell: {role: other, expression: 'crop(ring(Big, 5mm, 30mm), Body)'}\n  Body: {role: other}\n"
    with pytest.raises(CompileError, match=r"^site/p\.yaml:7:34: structures\.Big\.expression: "
                                           r"structure 'Big' = expand\(Target, 50mm\) covers the "
                                           r"whole case .* structure 'Shell' = .* \(site/p\.yaml:8\) is empty"):
        resolve_structures(parse_protocol_text(written + PRESCRIPTION, "site/p.yaml"), synthetic_case())
    # A protocol built in memory: the ring is named by the name every message gives such a protocol
    # (`diagnostic_at`'s), where it read '(protocol)'.
    built = Protocol.model_validate(yaml.safe_load(written + PRESCRIPTION))
    with pytest.raises(CompileError, match=r"^<protocol>: structures\.Big\.expression: .* structure 'Shell' = "
                                           r"crop\(ring\(Big, 5mm, 30mm\), Body\) \(<protocol>\) is empty"):
        resolve_structures(built, synthetic_case())


def test_a_case_structure_another_structure_reads_is_named_as_that_never_suggested_as_an_alias() -> None:
    """Audit c3 F2: 'Did you mean 'Mandible'? (add it to `aliases`)' for a missing submandibular gland, while that
    very protocol reads the case's Mandible as Bone_Mandible: following it would judge the gland's mean dose on the
    bone. The hint says what the case structure is read as instead."""
    case = synthetic_case()
    case.structures["Mandible"] = dataclasses.replace(case.structures.pop("Organ"), name="Mandible")
    gland = "  Glnd_Submand_L: {role: oar, aliases: [Submandibular_L], if_contoured: true}\n"
    bone = "  Bone_Mandible: {role: oar, aliases: [Mandible]}\n"
    for structures in (gland + bone, bone + gland):  # whichever the protocol writes first
        resolved = _resolve("  Target: {role: target}\n" + structures, case)
        note = next(note for note in resolved.notes if note.startswith("Glnd_Submand_L"))
        assert "Did you mean" not in note
        assert "The case's 'Mandible' is read as Bone_Mandible, another structure of the protocol" in note
    resolved = _resolve("  Target: {role: target}\n" + gland, case)  # read by none: still a near name
    assert "Did you mean 'Mandible'?" in next(note for note in resolved.notes if note.startswith("Glnd_Submand_L"))


def test_every_required_structure_the_case_lacks_is_reported_in_one_error_each_at_its_line() -> None:
    """Audit c3 F6: a case lacking eight required organs said only the first, so curating it took eight runs. Each
    is named at its line with its hint, the case's structures listed once."""
    structures = ("  Target: {role: target}\n  Brainstem: {role: oar}\n  Organ: {role: oar}\n"
                  "  Larynx: {role: oar}\n  Orgn_L: {role: oar}\n  Bodyy: {role: oar}\n")
    with pytest.raises(CompileError) as error:
        _resolve(structures)
    lines = str(error.value).splitlines()
    assert lines == [
        "4 structures of the protocol cannot be read on this case:",
        "site/p.yaml:7:3: structures.Brainstem: structure 'Brainstem': no case structure named 'Brainstem'.",
        "site/p.yaml:9:3: structures.Larynx: structure 'Larynx': no case structure named 'Larynx'.",
        "site/p.yaml:10:3: structures.Orgn_L: "
        "structure 'Orgn_L': no case structure named 'Orgn_L'. The case's 'Organ' is read as Organ, "
        "another structure of the protocol, so it is not this one.",
        "site/p.yaml:11:3: structures.Bodyy: "
        "structure 'Bodyy': no case structure named 'Bodyy'. Did you mean 'Body'? (add it to `aliases`)",
        "the case has: Body, Organ, Target.",
    ]


def _beyond_by_brute_force(case, structure: str, margin_mm: tuple[float, float, float]) -> int:
    """Voxel centres of the grid extended on every side that lie outside the case grid and within the
    (ellipsoidal) margin of a voxel centre of `structure`: the expansion's voxels the grid cannot hold."""
    spacing, shape = np.asarray(case.grid.spacing_mm), np.asarray(case.grid.shape)
    extra = 10
    axes = [np.arange(-extra, n + extra) for n in shape]
    cells = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    outside = cells[np.any((cells < 0) | (cells >= shape), axis=1)]
    sources = np.argwhere(case.structures[structure].mask)
    scale = np.where(np.asarray(margin_mm) > 0, spacing / np.maximum(margin_mm, 1e-12), 1e12)
    count = 0
    for start in range(0, len(outside), 4096):
        block = outside[start:start + 4096]
        reach = np.sqrt((((block[:, None, :] - sources[None, :, :]) * scale) ** 2).sum(axis=-1)).min(axis=1)
        count += int(np.count_nonzero(reach <= 1 + 1e-9))
    return count


def test_an_expansion_past_the_grid_edge_is_noted_with_the_voxels_it_loses_there() -> None:
    """Audit s18/a2 F1: expand(Edge, 10mm) of a structure touching the grid's edge lost 27% of its PTV beyond it
    without a word, whereas voxels without dose rows are noted."""
    case = synthetic_case()  # Target on slices 2-7 of 10 (5 mm): 15 mm along z reaches 1 slice past each end
    resolved = _resolve(
        "  Target: {role: target}\n  Body: {role: other}\n"
        "  PTV: {role: other, expression: 'expand(Target, z=15mm)'}\n"
        "  Small: {role: other, expression: 'expand(Target, 5mm)'}\n"  # within the grid
        "  Kept: {role: other, expression: 'crop(Target, expand(Body, 10mm))'}\n"  # a boundary's margin makes no voxel
        "  Cut: {role: other, expression: 'Body - expand(Target, z=15mm)'}\n", case)
    lost = _beyond_by_brute_force(case, "Target", (0.0, 0.0, 15.0))
    target = case.structures["Target"].mask
    assert lost == np.count_nonzero(target[:, :, 2]) + np.count_nonzero(target[:, :, 7]) > 0  # its end slices, moved 3 on
    kept = int(np.count_nonzero(resolved.masks["PTV"]))
    assert [note for note in resolved.notes if "past the dose grid's edge" in note] == [
        f"PTV: `expand(Target, 0mm, 0mm, 15mm)` reaches past the dose grid's edge at z = -22.5 mm (inferior) and "
        f"z = 22.5 mm (superior): {lost} of its voxels ({lost * case.voxel_volume_cc:.1f} cc) lie beyond it and are "
        f"not in PTV ({kept} voxels, {kept * case.voxel_volume_cc:.1f} cc on the grid); a grid that holds the margin "
        "keeps them"
    ]


def test_voxels_past_the_grid_edge_that_an_intersection_or_crop_would_remove_are_not_counted() -> None:
    """Audit s18/r1 F14: `expand(Target, 30mm) & Organ` was noted as losing 928 voxels beyond the grid, where Organ,
    inside the grid, would have kept none of them. Beyond the grid the other operand is its edge carried on: an organ
    inside the grid allows none, a body that the grid's edge cuts allows all (a crop to it loses what the margin
    does)."""
    case = synthetic_case()  # Organ on slices 3-6 of 10, Body the whole grid
    resolved = _resolve(
        "  Target: {role: target}\n  Organ: {role: oar}\n  Body: {role: other}\n"
        "  Cut: {role: other, expression: 'expand(Target, z=15mm) & Organ'}\n"
        "  Both: {role: other, expression: 'Organ & (expand(Target, z=15mm) | Body)'}\n"
        "  Cropped: {role: other, expression: 'crop(expand(Target, z=15mm), Body)'}\n"
        "  Within: {role: other, expression: 'Body & expand(Target, z=15mm)'}\n", case)
    said = {note.split(":")[0]: note for note in resolved.notes if "past the dose grid's edge" in note}
    assert set(said) == {"Cropped", "Within"}
    lost = _beyond_by_brute_force(case, "Target", (0.0, 0.0, 15.0))
    assert all(f": {lost} of its voxels" in note for note in said.values())


def test_the_voxels_an_expansion_loses_past_the_grid_edge_are_those_of_the_grid_extended() -> None:
    case = synthetic_case()
    resolved = _resolve("  Target: {role: target}\n  PTV: {role: other, expression: 'expand(Target, 30mm, 10mm, 15mm)'}\n",
                        case)
    [note] = [note for note in resolved.notes if "past the dose grid's edge" in note]
    lost = _beyond_by_brute_force(case, "Target", (30.0, 10.0, 15.0))
    assert f"x = -37.5 mm (right) and x = 37.5 mm (left) and z = -22.5 mm (inferior) and z = 22.5 mm (superior): " \
           f"{lost} of its voxels" in note


def test_a_target_whose_margin_the_grid_loses_entirely_is_handed_on_as_collapsed() -> None:
    """Audit s18/b1 F3: 'PTV_Boost is CTV_Prostate itself' was a note only, while page 1 showed the PTV's coverage
    PASS. A target (role target: a prescription level's structure is one) equal to its source is handed to the
    evaluation (`collapsed_targets`), which warns of it; an organ's PRV, a margin the grid gives in part, or a
    target made of more than its margin, are not."""
    structures = (
        "  Target: {role: target}\n  Organ: {role: oar}\n  Body: {role: other}\n"
        "  PTV: {role: target, expression: 'crop(expand(Target, 3mm, 2mm, 4mm), Body)'}\n"
        "  Boost: {role: target, expression: 'expand(Target, 2mm)'}\n"
        "  PRV: {role: oar, expression: 'expand(Organ, 3mm)'}\n"
        "  PTV7: {role: target, expression: 'expand(Target, 7mm)'}\n"
        "  Union: {role: target, expression: 'expand(Target, 3mm) | Organ'}\n"
    )
    text = HEADER + structures + (
        "prescription: {fractions: 2, levels: [{target: Boost, dose: 5 Gy}, {target: Target, dose: 4 Gy}]}\n")
    resolved = resolve_structures(parse_protocol_text(text, "site/p.yaml"), synthetic_case())
    assert np.array_equal(resolved.masks["PTV"], resolved.masks["Target"])
    assert resolved.collapsed_targets == {"PTV": "Target", "Boost": "Target"}
