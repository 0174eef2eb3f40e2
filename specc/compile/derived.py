"""Evaluating a derived-structure expression (parsed by `specc.protocol.structures`) on masks.

Each node of the expression tree maps to one mask operation; margins use the grid spacing
(`margins.py`), so "expand(CTV, 7mm)" means 7 mm in patient space on any grid.
`crop(X, B, m)` keeps the part of X at least m mm inside B (B shrunk by m).

A margin keeps the voxels whose centre lies within it, so along an axis it reaches a whole
number of voxel spacings: 3 mm on a 5 mm grid reaches no neighbour, and a PRV written that
way is its organ. `coarse_margins` finds such margins, for the compile stage to say so.

Nothing exists outside the grid, so an expansion reaching past its edge is cut there: a CTV
touching the dose grid's edge gives a PTV without the margin's voxels beyond it. `beyond_grid`
counts them (the expansion on the grid extended by its reach, the operand ending at the edge),
for the compile stage to say so too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import singledispatch

import numpy as np

from specc.compile.margins import along_axis_mm, expand, ring, shrink
from specc.protocol.structures import (
    Crop,
    Difference,
    Expand,
    Intersection,
    Margins,
    Ring,
    Shrink,
    StructureExpr,
    StructureRef,
    Union,
)

MaskLookup = Callable[[str], np.ndarray]
AXES = ("x", "y", "z")
# Written and given margins closer than this (mm) are the same: a whole number of spacings.
_SAME_MM = 1e-6


@dataclass(frozen=True)
class CoarseMargin:
    """A margin of `node` that the grid cannot hold along `axes`: written `written_mm`, it gives `given_mm`."""

    node: Expand | Shrink | Ring | Crop
    what: str  # "margin", or a ring's "inner distance" / "outer distance"
    written_mm: float
    given_mm: float
    axes: tuple[str, ...]
    # A ring's inner distance: where its first voxel centre lies along `axes` (the ring leaves out the voxels within
    # it, `given_mm`, so it starts one spacing beyond: 19.9 mm on a 10 mm grid gives 10 mm and starts it at 20 mm)
    first_mm: float | None = None


@dataclass(frozen=True)
class BeyondGrid:
    """The voxels expansion `node` reaches past the grid's edges, which the grid cannot hold: `voxels` in all,
    `edges` the grid faces they lie beyond, each as (axis 0-2, -1 for the low side or +1 for the high one)."""

    node: Expand
    voxels: int
    edges: tuple[tuple[int, int], ...]


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


def coarse_margins(expression: StructureExpr, spacing_mm: Sequence[float]) -> list[CoarseMargin]:
    """The margins of `expression` that are not a whole number of voxel spacings along an axis where
    they are not zero, each once (a node written twice is one), axes with the same outcome together."""
    found: dict[CoarseMargin, None] = {}
    for node, what, margins in _margins(expression):
        given: dict[tuple[float, float, float | None], list[str]] = {}
        for axis, margin, spacing in zip(AXES, margins, spacing_mm):
            on_grid = along_axis_mm(margin, spacing)
            if margin > 0 and abs(on_grid - margin) > _SAME_MM:
                first = on_grid + spacing if what == "inner distance" else None
                given.setdefault((margin, on_grid, first), []).append(axis)
        for (written, on_grid, first), axes in given.items():
            found[CoarseMargin(node, what, written, on_grid, tuple(axes), first)] = None
    return list(found)


def beyond_grid(expression: StructureExpr, lookup: MaskLookup, spacing_mm: Sequence[float]) -> list[BeyondGrid]:
    """Each expansion that makes voxels of `expression` and reaches past the grid's edge: how many voxels of it lie
    beyond that `expression` could have kept, and where. A crop's boundary or a subtracted part only removes voxels
    (its expansions are not followed); an expansion intersected with another operand, or cropped to a boundary, is
    counted only where that operand allows: beyond the grid, the operand as it reaches the grid's edge, carried on
    across it (`np.pad`'s "edge": a body cut by the grid's edge goes on, an organ inside the grid allows none), so
    `expand(Target, 30mm) & Organ` of an organ inside the grid loses nothing there."""
    spacing = tuple(spacing_mm)
    found = []
    for node, within in dict.fromkeys(_growing(expression)):
        reach = [round(along_axis_mm(margin, step) / step) for margin, step in zip(node.margins_mm, spacing)]
        operand = _evaluate(node.operand, lookup, spacing)
        if not any(_near_edge(operand, axis, voxels) for axis, voxels in enumerate(reach)):
            continue
        padding = [(voxels, voxels) for voxels in reach]
        grown = expand(np.pad(operand, padding), node.margins_mm, spacing)
        grown[tuple(slice(voxels, voxels + size) for voxels, size in zip(reach, operand.shape))] = False
        for other in within:  # what an intersection or a crop would keep of it beyond the grid
            grown &= np.pad(_evaluate(other, lookup, spacing), padding, mode="edge")
        edges = tuple((axis, side) for axis, voxels in enumerate(reach) for side in (-1, 1)
                      if voxels and grown[_slab(grown.ndim, axis, voxels, side)].any())
        if edges:
            found.append(BeyondGrid(node, int(np.count_nonzero(grown)), edges))
    return found


def _near_edge(mask: np.ndarray, axis: int, voxels: int) -> bool:
    """Whether `mask` has a voxel within `voxels` of either end of the grid along `axis`."""
    if voxels == 0 or not mask.any():
        return False
    along = np.flatnonzero(mask.any(axis=tuple(other for other in range(mask.ndim) if other != axis)))
    return bool(along[0] < voxels or along[-1] > mask.shape[axis] - 1 - voxels)


def _slab(ndim: int, axis: int, voxels: int, side: int) -> tuple[slice, ...]:
    """The padding of `voxels` beyond one side of a padded grid along `axis`."""
    index = [slice(None)] * ndim
    index[axis] = slice(0, voxels) if side < 0 else slice(-voxels, None)
    return tuple(index)


# An expansion making a structure's voxels, with the operands it is intersected with or cropped to on its way up.
Growing = tuple[Expand, tuple[StructureExpr, ...]]


@singledispatch
def _growing(expression: object, within: tuple[StructureExpr, ...] = ()) -> list[Growing]:
    """The expansions whose voxels make `expression`'s (outermost first), each with the operands that bound it."""
    raise TypeError(f"no expansions for structure expression node {type(expression).__name__}")


@_growing.register
def _(expression: StructureRef, within: tuple[StructureExpr, ...] = ()) -> list[Growing]:
    return []


@_growing.register
def _(expression: Union, within: tuple[StructureExpr, ...] = ()) -> list[Growing]:
    return _growing(expression.left, within) + _growing(expression.right, within)


@_growing.register
def _(expression: Intersection, within: tuple[StructureExpr, ...] = ()) -> list[Growing]:
    return (_growing(expression.left, (*within, expression.right))
            + _growing(expression.right, (*within, expression.left)))


@_growing.register
def _(expression: Difference, within: tuple[StructureExpr, ...] = ()) -> list[Growing]:
    return _growing(expression.left, within)


@_growing.register
def _(expression: Expand, within: tuple[StructureExpr, ...] = ()) -> list[Growing]:
    return [(expression, within), *_growing(expression.operand, within)]


@_growing.register
def _(expression: Shrink | Ring, within: tuple[StructureExpr, ...] = ()) -> list[Growing]:
    return _growing(expression.operand, within)


@_growing.register
def _(expression: Crop, within: tuple[StructureExpr, ...] = ()) -> list[Growing]:
    return _growing(expression.operand, (*within, expression.boundary))


def margin_nodes(expression: StructureExpr) -> list[Expand | Shrink | Ring | Crop]:
    """The nodes of `expression` that take a margin, outermost first, each once."""
    return list(dict.fromkeys(node for node, _, _ in _margins(expression)))


MarginOf = tuple[Expand | Shrink | Ring | Crop, str, Margins]


@singledispatch
def _margins(expression: object) -> list[MarginOf]:
    raise TypeError(f"no margins for structure expression node {type(expression).__name__}")


@_margins.register
def _(expression: StructureRef) -> list[MarginOf]:
    return []


@_margins.register
def _(expression: Union | Intersection | Difference) -> list[MarginOf]:
    return _margins(expression.left) + _margins(expression.right)


@_margins.register
def _(expression: Expand | Shrink) -> list[MarginOf]:
    return [(expression, "margin", expression.margins_mm), *_margins(expression.operand)]


@_margins.register
def _(expression: Ring) -> list[MarginOf]:
    inner: Margins = (expression.inner_mm,) * 3
    outer: Margins = (expression.outer_mm,) * 3
    return [(expression, "inner distance", inner), (expression, "outer distance", outer), *_margins(expression.operand)]


@_margins.register
def _(expression: Crop) -> list[MarginOf]:
    margin: Margins = (expression.margin_mm,) * 3
    return [(expression, "margin", margin), *_margins(expression.operand), *_margins(expression.boundary)]
