"""An organ a case contours by side or part (`parts`): the union of the parts the case has stands for it
where the case has no contour of its name or aliases, with a note naming the case structures used; the
whole contour, where the case has it, wins; a case with neither is as before."""

from __future__ import annotations

import numpy as np
import pytest

from evaluate_fakes import synthetic_case
from specc.case import Case, Structure
from specc.compile import resolve_structures
from specc.compile.names import AmbiguousMatch, NoMatch, PartsMatch, StructureMatch, match_structure
from specc.compile.structures import NOT_CONTOURED
from specc.errors import CompileError
from specc.protocol import parse_protocol_text

HEADER = "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n  Target: {role: target}\n"
PRESCRIPTION = "prescription: {fractions: 2, levels: [{target: Target, dose: 4 Gy}]}\n"
PLEXUS = "  Plexus: {role: oar, aliases: [BrachialPlexs], parts: [BrachialPlex_L, BrachialPlex_R]%s}\n"


def _protocol(if_contoured: bool = True):
    flag = ", if_contoured: true" if if_contoured else ""
    return parse_protocol_text(HEADER + PLEXUS % flag + PRESCRIPTION + "goals: {Plexus: ['Max <= 3 Gy']}\n",
                               "site/p.yaml")


def _case(**masks: np.ndarray) -> Case:
    """The synthetic case, its organ replaced by the case structures named in `masks`."""
    case = synthetic_case()
    del case.structures["Organ"]
    case.structures.update({name: Structure(name=name, mask=mask) for name, mask in masks.items()})
    return case


def _sides() -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of the synthetic organ box (the case's left and right plexus)."""
    organ = synthetic_case().structures["Organ"].mask
    left, right = organ.copy(), organ.copy()
    half = np.flatnonzero(organ.any(axis=(0, 2)))[1]
    left[:, half:, :] = False
    right[:, :half, :] = False
    assert left.any() and right.any() and not (left & right).any()
    return left, right


def test_a_case_contouring_the_sides_reads_their_union_and_says_which_structures() -> None:
    left, right = _sides()
    resolved = resolve_structures(_protocol(), _case(BrachialPlex_L=left, BrachialPlex_R=right))
    assert resolved.absent == {}
    assert np.array_equal(resolved.masks["Plexus"], left | right)
    assert resolved.parts == {"Plexus": ("BrachialPlex_L", "BrachialPlex_R")}
    assert "Plexus" not in resolved.case_names
    assert ("Plexus: read from the union of the case's 'BrachialPlex_L' and 'BrachialPlex_R' (its parts; the case "
            "has no structure of its name or aliases)") in resolved.notes


def test_a_case_contouring_one_side_reads_that_side_and_names_the_side_it_lacks() -> None:
    left, _ = _sides()
    resolved = resolve_structures(_protocol(), _case(brachialplex_l=left))  # a part is matched case aside
    assert np.array_equal(resolved.masks["Plexus"], left)
    assert ("Plexus: read from the case's 'brachialplex_l' alone (its parts; the case has no structure of its name "
            "or aliases); its part 'BrachialPlex_R' is not in the case") in resolved.notes


def test_the_whole_contour_wins_over_the_parts_and_keeps_its_reading() -> None:
    left, right = _sides()
    whole = left | right
    whole[tuple(np.argwhere(~whole & synthetic_case().structures["Body"].mask)[0])] = True  # not just the union
    resolved = resolve_structures(_protocol(), _case(BrachialPlexs=whole, BrachialPlex_L=left, BrachialPlex_R=right))
    assert np.array_equal(resolved.masks["Plexus"], whole)
    assert resolved.case_names["Plexus"] == "BrachialPlexs"
    assert resolved.parts == {}
    assert not any("read from the union" in note for note in resolved.notes)


@pytest.mark.parametrize("whole", ["Plexus", "BrachialPlexs"])
def test_a_case_with_the_whole_and_its_parts_says_the_parts_are_not_used(whole: str) -> None:
    """Audit c4 F6: a case contoured both ways (the whole, by its name or an alias, and the sides) was judged on the
    whole without a word, though the two often disagree (sides revised, whole not); an unused alias match is named."""
    left, right = _sides()
    resolved = resolve_structures(_protocol(), _case(**{whole: left | right}, BrachialPlex_L=left, BrachialPlex_R=right))
    assert resolved.case_names["Plexus"] == whole
    through = " (an alias)" if whole == "BrachialPlexs" else ""
    assert (f"Plexus: read from the case's {whole!r}{through}; the case's 'BrachialPlex_L', 'BrachialPlex_R' (its parts) "
            "are not used for it: its goals are judged on the whole contour") in resolved.notes


def test_a_part_read_by_a_structure_of_its_own_is_not_called_unused() -> None:
    left, right = _sides()
    text = (HEADER + PLEXUS % "" + "  BrachialPlex_L: {role: oar}\n" + PRESCRIPTION
            + "goals: {Plexus: ['Max <= 3 Gy'], BrachialPlex_L: ['Max <= 2 Gy']}\n")
    resolved = resolve_structures(parse_protocol_text(text, "site/p.yaml"),
                                  _case(Plexus=left | right, BrachialPlex_L=left, BrachialPlex_R=right))
    assert ("Plexus: read from the case's 'Plexus'; the case's 'BrachialPlex_R' (its part) is not used for it: its "
            "goals are judged on the whole contour") in resolved.notes


@pytest.mark.parametrize("near", ["BrachialPlexus_R", "BrachialPlex_Rt", "Brachial_Plexus_R"])
def test_a_part_contoured_under_a_near_name_is_an_error_naming_both_and_the_fix(near: str) -> None:
    """Review R1 F3: the right plexus contoured as 'BrachialPlexus_R' was dropped without a word, the plexus maximum
    optimized and judged on the left side alone."""
    left, right = _sides()
    with pytest.raises(CompileError) as error:
        resolve_structures(_protocol(if_contoured=False), _case(BrachialPlex_L=left, **{near: right}))
    assert str(error.value) == (
        "site/p.yaml:7:56: structures.Plexus.parts: "
        f"structure 'Plexus': its part 'BrachialPlex_R' is not in the case, which has {near!r}, a near "
        f"name no structure of the protocol reads. If it is that part, rename it 'BrachialPlex_R' in the case; if it is "
        f"another part of Plexus, add it to its `parts` (parts: [BrachialPlex_L, BrachialPlex_R, {near}]); otherwise "
        "give it a name unlike the part's. As it stands Plexus would be read from the case's 'BrachialPlex_L' alone, "
        "its goals judged on that")


@pytest.mark.parametrize("other", ["BrachialPlex_Lt", "BrachialPlex_R_PRV", "zBrachialPlex_R", "Brachial_Plexus", "Cord"])
def test_a_missing_part_without_a_near_name_of_its_side_reads_the_parts_found(other: str) -> None:
    """The other side, a PRV or optimization structure, a name without a side and an unrelated name are no near
    part: the organ is read from the parts found, as the note and each goal say."""
    left, right = _sides()
    resolved = resolve_structures(_protocol(if_contoured=False), _case(BrachialPlex_L=left, **{other: right}))
    assert np.array_equal(resolved.masks["Plexus"], left)
    assert resolved.partial == {"Plexus": "judged on the case's 'BrachialPlex_L' alone: its part 'BrachialPlex_R' is "
                                          "not in the case"}


def test_a_near_name_another_structure_of_the_protocol_reads_is_no_near_part() -> None:
    left, right = _sides()
    text = (HEADER + PLEXUS % "" + "  Nerve: {role: oar, aliases: [BrachialPlexus_R]}\n" + PRESCRIPTION
            + "goals: {Plexus: ['Max <= 3 Gy']}\n")
    resolved = resolve_structures(parse_protocol_text(text, "site/p.yaml"), _case(BrachialPlex_L=left,
                                                                                   BrachialPlexus_R=right))
    assert np.array_equal(resolved.masks["Plexus"], left) and resolved.case_names["Nerve"] == "BrachialPlexus_R"


def test_a_case_with_neither_reads_not_contoured_naming_the_parts_tried() -> None:
    resolved = resolve_structures(_protocol(), _case())
    assert resolved.absent == {"Plexus": NOT_CONTOURED}
    note = next(note for note in resolved.notes if note.startswith("Plexus:"))
    assert "no case structure named 'Plexus', 'BrachialPlexs' nor its parts 'BrachialPlex_L', 'BrachialPlex_R'" in note


def test_a_required_organ_without_whole_or_parts_stays_an_error_and_parts_satisfy_it() -> None:
    with pytest.raises(CompileError, match=r"^site/p\.yaml:7:3: structures\.Plexus: "
                                           r"structure 'Plexus': no case structure named 'Plexus', "
                                           r"'BrachialPlexs' nor its parts"):
        resolve_structures(_protocol(if_contoured=False), _case())
    left, right = _sides()
    resolved = resolve_structures(_protocol(if_contoured=False), _case(BrachialPlex_L=left, BrachialPlex_R=right))
    assert np.array_equal(resolved.masks["Plexus"], left | right)


def test_parts_with_no_voxel_on_the_grid_leave_the_organ_empty_on_this_case() -> None:
    empty = np.zeros(synthetic_case().grid.shape, dtype=bool)
    resolved = resolve_structures(_protocol(), _case(BrachialPlex_L=empty, BrachialPlex_R=empty))
    assert resolved.absent == {"Plexus": "empty on this case (the case structures 'BrachialPlex_L', 'BrachialPlex_R' "
                                         "(its parts) have no voxel on the grid)"}


def test_a_part_wholly_outside_a_checks_dose_grid_leaves_the_organ_absent_saying_which() -> None:
    left, _ = _sides()
    why = "all its voxels (4) lie outside the dose grid of RD.dcm: they have no dose"
    resolved = resolve_structures(_protocol(), _case(BrachialPlex_L=left), without_voxels={"BrachialPlex_R": why})
    assert resolved.absent == {"Plexus": f"its part 'BrachialPlex_R' has no dose ({why})"}
    assert resolved.without_voxels == resolved.absent


def test_two_case_structures_of_one_part_are_an_error_naming_both() -> None:
    left, right = _sides()
    case = _case(BrachialPlex_L=left, BRACHIALPLEX_L=left, BrachialPlex_R=right)
    with pytest.raises(CompileError, match=r"structure 'Plexus': 'Plexus' has no case structure of its name or "
                                           r"aliases, and its part 'BrachialPlex_L' matches several"):
        resolve_structures(_protocol(), case)


def test_the_matcher_tries_parts_last() -> None:
    names = ["Body", "Plexus_L", "Plexus_R", "PlexusAll"]
    assert match_structure("Plexus", ["PlexusAll"], names, ["Plexus_L", "Plexus_R"]) == StructureMatch(
        "PlexusAll", alias="PlexusAll", parts_passed_over=("Plexus_L", "Plexus_R"))
    assert match_structure("Plexus", ["Other"], names, ["Plexus_L", "Plexus_R", "Plexus_M"]) == PartsMatch(
        ("Plexus_L", "Plexus_R"), missing=("Plexus_M",))
    with pytest.raises(NoMatch) as error:
        match_structure("Plexus", [], ["Body"], ["Plexus_L"])
    assert not isinstance(error.value, AmbiguousMatch)


def test_a_structure_read_from_some_of_its_parts_and_one_derived_from_it_say_what_they_are_judged_on() -> None:
    """Audit c3 F4: what a goal on the organ is judged on (`ResolvedStructures.partial`, carried to each goal's note),
    for the organ read from one side and a PRV derived from it; none where the case has every part."""
    left, right = _sides()
    text = (HEADER + PLEXUS % "" + "  Plexus_PRV: {role: oar, expression: 'expand(Plexus, 5mm)'}\n" + PRESCRIPTION
            + "goals: {Plexus: ['Max <= 3 Gy'], Plexus_PRV: ['Max <= 3.5 Gy']}\n")
    plan_protocol = parse_protocol_text(text, "site/p.yaml")
    judged_on = "judged on the case's 'BrachialPlex_L' alone: its part 'BrachialPlex_R' is not in the case"
    resolved = resolve_structures(plan_protocol, _case(BrachialPlex_L=left))
    assert resolved.partial == {"Plexus": judged_on, "Plexus_PRV": f"built from Plexus ({judged_on})"}
    assert resolve_structures(plan_protocol, _case(BrachialPlex_L=left, BrachialPlex_R=right)).partial == {}


PAROTIDS = "  Parotids: {role: oar, parts: [Parotid_L, Parotid_R]}\n"


def test_a_case_without_a_part_and_with_a_near_named_other_organ_plans_naming_it_in_the_note() -> None:
    """Review r2 F4: a parotidectomy case (Parotid_L; the right parotid resected) with the right carotid contoured was
    refused ("its part 'Parotid_R' is not in the case, which has 'Carotid_R', a near name ... rename it"), with no
    way for the protocol to accept it. It is read from the left parotid; the note and each goal name the carotid as
    not taken for the missing part, so that a reader still sees a part contoured under another name."""
    left, right = _sides()
    text = HEADER + PAROTIDS + PRESCRIPTION + "goals: {Parotids: ['Mean <= 3 Gy']}\n"
    resolved = resolve_structures(parse_protocol_text(text, "site/p.yaml"), _case(Parotid_L=left, Carotid_R=right))
    assert np.array_equal(resolved.masks["Parotids"], left)
    missing = "its part 'Parotid_R' is not in the case (the case's 'Carotid_R' was not taken for it)"
    assert resolved.partial == {"Parotids": f"judged on the case's 'Parotid_L' alone: {missing}"}
    assert (f"Parotids: read from the case's 'Parotid_L' alone (its parts; the case has no structure of its name or "
            f"aliases); {missing}") in resolved.notes


# A clinical case's structures (TG-263 names), most read by no structure of the protocol below; its right side has
# only organs whose names are near a right-side part of another organ.
CLINICAL = ["Brainstem", "SpinalCord", "SpinalCord_PRV05", "OpticChiasm", "OpticNrv_L", "OpticNrv_R", "Lens_L",
            "Lens_R", "Cornea_L", "Cornea_R", "Retina_L", "Retina_R", "Ear_Internal_L", "Ear_R", "Carotid_L",
            "Carotid_R", "Glnd_Submand_L", "Glnd_Submand_R", "Mandible", "Larynx", "Esophagus", "Musc_Constrict_S",
            "Musc_Constrict_M", "Musc_Constrict_I", "Lips", "Cavity_Oral", "Thyroid", "Kidney_Cyst_R", "Pituitary"]


def test_a_case_with_many_structures_is_not_refused_over_near_names_of_other_organs() -> None:
    """Review r2 F4: Lung_R~Lens_R 0.67, Cochlea_R~Cornea_R 0.71, Eye_R~Ear_R 0.60, Kidney_R~Kidney_Cyst_R 0.76;
    the more structures a case has, the likelier such a pair. Each organ is read from its left side, and its goals
    say which near names were not taken for its right side."""
    left, right = _sides()
    organs = {"Parotids": "Parotid", "Lungs": "Lung", "Cochleae": "Cochlea", "Eyes": "Eye", "Kidneys": "Kidney"}
    text = (HEADER + "".join(f"  {organ}: {{role: oar, parts: [{part}_L, {part}_R]}}\n" for organ, part in organs.items())
            + PRESCRIPTION + "goals: {" + ", ".join(f"{organ}: ['Mean <= 3 Gy']" for organ in organs) + "}\n")
    case = _case(**{name: right for name in CLINICAL}, **{f"{part}_L": left for part in organs.values()})
    resolved = resolve_structures(parse_protocol_text(text, "site/p.yaml"), case)
    assert all(np.array_equal(resolved.masks[organ], left) for organ in organs)
    for organ, near in [("Parotids", "Carotid_R"), ("Lungs", "Lens_R"), ("Cochleae", "Cornea_R"), ("Eyes", "Ear_R"),
                        ("Kidneys", "Kidney_Cyst_R")]:
        assert f"{near!r}" in resolved.partial[organ].split("(the case's ", 1)[1], organ
