"""Protocol structures found among case structures: exact, alias, ignoring case, in one Unicode form."""

from __future__ import annotations

import unicodedata

import pytest
import yaml

from evaluate_fakes import synthetic_case
from specc.compile import resolve_structures
from specc.compile.names import NoMatch, match_structure
from specc.protocol import parse_protocol_text

NFC = unicodedata.normalize("NFC", "Rückenmark")  # ü as one character, as typed on Linux or Windows
NFD = unicodedata.normalize("NFD", "Rückenmark")  # u and a combining diaeresis, as macOS and some DICOM exports write


def test_a_name_matches_in_either_unicode_form_exactly_by_alias_and_ignoring_case() -> None:
    """Audit h4 F6: "Rückenmark" typed NFC was "not found" in a case storing it NFD."""
    assert NFC != NFD
    assert match_structure(NFC, [], ["Body", NFD]) == NFD
    assert match_structure(NFD, [], ["Body", NFC]) == NFC
    assert match_structure("Spinal cord", [NFD], ["Body", NFC]) == NFC
    assert match_structure(unicodedata.normalize("NFD", "RÜCKENMARK"), [], ["Body", NFC]) == NFC


def test_the_same_name_in_two_unicode_forms_in_one_case_is_an_ambiguity() -> None:
    with pytest.raises(NoMatch, match="matches several case structures"):
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
    assert match_structure("Spinal Cord", alias, ["Body", "Spinal\u00a0Cord"]) == "Spinal\u00a0Cord"
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
