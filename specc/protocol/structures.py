"""Derived-structure expressions: a tiny grammar, parsed by hand (never by eval).

    PTV_High | PTV_Low              union
    CTV & PTV                       intersection
    PTV - Rectum                    difference
    expand(CTV, 7mm)                isotropic margin
    expand(CTV, 5mm, 5mm, 10mm)     anisotropic margin along x, y, z (patient LPS axes)
    expand(CTV, z=10mm)             named axes; unnamed ones get 0 mm
    shrink(PTV, 3mm)                inner margin (same argument forms as expand)
    ring(PTV, 2mm, 20mm)            shell from 2 mm to 20 mm outside the surface
    crop(PTV, Body)                 the part inside Body; crop(PTV, Body, 4mm) keeps 4 mm inside it
    "Bowel bag" - (PTV)             quoted names, parentheses

`&` binds tighter than `|` and `-`, which associate to the left. The compile stage evaluates
the tree on masks; here it is only parsed, checked and printed back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Union as TypingUnion

from specc.protocol.suggest import near_match
from specc.protocol.units import LENGTH_UNITS, format_number

Margins = tuple[float, float, float]


@dataclass(frozen=True)
class StructureRef:
    name: str

    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def within(self) -> tuple[str, ...]:
        """The named structures this one lies inside by construction (whatever the masks)."""
        return (self.name,)

    def sources(self) -> tuple[str, ...]:
        """The named structures whose voxels (or margins around them) make this one's; a subtracted
        or cropping structure only removes voxels and is not one."""
        return (self.name,)

    def __str__(self) -> str:
        if _IDENTIFIER.fullmatch(self.name) and self.name not in FUNCTIONS:
            return self.name
        quote = "'" if '"' in self.name else '"'
        return f"{quote}{self.name}{quote}"


@dataclass(frozen=True)
class _Binary:
    left: StructureExpr
    right: StructureExpr

    symbol = ""
    precedence = 0

    def names(self) -> tuple[str, ...]:
        return _unique(self.left.names() + self.right.names())

    def within(self) -> tuple[str, ...]:
        return ()

    def sources(self) -> tuple[str, ...]:
        return _unique(self.left.sources() + self.right.sources())

    def __str__(self) -> str:
        left = _wrapped(self.left, self.precedence > _precedence(self.left))
        right = _wrapped(self.right, self.precedence >= _precedence(self.right))
        return f"{left} {self.symbol} {right}"


@dataclass(frozen=True)
class Union(_Binary):
    symbol = "|"
    precedence = 1


@dataclass(frozen=True)
class Difference(_Binary):
    symbol = "-"
    precedence = 1

    def within(self) -> tuple[str, ...]:
        return self.left.within()

    def sources(self) -> tuple[str, ...]:
        return self.left.sources()


@dataclass(frozen=True)
class Intersection(_Binary):
    symbol = "&"
    precedence = 2

    def within(self) -> tuple[str, ...]:
        return _unique(self.left.within() + self.right.within())


@dataclass(frozen=True)
class Expand:
    """Grow `operand` by a margin in mm along each patient axis (x, y, z)."""

    operand: StructureExpr
    margins_mm: Margins
    # each margin as the protocol wrote it ("6cm"), for messages that quote it; None where built in code
    written: tuple[str, str, str] | None = field(default=None, compare=False, repr=False)

    def names(self) -> tuple[str, ...]:
        return self.operand.names()

    def within(self) -> tuple[str, ...]:
        return ()

    def sources(self) -> tuple[str, ...]:
        return self.operand.sources()

    def __str__(self) -> str:
        return f"expand({self.operand}, {_margins_text(self.margins_mm)})"


@dataclass(frozen=True)
class Shrink:
    """Erode `operand` by a margin in mm along each patient axis (x, y, z)."""

    operand: StructureExpr
    margins_mm: Margins
    # each margin as the protocol wrote it ("6cm"), for messages that quote it; None where built in code
    written: tuple[str, str, str] | None = field(default=None, compare=False, repr=False)

    def names(self) -> tuple[str, ...]:
        return self.operand.names()

    def within(self) -> tuple[str, ...]:
        return self.operand.within()

    def sources(self) -> tuple[str, ...]:
        return self.operand.sources()

    def __str__(self) -> str:
        return f"shrink({self.operand}, {_margins_text(self.margins_mm)})"


@dataclass(frozen=True)
class Ring:
    """The shell between `inner_mm` and `outer_mm` outside the surface of `operand`."""

    operand: StructureExpr
    inner_mm: float
    outer_mm: float

    def names(self) -> tuple[str, ...]:
        return self.operand.names()

    def within(self) -> tuple[str, ...]:
        return ()

    def sources(self) -> tuple[str, ...]:
        return self.operand.sources()

    def __str__(self) -> str:
        return f"ring({self.operand}, {_mm(self.inner_mm)}, {_mm(self.outer_mm)})"


@dataclass(frozen=True)
class Crop:
    """The part of `operand` inside `boundary`, at least `margin_mm` inside its surface."""

    operand: StructureExpr
    boundary: StructureExpr
    margin_mm: float = 0.0

    def names(self) -> tuple[str, ...]:
        return _unique(self.operand.names() + self.boundary.names())

    def within(self) -> tuple[str, ...]:
        return _unique(self.operand.within() + (self.boundary.within() if self.margin_mm >= 0 else ()))

    def sources(self) -> tuple[str, ...]:
        return self.operand.sources()

    def __str__(self) -> str:
        margin = f", {_mm(self.margin_mm)}" if self.margin_mm else ""
        return f"crop({self.operand}, {self.boundary}{margin})"


StructureExpr = TypingUnion[StructureRef, Union, Difference, Intersection, Expand, Shrink, Ring, Crop]
FUNCTIONS = ("expand", "shrink", "ring", "crop")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<margin>(?:\d+(?:\.\d*)?|\.\d+)\s*(?:mm|cm)\b)
      | (?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)[A-Za-z]*)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<quoted>"[^"]*"|'[^']*')
      | (?P<symbol>[|&()\-,=])
    )""",
    re.VERBOSE,
)

_NEGATIVE_MARGIN = re.compile(r"-\s*((?:\d+(?:\.\d*)?|\.\d+)\s*(?:mm|cm))\b")


# What follows a number read as no margin: its unit, apart ("5 %", "5 cGy") where none is attached ("5%").
_UNIT_AFTER = re.compile(r"[ \t]*(?P<unit>%|[^\W\d_]+)")
_OTHER_LENGTHS = ("m", "dm", "um", "µm", "nm", "in")


def _not_a_margin(number: str, after: re.Match[str] | None) -> str:
    """Why a number is no margin: no unit, or one that is not mm or cm ("5%", "2cGy" are no lengths; a
    message that they need a unit, when one is written, sent the author looking for a missing one)."""
    written = re.match(r"[+-]?[\d.]*", number)
    digits = written[0] if written else number
    unit, shown = number[len(digits):], number
    if not unit and after is not None:
        unit, shown = after["unit"], number + after[0]
    if not unit:
        return f'"{number}" needs a unit: write margins in mm or cm, e.g. "5mm"'
    if unit.lower() in LENGTH_UNITS:
        return f'unit "{unit}" of "{shown}": write margins in "mm" or "cm", in lower case, e.g. "{digits}mm"'
    if unit in _OTHER_LENGTHS:
        return f'unit "{unit}" of "{shown}": margins are in mm or cm only, e.g. "5mm"'
    return f'unit "{unit}" of "{shown}" is not a length: margins are in mm or cm, e.g. "{digits}mm"'


def parse_expression(text: str) -> StructureExpr:
    """Parse an expression; raises ValueError naming the position of the first problem."""
    return _Parser(text).parse()


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int  # 1-based character position in the expression


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.index = 0

    def _tokenize(self, text: str) -> list[_Token]:
        tokens: list[_Token] = []
        position = 0
        while position < len(text):
            if not text[position:].strip():
                break
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                offset = position + len(text[position:]) - len(text[position:].lstrip())
                self._fail(offset + 1, f'unexpected character "{text[offset]}"')
            kind = match.lastgroup or ""
            start = match.start(kind) + 1
            negative = _NEGATIVE_MARGIN.match(text, match.start(kind)) if kind == "number" else None
            if negative:  # refused by the call it is written in, which knows what the sign would have meant
                tokens.append(_Token("negative", negative[0], start))
                position = negative.end()
                continue
            if kind == "number":
                self._fail(start, _not_a_margin(match[kind], _UNIT_AFTER.match(text, match.end())))
            tokens.append(_Token(kind, match[kind], start))
            position = match.end()
        tokens.append(_Token("end", "", len(text) + 1))
        return tokens

    def _fail(self, position: int, message: str) -> None:
        raise ValueError(f'structure expression "{self.text}": {message} at character {position}')

    def _peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def _take(self, text: str | None = None, kind: str | None = None, what: str = "") -> _Token:
        token = self._peek()
        if (text is not None and token.text != text) or (kind is not None and token.kind != kind):
            found = "the end" if token.kind == "end" else f'"{token.text}"'
            self._fail(token.position, f"expected {what or repr(text)}, found {found}")
        self.index += 1
        return token

    def parse(self) -> StructureExpr:
        if self._peek().kind == "end":
            self._fail(1, "empty expression")
        expression = self._union()
        self._take(kind="end", what="an operator (|, &, -) or the end")
        return expression

    def _union(self) -> StructureExpr:
        expression = self._intersection()
        while self._peek().text in ("|", "-") and self._peek().kind == "symbol":
            operator = self._take().text
            right = self._intersection()
            expression = Union(expression, right) if operator == "|" else Difference(expression, right)
        return expression

    def _intersection(self) -> StructureExpr:
        expression = self._atom()
        while self._peek().text == "&":
            self._take()
            expression = Intersection(expression, self._atom())
        return expression

    def _atom(self) -> StructureExpr:
        token = self._peek()
        if token.text == "(" and token.kind == "symbol":
            self._take()
            expression = self._union()
            self._take(")", what='")"')
            return expression
        if token.kind == "quoted":
            self._take()
            if len(token.text) == 2:
                self._fail(token.position, "empty structure name")
            return StructureRef(token.text[1:-1])
        if token.kind == "name":
            self._take()
            if self._peek().text == "(" and token.text in FUNCTIONS:
                return self._call(token.text)
            if self._peek().text == "(":
                hint = f' (did you mean "{near}"?)' if (near := near_match(token.text, FUNCTIONS)) else ""
                self._fail(token.position, f'unknown function "{token.text}"{hint}; known: {", ".join(FUNCTIONS)}')
            return StructureRef(token.text)
        found = "the end" if token.kind == "end" else f'"{token.text}"'
        self._fail(token.position, f"expected a structure name, a function or \"(\", found {found}")
        raise AssertionError("unreachable")

    def _call(self, function: str) -> StructureExpr:
        opening = self._take("(")
        operand = self._union()
        if function == "crop":
            self._take(",", what='"," and the structure to crop to')
            boundary = self._union()
            written = self._margin_list()
            if len(written) > 1:
                self._fail(opening.position, "crop takes one margin (how far inside the boundary to keep)")
            self._refuse_negative(written, lambda: _negative_crop(operand, boundary, written[0].mm))
            return Crop(operand, boundary, written[0].mm if written else 0.0)
        if self._peek().text != ",":
            self._fail(self._peek().position, f"{function} needs a margin, e.g. {function}(PTV, 5mm)")
        if function == "ring":
            written = self._margin_list()
            if len(written) != 2:
                self._fail(opening.position, "ring takes two distances: ring(PTV, inner, outer), e.g. ring(PTV, 2mm, 20mm)")
            inner, outer = (margin.mm for margin in written)
            # a negative distance first: its hint says what was meant, where "inner < outer" would only refuse it
            self._refuse_negative(written, lambda: _negative_ring(operand, inner, outer))
            if not inner < outer:
                self._fail(opening.position, f"ring inner distance {_prose_mm(inner)} must be smaller than outer "
                                             f"{_prose_mm(outer)}")
            return Ring(operand, inner, outer)
        named = self._peek(1).kind == "name" and self._peek(2).text == "="
        written = self._named_margins() if named else self._margin_list()
        if len(written) == 1:
            written = written * 3
        if len(written) != 3:
            self._fail(opening.position, f"{function} takes one margin or three (x, y, z)")
        triple: Margins = (written[0].mm, written[1].mm, written[2].mm)
        self._refuse_negative(written, lambda: _negative_margins(function, operand, triple))
        texts = (written[0].text, written[1].text, written[2].text)
        return Expand(operand, triple, texts) if function == "expand" else Shrink(operand, triple, texts)

    def _refuse_negative(self, written: list[_Margin], meant: Callable[[], str]) -> None:
        """Fail at the first negative margin of a call, with what its sign would mean written as the grammar
        writes it (`meant`): a negative expand is a shrink, a negative shrink an expand, and so on."""
        first = next((margin for margin in written if margin.mm < 0), None)
        if first is not None:
            self._fail(first.position, f'a margin cannot be negative ("{first.text}"): {meant()}')

    def _margin_list(self) -> list[_Margin]:
        margins: list[_Margin] = []
        while self._peek().text == ",":
            self._take()
            margins.append(self._margin())
        self._take(")", what='")"')
        return margins

    def _named_margins(self) -> list[_Margin]:
        axes: dict[str, _Margin] = {}
        while self._peek().text == ",":
            self._take()
            axis = self._take(kind="name", what="an axis x, y or z")
            if axis.text not in ("x", "y", "z"):
                self._fail(axis.position, f'unknown axis "{axis.text}" (expected x, y or z)')
            if axis.text in axes:
                self._fail(axis.position, f'axis "{axis.text}" is given twice')
            self._take("=", what='"="')
            axes[axis.text] = self._margin()
        self._take(")", what='")"')
        return [axes.get(axis, _Margin(0.0, "0mm", 0)) for axis in ("x", "y", "z")]

    def _margin(self) -> _Margin:
        token = self._peek()
        if token.kind != "negative":
            token = self._take(kind="margin", what='a margin in mm, e.g. "5mm"')
        else:
            self.index += 1
        number = re.sub(r"\s*(mm|cm)$", "", token.text)
        value = float(number) * (10.0 if token.text.endswith("cm") else 1.0)
        return _Margin(value, token.text, token.position)


@dataclass(frozen=True)
class _Margin:
    """A margin as written: its value in mm (negative when written so: refused by its call) and where it is."""

    mm: float
    text: str
    position: int


def _negative_margins(function: str, operand: StructureExpr, margins: Margins) -> str:
    """What an expand or shrink with negative margins means: the other operation, or both in turn."""
    written: Margins = (max(margins[0], 0.0), max(margins[1], 0.0), max(margins[2], 0.0))
    other: Margins = (max(-margins[0], 0.0), max(-margins[1], 0.0), max(-margins[2], 0.0))
    if function == "expand":
        meant = f"an expansion by a negative margin is a shrink: write shrink({operand}, {_margins_text(other)})"
        both: StructureExpr = Shrink(Expand(operand, written), other)
    else:
        meant = f"a shrink by a negative margin is an expansion: write expand({operand}, {_margins_text(other)})"
        both = Expand(Shrink(operand, written), other)
    if not any(written):
        return meant
    return f"to grow along some axes and shrink along others, write the two in turn, e.g. {both}"


def _negative_crop(operand: StructureExpr, boundary: StructureExpr, margin_mm: float) -> str:
    """A crop's margin keeps the part at least that far inside the boundary; beyond it is a crop to its expansion."""
    return (f"crop's margin is how far inside {boundary} to keep; to keep up to {_prose_mm(-margin_mm)} outside it, "
            f"crop to its expansion: crop({operand}, expand({boundary}, {_mm(-margin_mm)}))")


def _negative_ring(operand: StructureExpr, inner_mm: float, outer_mm: float) -> str:
    """A ring's distances are outward from the surface; a shell reaching inside is a difference of margins."""

    def at(mm: float) -> str:
        return f"expand({operand}, {_mm(mm)})" if mm >= 0 else f"shrink({operand}, {_mm(-mm)})"

    inner, outer = sorted((inner_mm, outer_mm))
    swapped = " (the inner distance, the smaller, comes first)" if inner_mm > outer_mm else ""
    return (f"a ring's distances are measured outward from the surface of {operand}; a shell reaching inside it is "
            f"{at(outer)} - {at(inner)}{swapped}")


def subexpressions(expression: StructureExpr) -> Iterator[StructureExpr]:
    """`expression` and every node inside it, outermost first (for rules that look at each operation)."""
    yield expression
    if isinstance(expression, _Binary):
        yield from subexpressions(expression.left)
        yield from subexpressions(expression.right)
    elif isinstance(expression, (Expand, Shrink, Ring)):
        yield from subexpressions(expression.operand)
    elif isinstance(expression, Crop):
        yield from subexpressions(expression.operand)
        yield from subexpressions(expression.boundary)


def _precedence(expression: StructureExpr) -> int:
    return expression.precedence if isinstance(expression, _Binary) else 3


def _wrapped(expression: StructureExpr, parenthesize: bool) -> str:
    return f"({expression})" if parenthesize else str(expression)


def _mm(value: float) -> str:
    """A distance as the grammar writes it ("2mm")."""
    return f"{format_number(value)}mm"


def _prose_mm(value: float) -> str:
    """A distance as a message's prose writes it ("2 mm")."""
    return f"{format_number(value)} mm"


def _margins_text(margins: Margins) -> str:
    if margins[0] == margins[1] == margins[2]:
        return _mm(margins[0])
    return ", ".join(_mm(value) for value in margins)


def _unique(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))
