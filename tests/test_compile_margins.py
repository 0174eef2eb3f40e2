"""Margins in mm on anisotropic grids, against analytic shapes."""

from __future__ import annotations

import numpy as np
import pytest

from specc.compile.margins import along_axis_mm, expand, ring, shrink


def _grid(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> tuple[np.ndarray, ...]:
    """Voxel-centre coordinates (mm) centred on the middle voxel."""
    axes = [(np.arange(n) - n // 2) * s for n, s in zip(shape, spacing)]
    return np.meshgrid(*axes, indexing="ij")


def test_expanding_a_point_gives_the_ellipsoid_of_the_margins_on_an_anisotropic_grid() -> None:
    spacing = (1.0, 2.0, 2.5)
    x, y, z = _grid((41, 31, 25), spacing)
    point = (x == 0) & (y == 0) & (z == 0)
    margins = (6.0, 10.0, 15.0)
    grown = expand(point, margins, spacing)
    expected = (x / margins[0]) ** 2 + (y / margins[1]) ** 2 + (z / margins[2]) ** 2 <= 1 + 1e-9
    np.testing.assert_array_equal(grown, expected)
    # the extent along each axis is the margin, whatever the spacing
    assert x[grown].max() == 6.0 and y[grown].max() == 10.0 and z[grown].max() == 15.0


def test_expansion_keeps_exactly_the_voxels_within_the_margin_of_a_structure_voxel() -> None:
    """Brute force over all voxel pairs of a random structure on an anisotropic grid."""
    spacing = (1.5, 2.0, 3.0)
    rng = np.random.default_rng(7)
    mask = rng.random((9, 8, 7)) > 0.93
    centres = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(mask.shape, spacing)], indexing="ij"), -1)
    members = centres[mask]
    nearest = np.sqrt(((centres[..., None, :] - members) ** 2).sum(-1)).min(-1)
    for margin in (1.5, 3.0, 4.2):
        np.testing.assert_array_equal(expand(mask, margin, spacing), nearest <= margin + 1e-9)


def test_a_zero_margin_along_one_axis_expands_within_the_slice_only() -> None:
    spacing = (2.0, 2.0, 3.0)
    x, y, z = _grid((21, 21, 11), spacing)
    point = (x == 0) & (y == 0) & (z == 0)
    grown = expand(point, (4.0, 4.0, 0.0), spacing)
    assert grown[:, :, z[0, 0, :] != 0].sum() == 0
    assert grown.sum() == np.count_nonzero(x[..., 0] ** 2 + y[..., 0] ** 2 <= 16.0)


def test_shrink_is_the_dual_of_expand_and_peels_whole_voxel_layers() -> None:
    spacing = (2.0, 2.0, 2.0)
    mask = np.zeros((20, 20, 20), dtype=bool)
    mask[4:16, 4:16, 4:16] = True
    np.testing.assert_array_equal(shrink(mask, 2.0, spacing), ~expand(~mask, 2.0, spacing))
    shrunk = shrink(mask, 2.0, spacing)  # exactly one voxel spacing: the outer layer goes
    expected = np.zeros_like(mask)
    expected[5:15, 5:15, 5:15] = True
    np.testing.assert_array_equal(shrunk, expected)
    assert shrink(mask, 1.9, spacing).sum() == mask.sum()  # less than a spacing removes nothing


def test_ring_holds_voxels_between_inner_and_outer_distance_from_the_surface() -> None:
    spacing = (1.0, 1.0, 1.0)
    x, y, z = _grid((51, 51, 51), spacing)
    radius = np.sqrt(x**2 + y**2 + z**2)
    sphere = radius <= 10.0
    shell = ring(sphere, 3.0, 8.0, spacing)
    assert not (shell & sphere).any()
    assert not shell[radius <= 12.5].any()  # inside 10 + 3 (less a voxel for the discrete surface)
    assert shell[(radius > 13.5) & (radius < 17.5)].all()
    assert not shell[radius > 18.5].any()


def test_bad_margins_are_rejected() -> None:
    mask = np.ones((3, 3, 3), dtype=bool)
    with pytest.raises(ValueError, match="non-negative"):
        expand(mask, -1.0, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="outer > inner"):
        ring(mask, 5.0, 5.0, (1.0, 1.0, 1.0))


@pytest.mark.parametrize(
    ("margin", "spacing", "given"),
    [(3.0, 5.0, 0.0), (4.9, 5.0, 0.0), (5.0, 5.0, 5.0), (7.0, 5.0, 5.0), (10.0, 5.0, 10.0), (7.5, 2.5, 7.5),
     (0.3, 0.1, 0.3), (5.0, 3.0, 3.0)],
)
def test_a_margin_gives_a_whole_number_of_voxel_spacings_along_an_axis(margin: float, spacing: float, given: float) -> None:
    """What `along_axis_mm` says is what `expand` does along an axis (voxel-centre convention)."""
    assert along_axis_mm(margin, spacing) == pytest.approx(given)
    line = np.zeros((41, 1, 1), dtype=bool)
    line[20] = True
    grown = expand(line, margin, (spacing, 1.0, 1.0))
    assert (np.count_nonzero(grown) - 1) // 2 * spacing == pytest.approx(given)
