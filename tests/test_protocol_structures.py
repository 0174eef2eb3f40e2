"""Structure expressions parse without eval, print back, and name what they use."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specc.protocol.structures import (
    Crop,
    Difference,
    Expand,
    Intersection,
    Ring,
    Shrink,
    StructureRef,
    Union,
    parse_expression,
)


def test_precedence_and_associativity() -> None:
    a, b, c = StructureRef("A"), StructureRef("B"), StructureRef("C")
    assert parse_expression("A | B & C") == Union(a, Intersection(b, c))
    assert parse_expression("A - B - C") == Difference(Difference(a, b), c)
    assert parse_expression("A - (B | C)") == Difference(a, Union(b, c))
    assert str(parse_expression("(A - B) | C")) == "A - B | C"


def test_functions() -> None:
    ctv = StructureRef("CTV")
    assert parse_expression("expand(CTV, 7mm)") == Expand(ctv, (7.0, 7.0, 7.0))
    assert parse_expression("expand(CTV, 5mm, 5 mm, 1cm)") == Expand(ctv, (5.0, 5.0, 10.0))
    assert parse_expression("shrink(CTV, z=3mm)") == Shrink(ctv, (0.0, 0.0, 3.0))
    assert parse_expression("ring(CTV, 2mm, 20mm)") == Ring(ctv, 2.0, 20.0)
    assert parse_expression('crop(CTV, "External body", 4mm)') == Crop(ctv, StructureRef("External body"), 4.0)
    assert parse_expression("crop(expand(CTV, 7mm), Body) - PTV").names() == ("CTV", "Body", "PTV")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("expand(CTV, 5)", '"5" needs a unit: write margins in mm or cm, e.g. "5mm" at character 13'),
        # a unit that is there but is no length: not "needs a unit" (audit c4 F5)
        ("expand(Larynx, 5%)", 'unit "%" of "5%" is not a length: margins are in mm or cm, e.g. "5mm" at character 16'),
        ("ring(PTV, 2cGy, 20mm)", 'unit "cGy" of "2cGy" is not a length: margins are in mm or cm, e.g. "2mm"'),
        ("expand(CTV, z=5 Gy)", 'unit "Gy" of "5 Gy" is not a length: margins are in mm or cm'),
        ("expand(CTV, 0.5m)", 'unit "m" of "0.5m": margins are in mm or cm only'),
        ("expand(CTV, 5MM)", 'unit "MM" of "5MM": write margins in "mm" or "cm", in lower case, e.g. "5mm"'),
        # a negative margin: the hint is what its sign would mean for that operator (audit s18/a2 F4)
        ("expand(CTV, -5mm)", 'a margin cannot be negative ("-5mm"): an expansion by a negative margin is a shrink: '
                              "write shrink(CTV, 5mm) at character 13"),
        ("shrink(Cube, -3mm)", 'a margin cannot be negative ("-3mm"): a shrink by a negative margin is an expansion: '
                               "write expand(Cube, 3mm) at character 14"),
        ("shrink(CTV, z=-1cm)", "write expand(CTV, 0mm, 0mm, 10mm) at character 15"),
        ("crop(Cube, Body, -2mm)", 'a margin cannot be negative ("-2mm"): crop\'s margin is how far inside Body to keep; '
                                   "to keep up to 2 mm outside it, crop to its expansion: crop(Cube, expand(Body, 2mm))"),
        ("ring(PTV, -2mm, 20mm)", "a shell reaching inside it is expand(PTV, 20mm) - shrink(PTV, 2mm) at character 11"),
        # a negative outer distance too gets the hint, not "inner must be smaller than outer" (audit s18/r1 F13)
        ("ring(PTV, 2mm, -20mm)", 'a margin cannot be negative ("-20mm"): a ring\'s distances are measured outward from '
                                  "the surface of PTV; a shell reaching inside it is expand(PTV, 2mm) - shrink(PTV, 20mm) "
                                  "(the inner distance, the smaller, comes first) at character 16"),
        ("expand(CTV, 5mm, -0.5 cm, 5mm)", 'a margin cannot be negative ("-0.5 cm"): to grow along some axes and shrink '
                                           "along others, write the two in turn, e.g. shrink(expand(CTV, 5mm, 0mm, 5mm), "
                                           "0mm, 5mm, 0mm) at character 18"),
        ("expnd(CTV, 5mm)", 'unknown function "expnd" (did you mean "expand"?)'),
        ("A |", 'expected a structure name, a function or "(", found the end at character 4'),
        ("ring(A, 5mm, 2mm)", "ring inner distance 5 mm must be smaller than outer 2 mm"),
        ("__import__('os')", 'unknown function "__import__"'),
        ("A; B", 'unexpected character ";" at character 2'),
        ("(A", 'expected ")", found the end'),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_expression(text)
    assert message in str(caught.value)


NAMES = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), st.sampled_from(["Bowel bag", "PTV-70"]))
MM = st.integers(0, 300).map(lambda tenths: tenths / 10)


def expressions() -> st.SearchStrategy:
    leaves = NAMES.map(StructureRef)

    def extend(children: st.SearchStrategy) -> st.SearchStrategy:
        return st.one_of(
            st.builds(Union, children, children),
            st.builds(Difference, children, children),
            st.builds(Intersection, children, children),
            st.builds(Expand, children, st.tuples(MM, MM, MM)),
            st.builds(Shrink, children, st.tuples(MM, MM, MM)),
            st.builds(lambda e, inner, extra: Ring(e, inner, inner + extra + 0.1), children, MM, MM),
            st.builds(Crop, children, children, MM),
        )

    return st.recursive(leaves, extend, max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(expressions())
def test_print_parse_round_trip(expression) -> None:
    assert parse_expression(str(expression)) == expression


@pytest.mark.parametrize(
    ("text", "within"),
    [
        ("PTV", ("PTV",)),
        ("PTV - (Rectum | Bladder)", ("PTV",)),  # a coverage region: part of the PTV
        ("crop(PTV - Rectum, Body)", ("PTV", "Body")),
        ("shrink(CTV, 3mm) & Body", ("CTV", "Body")),
        ("PTV | CTV", ()),
        ("expand(CTV, 5mm)", ()),
        ("ring(PTV, 5mm, 30mm)", ()),
    ],
)
def test_an_expression_knows_the_structures_it_lies_inside_by_construction(text: str, within: tuple) -> None:
    assert parse_expression(text).within() == within


@pytest.mark.parametrize(
    "text, sources",
    [
        ("A", ("A",)),
        ("A - B", ("A",)),
        ("A | B - C", ("A", "B")),
        ("A & B", ("A", "B")),
        ("ring(A - B, 3mm, 10mm)", ("A",)),
        ("crop(expand(A, 5mm), Body)", ("A",)),
        ("shrink(A | B, 2mm) - C", ("A", "B")),
    ],
)
def test_sources_are_the_structures_that_make_voxels_not_those_that_remove_them(text, sources):
    assert parse_expression(text).sources() == sources
