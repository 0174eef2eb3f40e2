"""`if_contoured` is for an organ a case may lack; where a plan cannot go on without the structure it is
refused at the flag's line (its effect on a case: tests/test_compile_structures_absent.py)."""

from __future__ import annotations

import pytest

from specc.protocol import ProtocolError, parse_protocol_text

HEADER = "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n"
PRESCRIPTION = "prescription: {fractions: 2, levels: [{target: Target, dose: 4 Gy}]}\n"


def _parse(structures: str, rest: str = ""):
    return parse_protocol_text(HEADER + structures + PRESCRIPTION + rest, "site/p.yaml")


def test_an_organ_may_be_marked_if_contoured_and_the_default_is_required() -> None:
    protocol = _parse("  Target: {role: target}\n  OpticNerve: {role: oar, if_contoured: true}\n  Cord: {role: oar}\n")
    assert protocol.structures["OpticNerve"].if_contoured
    assert not protocol.structures["Cord"].if_contoured


@pytest.mark.parametrize(("written", "shown"), [('"no"', '"no"'), ('"yes"', '"yes"'), ("0", "0"), ("1", "1"),
                                                ('"true"', '"true"')])
def test_if_contoured_is_true_or_false_like_every_other_flag(written: str, shown: str) -> None:
    """Audit s19/a3 F1: `if_contoured: "no"` (or "yes", 0, 1) was read as a boolean, where `hard: "no"` and
    `robustness.optimize: "yes"` are refused and the schema says boolean: whether a missing organ is an error or a
    NOT EVALUATED goal is not decided by a quoted word or a number."""
    with pytest.raises(ProtocolError) as caught:
        _parse(f"  Target: {{role: target}}\n  Organ: {{role: oar, if_contoured: {written}}}\n")
    assert [str(diagnostic) for diagnostic in caught.value.diagnostics] == [
        f"site/p.yaml:7:36: structures.Organ.if_contoured: expected true or false, got {shown}"
    ]


@pytest.mark.parametrize(
    ("structures", "rest", "message"),
    [
        ("  Target: {role: target, if_contoured: true}\n", "",
         r'site/p\.yaml:6:40: structures\.Target\.if_contoured: "Target" is a target: a plan needs its targets'),
        ("  Target: {role: target}\n  Ring: {role: other, expression: 'ring(Target, 5mm, 10mm)', if_contoured: true}\n", "",
         r'site/p\.yaml:7:76: structures\.Ring\.if_contoured: "Ring" is derived \(`expression`\): it is computed on '
         r"every case, not contoured"),
        ("  Target: {role: target}\n  Organ: {role: oar, if_contoured: true}\n",
         "goals: {Organ: ['Max <= 3 Gy']}\nrobustness: {setup_error: 3 mm, structures: [Target, Organ]}\n",
         r'site/p\.yaml:7:36: structures\.Organ\.if_contoured: "Organ" must be on every case: robustness\.structures '
         r"lists it"),
        ("  Target: {role: target}\n  Organ: {role: oar, if_contoured: true}\n",
         "delivery: {technique: forward, block: [Organ]}\n",
         r'site/p\.yaml:7:36: structures\.Organ\.if_contoured: "Organ" must be on every case: delivery\.block lists it'),
    ],
    ids=["target", "derived", "robustness", "blocked"],
)
def test_if_contoured_is_refused_where_a_plan_needs_the_structure(structures: str, rest: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        _parse(structures, rest)


def test_two_structures_whose_names_differ_only_in_case_are_refused_at_the_line() -> None:
    """Audit b1 F4: a protocol's 'opticnerve_l' beside its template's 'OpticNerve_L' validated, and both read
    the case's one optic nerve, one of them under a goal the author meant for the other."""
    with pytest.raises(ProtocolError) as error:
        _parse("  Target: {role: target}\n  OpticNerve_L: {role: oar}\n  opticnerve_l: {role: oar, if_contoured: true}\n")
    assert str(error.value) == (
        'site/p.yaml:8:3: structures.opticnerve_l: structure "opticnerve_l" differs from structure "OpticNerve_L" only '
        "in case (names are matched to a case's ignoring case, so both would read one case structure): write "
        '"OpticNerve_L", or rename one; structures.OpticNerve_L is at site/p.yaml:7:3'
    )
