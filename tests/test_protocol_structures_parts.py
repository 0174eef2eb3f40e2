"""`parts`: the case structures that together make a structure (its TG-263 sides or parts). Refused where
they cannot mean that, at the line (their effect on a case: tests/test_compile_structures_parts.py)."""

from __future__ import annotations

import pytest

from specc import revise_protocol
from specc.protocol import ProtocolError, load_protocol, parse_protocol_text

HEADER = "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n  Target: {role: target}\n"
PRESCRIPTION = "prescription: {fractions: 2, levels: [{target: Target, dose: 4 Gy}]}\n"


def _parse(structure: str):
    return parse_protocol_text(HEADER + structure + PRESCRIPTION, "site/p.yaml")


def test_a_structure_names_its_parts_in_order_and_has_none_by_default() -> None:
    protocol = _parse("  Plexus: {role: oar, parts: [BrachialPlex_L, BrachialPlex_R]}\n  Cord: {role: oar}\n")
    assert protocol.structures["Plexus"].parts == ["BrachialPlex_L", "BrachialPlex_R"]
    assert protocol.structures["Cord"].parts == []


@pytest.mark.parametrize(
    ("structure", "message"),
    [
        ("  Both: {role: oar, expression: Target, parts: [Target_L]}\n",
         r"site/p\.yaml:7:\d+: structures\.Both\.parts: a derived structure \(`expression`\) is computed, not "
         r"contoured: it has no parts"),
        ("  Plexus: {role: oar, aliases: [BrachialPlexs], parts: [brachialplexs]}\n",
         r'site/p\.yaml:7:\d+: structures\.Plexus\.parts: part "brachialplexs" is an alias \("BrachialPlexs"\): an '
         r"alias is the whole structure under another name"),
        ("  Plexus: {role: oar, parts: [BrachialPlex_L, BRACHIALPLEX_L]}\n",
         r'site/p\.yaml:7:\d+: structures\.Plexus\.parts: part "BRACHIALPLEX_L" is written twice \(as '
         r'"BrachialPlex_L"\)'),
    ],
    ids=["derived", "alias", "twice"],
)
def test_parts_that_cannot_be_pieces_of_a_contour_are_refused_at_the_line(structure: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        _parse(structure)


@pytest.mark.parametrize(
    ("structure", "message"),
    [
        ("  Plexus: {role: oar, parts: [BrachialPlex_R, plexus]}\n",
         r'site/p\.yaml:7:\d+: structures\.Plexus\.parts\[1\]: part "plexus" is the structure\'s own name: a case '
         r'structure of that name is the whole "Plexus" \(read before its parts\), never one of its parts'),
        ("  SpinalCord: {role: oar, aliases: [Cord]}\n  Plexus: {role: oar, parts: [Pl_L, cord]}\n",
         r'site/p\.yaml:8:\d+: structures\.Plexus\.parts\[1\]: part "cord" is an alias of structure "SpinalCord" '
         r'\(that whole structure under another name\): as a part it would put "SpinalCord" inside "Plexus", and only '
         r'on a case that names it "cord".*\(`expression: SpinalCord \| \.\.\.`\); structures\.SpinalCord\.aliases\[0\] '
         r"is at site/p\.yaml:7:\d+"),
    ],
    ids=["own name", "another structure's alias"],
)
def test_a_part_that_is_a_whole_structure_is_refused_at_its_line(structure: str, message: str) -> None:
    """Audit c4 F3: both validated; the own name is never read as a part, the cord became part of the plexus."""
    with pytest.raises(ProtocolError, match=message):
        _parse(structure)


def test_a_side_the_protocol_limits_on_its_own_is_still_a_part() -> None:
    """Documented: a protocol that wants a limit per side defines the side as a structure of its own."""
    protocol = _parse("  Plexus: {role: oar, parts: [BrachialPlex_L, BrachialPlex_R]}\n  BrachialPlex_L: {role: oar}\n")
    assert protocol.structures["Plexus"].parts == ["BrachialPlex_L", "BrachialPlex_R"]


def test_a_template_alias_as_a_part_names_the_templates_line(tmp_path) -> None:
    (tmp_path / "base.yaml").write_text("template: true\nstructures:\n  SpinalCord: {role: oar, aliases: [Cord]}\n")
    (tmp_path / "p.yaml").write_text(
        "extends: base.yaml\nspecc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n  PTV: {role: target}\n"
        "  Plexus: {role: oar, parts: [Cord, Pl_R]}\nprescription: {fractions: 2, levels: [{target: PTV, dose: 4 Gy}]}\n"
    )
    with pytest.raises(ProtocolError, match=r"p\.yaml:8:\d+: structures\.Plexus\.parts\[0\]: .*"
                                            r"structures\.SpinalCord\.aliases\[0\] is at .*base\.yaml:3:\d+"):
        load_protocol(tmp_path / "p.yaml")


def test_parts_survive_a_revision_and_a_derived_structure_revises_without_any() -> None:
    """`revise_protocol` validates the dump again: a derived structure's empty `parts` is no part."""
    protocol = _parse("  Plexus: {role: oar, parts: [BrachialPlex_L, BrachialPlex_R]}\n"
                      "  Ring: {role: other, expression: 'ring(Target, 5mm, 10mm)'}\n")
    revised = revise_protocol(protocol, name="t2")
    assert revised.structures["Plexus"].parts == ["BrachialPlex_L", "BrachialPlex_R"]
    assert revised.structures["Ring"].parts == []
