"""Evaluating a derived-structure expression (parsed by `specc.protocol.structures`) on masks.

Each node of the expression tree maps to one mask operation; margins use the grid spacing
(`margins.py`), so "expand(CTV, 7mm)" means 7 mm in patient space on any grid.
`crop(X, B, m)` keeps the part of X at least m mm inside B (B shrunk by m).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import singledispatch

import numpy as np

from specc.compile.margins import expand, ring, shrink
from specc.protocol.structures import (
    Crop,
    Difference,
    Expand,
    Intersection,
    Ring,
    Shrink,
    StructureExpr,
    StructureRef,
    Union,
)

MaskLookup = Callable[[str], np.ndarray]


def evaluate_expression(expression: StructureExpr, lookup: MaskLookup, spacing_mm: Sequence[float]) -> np.ndarray:
    """The boolean grid mask of `expression`; `lookup` gives the mask of a named structure."""
    return _evaluate(expression, lookup, tuple(spacing_mm))


@singledispatch
def _evaluate(expression: object, lookup: MaskLookup, spacing: tuple[float, ...]) -> np.ndarray:
    raise TypeError(f"no mask operation for structure expression node {type(expression).__name__}")


@_evaluate.register
def _(expression: StructureRef, lookup: MaskLookup, spacing: tuple[float, ...]) -> np.ndarray:
    return lookup(expression.name)


@_evaluate.register
def _(expression: Union, lookup: MaskLookup, spacing: tuple[float, ...]) -> np.ndarray:
    return _evaluate(expression.left, lookup, spacing) | _evaluate(expression.right, lookup, spacing)


@_evaluate.register
def _(expression: Intersection, lookup: MaskLookup, spacing: tuple[float, ...]) -> np.ndarray:
    return _evaluate(expression.left, lookup, spacing) & _evaluate(expression.right, lookup, spacing)


@_evaluate.register
def _(expression: Difference, lookup: MaskLookup, spacing: tuple[float, ...]) -> np.ndarray:
    return _evaluate(expression.left, lookup, spacing) & ~_evaluate(expression.right, lookup, spacing)


@_evaluate.register
def _(expression: Expand, lookup: MaskLookup, spacing: tuple[float, ...]) -> np.ndarray:
    return expand(_evaluate(expression.operand, lookup, spacing), expression.margins_mm, spacing)


@_evaluate.register
def _(expression: Shrink, lookup: MaskLookup, spacing: tuple[float, ...]) -> np.ndarray:
    return shrink(_evaluate(expression.operand, lookup, spacing), expression.margins_mm, spacing)


@_evaluate.register
def _(expression: Ring, lookup: MaskLookup, spacing: tuple[float, ...]) -> np.ndarray:
    return ring(_evaluate(expression.operand, lookup, spacing), expression.inner_mm, expression.outer_mm, spacing)


@_evaluate.register
def _(expression: Crop, lookup: MaskLookup, spacing: tuple[float, ...]) -> np.ndarray:
    boundary = _evaluate(expression.boundary, lookup, spacing)
    if expression.margin_mm > 0:
        boundary = shrink(boundary, expression.margin_mm, spacing)
    return _evaluate(expression.operand, lookup, spacing) & boundary
