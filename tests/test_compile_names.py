"""Protocol structures found among case structures: own name first (case and Unicode form aside), then aliases."""

from __future__ import annotations

import unicodedata

import pytest
import yaml

from evaluate_fakes import synthetic_case
from specc.compile import resolve_structures
from specc.compile.names import AmbiguousMatch, NoMatch, PartsMatch, match_structure, near_missing_parts
from specc.protocol import parse_protocol_text

NFC = unicodedata.normalize("NFC", "Rückenmark")  # ü as one character, as typed on Linux or Windows
NFD = unicodedata.normalize("NFD", "Rückenmark")  # u and a combining diaeresis, as macOS and some DICOM exports write


def test_a_name_matches_in_either_unicode_form_exactly_by_alias_and_ignoring_case() -> None:
    """Audit h4 F6: "Rückenmark" typed NFC was "not found" in a case storing it NFD."""
    assert NFC != NFD
    assert match_structure(NFC, [], ["Body", NFD]).case_name == NFD
    assert match_structure(NFD, [], ["Body", NFC]).case_name == NFC
    assert match_structure("Spinal cord", [NFD], ["Body", NFC]).case_name == NFC
    assert match_structure(unicodedata.normalize("NFD", "RÜCKENMARK"), [], ["Body", NFC]).case_name == NFC
    assert match_structure(NFC, [], ["Body", NFD]).note(NFC) is None  # the same name, in another encoding


def test_the_same_name_in_two_unicode_forms_in_one_case_is_an_ambiguity() -> None:
    with pytest.raises(AmbiguousMatch, match="matches several case structures"):
        match_structure("Rückenmark", [], [NFC, NFD])


def test_a_suggestion_that_differs_only_in_invisible_characters_is_shown_with_ascii_escapes() -> None:
    """A no-break space: 'did you mean "Spinal Cord"?' cannot be acted on; the escapes show the difference."""
    with pytest.raises(NoMatch) as error:
        match_structure("Spinal Cord", [], ["Body", "Spinal\u00a0Cord"])
    assert str(error.value) == (
        "no case structure named 'Spinal Cord'; the case has: Body, 'Spinal\\xa0Cord'. Did you mean "
        "'Spinal\\xa0Cord'? 'Spinal\\xa0Cord' differs from what the protocol writes only in characters that do not "
        "show (written as ascii() escapes): add it to `aliases` in double quotes, which keep them "
        '(aliases: ["Spinal\\u00a0Cord"]), or rename the case structure'
    )
    # the alias it suggests, read from YAML, matches
    alias = yaml.safe_load('aliases: ["Spinal\\u00a0Cord"]')["aliases"]
    assert match_structure("Spinal Cord", alias, ["Body", "Spinal\u00a0Cord"]).case_name == "Spinal\u00a0Cord"
    with pytest.raises(NoMatch, match=r"Did you mean 'Cor'\? \(add it to `aliases`\)$"):  # a visible typo: as before
        match_structure("Core", [], ["Body", "Cor"])
    with pytest.raises(NoMatch, match=r"the case has: Body, 'Core\\u200b'\. Did you mean 'Core\\u200b'\?"):
        match_structure("core", [], ["Body", "Core\u200b"])  # a zero-width space; case aside, it reads the same


def test_a_protocol_typed_in_nfc_plans_on_a_case_that_stores_the_name_in_nfd() -> None:
    case = synthetic_case(oar_name=NFD)
    text = (
        f"specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n  Target: {{role: target}}\n  {NFC}: {{role: oar}}\n"
        "prescription: {fractions: 2, levels: [{target: Target, dose: 4 Gy}]}\n"
    )
    resolved = resolve_structures(parse_protocol_text(text, "p.yaml"), case)
    assert resolved.case_names[NFC] == NFD


def test_the_own_name_in_another_case_wins_over_an_exact_alias_and_the_note_names_it() -> None:
    """Audit b1 F1: with aliases tried exactly before the name ignoring case, a case's 'RECTUM' beside
    'Rectum_Wall' read the rectum's limits on the wall, and nothing said so."""
    match = match_structure("Rectum", ["rectum_o", "Rectum_Wall"], ["Body", "RECTUM", "Rectum_Wall"])
    assert match.case_name == "RECTUM"
    assert match.note("Rectum") == "Rectum: read from the case's 'RECTUM'; the case's 'Rectum_Wall' (matching an alias) is not used"
    assert match_structure("Rectum", ["rectum_o"], ["Body", "RECTUM"]).note("Rectum") == "Rectum: read from the case's 'RECTUM'"
    assert match_structure("Rectum", ["rectum_o"], ["Body", "Rectum"]).note("Rectum") is None


def test_a_structure_found_by_an_alias_says_which_case_structure_and_alias() -> None:
    match = match_structure("OpticNerve_R", ["OpticNrv_R"], ["Body", "OPTICNRV_R"])
    assert (match.case_name, match.alias) == ("OPTICNRV_R", "OpticNrv_R")
    assert match.note("OpticNerve_R") == "OpticNerve_R: read from the case's 'OPTICNRV_R' (alias 'OpticNrv_R')"
    assert match_structure("SpinalCord", ["Cord"], ["Cord"]).note("SpinalCord") == "SpinalCord: read from the case's 'Cord' (an alias)"


def test_two_case_structures_found_by_aliases_are_an_ambiguity_naming_both() -> None:
    """Audit b1 F1: the first alias found won, the other case structure silently ignored."""
    with pytest.raises(AmbiguousMatch) as error:
        match_structure("PenileBulb", ["Penile_Bulb", "Bulb"], ["Body", "Bulb", "penile_bulb"])
    assert str(error.value) == (
        "'PenileBulb' matches several case structures through its aliases ('penile_bulb' (alias 'Penile_Bulb'), "
        "'Bulb' (alias 'Bulb')) and none by its own name: rename the one to use to the protocol's name, or the others"
    )
    # two spellings of the own name are one too; one case structure matching two aliases is not
    with pytest.raises(AmbiguousMatch, match=r"^'Organ' matches several case structures \('organ', 'ORGAN'\)"):
        match_structure("Organ", [], ["organ", "ORGAN"])
    assert match_structure("Organ", ["Org", "ORG"], ["org"]).case_name == "org"


def test_an_organ_is_never_suggested_for_its_other_side() -> None:
    """'Did you mean 'Cochlea_L'? (add it to `aliases`)' for a missing Cochlea_R would read the left
    cochlea's dose as the right's."""
    with pytest.raises(NoMatch) as error:
        match_structure("Cochlea_R", ["Cochlea_Rt"], ["Body", "Cochlea_L"])
    assert "Did you mean" not in str(error.value)
    with pytest.raises(NoMatch, match=r"Did you mean 'Cochlea_L'\?"):
        match_structure("Cochlae_L", [], ["Body", "Cochlea_L"])


def test_one_side_of_an_organ_is_suggested_as_a_part_never_as_an_alias() -> None:
    """'Did you mean 'BrachialPlex_R'? (add it to `aliases`)' for a missing BrachialPlexus would read one side's
    dose as the whole organ's (its maximum from the right plexus alone): the hint is the sides as `parts`."""
    with pytest.raises(NoMatch) as error:
        match_structure("BrachialPlexus", ["BrachialPlex"], ["Body", "BrachialPlex_L", "BrachialPlex_R"])
    message = str(error.value)
    assert "(add it to `aliases`)" not in message
    assert "list the sides as its `parts` (parts: [BrachialPlex_L, BrachialPlex_R])" in message
    with pytest.raises(NoMatch, match=r"Did you mean 'Parotid_Lt'\? \(add it to `aliases`\)"):
        match_structure("Parotid_L", [], ["Body", "Parotid_Lt"])


def test_a_side_under_a_near_name_is_suggested_for_its_part_never_as_an_alias_nor_for_the_other_side() -> None:
    """Review R1 F3: a case contouring the plexus as 'BrachialPlexus_L' and 'BrachialPlexus_R' got no hint at all (each
    side is the other side of one part), and a near name of a part would have been hinted as an alias of the whole."""
    with pytest.raises(NoMatch) as error:
        match_structure("BrachialPlexus", ["BrachialPlexs"], ["Body", "BrachialPlexus_L", "Brachial_Plexus_R"],
                        ["BrachialPlex_L", "BrachialPlex_R"])
    message = str(error.value)
    assert message.endswith(
        "Did you mean 'BrachialPlexus_L' for its part 'BrachialPlex_L'? If it is that part, rename it 'BrachialPlex_L' "
        "in the case; if it is another part of BrachialPlexus, add it to its `parts` (parts: [BrachialPlex_L, "
        "BrachialPlex_R, BrachialPlexus_L]). Did you mean 'Brachial_Plexus_R' for its part 'BrachialPlex_R'? If it is "
        "that part, rename it 'BrachialPlex_R' in the case; if it is another part of BrachialPlexus, add it to its "
        "`parts` (parts: [BrachialPlex_L, BrachialPlex_R, Brachial_Plexus_R]).")
    assert "aliases" not in message


def test_a_near_name_of_parts_without_a_side_is_suggested_for_the_nearest_part_alone() -> None:
    """'Musc_Constrict_Mid' is near all three constrictors: it is suggested for the middle one, never as an alias."""
    with pytest.raises(NoMatch) as error:
        match_structure("Musc_Constrict", [], ["Body", "Musc_Constrict_Mid", "Musc_Constrict_Inf"],
                        ["Musc_Constrict_S", "Musc_Constrict_M", "Musc_Constrict_I"])
    message = str(error.value)
    assert "Did you mean 'Musc_Constrict_Mid' for its part 'Musc_Constrict_M'?" in message
    assert "Did you mean 'Musc_Constrict_Inf' for its part 'Musc_Constrict_I'?" in message
    assert message.count("Did you mean") == 2 and "aliases" not in message


@pytest.mark.parametrize("helper", ["SpinalCord_PRV", "SpinalCord_PRV05", "SpinalCordPRV5mm", "zSpinalCord",
                                    "z_SpinalCord", "SpinalCord_ring", "opt SpinalCord"])
def test_a_structure_built_around_the_organ_is_never_suggested_as_its_alias(helper: str) -> None:
    """Audit c3 F2: 'Did you mean 'Spinal Cord' or 'SpinalCord_PRV'? (add it to `aliases`)' for a missing SpinalCord:
    following it would judge the cord's maximum on its PRV. A PRV, ring or optimization structure is said to be one;
    a near name without such a marker is still suggested."""
    with pytest.raises(NoMatch) as error:
        match_structure("SpinalCord", ["Cord", "Spinal_Cord"], ["Body", "Spinal Cord", helper])
    message = str(error.value)
    assert "Did you mean 'Spinal Cord'? (add it to `aliases`)" in message
    assert f"{helper!r} is a structure built around an organ for planning (a PRV, ring or optimization structure), " \
           "never an alias of it" in message
    assert f"or {helper!r}" not in message


def test_a_name_whose_marker_is_part_of_a_word_or_the_protocols_own_is_still_suggested() -> None:
    """'OpticChiasm' holds 'opt' only within a word; a protocol structure that is itself a PRV may be matched to a
    near spelling of it."""
    with pytest.raises(NoMatch, match=r"Did you mean 'OpticChiasm'\? \(add it to `aliases`\)$"):
        match_structure("Optic_Chiasm", [], ["Body", "OpticChiasm"])
    with pytest.raises(NoMatch, match=r"Did you mean 'Cord_PRV5'\? \(add it to `aliases`\)$"):
        match_structure("SpinalCord_PRV5", [], ["Body", "Cord_PRV5"])


@pytest.mark.parametrize(("part", "near", "respelled"), [
    ("BrachialPlex_R", "BrachialPlexus_R", True), ("BrachialPlex_R", "BrachialPlex_Rt", True),
    ("BrachialPlex_R", "Brachial_Plexus_R", True), ("BrachialPlex_R", "brachialplexus_r", True),
    ("Musc_Constrict_S", "Musc_Constrict_Sup", True), ("OpticNrv_R", "Optic_Nerve_R", True),
    ("Parotid_R", "Carotid_R", False), ("Lung_R", "Lens_R", False), ("Cochlea_R", "Cornea_R", False),
    ("Eye_R", "Ear_R", False), ("Kidney_R", "Kidney_Cyst_R", False), ("Femur_Head_R", "Femur_Neck_R", False),
])
def test_a_near_name_of_a_missing_part_is_refused_only_where_it_is_the_same_organ_written_otherwise(
        part: str, near: str, respelled: bool) -> None:
    """Review r2 F4: every unused case structure within difflib's 0.6 of a missing part was refused as that part
    under another name, 'Carotid_R' for 'Parotid_R' (0.89) among them. Only a spelling of the part's own words
    (shortened, lengthened, split otherwise, sides aside) is `respelled`; another organ is `not_taken`."""
    other = {"Musc_Constrict_S": "Musc_Constrict_M"}.get(part, part.replace("_R", "_L"))  # the part the case has
    match = match_structure("Organ", [], ["Body", other, near], [other, part])
    assert isinstance(match, PartsMatch) and match.missing == (part,)
    found = near_missing_parts(match, ["Organ"], [other, part], ["Body", near])
    hit = ((part, (near,)),)
    assert (found.respelled, found.not_taken) == ((hit, ()) if respelled else ((), hit))
