"""Structures without a mask on a case: an organ marked `if_contoured` the case lacks, an overlap that
does not occur. The plan goes on without them, and says why; a structure the plan needs stays an error."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from evaluate_fakes import synthetic_case
from specc.compile import resolve_structures
from specc.compile.structures import NOT_CONTOURED
from specc.errors import CompileError
from specc.protocol import parse_protocol_text

HEADER = "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n"
PRESCRIPTION = "prescription: {fractions: 2, levels: [{target: Target, dose: 4 Gy}]}\n"


def _protocol(structures: str, rest: str = ""):
    return parse_protocol_text(HEADER + structures + PRESCRIPTION + rest, "site/p.yaml")


def test_an_empty_overlap_of_organs_is_absent_with_its_expression_and_a_note() -> None:
    """`Target & Organ` does not occur on this case (the synthetic organ lies beside the target)."""
    resolved = resolve_structures(_protocol(
        "  Target: {role: target}\n  Organ: {role: oar}\n  Overlap: {role: oar, expression: Target & Organ}\n"
    ), synthetic_case())
    assert "Overlap" not in resolved.masks
    assert resolved.absent == {"Overlap": "empty on this case (`Target & Organ` has no voxel)"}
    assert "Overlap: empty on this case (`Target & Organ` has no voxel): its goals read NOT EVALUATED" in resolved.notes
    assert resolved.allowed_absent == set()  # no organ the protocol allows a case to lack made it empty: --strict stops


def test_an_empty_derived_structure_of_the_setup_error_check_stays_an_error() -> None:
    structures = "  Target: {role: target}\n  Organ: {role: oar}\n  Overlap: {role: oar, expression: Target & Organ}\n"
    rest = "goals: {Overlap: ['Max <= 4 Gy']}\nrobustness: {setup_error: 3 mm, structures: [Overlap]}\n"
    with pytest.raises(CompileError, match=r"^site/p\.yaml:8:36: structures\.Overlap\.expression: "
                                           r"derived structure 'Overlap' .* is empty on the case grid, "
                                           r"and a structure of the setup-error check must be on every case"):
        resolve_structures(_protocol(structures, rest), synthetic_case())


def test_an_organ_marked_if_contoured_that_the_case_lacks_is_absent_and_counts_as_empty_in_expressions() -> None:
    protocol = _protocol(
        "  Target: {role: target}\n"
        "  OpticNerve: {role: oar, if_contoured: true}\n"
        "  PRV: {role: oar, expression: 'expand(OpticNerve, 5mm)'}\n"
        "  Target_eval: {role: other, expression: Target - OpticNerve}\n"
    )
    case = synthetic_case()
    resolved = resolve_structures(protocol, case)
    assert resolved.absent == {
        "OpticNerve": NOT_CONTOURED,
        "PRV": f"empty on this case (`expand(OpticNerve, 5mm)` has no voxel; OpticNerve is {NOT_CONTOURED})",
    }
    assert np.array_equal(resolved.masks["Target_eval"], case.structures["Target"].mask)
    # the protocol's own allowance, --strict's to let pass: the organ, and the PRV it leaves empty
    assert resolved.allowed_absent == {"OpticNerve", "PRV"}
    note = next(note for note in resolved.notes if note.startswith("OpticNerve:"))
    # the note keeps the matcher's word: what the case has, so a misspelt contour is seen
    assert note.startswith(f"OpticNerve: {NOT_CONTOURED}: its goals read NOT EVALUATED (no case structure named")
    assert "the case has: Body, Organ, Target" in note


def test_a_missing_organ_without_if_contoured_stays_an_error_at_its_line() -> None:
    with pytest.raises(CompileError, match=r"^site/p\.yaml:7:3: structures\.OpticNerve: "
                                           r"structure 'OpticNerve': no case structure named"):
        resolve_structures(_protocol("  Target: {role: target}\n  OpticNerve: {role: oar}\n"), synthetic_case())


def test_if_contoured_does_not_hide_two_case_structures_that_both_match() -> None:
    case = synthetic_case()
    organ = case.structures.pop("Organ")
    case.structures.update({name: dataclasses.replace(organ, name=name) for name in ("organ", "ORGAN")})
    with pytest.raises(CompileError, match=r"structure 'Organ': 'Organ' matches several case structures"):
        resolve_structures(_protocol("  Target: {role: target}\n  Organ: {role: oar, if_contoured: true}\n"), case)


def test_an_empty_contour_of_an_if_contoured_organ_is_absent() -> None:
    case = synthetic_case()
    organ = case.structures["Organ"]
    case.structures["Organ"] = dataclasses.replace(organ, mask=np.zeros_like(organ.mask))
    resolved = resolve_structures(_protocol("  Target: {role: target}\n  Organ: {role: oar, if_contoured: true}\n"), case)
    assert resolved.absent == {"Organ": "empty on this case (the case structure 'Organ' has no voxel on the grid)"}
    assert resolved.allowed_absent == {"Organ"}  # "no voxel on the grid" is not contoured too (if_contoured's docs)


def test_terms_on_an_absent_structure_are_left_out_with_their_line_and_the_others_kept() -> None:
    protocol = _protocol(
        "  Target: {role: target}\n  OpticNerve: {role: oar, if_contoured: true}\n",
        "optimization:\n  terms:\n"
        "    - {kind: min_dose, structure: Target, dose: 4 Gy}\n"
        "    - {kind: max_dose, structure: OpticNerve, dose: 2 Gy}\n",
    )
    resolved = resolve_structures(protocol, synthetic_case())
    kept, notes = resolved.without_absent(protocol.optimization.terms, protocol.optimization.scenarios)
    assert [term.kind for term in kept] == ["min_dose"]
    assert notes == [f"site/p.yaml:12: {protocol.optimization.terms[1].label()}: left out of the optimization: "
                     f"OpticNerve is {NOT_CONTOURED}"]


def test_a_misspelt_if_contoured_organ_is_told_the_protocol_name_it_is_near() -> None:
    """Audit b1 F4: 'Cochlae_L' (for a template's 'Cochlea_L') read 'not contoured' with no word that the
    protocol itself holds the name, on a case with the organ or without. The organ's other side is no slip."""
    hint = ('. The protocol has a structure of a near name (did you mean "Cochlea_L"?): a misspelt name in the '
            "protocol reads not contoured on every case")
    protocol = _protocol("  Target: {role: target}\n  Cochlae_L: {role: oar, if_contoured: true}\n"
                         "  Cochlea_L: {role: oar, if_contoured: true}\n  Cochlea_R: {role: oar, if_contoured: true}\n")
    with_organ = synthetic_case()
    organ = with_organ.structures.pop("Organ")
    with_organ.structures["Cochlea_L"] = dataclasses.replace(organ, name="Cochlea_L")
    for case in (with_organ, synthetic_case()):
        notes = {note.split(":")[0]: note for note in resolve_structures(protocol, case).notes}
        assert notes["Cochlae_L"].endswith(hint)
        assert "near name" not in notes["Cochlea_R"]


def test_a_structure_read_from_a_case_structure_of_another_name_is_noted() -> None:
    """Audit b1 F1: plan.json and the report never said which case structure a goal was measured on."""
    case = synthetic_case()
    organ = case.structures.pop("Organ")
    case.structures["ORGAN"] = dataclasses.replace(organ, name="ORGAN")
    case.structures["Organ_Wall"] = dataclasses.replace(organ, name="Organ_Wall")
    resolved = resolve_structures(_protocol(
        "  Target: {role: target}\n  Organ: {role: oar, aliases: [Organ_Wall]}\n"
    ), case)
    assert resolved.case_names["Organ"] == "ORGAN"
    assert "Organ: read from the case's 'ORGAN'; the case's 'Organ_Wall' (matching an alias) is not used" in resolved.notes
    assert not any(note.startswith("Target: read from") for note in resolved.notes)


def test_if_contoured_does_not_hide_two_case_structures_found_by_aliases() -> None:
    case = synthetic_case()
    organ = case.structures.pop("Organ")
    case.structures.update({name: dataclasses.replace(organ, name=name) for name in ("Bulb", "Penile_Bulb")})
    with pytest.raises(CompileError, match=r"structure 'PenileBulb': 'PenileBulb' matches several case structures "
                                           r"through its aliases \('Bulb' \(alias 'Bulb'\), 'Penile_Bulb'"):
        resolve_structures(_protocol(
            "  Target: {role: target}\n  PenileBulb: {role: oar, aliases: [Bulb, Penile_Bulb], if_contoured: true}\n"
        ), case)


@pytest.mark.parametrize("contoured", ["Optic Nerve", "optic_nerve", "Optic-Nerve"])
def test_an_if_contoured_organ_the_case_contours_under_another_spacing_is_refused_not_absent(contoured: str) -> None:
    """Audit s20/t3 F2: OpticNerve_L (if_contoured) on a case contouring 'Optic Nerve L' read "not contoured": no
    limit planned, its goals NOT EVALUATED, --strict passing, one note among thirty. The organ is contoured."""
    case = synthetic_case()
    organ = case.structures.pop("Organ")
    case.structures[contoured] = dataclasses.replace(organ, name=contoured)
    with pytest.raises(CompileError, match=rf"^site/p\.yaml:7:3: structures\.OpticNerve: "
                                           rf"structure 'OpticNerve' \(if_contoured: true\) is not in "
                                           rf"the case under its name or aliases, but the case contours '{contoured}'"):
        resolve_structures(_protocol("  Target: {role: target}\n  OpticNerve: {role: oar, if_contoured: true}\n"), case)
